"""Data arguments, augmentation and dataset presets, RecordIO checks and iterators.

Flags keep the names and meaning of MXNet's example `data.py`. Flags that a preset
may set default to None in the parser; `apply_presets` fills them in this order of
precedence: an explicit flag, then the dataset preset, then the `--aug-level`
preset, then the base default. (In MXNet 1.9.1's example the ImageNet augmentation
level is set after parsing and so never applies; here it always does.)
"""
import math
import os
import struct

import mxnet as mx
import numpy as np

from . import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_DATA = {
    'data_train': os.path.join(ROOT, 'data', 'fashion-mnist-train.rec'),
    'data_val': os.path.join(ROOT, 'data', 'fashion-mnist-val.rec'),
}

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


def add_data_args(parser):
    data = parser.add_argument_group('Data', 'the input images')
    data.add_argument('--data-train', type=str, help='the training .rec file '
                      '(default: the bundled Fashion-MNIST subset in data/)')
    data.add_argument('--data-train-idx', type=str, default='',
                      help='the .idx of --data-train (default: beside it, if present)')
    data.add_argument('--data-val', type=str, help='the validation .rec file')
    data.add_argument('--data-val-idx', type=str, default='', help='the .idx of --data-val')
    data.add_argument('--preset', choices=sorted(DATASET_PRESETS),
                      help='dataset recipe: sets shape, classes, augmentation and schedule '
                           '(fashion-mnist when no --data-train is given)')
    data.add_argument('--rgb-mean', type=str, help='per-channel mean to subtract, "r,g,b"')
    data.add_argument('--rgb-std', type=str, help='per-channel std to divide by, "r,g,b"')
    data.add_argument('--pad-size', type=int, help='padding on each side before cropping')
    data.add_argument('--fill-value', type=int, help='value of the padded pixels')
    data.add_argument('--image-shape', type=str, help='network input shape, "C,H,W"')
    data.add_argument('--num-classes', type=int, help='number of classes')
    data.add_argument('--num-examples', type=int,
                      help='training images (default: counted from the .idx/.rec)')
    data.add_argument('--data-nthreads', type=int, default=2, help='decoding threads')
    data.add_argument('--benchmark', type=int, default=0,
                      help='1: train on synthetic data to measure speed')
    return data


def add_data_aug_args(parser):
    aug = parser.add_argument_group('Image augmentations', 'applied by ImageRecordIter')
    aug.add_argument('--aug-level', type=int, choices=sorted(AUG_LEVELS),
                     help='preset: 0 none, 1 crop+mirror, 2 +colour, 3 +rotate/shear/aspect')
    aug.add_argument('--random-crop', type=int, help='1: random crops')
    aug.add_argument('--random-mirror', type=int, help='1: random horizontal flips')
    aug.add_argument('--max-random-h', type=int, help='max change of hue (HSL)')
    aug.add_argument('--max-random-s', type=int, help='max change of saturation (HSL)')
    aug.add_argument('--max-random-l', type=int, help='max change of lightness (HSL)')
    aug.add_argument('--max-random-aspect-ratio', type=float, help='max aspect-ratio change')
    aug.add_argument('--max-random-rotate-angle', type=int, help='max rotation, degrees')
    aug.add_argument('--max-random-shear-ratio', type=float, help='max shear ratio')
    aug.add_argument('--max-random-scale', type=float, help='max scale factor')
    aug.add_argument('--min-random-scale', type=float, help='min scale factor')
    aug.add_argument('--max-random-area', type=float, help='max crop area fraction')
    aug.add_argument('--min-random-area', type=float, help='min crop area fraction')
    aug.add_argument('--random-resized-crop', type=int, help='1: Inception-style crops')
    aug.add_argument('--brightness', type=float, help='brightness jitter')
    aug.add_argument('--contrast', type=float, help='contrast jitter')
    aug.add_argument('--saturation', type=float, help='saturation jitter')
    aug.add_argument('--pca-noise', type=float, help='PCA (lighting) noise')
    aug.add_argument('--random-erasing', type=float, default=0.0,
                     help='probability of erasing a random rectangle of each training image '
                          '(Zhong et al. 2017; applied after ImageRecordIter)')
    return aug


