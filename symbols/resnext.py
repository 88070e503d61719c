"""ResNeXt ("Aggregated Residual Transformations", Xie et al. 2017): with default arguments,
node for node the graph of MXNet's `example/image-classification/symbols/resnext.py`.

Post-activation units (the `resnet_v1` builder) whose 3x3 convolution has `num_group`
groups; bottleneck width int(num_filter * 0.5); projection shortcuts `<name>_sc` +
`<name>_sc_bn` on every stage's first unit; CIFAR depths for inputs up to 32 px high (the
reference's, and the ResNeXt paper's CIFAR template: `cifar_layout`).
`bottleneck_width` (the d of "32x4d") sets the width to num_group * d in stage 1, doubled
at each stage, the paper's constant-complexity templates (1x64d, 2x40d, 4x24d, 8x14d, 32x4d).
"""
from fractions import Fraction

from .blocks import (ACT_TYPES, BN_EPS, CIFAR_BOTTLENECK_FROM, CIFAR_DEPTHS_TEXT, Spec,
                     check_bn_eps, check_bool, check_choice, check_common_args,
                     check_positive_int, cifar_spec, depth_spec, parse_image_shape)
from .resnet_v1 import post_activation_net

CIFAR_MAX_HEIGHT = 32
# Deliberate extension: the ResNeXt paper's CIFAR networks (Sec. 5.2: ResNeXt-29, 8x64d and
# 16x64d; gluon-cv's cifar_resnext29_*) at the 9n+2 depths below 164 that the reference
# refuses (29, 47, ...: its CIFAR depths below 164 are 6n+2 basic units, which keep
# precedence): n bottleneck units a stage behind a 64-filter 3x3 stem, outputs 256, 512
# and 1024. Their stem is the paper's conv0, bn0, relu0 (the reference's CIFAR stem is a
# bare conv0).
PAPER_CIFAR_FILTERS = (64, 256, 512, 1024)
CIFAR_LAYOUT_TEXT = CIFAR_DEPTHS_TEXT + ", or the ResNeXt paper's 9n+2 below %d (11, 29, 47, ...)" \
    % CIFAR_BOTTLENECK_FROM


def cifar_layout(num_layers):
    """The reference's CIFAR layout at its depths; else the ResNeXt paper's template at the
    other 9n+2 depths below 164; else None."""
    spec = cifar_spec(num_layers)
    if spec is None and 11 <= num_layers < CIFAR_BOTTLENECK_FROM and (num_layers - 2) % 9 == 0:
        spec = Spec([(num_layers - 2) // 9] * 3, PAPER_CIFAR_FILTERS, True)
    return spec


def get_symbol(num_classes, num_layers, image_shape, num_group=32, conv_workspace=256,
               dtype='float32', **kwargs):
    """The reference `get_symbol`: a ResNeXt for `image_shape` ('C,H,W').

    Deliberate deviation: `bottleneck_width`, `act_type`, `bn_mom` and `memonger` in kwargs
    are used (the reference drops them); other kwargs are ignored, as in the reference.
    So are `data_bn` and `bn_eps`, for gluon-cv's ResNeXt (blocks.py); their defaults give
    the reference graph.
    """
    check_common_args(num_classes, dtype)
    num_group = check_positive_int('num_group', num_group)
    act_type = check_choice('act_type', kwargs.get('act_type', 'relu'), ACT_TYPES)
    data_bn = check_bool('data_bn', kwargs.get('data_bn', True))
    bn_eps = check_bn_eps(kwargs.get('bn_eps', BN_EPS))
    image_shape = parse_image_shape(image_shape)
    spec = depth_spec('resnext', num_layers, image_shape, CIFAR_MAX_HEIGHT, cifar_layout,
                      CIFAR_LAYOUT_TEXT)
    width_ratio = 0.5
    bottleneck_width = kwargs.get('bottleneck_width')
    if bottleneck_width is not None:
        bottleneck_width = check_positive_int('bottleneck_width', bottleneck_width)
        if not spec.bottle_neck:
            raise ValueError('bottleneck_width=%d needs a bottleneck depth: num_layers=%d builds '
                             'basic units (bottlenecks from 50 layers on ImageNet inputs, 164 '
                             'on CIFAR ones)' % (bottleneck_width, num_layers))
        width_ratio = Fraction(num_group * bottleneck_width, spec.filter_list[1])
    if spec.bottle_neck:
        widths = [int(f * width_ratio) for f in spec.filter_list[1:]]
        if any(w < 1 or w % num_group for w in widths):
            raise ValueError('num_group=%d does not divide the bottleneck widths %s of '
                             'resnext-%d' % (num_group, widths, num_layers))
    return post_activation_net(spec, num_classes, image_shape, shortcut='B',
                               exact_dim_match=False,
                               small_bn_act=spec.filter_list == PAPER_CIFAR_FILTERS,
                               bn_mom=kwargs.get('bn_mom', 0.9), workspace=conv_workspace,
                               dtype=dtype, act_type=act_type,
                               memonger=kwargs.get('memonger', False),
                               data_bn=data_bn, bn_eps=bn_eps,
                               width_ratio=width_ratio, num_group=num_group,
                               stride_in_1x1=False)
