"""Named models as data, as timm's and torchvision's: a name stands for a network of the
registry, a depth, its options and the input it was designed for.

    >>> import symbols
    >>> symbols.model_config('resnext50_32x4d').options
    {'num_group': 32, 'bottleneck_width': 4}
    >>> sym = symbols.get_model('resnet56', num_classes=10)

Names follow gluon-cv's: `resnetN` is this project's default network, the pre-activation
ResNet (gluon-cv's `resnetN_v2`), `resnetN_v1` the post-activation ResNet of the 2015 paper,
`plainN` its counterpart without shortcuts, `resnextN_GxWd` a ResNeXt of G groups of width W.
"""
import collections

ModelConfig = collections.namedtuple('ModelConfig',
                                     'network num_layers options image_shape num_classes')

CIFAR_INPUT = (3, 32, 32)
# The pre-activation `resnet` takes its CIFAR depths for inputs up to 28 px high only
# (the reference's rule, symbols/resnet.py), so its CIFAR models default to 28x28.
PREACT_CIFAR_INPUT = (3, 28, 28)
IMAGENET_INPUT = (3, 224, 224)


def _table():
    models = {}
    for depth in (20, 32, 44, 56, 110, 164, 1001):
        models['resnet%d' % depth] = ModelConfig('resnet', depth, {}, PREACT_CIFAR_INPUT, 10)
    for depth in (20, 32, 44, 56, 110, 1202):
        models['resnet%d_v1' % depth] = ModelConfig('resnet-v1', depth, {'shortcut': 'A'},
                                                    CIFAR_INPUT, 10)
    for depth in (20, 32, 44, 56, 110):
        models['plain%d' % depth] = ModelConfig('plain', depth, {}, CIFAR_INPUT, 10)
    for depth in (18, 34, 50, 101, 152, 200, 269):
        models['resnet%d' % depth] = ModelConfig('resnet', depth, {}, IMAGENET_INPUT, 1000)
    for depth in (18, 34, 50, 101, 152):
        models['resnet%d_v1' % depth] = ModelConfig('resnet-v1', depth, {'shortcut': 'B'},
                                                    IMAGENET_INPUT, 1000)
    # The ResNeXt paper's CIFAR networks (Sec. 5.2, Table 7), gluon-cv's cifar_resnext29_*
    for groups, width in ((8, 64), (16, 64), (32, 4)):
        models['resnext29_%dx%dd' % (groups, width)] = ModelConfig(
            'resnext', 29, {'num_group': groups, 'bottleneck_width': width}, CIFAR_INPUT, 10)
    for depth, groups, width in ((50, 32, 4), (101, 32, 4), (101, 64, 4), (152, 32, 4)):
        models['resnext%d_%dx%dd' % (depth, groups, width)] = ModelConfig(
            'resnext', depth, {'num_group': groups, 'bottleneck_width': width},
            IMAGENET_INPUT, 1000)
    return models


MODELS = _table()
