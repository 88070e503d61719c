"""Pieces shared by every network in `symbols`: the depth spec table, input
parsing, and the layers that surround the residual stages.

Every layer gets a deterministic name (`conv0`, `stage2_unit1_bn1`, `fc1`...):
those names are the weight names in saved `.params` files.
"""
import numpy as np
import mxnet as mx

DTYPES = ('float32', 'float16')

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


def cifar_spec(num_layers):
    """The 3-stage CIFAR layout (6n+2 basic below 164, 9n+2 bottleneck from 164), or None.

    Deliberate deviation: the reference also accepts depths that give n < 1
    (2, or negative numbers) and silently builds one unit per stage; we reject them.
    """
    if num_layers >= CIFAR_BOTTLENECK_FROM and (num_layers - 2) % 9 == 0:
        return Spec([(num_layers - 2) // 9] * 3, CIFAR_FILTERS[True], True)
    if 8 <= num_layers < CIFAR_BOTTLENECK_FROM and (num_layers - 2) % 6 == 0:
        return Spec([(num_layers - 2) // 6] * 3, CIFAR_FILTERS[False], False)
    return None


IMAGENET_DEPTHS_TEXT = ', '.join(str(d) for d in sorted(IMAGENET_UNITS))
CIFAR_DEPTHS_TEXT = ('6n+2 below %d (8, 14, 20, 32, 44, 56, 110, ...) or 9n+2 from %d '
                     '(164, 173, ..., 1001, ...)' % (CIFAR_BOTTLENECK_FROM, CIFAR_BOTTLENECK_FROM))


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


def stem(data, num_filter, height, bn_mom, workspace):
    """conv0: 3x3 stride 1 for inputs up to 32 px; else 7x7/2, bn0, relu0 and a 3x3/2 max pool."""
    if height <= 32:
        return mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(3, 3), stride=(1, 1),
                                  pad=(1, 1), no_bias=True, name='conv0', workspace=workspace)
    body = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(7, 7), stride=(2, 2),
                              pad=(3, 3), no_bias=True, name='conv0', workspace=workspace)
    body = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=2e-5, momentum=bn_mom, name='bn0')
    body = mx.sym.Activation(data=body, act_type='relu', name='relu0')
    return mx.sym.Pooling(data=body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='max')


def residual_stages(body, units, filter_list, unit, **unit_kwargs):
    """Stack `unit` into stages named stage<i>_unit<j>.

    The first unit of each stage changes dimensions (stride 2 from stage 2 on);
    `unit(data, num_filter, stride, dim_match, name, **unit_kwargs)` builds one unit.
    """
    for i, num_units in enumerate(units):
        stride = (1, 1) if i == 0 else (2, 2)
        body = unit(body, filter_list[i + 1], stride, False,
                    name='stage%d_unit%d' % (i + 1, 1), **unit_kwargs)
        for j in range(num_units - 1):
            body = unit(body, filter_list[i + 1], (1, 1), True,
                        name='stage%d_unit%d' % (i + 1, j + 2), **unit_kwargs)
    return body


def classifier(body, num_classes, dtype):
    """Global average pool, fc1, a Cast back to float32 for float16 graphs, softmax."""
    # Although kernel is not used here when global_pool=True, the reference puts one.
    pool1 = mx.sym.Pooling(data=body, global_pool=True, kernel=(7, 7), pool_type='avg', name='pool1')
    flat = mx.sym.Flatten(data=pool1)
    fc1 = mx.sym.FullyConnected(data=flat, num_hidden=num_classes, name='fc1')
    if dtype == 'float16':
        fc1 = mx.sym.Cast(data=fc1, dtype=np.float32)
    return mx.sym.SoftmaxOutput(data=fc1, name='softmax')


def mark_mirror_stage(shortcut, memonger):
    """Tag a shortcut for MXNet's memory mirroring (memonger), as the reference does."""
    if memonger:
        shortcut._set_attr(mirror_stage='True')  # pylint: disable=protected-access
    return shortcut
