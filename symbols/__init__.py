"""ResNet-family graphs built with `mx.sym`, a registry of them by name, and named models.

    >>> import symbols
    >>> sym = symbols.get_symbol('resnet', num_classes=10, num_layers=20, image_shape='3,28,28')
    >>> sym = symbols.get_model('resnext50_32x4d')          # python -m symbols --list

MXNet's example scripts load a network module by name, `import_module('symbols.' + network)`,
and call its `get_symbol`: `symbols.resnet`, `symbols.resnet-v1` and `symbols.resnext` serve
them.
"""
import re

from . import resnet, resnet_v1, resnext
from .models import MODELS, ModelConfig

_COMMON = ('conv_workspace', 'dtype', 'bn_mom', 'memonger')

# name -> (get_symbol, the options that network takes besides the common three)
# The options after act_type build the variants of gluon-cv's model zoo (symbols/blocks.py).
_POST_ACTIVATION = ('stride_in_1x1', 'data_bn', 'bn_eps', 'stem_act', 'bottleneck_bias')
_REGISTRY = {
    'resnet': (resnet.get_symbol, _COMMON + ('act_type', 'bn_eps', 'exact_dim_match',
                                             'preact_shortcut', 'cifar_max_height')),
    'resnet-v1': (resnet_v1.get_symbol, _COMMON + ('shortcut', 'act_type') + _POST_ACTIVATION
                  + ('bn_position', 'shortcut_bn')),
    'plain': (resnet_v1.get_plain_symbol, _COMMON + ('act_type',) + _POST_ACTIVATION),
    'resnext': (resnext.get_symbol, _COMMON + ('num_group', 'bottleneck_width', 'act_type',
                                               'data_bn', 'bn_eps')),
}


def list_networks():
    """Names accepted by `get_symbol` (and by `--network` in the scripts)."""
    return sorted(_REGISTRY)


def network_options(network):
    """Option names `network` takes besides num_classes, num_layers and image_shape."""
    return _REGISTRY[_check_network(network)][1]


def _check_network(network):
    if network not in _REGISTRY:
        raise ValueError('unknown network %r: choose one of %s'
                         % (network, ', '.join(list_networks())))
    return network


def get_symbol(network, num_classes, num_layers, image_shape, **options):
    """Build `network` by name; an option the network does not take is a ValueError."""
    build, accepted = _REGISTRY[_check_network(network)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError('network %r has no option %s: it takes %s'
                         % (network, ', '.join(unknown), ', '.join(accepted)))
    return build(num_classes=num_classes, num_layers=num_layers, image_shape=image_shape,
                 **options)


def by_family_and_depth(names):
    """`names` sorted by family, then depth: resnet20 before resnet110."""
    def key(name):
        return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', name)]
    return sorted(names, key=key)


def list_models():
    """Names accepted by `get_model` (and by `--model` in train_resnet.py), by family, then
    depth."""
    return by_family_and_depth(MODELS)


def model_config(name):
    """The ModelConfig(network, num_layers, options, image_shape, num_classes) of `name`."""
    if name not in MODELS:
        raise ValueError('unknown model %r: choose one of %s' % (name, ', '.join(list_models())))
    return MODELS[name]


def get_model(name, num_classes=None, image_shape=None, **options):
    """Build the named model; `num_classes`, `image_shape` and `options` override its own.
    An input shape for which the network takes another layout of stages is a ValueError
    (`check_model_input`)."""
    config = model_config(name)
    num_classes = config.num_classes if num_classes is None else num_classes
    options = dict(config.options, **options)
    sym = get_symbol(config.network, num_classes=num_classes, num_layers=config.num_layers,
                     image_shape=config.image_shape if image_shape is None else image_shape,
                     **options)
    if image_shape is not None:
        check_model_input(name, image_shape, sym, **options)
    return sym


def check_model_input(name, image_shape, sym=None, **options):
    """ValueError unless the named model keeps its layers at `image_shape`: the depth rules
    pick a network's layout by input height (CIFAR stages for small images), so a model
    named for one input size is another network at the other. `sym`: the model already built
    at `image_shape`."""
    config = model_config(name)
    options = dict(config.options, **options)

    def layers(shape):
        return [a for a in get_symbol(config.network, num_classes=config.num_classes,
                                      num_layers=config.num_layers, image_shape=shape,
                                      **options).list_arguments()
                if a.startswith('stage')]
    try:
        at_shape = [a for a in sym.list_arguments() if a.startswith('stage')] if sym is not None \
            else layers(image_shape)
    except ValueError:
        at_shape = None
    if at_shape != layers(config.image_shape):
        shape = image_shape if isinstance(image_shape, str) else \
            ','.join(str(v) for v in image_shape)
        raise ValueError(
            'model %s is built for %s inputs; at %s the %s network takes another layout of '
            'stages: use network %s with num_layers %d for that, or a %d-px input'
            % (name, 'x'.join(map(str, config.image_shape)), shape, config.network,
               config.network, config.num_layers, config.image_shape[1]))
