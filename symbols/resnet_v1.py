"""The original ResNet ("Deep Residual Learning for Image Recognition", He et al. 2015),
its plain counterpart, and the post-activation builder that `resnext` shares.

Units are post-activation: conv-BN-act per layer, then BN, add the shortcut, act.
Shortcut options (Sec. 3.3 of the paper), used where a unit changes the shape:
A: identity, subsampled and zero-padded with new channels (no parameters);
B: a 1x1 projection (`<name>_sc` + BN `<name>_sc_bn`) only there;
C: projections everywhere. Plain networks (`shortcut=None`) have no shortcut at all.
Where the paper leaves BatchNorm's place open, two options of `get_symbol` (the defaults
are the reading above): `bn_position='after_add'` moves the branch's last BN after the
addition (conv, add, BN `<name>_bn_add`, act), and `shortcut_bn=False` leaves a projection
shortcut without its BN.

The CIFAR layout (Sec. 4.2) is used for inputs up to 32 px high: a 3x3 stem, three
stages of 16/32/64 filters on 32/16/8 maps, 6n+2 layers (20, 32, ..., 1202);
larger inputs take the ImageNet depths 18-152 (and 200, 269) with the 7x7 stem.
"""
from fractions import Fraction

import mxnet as mx

from .blocks import (ACT_TYPES, BASIC_CIFAR_DEPTHS_TEXT, BN_EPS, activation, basic_cifar_spec,
                     check_bn_eps, check_bool, check_choice, check_common_args, classifier,
                     depth_spec, input_layer, mark_mirror_stage, parse_image_shape,
                     residual_stages, stem)

SHORTCUTS = ('A', 'B', 'C')
BN_POSITIONS = ('branch', 'after_add')   # the last BN of a unit: ending its branch, or after
PAPER = 'paper'  # the paper's choice of shortcut option for a layout
CIFAR_MAX_HEIGHT = 32


def _bn(data, name, bn_mom, bn_eps):
    return mx.sym.BatchNorm(data=data, fix_gamma=False, eps=bn_eps, momentum=bn_mom, name=name)


def _conv_bn(data, num_filter, kernel, stride, pad, name, bn_name, bn_mom, workspace, bn_eps,
             bias=False, **groups):
    """A convolution, then the BatchNorm `bn_name` (none if `bn_name` is None)."""
    conv = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=kernel, stride=stride,
                              pad=pad, no_bias=not bias, workspace=workspace, name=name,
                              **groups)
    return conv if bn_name is None else _bn(conv, bn_name, bn_mom, bn_eps)


def _shortcut(data, body, num_filter, stride, dim_match, name, shortcut, bn_mom, workspace,
              bn_eps, shortcut_bn=True):
    """The shortcut branch of a unit whose residual branch is `body`."""
    if dim_match and shortcut != 'C':
        return data
    if shortcut == 'A':
        if stride != (1, 1):
            data = mx.sym.Pooling(data=data, kernel=(1, 1), stride=stride, pool_type='max',
                                  name=name + '_sc_pool')
        # Zero channels appended, then cut to body's width: no parameters, any width ratio.
        zeros = mx.sym.zeros_like(body, name=name + '_sc_zeros')
        padded = mx.sym.concat(data, zeros, dim=1, name=name + '_sc_concat')
        return mx.sym.slice_like(padded, body, axes=(1,), name=name + '_sc')
    conv = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(1, 1), stride=stride,
                              no_bias=True, workspace=workspace, name=name + '_sc')
    return _bn(conv, name + '_sc_bn', bn_mom, bn_eps) if shortcut_bn else conv


