"""ResNet-family graphs built with `mx.sym`, and a registry of them by name.

    >>> import symbols
    >>> sym = symbols.get_symbol('resnet', num_classes=10, num_layers=20, image_shape='3,28,28')
"""
from . import resnet, resnet_v1, resnext

_COMMON = ('conv_workspace', 'dtype', 'bn_mom', 'memonger')

# name -> (get_symbol, the options that network takes besides the common three)
_REGISTRY = {
    'resnet': (resnet.get_symbol, _COMMON + ('act_type',)),
    'resnet-v1': (resnet_v1.get_symbol, _COMMON + ('shortcut', 'act_type')),
    'plain': (resnet_v1.get_plain_symbol, _COMMON + ('act_type',)),
    'resnext': (resnext.get_symbol, _COMMON + ('num_group', 'bottleneck_width', 'act_type')),
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
