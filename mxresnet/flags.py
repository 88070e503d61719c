"""Command-line flags: their groups, defaults and dataset presets, and the small parsers that
turn flag values into Python values (each raises UsageError naming the flag and the value).

Flags keep the names and meaning of MXNet's example `fit.py` and `data.py`. Flags that a
preset may set default to None in the parser and their help shows the real defaults;
`apply_presets` fills them in this order of precedence: an explicit flag, then the named
model (`--model`: network, depth, options), then the checkpoint the run starts from (the
one it resumes, or `--pretrained`: network, depth, options, normalisation), then the
dataset preset, then the named model's input shape and classes, then that checkpoint's,
then the `--aug-level` preset, then the base default. (In MXNet
1.9.1's example the ImageNet augmentation level is set after parsing and so never applies;
here it always does.)
"""
import argparse
import os

from .errors import UsageError

# This module loads MXNet (through `symbols`) only inside the functions that need the
# registry, so that parsers and presets are at hand before MXNet loads.

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_DATA = {
    'data_train': os.path.join(ROOT, 'data', 'fashion-mnist-train.rec'),
    'data_val': os.path.join(ROOT, 'data', 'fashion-mnist-val.rec'),
}

KVSTORES = ('local', 'device', 'nccl', 'dist_sync', 'dist_device_sync', 'dist_async',
            'horovod')
LR_SCHEDULES = ('step', 'cosine', 'poly')
INITIALIZERS = ('default', 'xavier', 'msra', 'uniform', 'normal')
RESIDUAL_SUMS = ('add_n', 'elemwise_add')
GLOBAL_POOLS = ('mean', 'pooling')
DATA_BACKENDS = ('mxnet', 'dali')  # --data-backend: ImageRecordIter, or mxresnet.dali
DTYPES = ('float32', 'float16')  # what --dtype trains with (symbols.blocks.DTYPES builds)

# Base defaults of every preset-able flag (MXNet's example defaults where it has one).
BASE_DEFAULTS = {
    'image_shape': '3,224,224', 'num_classes': 1000, 'rgb_mean': '123.68,116.779,103.939',
    'rgb_std': '1,1,1', 'pad_size': 0, 'fill_value': 127, 'aug_level': 0,
    'random_crop': 0, 'random_mirror': 0, 'max_random_h': 0, 'max_random_s': 0,
    'max_random_l': 0, 'max_random_aspect_ratio': 0.0, 'max_random_rotate_angle': 0,
    'max_random_shear_ratio': 0.0, 'min_random_scale': 1.0, 'max_random_scale': 1.0,
    'min_random_area': 1.0, 'max_random_area': 1.0, 'random_resized_crop': 0,
    'brightness': 0.0, 'contrast': 0.0, 'saturation': 0.0, 'pca_noise': 0.0,
    'network': 'resnet', 'num_layers': 50, 'batch_size': 128, 'num_epochs': 100, 'lr': 0.1,
    'lr_factor': 0.1, 'lr_step_epochs': '30,60', 'lr_schedule': 'step', 'wd': 1e-4,
    'mom': 0.9, 'warmup_epochs': 0,
}

# --aug-level: 1 crop + mirror; 2 adds colour; 3 adds rotation, shear and aspect ratio.
AUG_LEVELS = {0: {}, 1: {'random_crop': 1, 'random_mirror': 1}}
AUG_LEVELS[2] = dict(AUG_LEVELS[1], max_random_h=36, max_random_s=50, max_random_l=50)
AUG_LEVELS[3] = dict(AUG_LEVELS[2], max_random_rotate_angle=10, max_random_shear_ratio=0.1,
                     max_random_aspect_ratio=0.25)

