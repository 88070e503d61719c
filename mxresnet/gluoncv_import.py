"""Weights from gluon-cv's model zoo as checkpoints of our networks.

A model-zoo parameter file (`~/.mxnet/models/resnet50_v1-cc729d95.params`, written by
Gluon's `save_parameters`) holds the weights of one gluon-cv network under structural names
(`features.4.0.body.0.weight`). `ZOO` says, as data, which of our networks (with which
options) computes what each supported gluon-cv network computes, at which input and with
which preprocessing, and which naming rule (`NAMINGS`) turns its parameter names into ours;
`convert` checks every parameter of the file against that network's and writes checkpoint 0
of it: the symbol, the weights, a progress file without optimizer state, and the metadata,
with `pretrained: gluoncv:NAME`.

The options that gluon-cv's variants need (BatchNorm epsilon 1e-5, no `bn_data`, the v1b
stride on the 3x3, the v1 bottleneck biases, ...) are network options of our builders,
listed in symbols/blocks.py; with them the graphs compute gluon-cv's functions exactly, not
approximately. Files saved by the older `save_params` (names such as
`stage1_conv0_weight`) are translated through gluon-cv's own network, built without weights.
"""
import collections
import os
import re

import mxnet as mx

import symbols
from . import checkpoint
from .errors import UsageError

GLUON_BN_EPS = 1e-5   # Gluon's BatchNorm default, which gluon-cv's networks keep

# Input and preprocessing of each dataset gluon-cv trains on: its normalisation (of 0-1
# pixels) times 255, our pixel scale. ImageNet: the shorter side to 256, a centre crop of 224
# (gluon-cv's validation transform, crop ratio 0.875); class names from gluon-cv's
# ImageNet1kAttr. CIFAR-10: its train_cifar10.py's values at 32x32; gluon-cv's code has no
# CIFAR-10 class names, so none are recorded.
Dataset = collections.namedtuple('Dataset', 'image_shape resize mean std synset')


def _pixels(values):
    return [round(255 * v, 6) for v in values]


DATASETS = {
    'imagenet': Dataset((3, 224, 224), 256, _pixels((0.485, 0.456, 0.406)),
                        _pixels((0.229, 0.224, 0.225)), 'imagenet1k'),
    'cifar10': Dataset((3, 32, 32), 0, _pixels((0.4914, 0.4822, 0.4465)),
                       _pixels((0.2023, 0.1994, 0.2010)), None),
}

# How gluon-cv names a network's parameters, as ours are named: `layers` maps a block's path
# outside the stages to our layer; unit j (from 0) of our stage i (from 1) is
# `stage % (first_stage + i - 1, j)`; `units` maps a path inside a unit to our suffix.
Naming = collections.namedtuple('Naming', 'layers stage first_stage units')
_V1_UNIT = {'body.0': 'conv1', 'body.1': 'bn1', 'body.3': 'conv2', 'body.4': 'bn2',
            'body.6': 'conv3', 'body.7': 'bn3', 'downsample.0': 'sc', 'downsample.1': 'sc_bn'}
_V1B_UNIT = dict({n: n for n in ('conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3')},
                 **{'downsample.0': 'sc', 'downsample.1': 'sc_bn'})
_V2_UNIT = dict({n: n for n in ('bn1', 'conv1', 'bn2', 'conv2', 'bn3', 'conv3')},
                downsample='sc')
NAMINGS = {
    # ResNetV1 (resnet.py) and ResNext (resnext.py): conv, BN, ReLU, max pool, 4 stages
    'v1': Naming({'features.0': 'conv0', 'features.1': 'bn0', 'output': 'fc1'},
                 'features.%d.%d', 4, _V1_UNIT),
    # ResNetV1b (resnetv1b.py): named attributes, `downN_` projections inside the units
    'v1b': Naming({'conv1': 'conv0', 'bn1': 'bn0', 'fc': 'fc1'}, 'layer%d.%d', 1, _V1B_UNIT),
    # ResNetV2: data BN, conv, BN, ReLU, max pool, 4 stages, BN
    'v2': Naming({'features.0': 'bn_data', 'features.1': 'conv0', 'features.2': 'bn0',
                  'features.9': 'bn1', 'output': 'fc1'}, 'features.%d.%d', 5, _V2_UNIT),
    # CIFARResNetV1 (cifarresnet.py): conv, BN, 3 stages
    'cifar_v1': Naming({'features.0': 'conv0', 'features.1': 'bn0', 'output': 'fc1'},
                       'features.%d.%d', 2, _V1_UNIT),
    # CIFARResNetV2: data BN, conv, 3 stages, BN
    'cifar_v2': Naming({'features.0': 'bn_data', 'features.1': 'conv0', 'features.5': 'bn1',
                        'output': 'fc1'}, 'features.%d.%d', 2, _V2_UNIT),
}
# gluon-cv's parameter name -> ours, at the end of a name
PARAMS = {'weight': 'weight', 'bias': 'bias', 'gamma': 'gamma', 'beta': 'beta',
          'running_mean': 'moving_mean', 'running_var': 'moving_var'}

