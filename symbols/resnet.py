"""Pre-activation ResNet, node for node the graph of MXNet's
`example/image-classification/symbols/resnet.py` (after tornadomeet/ResNet,
original author Wei Wu).

Units are BN-ReLU-Conv ("Identity Mappings in Deep Residual Networks"); the
bottleneck is 0.25 of the unit's width; projection shortcuts (`<name>_sc`) are
1x1 convolutions taken from the pre-activated input.
"""
import mxnet as mx

from . import blocks
from .blocks import (BN_EPS, activation, check_bn_eps, check_bool, check_choice, check_common_args,
                     classifier, input_layer, mark_mirror_stage, parse_image_shape,
                     residual_stages, stem)

# The reference picks the CIFAR depths for inputs up to this height, the ImageNet ones above.
CIFAR_MAX_HEIGHT = 28
# `cifar_max_height` may also be 32 (gluon-cv's CIFAR v2 nets; blocks.py lists the variants).
CIFAR_MAX_HEIGHTS = (28, 32)


def _bn_relu(data, name, suffix, bn_mom, act_type='relu', bn_eps=BN_EPS):
    bn = mx.sym.BatchNorm(data=data, fix_gamma=False, eps=bn_eps, momentum=bn_mom,
                          name=name + '_bn' + suffix)
    return activation(bn, act_type, name + '_relu' + suffix)


def _conv(data, num_filter, kernel, stride, pad, name, workspace):
    return mx.sym.Convolution(data=data, num_filter=num_filter, kernel=kernel, stride=stride,
                              pad=pad, no_bias=True, workspace=workspace, name=name)


def residual_unit(data, num_filter, stride, dim_match, name, bottle_neck=True, bn_mom=0.9,
                  workspace=256, memonger=False, act_type='relu', bn_eps=BN_EPS,
                  preact_shortcut=True):
    """One pre-activation residual unit.

    Parameters
    ----------
    data : Symbol
        Input of the unit.
    num_filter : int
        Number of output channels.
    stride : tuple
        Stride of the unit's 3x3 convolution (and of its projection shortcut).
    dim_match : bool
        True when input and output shapes match (identity shortcut), False for a projection.
    name : str
        Base name of the unit's operators.
    bottle_neck : bool
        1x1-3x3-1x1 with a bottleneck of int(num_filter * 0.25), else two 3x3 convolutions.
    bn_mom : float
        BatchNorm momentum.
    workspace : int
        Workspace (MB) of the convolution operators.
    memonger : bool
        Tag the shortcut with mirror_stage='True' for memory mirroring.
    act_type : str
        relu (the reference), prelu, leaky or elu; layers keep the reference's `relu` names.
    bn_eps : float
        Epsilon of the BatchNorms.
    preact_shortcut : bool
        The projection shortcut takes the pre-activated input (the reference); False: the
        unit's input as it came.
    """
    act1 = _bn_relu(data, name, '1', bn_mom, act_type, bn_eps)
    if bottle_neck:
        # the same as https://github.com/facebook/fb.resnet.torch#notes, a bit different from the paper
        width = int(num_filter * 0.25)
        conv1 = _conv(act1, width, (1, 1), (1, 1), (0, 0), name + '_conv1', workspace)
        act2 = _bn_relu(conv1, name, '2', bn_mom, act_type, bn_eps)
        conv2 = _conv(act2, width, (3, 3), stride, (1, 1), name + '_conv2', workspace)
        act3 = _bn_relu(conv2, name, '3', bn_mom, act_type, bn_eps)
        body = _conv(act3, num_filter, (1, 1), (1, 1), (0, 0), name + '_conv3', workspace)
    else:
        conv1 = _conv(act1, num_filter, (3, 3), stride, (1, 1), name + '_conv1', workspace)
        act2 = _bn_relu(conv1, name, '2', bn_mom, act_type, bn_eps)
        body = _conv(act2, num_filter, (3, 3), (1, 1), (1, 1), name + '_conv2', workspace)
    if dim_match:
        shortcut = data
    else:
        shortcut = mx.sym.Convolution(data=act1 if preact_shortcut else data,
                                      num_filter=num_filter, kernel=(1, 1),
                                      stride=stride, no_bias=True, workspace=workspace,
                                      name=name + '_sc')
    if dim_match and data.name == 'conv0':
        # An identity from the bare CIFAR stem (exact_dim_match): conv0 then feeds this
        # unit's bn1 and its sum. MXNet 1.9.1's MKLDNN inference fuses such a convolution
        # with the BatchNorm and an elemwise_add that takes it, and computes the sum wrongly
        # (CPU binds use that backend by default); it leaves add_n alone.
        return mx.sym.add_n(body, mark_mirror_stage(shortcut, memonger), name=name + '_sum')
    return body + mark_mirror_stage(shortcut, memonger)