def apply_presets(args):
    """Fill every flag left at None: explicit > dataset preset > aug level > base default."""
    if args.preset is None and not args.data_train and not args.benchmark:
        args.preset = 'fashion-mnist'
    dataset = DATASET_PRESETS.get(args.preset, {})
    if args.aug_level is None:
        args.aug_level = dataset.get('aug_level', BASE_DEFAULTS['aug_level'])
    layers = [dataset, AUG_LEVELS[args.aug_level], BASE_DEFAULTS]
    for key in BASE_DEFAULTS:
        if getattr(args, key, None) is None:
            setattr(args, key, next(layer[key] for layer in layers if key in layer))
    if not args.data_train and not args.benchmark:
        args.data_train = BUNDLED_DATA['data_train']
        if not args.data_val:
            args.data_val = BUNDLED_DATA['data_val']
    return args


RECORD_MAGIC = 0xced7230a
_HEADER = struct.Struct('<II')


def _read_header(f, offset, path, size):
    if offset + _HEADER.size > size:
        raise UsageError('%s is truncated: a record starts at byte %d but the file ends at %d'
                         % (path, offset, size))
    f.seek(offset)
    magic, lrec = _HEADER.unpack(f.read(_HEADER.size))
    if magic != RECORD_MAGIC:
        raise UsageError('%s is not a RecordIO file: no record magic at byte %d' % (path, offset))
    length = lrec & ((1 << 29) - 1)
    end = offset + _HEADER.size + length
    if end > size:
        raise UsageError('%s is truncated: the record at byte %d needs %d bytes but the file '
                         'ends at %d' % (path, offset, end, size))
    return lrec >> 29, end + (-length % 4)


def _read_index(idx_path):
    offsets = []
    with open(idx_path) as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                offsets.append(int(parts[1]))
            except (IndexError, ValueError):
                raise UsageError('%s line %d is not "key<TAB>offset": %r'
                                 % (idx_path, line_no, line.strip()))
    return offsets


def count_records(path, idx_path=None, flag='--data-train'):
    """Number of records in a .rec file, checked for truncation; UsageError if unusable.

    With an .idx, the last indexed record is checked to lie whole inside the file;
    without one, the record headers are walked (a seek per record, no decoding).
    """
    if not os.path.isfile(path):
        raise UsageError('%s %s: no such file' % (flag, path))
    size = os.path.getsize(path)
    if size == 0:
        raise UsageError('%s %s: the file is empty' % (flag, path))
    with open(path, 'rb') as f:
        if idx_path and os.path.isfile(idx_path):
            offsets = _read_index(idx_path)
            if not offsets:
                raise UsageError('%s: the index is empty' % idx_path)
            _read_header(f, max(offsets), path, size)
            return len(offsets)
        count, offset = 0, 0
        while offset < size:
            cflag, offset = _read_header(f, offset, path, size)
            count += cflag in (0, 1)
        return count


def default_idx(rec_path, idx_path):
    """The given .idx, or the one beside the .rec if it exists, else ''."""
    if idx_path:
        if not os.path.isfile(idx_path):
            raise UsageError('index %s: no such file' % idx_path)
        return idx_path
    candidate = os.path.splitext(rec_path)[0] + '.idx'
    return candidate if os.path.isfile(candidate) else ''


def _per_channel(text, channels, flag):
    try:
        values = [float(v) for v in text.split(',')]
    except ValueError:
        raise UsageError('%s %r: expected comma-separated numbers' % (flag, text))
    if len(values) == 1:
        values = values * channels
    if len(values) < channels:
        raise UsageError('%s %r: expected %d values, one per channel' % (flag, text, channels))
    return values[:channels]


def normalisation(args, channels):
    """The per-channel (mean, std) of --rgb-mean and --rgb-std."""
    return (_per_channel(args.rgb_mean, channels, '--rgb-mean'),
            _per_channel(args.rgb_std, channels, '--rgb-std'))