# A zoo name: our network, depth, options, the dataset (input, preprocessing), naming rule.
Entry = collections.namedtuple('Entry', 'network num_layers options dataset naming')


def _zoo():
    zoo = {}
    # ResNetV1: the paper's ResNet with option-B shortcuts, no data BN; its bottleneck 1x1
    # convolutions keep Gluon's bias. V1b: no biases, the stride on the 3x3 ("V1.5").
    v1 = {'shortcut': 'B', 'data_bn': False, 'bn_eps': GLUON_BN_EPS}
    # ResNetV2: our pre-activation ResNet; basic-unit nets keep an identity in stage 1.
    v2 = {'bn_eps': GLUON_BN_EPS, 'exact_dim_match': True}
    for depth in (18, 34, 50, 101, 152):
        zoo['resnet%d_v1' % depth] = Entry(
            'resnet-v1', depth, dict(v1, bottleneck_bias=True) if depth >= 50 else v1,
            'imagenet', 'v1')
        zoo['resnet%d_v1b' % depth] = Entry('resnet-v1', depth, dict(v1, stride_in_1x1=False),
                                            'imagenet', 'v1b')
        zoo['resnet%d_v2' % depth] = Entry('resnet', depth, v2, 'imagenet', 'v2')
    for depth, groups, width in ((50, 32, 4), (101, 32, 4), (101, 64, 4)):
        zoo['resnext%d_%dx%dd' % (depth, groups, width)] = Entry(
            'resnext', depth, {'num_group': groups, 'bottleneck_width': width,
                               'data_bn': False, 'bn_eps': GLUON_BN_EPS}, 'imagenet', 'v1')
    for depth in (20, 56, 110):
        # CIFAR v1: no ReLU after the stem's BN. CIFAR v2: projections from the unit's
        # input, the CIFAR layout at 32x32.
        zoo['cifar_resnet%d_v1' % depth] = Entry('resnet-v1', depth, dict(v1, stem_act=False),
                                                 'cifar10', 'cifar_v1')
        zoo['cifar_resnet%d_v2' % depth] = Entry(
            'resnet', depth, dict(v2, preact_shortcut=False, cifar_max_height=32), 'cifar10',
            'cifar_v2')
    return zoo


ZOO = _zoo()


def supported():
    """The zoo names `convert` takes, by family, then depth."""
    return symbols.by_family_and_depth(ZOO)


def entry(name):
    """The Entry of zoo name `name`; UsageError listing the supported names otherwise."""
    if name not in ZOO:
        raise UsageError('--model %s: not a gluon-cv model this tool converts; supported: %s'
                         % (name, ', '.join(supported())))
    return ZOO[name]


def our_name(naming, name):
    """Our parameter name for gluon-cv's structural `name` under `naming`, or None."""
    path, _, param = name.rpartition('.')
    if param not in PARAMS:
        return None
    if path in naming.layers:
        return '%s_%s' % (naming.layers[path], PARAMS[param])
    pattern = re.escape(naming.stage).replace('%d', r'(\d+)')
    match = re.match(r'%s\.(.+)$' % pattern, path)
    if not match or match.group(3) not in naming.units:
        return None
    stage = int(match.group(1)) - naming.first_stage + 1
    if stage < 1:
        return None
    return 'stage%d_unit%d_%s_%s' % (stage, int(match.group(2)) + 1,
                                      naming.units[match.group(3)], PARAMS[param])


def gluon_name(naming, ours):
    """gluon-cv's structural name for our parameter `ours` under `naming` (the inverse of
    `our_name`), or `ours` itself where the rule has none."""
    for param, our_param in PARAMS.items():
        if ours.endswith('_' + our_param):
            layer = ours[:-len(our_param) - 1]
            break
    else:
        return ours
    for path, our_layer in naming.layers.items():
        if our_layer == layer:
            return '%s.%s' % (path, param)
    match = re.match(r'stage(\d+)_unit(\d+)_(.+)$', layer)
    paths = {suffix: path for path, suffix in naming.units.items()}
    if not match or match.group(3) not in paths:
        return ours
    return '%s.%s.%s' % (naming.stage % (int(match.group(1)) + naming.first_stage - 1,
                                         int(match.group(2)) - 1),
                         paths[match.group(3)], param)