# Dataset presets: the paper's recipes (He et al. 2015, sections 3.4 and 4.2).
DATASET_PRESETS = {
    # 45k/5k-style CIFAR-10 recipe: 4-px padding, 32x32 random crops, mirror, batch 128,
    # lr 0.1 divided by 10 at 32k and 48k iterations (epochs 82 and 123), 164 epochs.
    'cifar10': {
        'image_shape': '3,32,32', 'num_classes': 10, 'pad_size': 4, 'aug_level': 1,
        'rgb_mean': '125.31,122.95,113.87', 'rgb_std': '62.99,62.09,66.70',
        'network': 'resnet-v1', 'num_layers': 20, 'batch_size': 128, 'num_epochs': 164,
        'lr': 0.1, 'lr_step_epochs': '82,123', 'wd': 1e-4, 'mom': 0.9,
    },
    # ImageNet: scale augmentation (shorter side 256..480 ~ scale 0.533..1), crops, mirror,
    # colour and PCA noise; batch 256, lr 0.1 divided by 10 at plateaus.
    'imagenet': {
        'image_shape': '3,224,224', 'num_classes': 1000, 'aug_level': 3,
        'min_random_scale': 0.533, 'pca_noise': 0.1, 'rgb_mean': '123.68,116.779,103.939',
        'rgb_std': '58.393,57.12,57.375', 'network': 'resnet', 'num_layers': 50,
        'batch_size': 256, 'num_epochs': 120, 'lr': 0.1, 'lr_step_epochs': '30,60,90',
        'wd': 1e-4, 'mom': 0.9,
    },
    # The bundled Fashion-MNIST subset: a short run that finishes in minutes on 2 cores.
    # Padding is black like the images' background (MXNet's default fill is gray, 127).
    'fashion-mnist': {
        'image_shape': '1,28,28', 'num_classes': 10, 'pad_size': 4, 'fill_value': 0,
        'aug_level': 1, 'rgb_mean': '72.94', 'rgb_std': '90.02', 'network': 'resnet',
        'num_layers': 20, 'batch_size': 128, 'num_epochs': 4, 'lr': 0.2,
        'lr_schedule': 'cosine', 'wd': 1e-4, 'mom': 0.9, 'warmup_epochs': 0,
    },
}
DEFAULT_PRESET = 'fashion-mnist'  # when no --data-train is given

# train_resnet.py's network flag -> option name of symbols.get_symbol.
NETWORK_FLAGS = {
    'workspace': 'conv_workspace', 'bn_mom': 'bn_mom', 'memonger': 'memonger',
    'num_group': 'num_group', 'bottleneck_width': 'bottleneck_width',
    'shortcut': 'shortcut', 'act_type': 'act_type', 'bn_position': 'bn_position',
    'shortcut_bn': 'shortcut_bn',
}
BOOL_NETWORK_FLAGS = ('memonger', 'shortcut_bn')   # given as 0/1


# -- parsers -------------------------------------------------------------------------------
def int_list(text, flag, minimum=1):
    """'1,64' -> [1, 64]; UsageError unless every value is an integer >= minimum."""
    try:
        values = [int(v) for v in str(text).split(',') if v.strip()]
    except ValueError:
        raise UsageError('%s %r: expected comma-separated integers such as "1,64"'
                         % (flag, text))
    if not values or min(values) < minimum:
        raise UsageError('%s %r: expected integers of at least %d' % (flag, text, minimum))
    return values


def image_shape(text, flag='--image-shape'):
    """'C,H,W' -> (C, H, W)."""
    from symbols.blocks import parse_image_shape
    try:
        return parse_image_shape(text)
    except ValueError:
        raise UsageError("%s %r: expected three positive integers 'channels,height,width', "
                         "e.g. 3,224,224 or 1,28,28" % (flag, text))


def dtype_list(text, flag='--dtypes'):
    """'float32,float16' -> ['float32', 'float16']."""
    dtypes = [d.strip() for d in str(text).split(',') if d.strip()]
    if not dtypes or any(d not in DTYPES for d in dtypes):
        raise UsageError('%s %r: choose %s, comma-separated'
                         % (flag, text, ' and/or '.join(DTYPES)))
    return dtypes


def per_channel(text, channels, flag):
    """'r,g,b' (or one value for every channel) -> a list of `channels` floats."""
    try:
        values = [float(v) for v in str(text).split(',')]
    except ValueError:
        raise UsageError('%s %r: expected comma-separated numbers' % (flag, text))
    if len(values) == 1:
        values = values * channels
    if len(values) < channels:
        raise UsageError('%s %r: expected %d values, one per channel' % (flag, text, channels))
    return values[:channels]


def gpu_list(text, flag='--gpus'):
    """'0,1' -> [0, 1]; '' -> [] (the CPU); UsageError for anything else or absent GPUs."""
    text = (text or '').strip()
    if not text:
        return []
    gpus = int_list(text, flag, minimum=0)
    import mxnet as mx
    available = mx.context.num_gpus()
    if any(g >= available for g in gpus):
        raise UsageError('%s %s: %s (leave %s empty to run on the CPU)' % (
            flag, text, 'this machine has no GPU' if available == 0 else
            'this machine has GPUs 0..%d' % (available - 1), flag))
    return gpus


