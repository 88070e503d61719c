"""Pieces shared by every network in `symbols`: the depth spec table, input
parsing, and the layers that surround the residual stages.

Every layer gets a deterministic name (`conv0`, `stage2_unit1_bn1`, `fc1`...):
those names are the weight names in saved `.params` files.
"""
import numpy as np
import mxnet as mx

DTYPES = ('float32', 'float16')
ACT_TYPES = ('relu', 'prelu', 'leaky', 'elu')

# ImageNet layout (4 stages, 7x7 stem): depth -> units per stage.
IMAGENET_UNITS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
    269: (3, 30, 48, 8),
}
IMAGENET_BOTTLENECK_FROM = 50
# CIFAR layout (3 stages, 3x3 stem): 6n+2 basic below 164 layers, 9n+2 bottleneck from 164.
CIFAR_BOTTLENECK_FROM = 164

# filter_list[0] is the stem, the rest one entry per stage: {bottle_neck: filters}.
IMAGENET_FILTERS = {False: (64, 64, 128, 256, 512), True: (64, 256, 512, 1024, 2048)}
CIFAR_FILTERS = {False: (16, 16, 32, 64), True: (16, 64, 128, 256)}


class Spec(object):
    """What a depth means for one layout: units per stage, filters, bottleneck."""

    def __init__(self, units, filter_list, bottle_neck):
        self.units = tuple(units)
        self.filter_list = tuple(filter_list)
        self.bottle_neck = bool(bottle_neck)

    @property
    def num_stages(self):
        return len(self.units)

    def __repr__(self):
        return 'Spec(units=%s, filter_list=%s, bottle_neck=%s)' % (
            list(self.units), list(self.filter_list), self.bottle_neck)


def imagenet_spec(num_layers):
    """The 4-stage ImageNet layout, or None when `num_layers` is not one of its depths."""
    if num_layers not in IMAGENET_UNITS:
        return None
    bottle_neck = num_layers >= IMAGENET_BOTTLENECK_FROM
    return Spec(IMAGENET_UNITS[num_layers], IMAGENET_FILTERS[bottle_neck], bottle_neck)