def read_params(path):
    """{name: NDArray} of a Gluon parameter file; UsageError when it is missing, unreadable
    or not one."""
    if not os.path.isfile(path):
        raise UsageError('--params %s: no such file' % path)
    try:
        with open(path, 'rb'):
            pass
    except OSError as err:
        raise UsageError('--params %s: cannot read it: %s' % (path, err.strerror or err))
    try:
        loaded = mx.nd.load(path)
    except mx.base.MXNetError:
        raise UsageError('--params %s: not an MXNet parameter file (or a damaged one)' % path)
    if not isinstance(loaded, dict) or not loaded:
        raise UsageError('--params %s: holds no named parameters (not a file written by '
                         "Gluon's save_parameters)" % path)
    return loaded


def structural_names(name, loaded):
    """`loaded` under the structural names of `save_parameters`: a file of the older
    `save_params` (names without a '.', such as `stage1_conv0_weight`) is translated through
    gluon-cv's network `name`, built without weights."""
    if any('.' in key for key in loaded):
        return loaded
    from gluoncv.model_zoo import get_model
    net = get_model(name, pretrained=False)
    rename = {param.name[len(net.prefix):]: key
              for key, param in net._collect_params_with_prefix().items()}  # pylint: disable=W0212
    return {rename.get(key, key): value for key, value in loaded.items()}


def match_params(name, zoo_entry, sym, loaded, path):
    """(arg_params, aux_params) of `sym` from gluon-cv's parameters `loaded`; UsageError
    naming the first parameter missing, of another shape, or left over."""
    naming = NAMINGS[zoo_entry.naming]
    image_shape = DATASETS[zoo_entry.dataset].image_shape
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(1,) + tuple(image_shape))
    expected = dict(zip(sym.list_arguments(), arg_shapes))
    aux_names = sym.list_auxiliary_states()
    expected.update(zip(aux_names, aux_shapes))
    del expected['data'], expected['softmax_label']
    ours = {}
    for key, value in loaded.items():
        mapped = our_name(naming, key)
        if mapped in expected:
            ours[mapped] = (key, value)
    for param in [p for p in sym.list_arguments() + aux_names if p in expected]:
        if param not in ours:
            raise UsageError('--params %s has no %s (our %s, shape %s), which gluon-cv\'s %s '
                             'has: not a file of %s' % (path, gluon_name(naming, param), param,
                                                        tuple(expected[param]), name, name))
        key, value = ours[param]
        if tuple(value.shape) != tuple(expected[param]):
            raise UsageError('--params %s: %s has shape %s in the file, but %s in gluon-cv\'s '
                             '%s (our %s): not a file of %s'
                             % (path, key, tuple(value.shape), tuple(expected[param]), name,
                                param, name))
    used = {key for key, _ in ours.values()}
    for key in sorted(set(loaded) - used):
        raise UsageError('--params %s: %s is not a parameter of gluon-cv\'s %s: not a file of '
                         '%s' % (path, key, name, name))
    arg_params = {p: v for p, (_, v) in ours.items() if p not in aux_names}
    aux_params = {p: v for p, (_, v) in ours.items() if p in aux_names}
    return arg_params, aux_params


def class_names(dataset, num_classes):
    """The class names gluon-cv ships for `dataset`, or None (also when the file's classes
    are not the dataset's)."""
    if dataset.synset == 'imagenet1k':
        from gluoncv.data import ImageNet1kAttr
        names = ImageNet1kAttr().classes
        return names if len(names) == num_classes else None
    return None


def convert(name, params_path, prefix):
    """Write checkpoint 0 of PREFIX from gluon-cv's parameter file of zoo model `name`;
    returns (files written, metadata)."""
    zoo_entry = entry(name)
    checkpoint.check_writable(prefix, '--prefix')
    dataset = DATASETS[zoo_entry.dataset]
    naming = NAMINGS[zoo_entry.naming]
    loaded = structural_names(name, read_params(params_path))
    head = gluon_name(naming, 'fc1_weight')
    if head not in loaded or len(loaded[head].shape) != 2:
        raise UsageError('--params %s has no %s (the classifier\'s weight, 2-d), which '
                         'gluon-cv\'s %s has: not a file of %s' % (params_path, head, name, name))
    num_classes = int(loaded[head].shape[0])
    with mx.name.NameManager():   # the automatic names of a fresh process, whatever ran before
        sym = symbols.get_symbol(zoo_entry.network, num_classes=num_classes,
                                 num_layers=zoo_entry.num_layers,
                                 image_shape=dataset.image_shape, **zoo_entry.options)
    arg_params, aux_params = match_params(name, zoo_entry, sym, loaded, params_path)
    meta = checkpoint.metadata(zoo_entry.network, zoo_entry.num_layers, zoo_entry.options,
                               dataset.image_shape, dataset.mean, dataset.std, num_classes,
                               synset=class_names(dataset, num_classes),
                               resize=dataset.resize, pretrained='gluoncv:' + name)
    files = checkpoint.write(prefix, 0, sym, arg_params, aux_params,
                             {'epoch': 0, 'batch': 0, 'num_update': 0}, meta)
    return files, meta