def read_synset(path, flag='--synset'):
    """Class names, one per line (line number = label)."""
    try:
        with open(path) as f:
            names = [line.strip() for line in f if line.strip()]
    except OSError as err:
        raise UsageError('%s %s: %s' % (flag, path, err.strerror or err))
    if not names:
        raise UsageError('%s %s: the file names no class' % (flag, path))
    if len(set(names)) != len(names):
        raise UsageError('%s %s names a class twice' % (flag, path))
    return names


def find_synset(rec_path):
    """The class-name file that the dataset tools write beside a .rec, or None:
    synset.txt in its folder, else <name>_synset.txt or <name>-synset.txt, where <name> is
    the .rec's name without a _train/_val/_test (or -train...) ending."""
    folder, name = os.path.split(os.path.splitext(os.path.abspath(rec_path))[0])
    stems = [name]
    for split in ('train', 'val', 'test'):
        for sep in '_-':
            if name.endswith(sep + split):
                stems.append(name[:-len(sep + split)])
    candidates = [os.path.join(folder, 'synset.txt')] + [
        os.path.join(folder, stem + sep + 'synset.txt') for stem in stems for sep in '_-']
    return next((path for path in candidates if os.path.isfile(path)), None)


# -- help ----------------------------------------------------------------------------------
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' only where the parser's default is the real one (not None, not
    an empty string that the help explains, not a switch's False)."""

    def _get_help_string(self, action):
        if action.default in (None, '') or action.default is False or \
                'default:' in (action.help or ''):
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, with a bad command line reported as one line on stderr (no usage
    text; --help has it) and exit status 2."""

    def error(self, message):
        self.exit(2, '%s: error: %s\n' % (self.prog, message))


def parser(description, **kwargs):
    """The parser of a command: one-line errors, help that shows the real defaults."""
    return ArgumentParser(description=description, formatter_class=HelpFormatter, **kwargs)


def preset_help(text, key):
    """`text` with the base default and each preset's value of flag `key`."""
    presets = ', '.join('%s %s' % (name, DATASET_PRESETS[name][key])
                        for name in sorted(DATASET_PRESETS) if key in DATASET_PRESETS[name])
    levels = ', '.join('%d: %s' % (level, values[key])
                       for level, values in sorted(AUG_LEVELS.items()) if key in values)
    return '%s (default: %s%s%s)' % (text, BASE_DEFAULTS[key],
                                     '; --preset ' + presets if presets else '',
                                     '; --aug-level ' + levels if levels else '')


# -- flag groups ---------------------------------------------------------------------------
def add_preset_flags(group, rows):
    """Flags a preset may set: (name, type or choices, help) each, defaulting to None, with
    the real defaults in their help."""
    for flag, kind, text in rows:
        typed = {'choices': kind} if isinstance(kind, tuple) else {'type': kind}
        group.add_argument('--' + flag, help=preset_help(text, flag.replace('-', '_')), **typed)


def add_fit_args(parser):
    import symbols
    train = parser.add_argument_group('Training', 'model and optimisation')
    train.add_argument('--model', dest='model_name', choices=symbols.list_models(),
                       metavar='NAME', help='a named model (python -m symbols --list): sets '
                       '--network, --num-layers, its options and, without a --preset, the '
                       'input shape and classes')
    train.add_argument('--network', type=str, help=preset_help(
        'network: %s' % ', '.join(symbols.list_networks()), 'network'))
    train.add_argument('--num-layers', type=int, help=preset_help('depth', 'num_layers'))
    train.add_argument('--gpus', type=str, default='',
                       help='GPUs to use, e.g. "0,1"; default: none, the CPU')
    train.add_argument('--kv-store', type=str, default='device',
                       help='key-value store: %s' % ', '.join(KVSTORES))
    add_preset_flags(train, (
        ('num-epochs', int, 'epochs'),
        ('lr', float, 'initial learning rate for --batch-size (scale it linearly with the '
                      'batch size)'),
        ('lr-factor', float, 'step schedule: factor per step'),
        ('lr-step-epochs', str, 'step schedule: epochs to step at'),
        ('lr-schedule', LR_SCHEDULES, 'learning-rate schedule'),
        ('warmup-epochs', int, 'linear warm-up epochs')))
    train.add_argument('--optimizer', type=str, default='sgd', help='optimizer type')
    train.add_argument('--mom', type=float, help=preset_help('momentum for sgd', 'mom'))
    train.add_argument('--wd', type=float, help=preset_help('weight decay', 'wd'))
    train.add_argument('--initializer', default='default', choices=INITIALIZERS,
                       help='weight initializer; default: Xavier with gaussian values, '
                            'factor "in", magnitude 2 (He et al.)')
    train.add_argument('--batch-size', type=int, help=preset_help(
        'total batch size over all devices (and workers)', 'batch_size'))
    train.add_argument('--disp-batches', type=int, default=20, help='progress every N batches')
    train.add_argument('--model-prefix', type=str,
                       help='checkpoint prefix; default: runs/<model>/model with --model, '
                            'else runs/<network>-<num-layers>/model')
    train.add_argument('--save-period', type=int, default=1, help='checkpoint every N epochs')
    train.add_argument('--load-epoch', type=int, help='resume from checkpoint N')
    train.add_argument('--top-k', type=int, default=0, help='also report top-k accuracy')
    train.add_argument('--dtype', choices=DTYPES, default='float32',
                       help='float16: float16 graph, multi-precision optimizer')
    train.add_argument('--loss-scale', type=float, default=1.0,
                       help='static loss scale (useful with float16)')
    train.add_argument('--label-smoothing', type=float, default=0.0,
                       help='label smoothing alpha')
    train.add_argument('--residual-sum', choices=RESIDUAL_SUMS, default='add_n',
                       help="operator the executor computes the graph's two-input sums with "
                            "(mxnet.graph.training_graph); saved graphs keep elemwise_add")
    train.add_argument('--global-pool', choices=GLOBAL_POOLS, default='mean',
                       help='operator the executor computes the global average pooling with '
                            '(mxnet.graph.training_graph); saved graphs keep Pooling')
    train.add_argument('--group-channels', type=int, metavar='N',
                       help='CPU training: grouped convolutions with fewer than N output '
                            'channels per group run with groups merged into block-diagonal '
                            "ones of N (mxnet.graph.training_graph); 0: as built (default: "
                            "the CPU's SIMD width, 16 with AVX-512, else 8; 0 on GPUs)")
    train.add_argument('--monitor', type=int, default=0,
                       help='log the statistics of every array every N batches')
    train.add_argument('--test-io', type=int, default=0, help='1: only read the data')
    train.add_argument('--seed', type=int, default=0, help='seed of init, shuffle and aug')
    train.add_argument('--log-file', type=str,
                       help='JSON-lines log; default: <model-prefix>-log.jsonl, none with an '
                            'empty prefix')
    train.add_argument('--tensorboard', metavar='DIR',
                       help='also write the curves of the log as TensorBoard event files in '
                            'DIR (needs mxboard: pip install -e ".[tensorboard]"); view them '
                            'with tensorboard --logdir DIR')
    train.add_argument('--tensorboard-histograms', type=int, default=0, metavar='N',
                       help='with --tensorboard: histograms of the weights and gradients '
                            'every N epochs (0: none)')
    add_finetune_args(parser)
    return train


def add_finetune_args(parser):
    tune = parser.add_argument_group(
        'Fine-tuning', 'start from a pretrained checkpoint (docs/training.md, "Fine-tuning")')
    tune.add_argument('--pretrained', metavar='PREFIX[:EPOCH]',
                      help='load the parameters of this checkpoint whose names and shapes '
                           'match (default epoch: its last); a new classifier when the class '
                           'count differs. Its network, depth, options and normalisation '
                           'are the defaults')
    tune.add_argument('--pretrained-model', metavar='PREFIX',
                      help="MXNet fine-tune.py's name: --pretrained PREFIX")
    tune.add_argument('--pretrained-epoch', type=int, metavar='N',
                      help="MXNet fine-tune.py's name: the EPOCH of --pretrained-model")
    tune.add_argument('--layer-before-fullc', metavar='NAME',
                      help='always re-initialise the parameters of the layers after this one '
                           "(MXNet fine-tune.py's flag); default: the last fully connected "
                           'layer is new only when its shape differs')
    tune.add_argument('--freeze-stages', type=int, default=0, metavar='K',
                      help='keep the stem and stages 1..K fixed (0: none)')
    tune.add_argument('--backbone-lr-mult', type=float, default=1.0, metavar='X',
                      help='learning-rate multiplier of every parameter but the classifier')
    return tune


def add_network_args(parser):
    net = parser.add_argument_group('Network options', 'passed to symbols.get_symbol; '
                                    'default: the network\'s own')
    net.add_argument('--num-group', type=int, help='ResNeXt cardinality')
    net.add_argument('--bottleneck-width', type=int, help='ResNeXt width per group (the d)')
    net.add_argument('--shortcut', choices=('A', 'B', 'C'), help='resnet-v1 shortcut option')
    net.add_argument('--bn-position', choices=('branch', 'after_add'),
                     help="resnet-v1: a unit's last BN ends its branch (the paper's reading) "
                          "or follows the addition")
    net.add_argument('--shortcut-bn', type=int, choices=(0, 1),
                     help='resnet-v1: 0 leaves projection shortcuts without their BN')
    net.add_argument('--act-type', choices=('relu', 'prelu', 'leaky', 'elu'),
                     help='activation')
    net.add_argument('--bn-mom', type=float, help='BatchNorm momentum')
    net.add_argument('--workspace', type=int, help='convolution workspace (MB)')
    net.add_argument('--memonger', type=int, choices=(0, 1),
                     help='1: mirror (recompute) cheap layers to save memory')
    return net


def add_data_args(parser):
    data = parser.add_argument_group('Data', 'the input images')
    data.add_argument('--data-train', type=str, help='the training .rec file; default: the '
                      'bundled Fashion-MNIST subset in data/, with --preset fashion-mnist')
    data.add_argument('--data-train-idx', type=str, default='',
                      help='the .idx of --data-train; default: beside it, if present')
    data.add_argument('--data-val', type=str, help='the validation .rec file')
    data.add_argument('--data-val-idx', type=str, default='',
                      help='the .idx of --data-val; default: beside it, if present')
    data.add_argument('--synset', type=str,
                      help='class names, one per line, recorded in the checkpoint; default: '
                           'the synset file beside --data-train, if any')
    data.add_argument('--preset', choices=sorted(DATASET_PRESETS),
                      help='dataset recipe: sets shape, classes, augmentation and schedule; '
                           'default: %s when no --data-train is given' % DEFAULT_PRESET)
    data.add_argument('--rgb-mean', type=str, help=preset_help(
        'per-channel mean to subtract, "r,g,b"', 'rgb_mean'))
    data.add_argument('--rgb-std', type=str, help=preset_help(
        'per-channel std to divide by, "r,g,b"', 'rgb_std'))
    data.add_argument('--pad-size', type=int,
                      help=preset_help('padding on each side before cropping', 'pad_size'))
    data.add_argument('--fill-value', type=int,
                      help=preset_help('value of the padded pixels', 'fill_value'))
    data.add_argument('--image-shape', type=str,
                      help=preset_help('network input shape, "C,H,W"', 'image_shape'))
    data.add_argument('--num-classes', type=int,
                      help=preset_help('number of classes; a synset file beside '
                                       '--data-train sets it', 'num_classes'))
    data.add_argument('--num-examples', type=int,
                      help='training images; default: counted from the .idx/.rec')
    data.add_argument('--data-nthreads', type=int, default=2, help='decoding threads')
    data.add_argument('--data-backend', choices=DATA_BACKENDS, default='mxnet',
                      help="what reads and augments the .rec: MXNet's ImageRecordIter, or "
                           "NVIDIA DALI's CPU pipeline (pip install -e '.[dali]'; "
                           'docs/input-pipeline.md)')
    data.add_argument('--resize', type=int, default=0,
                      help='scale the shorter side of each image to this before cropping '
                           '(0: as stored); recorded in the checkpoint for inference')
    data.add_argument('--data-check', type=int, default=1000,
                      help='images of each .rec decoded before training, evenly spread, to '
                           'find unusable ones and the stored size (0: all)')
    data.add_argument('--benchmark', type=int, default=0,
                      help='1: train on synthetic data to measure speed')
    return data


def add_data_aug_args(parser):
    aug = parser.add_argument_group('Image augmentations', 'applied by ImageRecordIter')
    aug.add_argument('--aug-level', type=int, choices=sorted(AUG_LEVELS), help=preset_help(
        'preset: 0 none, 1 crop+mirror, 2 +colour, 3 +rotate/shear/aspect', 'aug_level'))
    add_preset_flags(aug, (
        ('random-crop', int, '1: random crops'),
        ('random-mirror', int, '1: random horizontal flips'),
        ('max-random-h', int, 'max change of hue (HSL)'),
        ('max-random-s', int, 'max change of saturation (HSL)'),
        ('max-random-l', int, 'max change of lightness (HSL)'),
        ('max-random-aspect-ratio', float, 'max aspect-ratio change'),
        ('max-random-rotate-angle', int, 'max rotation, degrees'),
        ('max-random-shear-ratio', float, 'max shear ratio'),
        ('max-random-scale', float, 'max scale factor'),
        ('min-random-scale', float, 'min scale factor'),
        ('max-random-area', float, 'max crop area fraction'),
        ('min-random-area', float, 'min crop area fraction'),
        ('random-resized-crop', int, '1: Inception-style crops'),
        ('brightness', float, 'brightness jitter'),
        ('contrast', float, 'contrast jitter'),
        ('saturation', float, 'saturation jitter'),
        ('pca-noise', float, 'PCA (lighting) noise')))
    aug.add_argument('--random-erasing', type=float, default=0.0,
                     help='probability of erasing a random rectangle of each training image '
                          '(Zhong et al. 2017; applied after ImageRecordIter)')
    return aug


# The recipe flags that default to None in the parser, so that setting one without the
# flag it modifies is refused (`check_recipe`); their defaults are the anchors'.
RECIPE_DEFAULTS = {'model_ema_decay': 0.9998, 'temperature': 20.0, 'hard_weight': 0.5,
                   'ra_magnitude': 9, 'ra_num_ops': 2}
GLUONCV_MIXUP_ALPHA = 0.2  # what gluon-cv's --mixup mixes with unless --mixup-alpha says
AUTO_AUGMENTS = ('ra', 'ta_wide')  # mxresnet.augment.POLICIES


def add_recipe_args(parser):
    recipe = parser.add_argument_group(
        'Training recipe', 'mixup, CutMix, RandAugment, weight decay, initialisation, weight '
        'averaging, distillation; the flag names of gluon-cv, timm and torchvision '
        '(docs/training.md, "Training recipe")')
    recipe.add_argument('--mixup-alpha', type=float,
                        help='mixup: each batch mixed with itself reversed, weight '
                             'lam ~ Beta(alpha, alpha) per batch, targets mixed alike '
                             '(default: 0, off; %g with --mixup)' % GLUONCV_MIXUP_ALPHA)
    recipe.add_argument('--mixup', action='store_true',
                        help="gluon-cv's switch: mixup with --mixup-alpha (default %g)"
                             % GLUONCV_MIXUP_ALPHA)
    recipe.add_argument('--cutmix-alpha', type=float, default=0.0,
                        help="CutMix (timm's, torchvision's flag): a box of area share "
                             "1 - lam, lam ~ Beta(alpha, alpha), pasted from each image's "
                             "partner, targets weighted by area; with --mixup-alpha, one of "
                             "the two per batch at even odds (0: off)")
    recipe.add_argument('--mixup-off-epoch', type=int, default=0, metavar='N',
                        help="gluon-cv's: no mixup or CutMix in the last N epochs")
    recipe.add_argument('--auto-augment', choices=AUTO_AUGMENTS,
                        help="torchvision's policies, on the decoded batches: ra RandAugment, "
                             "ta_wide TrivialAugment Wide (default: none)")
    recipe.add_argument('--ra-magnitude', type=int,
                        help='RandAugment magnitude bin, 0-30 (default: %d)'
                             % RECIPE_DEFAULTS['ra_magnitude'])
    recipe.add_argument('--ra-num-ops', type=int,
                        help='RandAugment operations per image (default: %d)'
                             % RECIPE_DEFAULTS['ra_num_ops'])
    recipe.add_argument('--no-wd', action='store_true',
                        help='no weight decay on BatchNorm gamma and beta and on biases '
                             "(gluon-cv's --no-wd; torchvision's --norm-weight-decay 0 "
                             '--bias-weight-decay 0)')
    recipe.add_argument('--last-gamma', action='store_true',
                        help="start each residual branch's last BatchNorm gamma at zero (its "
                             "last convolution's weight in the pre-activation resnet), as "
                             "gluon-cv's --last-gamma")
    recipe.add_argument('--model-ema', action='store_true',
                        help='keep an exponential moving average of the weights, evaluated '
                             'each epoch and saved as checkpoints of PREFIX-ema (timm, '
                             'torchvision)')
    recipe.add_argument('--model-ema-decay', type=float,
                        help='its decay per update (default: %g, timm\'s)'
                             % RECIPE_DEFAULTS['model_ema_decay'])
    recipe.add_argument('--teacher', metavar='PREFIX[:EPOCH]',
                        help='distil from this checkpoint (default epoch: its last), fed the '
                             "student's batches in its own input size and normalisation "
                             "(gluon-cv's --teacher names a model-zoo model)")
    recipe.add_argument('--temperature', type=float,
                        help='distillation temperature T (default: %g, gluon-cv\'s)'
                             % RECIPE_DEFAULTS['temperature'])
    recipe.add_argument('--hard-weight', type=float,
                        help='weight of the loss on the labels; the teacher\'s, at T and '
                             'times T^2, weighs 1 - it (default: %g, gluon-cv\'s)'
                             % RECIPE_DEFAULTS['hard_weight'])
    return recipe


def add_checkpoint_args(parser):
    model = parser.add_argument_group('Model', 'a checkpoint written by train_resnet.py')
    model.add_argument('--model', required=True,
                       help='checkpoint prefix (PREFIX-symbol.json, PREFIX-model.json, '
                            'PREFIX-NNNN.params)')
    model.add_argument('--epoch', type=int, required=True, help='checkpoint number N')
    return model


def add_preprocess_args(parser):
    pre = parser.add_argument_group(
        'Preprocessing', "default: the checkpoint's own (PREFIX-model.json); for checkpoints "
        'written without it, give --preset, or --image-shape, --rgb-mean and --rgb-std')
    pre.add_argument('--preset', choices=sorted(DATASET_PRESETS),
                     help='dataset preset the model was trained with')
    pre.add_argument('--rgb-mean', type=str, help='per-channel mean subtracted in training')
    pre.add_argument('--rgb-std', type=str, help='per-channel std divided by in training')
    pre.add_argument('--image-shape', type=str, help='network input shape, "C,H,W"')
    return pre


# -- filling and reading the parsed flags ---------------------------------------------------
def apply_presets(args):
    """Fill every preset-able flag left at None (order of precedence: module docstring)."""
    import symbols
    if args.preset is None and not args.data_train and not args.benchmark:
        args.preset = DEFAULT_PRESET
    model = symbols.model_config(args.model_name) if args.model_name else None
    named = {}
    if model is not None:
        named = {'network': model.network, 'num_layers': model.num_layers}
        for flag, option in NETWORK_FLAGS.items():
            if option in model.options and getattr(args, flag) is None:
                setattr(args, flag, model.options[option])
    shape_and_classes = {}
    if model is not None:
        shape_and_classes = {'image_shape': ','.join(map(str, model.image_shape)),
                             'num_classes': model.num_classes}
    pretrained, pretrained_options, pretrained_shape = ({}, {}, {})
    if getattr(args, 'pretrained', None) or getattr(args, 'pretrained_model', None) or (
            getattr(args, 'load_epoch', None) is not None and getattr(args, 'model_prefix', None)):
        from .finetune import pretrained_defaults
        pretrained, pretrained_options, pretrained_shape = pretrained_defaults(args)
        for flag, option in NETWORK_FLAGS.items():
            if option in pretrained_options and getattr(args, flag) is None:
                setattr(args, flag, pretrained_options[option])
    dataset = DATASET_PRESETS.get(args.preset, {})
    if args.aug_level is None:
        args.aug_level = dataset.get('aug_level', BASE_DEFAULTS['aug_level'])
    layers = [named, pretrained, dataset, shape_and_classes, pretrained_shape,
              AUG_LEVELS[args.aug_level], BASE_DEFAULTS]
    for key in BASE_DEFAULTS:
        if getattr(args, key, None) is None:
            setattr(args, key, next(layer[key] for layer in layers if key in layer))
    # The pretrained network's options that no flag sets (an imported gluon-cv model's
    # BatchNorm epsilon, say) come with it, unless another network is asked for.
    args.inherited_options = {}
    if pretrained and args.network == pretrained['network']:
        flagged = set(NETWORK_FLAGS.values()) | {'dtype'}
        args.inherited_options = {k: v for k, v in pretrained_options.items()
                                  if k not in flagged and
                                  k in symbols.network_options(args.network)}
    if not args.data_train and not args.benchmark:
        args.data_train = BUNDLED_DATA['data_train']
        if not args.data_val:
            args.data_val = BUNDLED_DATA['data_val']
    return args


# Training flags that take a number: (lowest, highest, whether the lowest itself is allowed);
# None: no bound. Checked by `check_numbers` before any work is done.
NUMBER_RANGES = {
    'num_epochs': (1, None, True), 'batch_size': (1, None, True),
    'disp_batches': (1, None, True), 'save_period': (1, None, True),
    'lr': (0, None, False), 'lr_factor': (0, None, False), 'wd': (0, None, True),
    'mom': (0, 1, True), 'warmup_epochs': (0, None, True), 'top_k': (0, None, True),
    'loss_scale': (0, None, False), 'label_smoothing': (0, 1, True),
    'random_erasing': (0, 1, True), 'data_nthreads': (1, None, True),
    'resize': (0, None, True), 'data_check': (0, None, True),
    'freeze_stages': (0, None, True), 'backbone_lr_mult': (0, None, True),
    'tensorboard_histograms': (0, None, True),
    'mixup_alpha': (0, None, True), 'cutmix_alpha': (0, None, True),
    'mixup_off_epoch': (0, None, True), 'ra_magnitude': (0, 30, True),
    'ra_num_ops': (1, None, True), 'model_ema_decay': (0, 1, True),
    'temperature': (0, None, False), 'hard_weight': (0, 1, True),
    'group_channels': (0, None, True),
}


def check_numbers(args):
    """UsageError naming the first numeric flag whose value is out of its range (or not a
    finite number)."""
    for key, (low, high, low_allowed) in NUMBER_RANGES.items():
        value = getattr(args, key, None)
        if value is None:
            continue
        flag = '--' + key.replace('_', '-')
        finite = value == value and value not in (float('inf'), float('-inf'))
        if not finite or value < low or (value == low and not low_allowed) or \
                (high is not None and value > high):
            accepted = ('a number from %s' if low_allowed else 'a number above %s') % low
            if high is not None:
                accepted += ' to %s' % high
            raise UsageError('%s %s: expected %s' % (flag, value, accepted))


def check_recipe(args):
    """UsageError for a recipe flag set without the one it modifies, then the defaults of
    RECIPE_DEFAULTS (and --mixup's alpha) filled in. After `check_numbers`."""
    if args.mixup and args.mixup_alpha == 0:
        raise UsageError('--mixup with --mixup-alpha 0: mixup would be off')
    if args.mixup_alpha is None:
        args.mixup_alpha = GLUONCV_MIXUP_ALPHA if args.mixup else 0.0
    needs = [('mixup_off_epoch', args.mixup_alpha or args.cutmix_alpha,
              '--mixup-alpha or --cutmix-alpha'),
             ('ra_magnitude', args.auto_augment == 'ra', '--auto-augment ra'),
             ('ra_num_ops', args.auto_augment == 'ra', '--auto-augment ra'),
             ('model_ema_decay', args.model_ema, '--model-ema'),
             ('temperature', args.teacher, '--teacher'),
             ('hard_weight', args.teacher, '--teacher')]
    for key, present, needed in needs:
        value = getattr(args, key)
        given = value is not None if key in RECIPE_DEFAULTS else value != 0
        if given and not present:
            raise UsageError('--%s %s needs %s' % (key.replace('_', '-'), value, needed))
    if args.mixup_off_epoch >= args.num_epochs:
        raise UsageError('--mixup-off-epoch %d leaves no epoch of --num-epochs %d with mixup '
                         'or CutMix' % (args.mixup_off_epoch, args.num_epochs))
    for key, value in RECIPE_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def recipe(args):
    """The recipe options of the flags, as the log's run record holds them."""
    keys = ['mixup_alpha', 'cutmix_alpha', 'mixup_off_epoch', 'label_smoothing',
            'auto_augment', 'random_erasing', 'no_wd', 'last_gamma', 'model_ema', 'teacher']
    options = {key: getattr(args, key) for key in keys}
    if args.auto_augment == 'ra':
        options.update(ra_magnitude=args.ra_magnitude, ra_num_ops=args.ra_num_ops)
    if args.model_ema:
        options['model_ema_decay'] = args.model_ema_decay
    if args.teacher:
        options.update(temperature=args.temperature, hard_weight=args.hard_weight)
    return options


def soft_targets(args):
    """Whether training needs targets that are probability vectors (graph.soft_target_loss):
    mixup, CutMix or distillation (label smoothing alone stays in SoftmaxOutput)."""
    return bool(args.mixup_alpha or args.cutmix_alpha or args.teacher)


def network_options(args):
    """Options for symbols.get_symbol: dtype, the options the pretrained network brings
    (`apply_presets`), and every network flag that is set (zeros included)."""
    options = dict(getattr(args, 'inherited_options', None) or {}, dtype=args.dtype)
    for flag, option in NETWORK_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            options[option] = bool(value) if flag in BOOL_NETWORK_FLAGS else value
    return options


def normalisation(args, channels):
    """The per-channel (mean, std) of --rgb-mean and --rgb-std."""
    return (per_channel(args.rgb_mean, channels, '--rgb-mean'),
            per_channel(args.rgb_std, channels, '--rgb-std'))