def cifar_spec(num_layers, bottleneck_from=CIFAR_BOTTLENECK_FROM):
    """The 3-stage CIFAR layout (6n+2 basic below 164, 9n+2 bottleneck from 164), or None.

    With `bottleneck_from=None` every depth is 6n+2 basic units, as in the 2015 paper
    (20, 32, 44, 56, 110, 1202).
    Deliberate deviation: the reference also accepts depths that give n < 1
    (2, or negative numbers) and silently builds one unit per stage; we reject them.
    """
    if bottleneck_from is not None and num_layers >= bottleneck_from \
            and (num_layers - 2) % 9 == 0:
        return Spec([(num_layers - 2) // 9] * 3, CIFAR_FILTERS[True], True)
    basic_below = bottleneck_from if bottleneck_from is not None else float('inf')
    if 8 <= num_layers < basic_below and (num_layers - 2) % 6 == 0:
        return Spec([(num_layers - 2) // 6] * 3, CIFAR_FILTERS[False], False)
    return None


def basic_cifar_spec(num_layers):
    """The 2015 paper's CIFAR layout: 6n+2 layers of basic units at any depth."""
    return cifar_spec(num_layers, bottleneck_from=None)


IMAGENET_DEPTHS_TEXT = ', '.join(str(d) for d in sorted(IMAGENET_UNITS))
CIFAR_DEPTHS_TEXT = ('6n+2 below %d (8, 14, 20, 32, 44, 56, 110, ...) or 9n+2 from %d '
                     '(164, 173, ..., 1001, ...)' % (CIFAR_BOTTLENECK_FROM, CIFAR_BOTTLENECK_FROM))
BASIC_CIFAR_DEPTHS_TEXT = '6n+2 (8, 14, 20, 32, 44, 56, 110, ..., 1202, ...)'


def parse_image_shape(image_shape):
    """'C,H,W' (or a sequence of 3 ints) -> (C, H, W); ValueError on anything else."""
    text = image_shape if isinstance(image_shape, str) else ','.join(str(v) for v in image_shape)
    parts = [p.strip() for p in text.split(',')]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError("image_shape %r is not valid: expected three positive integers "
                         "'channels,height,width', e.g. '3,224,224' or '3,28,28'" % (image_shape,))
    return dims


def depth_spec(network, num_layers, image_shape, cifar_max_height, cifar=cifar_spec,
               cifar_text=CIFAR_DEPTHS_TEXT):
    """The layout of `network` at this depth: `cifar(num_layers)` for inputs up to
    `cifar_max_height` px high, `imagenet_spec` above.

    Raises ValueError naming the depth and the depths accepted for that input size.
    """
    num_layers = check_num_layers(num_layers)
    channels, height, width = parse_image_shape(image_shape)
    shape_text = '%d,%d,%d' % (channels, height, width)
    if height <= cifar_max_height:
        spec = cifar(num_layers)
        if spec is None:
            raise ValueError(
                'num_layers=%d is not a depth %s builds for image_shape %s: inputs up to %d px '
                'high use the CIFAR layout, which takes %s; ImageNet depths (%s) need a height '
                'above %d' % (num_layers, network, shape_text, cifar_max_height, cifar_text,
                              IMAGENET_DEPTHS_TEXT, cifar_max_height))
        return spec
    spec = imagenet_spec(num_layers)
    if spec is None:
        hint = ''
        if cifar(num_layers) is not None:
            hint = ('; %d is a CIFAR depth: use a height of at most %d (e.g. image_shape %d,%d,%d)'
                    % (num_layers, cifar_max_height, channels, cifar_max_height,
                       cifar_max_height))
        raise ValueError(
            'num_layers=%d is not a depth %s builds for image_shape %s: inputs higher than '
            '%d px use the ImageNet layout, which takes %s%s'
            % (num_layers, network, shape_text, cifar_max_height, IMAGENET_DEPTHS_TEXT, hint))
    return spec


def check_choice(option, value, choices):
    """ValueError naming `option`, its bad value and the choices, unless value is one of them."""
    if value not in choices:
        raise ValueError('%s=%r is not valid: choose one of %s'
                         % (option, value, ', '.join(str(c) for c in choices)))
    return value


def check_positive_int(option, value):
    """ValueError naming `option` unless `value` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError('%s=%r is not valid: expected a positive integer' % (option, value))
    return int(value)


# Options for the variants of gluon-cv's model zoo, whose weights mxresnet/gluoncv_import.py
# maps onto our graphs; each defaults to the reference graph (as torchvision's "V1.5" note
# marks its own variant):
# - bn_eps (every network): the epsilon of every BatchNorm; gluon-cv's is Gluon's 1e-5.
# - data_bn (resnet-v1, plain, resnext): False leaves out bn_data; gluon-cv's post-activation
#   nets feed the normalised input straight to conv0.
# - stride_in_1x1 (resnet-v1, plain): False moves a bottleneck's stride from its first 1x1 to
#   its 3x3 (gluon-cv's resnetN_v1b, torchvision's "V1.5").
# - bottleneck_bias (resnet-v1, plain): biases on a bottleneck's two 1x1 convolutions
#   (gluon-cv's resnetN_v1 from 50 layers, whose Conv2D there keep Gluon's use_bias=True).
# - stem_act (resnet-v1, plain): False leaves out relu0 after the stem's bn0 (gluon-cv's
#   cifar_resnetN_v1).
# - exact_dim_match (resnet): a stage's first unit that keeps the shape (stage 1 of the
#   basic-unit nets) gets an identity shortcut, as in gluon-cv's v2 nets; the reference
#   projects there.
# - preact_shortcut (resnet): False makes a projection shortcut take the unit's input as it
#   came, not the pre-activated one (gluon-cv's cifar_resnetN_v2).
# - cifar_max_height (resnet): the CIFAR layout up to 32 px of height, not the reference's
#   28 (gluon-cv's cifar_resnetN_v2 take 32x32 inputs).
def check_bool(option, value):
    """ValueError naming `option` unless `value` is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError('%s=%r is not valid: expected True or False' % (option, value))
    return bool(value)


# BatchNorm's epsilon: the references' 2e-5 by default. MXNet's cuDNN BatchNorm refuses
# less than 1e-5 (CUDNN_BN_MIN_EPSILON).
BN_EPS = 2e-5
MIN_BN_EPS = 1e-5


def check_bn_eps(value):
    """ValueError unless `value` is a number of at least MIN_BN_EPS; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not value >= MIN_BN_EPS:
        raise ValueError('bn_eps=%r is not valid: expected a number of at least %g (the '
                         'smallest epsilon cuDNN takes)' % (value, MIN_BN_EPS))
    return float(value)


def check_common_args(num_classes, dtype):
    """Validate the arguments every network shares."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError('num_classes=%r is not valid: expected a positive integer' % (num_classes,))
    if dtype not in DTYPES:
        raise ValueError('dtype=%r is not supported: choose one of %s' % (dtype, ', '.join(DTYPES)))


def check_num_layers(num_layers):
    """num_layers must be an int; ValueError naming it otherwise."""
    if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)):
        raise ValueError('num_layers=%r is not valid: expected an integer depth' % (num_layers,))
    return int(num_layers)


def input_layer(dtype):
    """`data`, then an identity (float32) or a Cast to float16, as the reference does."""
    data = mx.sym.Variable(name='data')
    if dtype == 'float32':
        return mx.sym.identity(data=data, name='id')
    return mx.sym.Cast(data=data, dtype=np.float16)


def activation(data, act_type, name):
    """`relu` as an Activation (the reference's op); `prelu`, `leaky`, `elu` as a LeakyReLU.

    prelu learns one slope per channel (`<name>_gamma`), initialised to 0.25 as in He et al.
    2015 (MXNet would otherwise initialise any `*_gamma` to 1, a linear unit); leaky uses
    slope 0.01 and elu alpha 1.0, the values of their papers, not MXNet's default 0.25.
    """
    check_choice('act_type', act_type, ACT_TYPES)
    if act_type == 'relu':
        return mx.sym.Activation(data=data, act_type='relu', name=name)
    if act_type == 'prelu':
        gamma = mx.sym.Variable(name + '_gamma', init=mx.init.Constant(0.25))
        return mx.sym.LeakyReLU(data=data, gamma=gamma, act_type='prelu', name=name)
    slope = 0.01 if act_type == 'leaky' else 1.0
    return mx.sym.LeakyReLU(data=data, act_type=act_type, slope=slope, name=name)


def stem(data, num_filter, height, bn_mom, workspace, act_type='relu', small_bn_act=False,
         bn_eps=BN_EPS, stem_act=True):
    """conv0: 3x3 stride 1 for inputs up to 32 px (then bn0 and relu0 if `small_bn_act`);
    else 7x7/2, bn0, relu0 and a 3x3/2 max pool. `stem_act=False` leaves out relu0."""
    if height <= 32:
        body = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(3, 3), stride=(1, 1),
                                  pad=(1, 1), no_bias=True, name='conv0', workspace=workspace)
        if not small_bn_act:
            return body
        body = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=bn_eps, momentum=bn_mom,
                                name='bn0')
        return activation(body, act_type, 'relu0') if stem_act else body
    body = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(7, 7), stride=(2, 2),
                              pad=(3, 3), no_bias=True, name='conv0', workspace=workspace)
    body = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=bn_eps, momentum=bn_mom, name='bn0')
    if stem_act:
        body = activation(body, act_type, 'relu0')
    return mx.sym.Pooling(data=body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='max')