def record_iter(args, image_shape, path, idx_path, train, num_parts=1, part_index=0, epoch=0):
    """An ImageRecordIter over one worker's part; training iterators shuffle and augment.

    The shuffle and augmentation seeds depend on `epoch`, so a fresh iterator per
    epoch gives the same data order whether or not the run was resumed.
    """
    mean, std = normalisation(args, image_shape[0])
    params = dict(path_imgrec=path, label_width=1, data_shape=image_shape,
                  batch_size=args.batch_size // num_parts, num_parts=num_parts,
                  part_index=part_index, preprocess_threads=args.data_nthreads,
                  round_batch=True, ctx='cpu', verbose=False)
    if idx_path:
        params['path_imgidx'] = idx_path
    for name, m, s in zip('rgb', mean, std):
        params['mean_' + name] = m
        params['std_' + name] = s
    if train:
        params.update(
            shuffle=True, seed=args.seed + epoch, seed_aug=args.seed + epoch,
            pad=args.pad_size, fill_value=args.fill_value,
            rand_crop=bool(args.random_crop), rand_mirror=bool(args.random_mirror),
            random_h=args.max_random_h, random_s=args.max_random_s,
            random_l=args.max_random_l, max_aspect_ratio=args.max_random_aspect_ratio,
            max_rotate_angle=args.max_random_rotate_angle,
            max_shear_ratio=args.max_random_shear_ratio,
            max_random_scale=args.max_random_scale, min_random_scale=args.min_random_scale,
            max_random_area=args.max_random_area, min_random_area=args.min_random_area,
            random_resized_crop=bool(args.random_resized_crop), brightness=args.brightness,
            contrast=args.contrast, saturation=args.saturation, pca_noise=args.pca_noise)
    return mx.io.ImageRecordIter(**params)


def random_erasing(images, rng, probability, mean, std, area=(0.02, 0.4), min_aspect=0.3):
    """Random erasing (Zhong et al. 2017), in place on a normalised NCHW numpy batch.

    Each image, with `probability`, gets one rectangle of `area` (fraction of the image)
    and aspect ratio in [min_aspect, 1/min_aspect] filled with random pixel values
    (uniform 0..255, normalised with the per-channel `mean` and `std`); as in the paper,
    up to 100 draws are tried for a rectangle that fits.
    """
    count, channels, height, width = images.shape
    mean = np.asarray(mean, dtype=images.dtype).reshape(channels, 1, 1)
    std = np.asarray(std, dtype=images.dtype).reshape(channels, 1, 1)
    for i in np.flatnonzero(rng.uniform(size=count) < probability):
        for _ in range(100):
            target = rng.uniform(*area) * height * width
            aspect = rng.uniform(min_aspect, 1 / min_aspect)
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if 0 < h < height and 0 < w < width:
                top = rng.randint(0, height - h + 1)
                left = rng.randint(0, width - w + 1)
                noise = rng.uniform(0, 255, (channels, h, w)).astype(images.dtype)
                images[i, :, top:top + h, left:left + w] = (noise - mean) / std
                break
    return images


class SyntheticDataIter(mx.io.DataIter):
    """The same random batch `num_batches` times: measures compute without I/O."""

    def __init__(self, num_classes, data_shape, num_batches, dtype='float32'):
        super(SyntheticDataIter, self).__init__(data_shape[0])
        rng = np.random.RandomState(0)
        data = mx.nd.array(rng.uniform(-1, 1, data_shape), dtype=dtype)
        label = mx.nd.array(rng.randint(0, num_classes, (data_shape[0],)))
        self.batch = mx.io.DataBatch(data=[data], label=[label], pad=0)
        self.provide_data = [mx.io.DataDesc('data', data_shape, dtype)]
        self.provide_label = [mx.io.DataDesc('softmax_label', (data_shape[0],), np.float32)]
        self.num_batches = num_batches
        self.cur = 0

    def reset(self):
        self.cur = 0

    def next(self):
        if self.cur >= self.num_batches:
            raise StopIteration
        self.cur += 1
        return self.batch