def resnet(units, num_stages, filter_list, num_classes, image_shape, bottle_neck=True,
           bn_mom=0.9, workspace=256, dtype='float32', memonger=False, act_type='relu',
           bn_eps=BN_EPS, exact_dim_match=False, preact_shortcut=True):
    """Return the ResNet symbol.

    Parameters
    ----------
    units : list of int
        Number of units in each stage.
    num_stages : int
        Number of stages (len(units)).
    filter_list : list of int
        Channels of the stem, then of each stage.
    num_classes : int
        Output size of the classifier.
    image_shape : sequence of int
        (channels, height, width); the height selects the stem.
    bottle_neck, bn_mom, workspace, memonger, act_type, bn_eps, preact_shortcut :
        As in `residual_unit`; bn_eps also for bn_data, bn0 and bn1.
    exact_dim_match : bool
        A stage's first unit that keeps the shape gets an identity shortcut; False (the
        reference) projects there too.
    dtype : str
        'float32' or 'float16' (Cast after `data`, and back to float32 before the softmax).
    """
    if len(units) != num_stages:
        raise ValueError('units %s has %d stages, but num_stages=%d'
                         % (list(units), len(units), num_stages))
    data = input_layer(dtype)
    data = mx.sym.BatchNorm(data=data, fix_gamma=True, eps=bn_eps, momentum=bn_mom,
                            name='bn_data')
    body = stem(data, filter_list[0], image_shape[1], bn_mom, workspace, act_type,
                bn_eps=bn_eps)
    # Deliberate deviation: bn_mom reaches every unit (the reference keeps the units at 0.9).
    body = residual_stages(body, units, filter_list, residual_unit,
                           exact_dim_match=exact_dim_match, bottle_neck=bottle_neck,
                           bn_mom=bn_mom, workspace=workspace, memonger=memonger,
                           act_type=act_type, bn_eps=bn_eps, preact_shortcut=preact_shortcut)
    body = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=bn_eps, momentum=bn_mom, name='bn1')
    body = activation(body, act_type, 'relu1')
    return classifier(body, num_classes, dtype)


def depth_spec(num_layers, image_shape, cifar_max_height=CIFAR_MAX_HEIGHT):
    """The reference's depth rule: CIFAR depths up to 28 px of height (`cifar_max_height`),
    ImageNet depths above.

    Raises ValueError naming the depth and the depths accepted for that input size.
    """
    return blocks.depth_spec('resnet', num_layers, image_shape, cifar_max_height)


def get_symbol(num_classes, num_layers, image_shape, conv_workspace=256, dtype='float32',
               **kwargs):
    """The reference `get_symbol`: a pre-activation ResNet for `image_shape` ('C,H,W').

    Deliberate deviation: `memonger` and `bn_mom` in kwargs are passed through
    (the reference drops both), and so is `act_type` (the reference has ReLU only);
    other kwargs are ignored, as in the reference. So are the options for gluon-cv's v2
    nets (`bn_eps`, `exact_dim_match`, `preact_shortcut`, `cifar_max_height`: blocks.py),
    whose defaults give the reference graph.
    """
    check_common_args(num_classes, dtype)
    image_shape = parse_image_shape(image_shape)
    cifar_max_height = check_choice('cifar_max_height',
                                    kwargs.get('cifar_max_height', CIFAR_MAX_HEIGHT),
                                    CIFAR_MAX_HEIGHTS)
    bn_eps = check_bn_eps(kwargs.get('bn_eps', BN_EPS))
    exact_dim_match = check_bool('exact_dim_match', kwargs.get('exact_dim_match', False))
    preact_shortcut = check_bool('preact_shortcut', kwargs.get('preact_shortcut', True))
    spec = depth_spec(num_layers, image_shape, cifar_max_height)
    return resnet(units=spec.units,
                  num_stages=spec.num_stages,
                  filter_list=spec.filter_list,
                  num_classes=num_classes,
                  image_shape=image_shape,
                  bottle_neck=spec.bottle_neck,
                  bn_mom=kwargs.get('bn_mom', 0.9),
                  workspace=conv_workspace,
                  dtype=dtype,
                  memonger=kwargs.get('memonger', False),
                  act_type=kwargs.get('act_type', 'relu'),
                  bn_eps=bn_eps, exact_dim_match=exact_dim_match,
                  preact_shortcut=preact_shortcut)