def residual_stages(body, units, filter_list, unit, exact_dim_match=False, **unit_kwargs):
    """Stack `unit` into stages named stage<i>_unit<j>.

    The first unit of each stage has stride 2 from stage 2 on, and gets dim_match=False
    (the reference networks project there even when the shape is kept); with
    `exact_dim_match` it gets dim_match=True when it keeps the shape (stride 1, as many
    filters as the stem). `unit(data, num_filter, stride, dim_match, name, **unit_kwargs)`
    builds one unit.
    """
    for i, num_units in enumerate(units):
        stride = (1, 1) if i == 0 else (2, 2)
        keeps_shape = stride == (1, 1) and filter_list[i] == filter_list[i + 1]
        body = unit(body, filter_list[i + 1], stride, exact_dim_match and keeps_shape,
                    name='stage%d_unit%d' % (i + 1, 1), **unit_kwargs)
        for j in range(num_units - 1):
            body = unit(body, filter_list[i + 1], (1, 1), True,
                        name='stage%d_unit%d' % (i + 1, j + 2), **unit_kwargs)
    return body


def classifier(body, num_classes, dtype):
    """Global average pool, fc1, a Cast back to float32 for float16 graphs, softmax."""
    # Although kernel is not used here when global_pool=True, the reference puts one.
    pool1 = mx.sym.Pooling(data=body, global_pool=True, kernel=(7, 7), pool_type='avg', name='pool1')
    flat = mx.sym.Flatten(data=pool1, name='flatten0')  # the name a fresh process gives it
    fc1 = mx.sym.FullyConnected(data=flat, num_hidden=num_classes, name='fc1')
    if dtype == 'float16':
        fc1 = mx.sym.Cast(data=fc1, dtype=np.float32)
    return mx.sym.SoftmaxOutput(data=fc1, name='softmax')


def mark_mirror_stage(shortcut, memonger):
    """Tag a shortcut for MXNet's memory mirroring (memonger), as the reference does."""
    if memonger:
        shortcut._set_attr(mirror_stage='True')  # pylint: disable=protected-access
    return shortcut
