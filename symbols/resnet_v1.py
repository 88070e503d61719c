"""The original ResNet ("Deep Residual Learning for Image Recognition", He et al. 2015),
its plain counterpart, and the post-activation builder that `resnext` shares.

Units are post-activation: conv-BN-act per layer, then BN, add the shortcut, act.
Shortcut options (Sec. 3.3 of the paper), used where a unit changes the shape:
A: identity, subsampled and zero-padded with new channels (no parameters);
B: a 1x1 projection (`<name>_sc` + BN `<name>_sc_bn`) only there;
C: projections everywhere. Plain networks (`shortcut=None`) have no shortcut at all.

The CIFAR layout (Sec. 4.2) is used for inputs up to 32 px high: a 3x3 stem, three
stages of 16/32/64 filters on 32/16/8 maps, 6n+2 layers (20, 32, ..., 1202);
larger inputs take the ImageNet depths 18-152 (and 200, 269) with the 7x7 stem.
"""
from fractions import Fraction

import mxnet as mx

from .blocks import (ACT_TYPES, BASIC_CIFAR_DEPTHS_TEXT, activation, basic_cifar_spec,
                     check_choice, check_common_args, classifier, depth_spec, input_layer,
                     mark_mirror_stage, parse_image_shape, residual_stages, stem)

SHORTCUTS = ('A', 'B', 'C')
PAPER = 'paper'  # the paper's choice of shortcut option for a layout
CIFAR_MAX_HEIGHT = 32


def _conv_bn(data, num_filter, kernel, stride, pad, name, bn_name, bn_mom, workspace, **groups):
    conv = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=kernel, stride=stride,
                              pad=pad, no_bias=True, workspace=workspace, name=name, **groups)
    return mx.sym.BatchNorm(data=conv, fix_gamma=False, eps=2e-5, momentum=bn_mom, name=bn_name)


def _shortcut(data, body, num_filter, stride, dim_match, name, shortcut, bn_mom, workspace):
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
    return mx.sym.BatchNorm(data=conv, fix_gamma=False, eps=2e-5, momentum=bn_mom,
                            name=name + '_sc_bn')


def residual_unit(data, num_filter, stride, dim_match, name, bottle_neck=True, width_ratio=0.25,
                  num_group=1, stride_in_1x1=True, shortcut='B', act_type='relu', bn_mom=0.9,
                  workspace=256, memonger=False):
    """One post-activation unit (a plain one with `shortcut=None`).

    bottle_neck: 1x1 (int(num_filter * width_ratio)), 3x3 with `num_group` groups, 1x1
    (num_filter); the stride sits on the first 1x1 if `stride_in_1x1` (the 2015 paper),
    else on the 3x3 (ResNeXt, fb.resnet.torch). Otherwise two 3x3 convolutions.
    `memonger` tags the shortcut (the unit's input in a plain unit) with mirror_stage.
    """
    def act(body, suffix):
        return activation(body, act_type, name + '_relu' + suffix)

    args = dict(bn_mom=bn_mom, workspace=workspace)
    if bottle_neck:
        width = int(num_filter * width_ratio)
        stride1, stride2 = (stride, (1, 1)) if stride_in_1x1 else ((1, 1), stride)
        body = act(_conv_bn(data, width, (1, 1), stride1, (0, 0), name + '_conv1',
                            name + '_bn1', **args), '1')
        body = act(_conv_bn(body, width, (3, 3), stride2, (1, 1), name + '_conv2',
                            name + '_bn2', num_group=num_group, **args), '2')
        body = _conv_bn(body, num_filter, (1, 1), (1, 1), (0, 0), name + '_conv3',
                        name + '_bn3', **args)
    else:
        body = act(_conv_bn(data, num_filter, (3, 3), stride, (1, 1), name + '_conv1',
                            name + '_bn1', **args), '1')
        body = _conv_bn(body, num_filter, (3, 3), (1, 1), (1, 1), name + '_conv2',
                        name + '_bn2', **args)
    if shortcut is None:
        mark_mirror_stage(data, memonger)
        return act(body, '')
    short = _shortcut(data, body, num_filter, stride, dim_match, name, shortcut, **args)
    return act(body + mark_mirror_stage(short, memonger), '')


def post_activation_net(spec, num_classes, image_shape, shortcut, exact_dim_match=True,
                        small_bn_act=True, bn_mom=0.9, workspace=256, dtype='float32',
                        act_type='relu', memonger=False, **unit_kwargs):
    """data, bn_data, stem, the stages of `spec` built from `residual_unit`, classifier.

    exact_dim_match: a stage's first unit that keeps the shape gets an identity shortcut
    (the paper); False projects there too (MXNet's resnext). small_bn_act: bn0 and relu0
    after the 3x3 stem (the paper; MXNet's resnext has a bare conv0).
    Deliberate deviation: the input goes through `bn_data` (a BatchNorm with fixed gamma,
    3 learned betas), as in the MXNet references, instead of the paper's mean subtraction.
    """
    data = input_layer(dtype)
    data = mx.sym.BatchNorm(data=data, fix_gamma=True, eps=2e-5, momentum=bn_mom, name='bn_data')
    body = stem(data, spec.filter_list[0], image_shape[1], bn_mom, workspace, act_type,
                small_bn_act)
    body = residual_stages(body, spec.units, spec.filter_list, residual_unit,
                           exact_dim_match=exact_dim_match, bottle_neck=spec.bottle_neck,
                           shortcut=shortcut, act_type=act_type, bn_mom=bn_mom,
                           workspace=workspace, memonger=memonger, **unit_kwargs)
    return classifier(body, num_classes, dtype)


def _build(network, num_classes, num_layers, image_shape, shortcut, act_type, conv_workspace,
           dtype, bn_mom, memonger):
    check_common_args(num_classes, dtype)
    check_choice('act_type', act_type, ACT_TYPES)
    image_shape = parse_image_shape(image_shape)
    spec = depth_spec(network, num_layers, image_shape, CIFAR_MAX_HEIGHT, basic_cifar_spec,
                      BASIC_CIFAR_DEPTHS_TEXT)
    if shortcut == PAPER:
        shortcut = 'B' if image_shape[1] > CIFAR_MAX_HEIGHT else 'A'
    # The 2015 paper strides the bottleneck's first 1x1 (torchvision's "V1.5" moves it to the 3x3).
    return post_activation_net(spec, num_classes, image_shape, shortcut, bn_mom=bn_mom,
                               workspace=conv_workspace, dtype=dtype, act_type=act_type,
                               memonger=memonger, stride_in_1x1=True, width_ratio=Fraction(1, 4))


def get_symbol(num_classes, num_layers, image_shape, shortcut=None, act_type='relu',
               conv_workspace=256, dtype='float32', bn_mom=0.9, memonger=False):
    """The 2015 ResNet for `image_shape` ('C,H,W').

    shortcut: 'A', 'B' or 'C'; None (the default) takes the paper's own choice,
    A for the CIFAR networks and B for ImageNet.
    """
    if shortcut is not None:
        check_choice('shortcut', shortcut, SHORTCUTS)
    return _build('resnet-v1', num_classes, num_layers, image_shape,
                  PAPER if shortcut is None else shortcut, act_type, conv_workspace, dtype,
                  bn_mom, memonger)


def get_plain_symbol(num_classes, num_layers, image_shape, act_type='relu', conv_workspace=256,
                     dtype='float32', bn_mom=0.9, memonger=False):
    """The plain counterpart of `get_symbol`: the same layers, no shortcuts."""
    return _build('plain', num_classes, num_layers, image_shape, None, act_type,
                  conv_workspace, dtype, bn_mom, memonger)