def residual_unit(data, num_filter, stride, dim_match, name, bottle_neck=True, width_ratio=0.25,
                  num_group=1, stride_in_1x1=True, shortcut='B', act_type='relu', bn_mom=0.9,
                  workspace=256, memonger=False, bn_eps=BN_EPS, bottleneck_bias=False,
                  bn_position='branch', shortcut_bn=True):
    """One post-activation unit (a plain one with `shortcut=None`).

    bottle_neck: 1x1 (int(num_filter * width_ratio)), 3x3 with `num_group` groups, 1x1
    (num_filter); the stride sits on the first 1x1 if `stride_in_1x1` (the 2015 paper),
    else on the 3x3 (ResNeXt, fb.resnet.torch); `bottleneck_bias` gives both 1x1
    convolutions a bias. Otherwise two 3x3 convolutions.
    `memonger` tags the shortcut (the unit's input in a plain unit) with mirror_stage.
    bn_position, shortcut_bn: the module docstring.
    """
    def act(body, suffix):
        return activation(body, act_type, name + '_relu' + suffix)

    args = dict(bn_mom=bn_mom, workspace=workspace, bn_eps=bn_eps)
    branch_bn = bn_position == 'branch'   # the branch's last conv has its own BN
    if bottle_neck:
        width = int(num_filter * width_ratio)
        stride1, stride2 = (stride, (1, 1)) if stride_in_1x1 else ((1, 1), stride)
        body = act(_conv_bn(data, width, (1, 1), stride1, (0, 0), name + '_conv1',
                            name + '_bn1', bias=bottleneck_bias, **args), '1')
        body = act(_conv_bn(body, width, (3, 3), stride2, (1, 1), name + '_conv2',
                            name + '_bn2', num_group=num_group, **args), '2')
        body = _conv_bn(body, num_filter, (1, 1), (1, 1), (0, 0), name + '_conv3',
                        name + '_bn3' if branch_bn else None, bias=bottleneck_bias, **args)
    else:
        body = act(_conv_bn(data, num_filter, (3, 3), stride, (1, 1), name + '_conv1',
                            name + '_bn1', **args), '1')
        body = _conv_bn(body, num_filter, (3, 3), (1, 1), (1, 1), name + '_conv2',
                        name + '_bn2' if branch_bn else None, **args)
    if shortcut is None:
        mark_mirror_stage(data, memonger)
        return act(body, '')
    short = _shortcut(data, body, num_filter, stride, dim_match, name, shortcut,
                      shortcut_bn=shortcut_bn, **args)
    total = body + mark_mirror_stage(short, memonger)
    if not branch_bn:
        total = _bn(total, name + '_bn_add', bn_mom, bn_eps)
    return act(total, '')


def post_activation_net(spec, num_classes, image_shape, shortcut, exact_dim_match=True,
                        small_bn_act=True, bn_mom=0.9, workspace=256, dtype='float32',
                        act_type='relu', memonger=False, data_bn=True, bn_eps=BN_EPS,
                        stem_act=True, **unit_kwargs):
    """data, bn_data, stem, the stages of `spec` built from `residual_unit`, classifier.

    exact_dim_match: a stage's first unit that keeps the shape gets an identity shortcut
    (the paper); False projects there too (MXNet's resnext). small_bn_act: bn0 and relu0
    after the 3x3 stem (the paper; MXNet's resnext has a bare conv0); `stem_act=False`
    leaves out relu0. `data_bn=False` leaves out bn_data; `bn_eps` is every BatchNorm's
    epsilon.
    Deliberate deviation: the input goes through `bn_data` (a BatchNorm with fixed gamma,
    3 learned betas), as in the MXNet references, instead of the paper's mean subtraction.
    """
    data = input_layer(dtype)
    if data_bn:
        data = mx.sym.BatchNorm(data=data, fix_gamma=True, eps=bn_eps, momentum=bn_mom,
                                name='bn_data')
    body = stem(data, spec.filter_list[0], image_shape[1], bn_mom, workspace, act_type,
                small_bn_act, bn_eps, stem_act)
    body = residual_stages(body, spec.units, spec.filter_list, residual_unit,
                           exact_dim_match=exact_dim_match, bottle_neck=spec.bottle_neck,
                           shortcut=shortcut, act_type=act_type, bn_mom=bn_mom,
                           workspace=workspace, memonger=memonger, bn_eps=bn_eps,
                           **unit_kwargs)
    return classifier(body, num_classes, dtype)


def _build(network, num_classes, num_layers, image_shape, shortcut, act_type, conv_workspace,
           dtype, bn_mom, memonger, variant, unit_bn=None):
    check_common_args(num_classes, dtype)
    check_choice('act_type', act_type, ACT_TYPES)
    for option in ('stride_in_1x1', 'data_bn', 'stem_act', 'bottleneck_bias'):
        check_bool(option, variant[option])
    unit_bn = unit_bn or {}
    if unit_bn:
        check_choice('bn_position', unit_bn['bn_position'], BN_POSITIONS)
        check_bool('shortcut_bn', unit_bn['shortcut_bn'])
    bn_eps = check_bn_eps(variant['bn_eps'])
    image_shape = parse_image_shape(image_shape)
    spec = depth_spec(network, num_layers, image_shape, CIFAR_MAX_HEIGHT, basic_cifar_spec,
                      BASIC_CIFAR_DEPTHS_TEXT)
    if shortcut == PAPER:
        shortcut = 'B' if image_shape[1] > CIFAR_MAX_HEIGHT else 'A'
    # The 2015 paper strides the bottleneck's first 1x1 (torchvision's "V1.5" moves it to the
    # 3x3: stride_in_1x1=False, as gluon-cv's v1b).
    return post_activation_net(spec, num_classes, image_shape, shortcut, bn_mom=bn_mom,
                               workspace=conv_workspace, dtype=dtype, act_type=act_type,
                               memonger=memonger, data_bn=variant['data_bn'], bn_eps=bn_eps,
                               stem_act=variant['stem_act'],
                               stride_in_1x1=variant['stride_in_1x1'],
                               bottleneck_bias=variant['bottleneck_bias'],
                               width_ratio=Fraction(1, 4), **unit_bn)


def get_symbol(num_classes, num_layers, image_shape, shortcut=None, act_type='relu',
               conv_workspace=256, dtype='float32', bn_mom=0.9, memonger=False,
               stride_in_1x1=True, data_bn=True, bn_eps=BN_EPS, stem_act=True,
               bottleneck_bias=False, bn_position='branch', shortcut_bn=True):
    """The 2015 ResNet for `image_shape` ('C,H,W').

    shortcut: 'A', 'B' or 'C'; None (the default) takes the paper's own choice,
    A for the CIFAR networks and B for ImageNet. `stride_in_1x1`, `data_bn`, `bn_eps`,
    `stem_act` and `bottleneck_bias` build gluon-cv's variants (blocks.py); `bn_position`
    ('branch' or 'after_add') and `shortcut_bn` where BatchNorm sits in a unit (module
    docstring). Their defaults give the paper's graph.
    """
    if shortcut is not None:
        check_choice('shortcut', shortcut, SHORTCUTS)
    return _build('resnet-v1', num_classes, num_layers, image_shape,
                  PAPER if shortcut is None else shortcut, act_type, conv_workspace, dtype,
                  bn_mom, memonger, dict(stride_in_1x1=stride_in_1x1, data_bn=data_bn,
                                         bn_eps=bn_eps, stem_act=stem_act,
                                         bottleneck_bias=bottleneck_bias),
                  dict(bn_position=bn_position, shortcut_bn=shortcut_bn))


def get_plain_symbol(num_classes, num_layers, image_shape, act_type='relu', conv_workspace=256,
                     dtype='float32', bn_mom=0.9, memonger=False, stride_in_1x1=True,
                     data_bn=True, bn_eps=BN_EPS, stem_act=True, bottleneck_bias=False):
    """The plain counterpart of `get_symbol`: the same layers, no shortcuts."""
    return _build('plain', num_classes, num_layers, image_shape, None, act_type,
                  conv_workspace, dtype, bn_mom, memonger,
                  dict(stride_in_1x1=stride_in_1x1, data_bn=data_bn, bn_eps=bn_eps,
                       stem_act=stem_act, bottleneck_bias=bottleneck_bias))
