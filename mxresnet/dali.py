"""--data-backend dali: NVIDIA DALI's CPU pipeline over the same .rec/.idx files as
ImageRecordIter, with the augmentation of our ImageRecordIter flags.

The random resized crop is decoded from the JPEG's crop window only
(`fn.decoders.image_random_crop`); brightness, contrast and PCA noise are folded into the
per-image normalisation, so only saturation costs a pass over the pixels. The batches are
`mx.io.DataBatch`es with ImageRecordIter's epoch semantics: a part of `num_parts` read per
epoch, the last batch filled from the start of the part with `pad` saying how many. Flags
it cannot do are refused by `check` before any work (docs/input-pipeline.md lists the
differences).
"""
import mxnet as mx
import numpy as np

from .errors import UsageError

# Augmentation flags the pipeline does not implement, with the value that turns each off.
UNSUPPORTED = (('max_random_h', 0, 'HSL hue jitter'), ('max_random_s', 0, 'HSL saturation '
               'jitter'), ('max_random_l', 0, 'HSL lightness jitter'),
               ('max_random_rotate_angle', 0, 'rotation'), ('max_random_shear_ratio', 0,
                                                            'shear'),
               ('min_random_scale', 1, 'scale augmentation'),
               ('max_random_scale', 1, 'scale augmentation'))
# ImageRecordIter's PCA (lighting) noise: eigenvalues times eigenvectors, RGB rows.
PCA_BASIS = np.array([[55.46 * -0.5675, 4.794 * 0.7192, 1.148 * 0.4009],
                      [55.46 * -0.5808, 4.794 * -0.0045, 1.148 * -0.8140],
                      [55.46 * -0.5836, 4.794 * -0.6948, 1.148 * 0.4203]])
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114])
SHUFFLE_BUFFER = 1024  # records DALI's reader shuffles among


def check(args, idx_paths):
    """UsageError for what this backend cannot do with the parsed training flags `args`:
    the first unsupported augmentation flag that is on, or a .rec without its .idx
    (`idx_paths`: {flag: idx path or ''}); also when DALI is not installed."""
    import importlib.util
    if importlib.util.find_spec('nvidia') is None or \
            importlib.util.find_spec('nvidia.dali') is None:
        raise UsageError('--data-backend dali needs NVIDIA DALI: pip install -e ".[dali]" '
                         '(nvidia-dali-cuda110==1.34.0)')
    for key, off, what in UNSUPPORTED:
        value = getattr(args, key)
        if value != off:
            raise UsageError('--data-backend dali cannot do --%s %s (%s): set it to %s, or '
                             'use --data-backend mxnet' % (key.replace('_', '-'), value, what,
                                                           off))
    ratio = args.max_random_aspect_ratio
    if ratio and not args.random_resized_crop:
        raise UsageError('--data-backend dali cannot do --max-random-aspect-ratio %s without '
                         '--random-resized-crop 1: set it to 0, or use --data-backend mxnet'
                         % ratio)
    if args.random_resized_crop and not 0 <= ratio < 1:
        raise UsageError('--max-random-aspect-ratio %s: expected a number from 0 to below 1 '
                         'with --random-resized-crop 1 (aspect ratios 1 - x to 1 + x)' % ratio)
    if args.random_resized_crop and args.pad_size:
        raise UsageError('--data-backend dali cannot do --pad-size %d with '
                         '--random-resized-crop 1: set it to 0, or use --data-backend mxnet'
                         % args.pad_size)
    for flag, idx in idx_paths.items():
        if not idx:
            raise UsageError('--data-backend dali reads records through their index: %s has '
                             'no .idx beside it (pass %s-idx, or repack it with '
                             'tools/im2rec.py)' % (flag, flag))


def aspect_range(max_aspect_ratio):
    """DALI's width/height range covering ImageRecordIter's: a ratio from
    [1 - x, 1 + x], its inverse half the time."""
    low, high = 1.0 - max_aspect_ratio, 1.0 + max_aspect_ratio
    return [min(low, 1 / high), max(high, 1 / low)]


def _resized(fn, types, shape, resize, height, width):
    """(new height, new width) float nodes of ImageRecordIter's sizing: the shorter side to
    `resize` (0: as stored; the longer one scaled down to an integer), then, if a side is
    still below the input's, scaled up until it is not."""
    h = fn.cast(shape[0], dtype=types.FLOAT)
    w = fn.cast(shape[1], dtype=types.FLOAT)
    if resize:
        tall = fn.cast(h > w, dtype=types.FLOAT)
        h, w = (tall * _floor(resize * h / w) + (1 - tall) * resize,
                tall * resize + (1 - tall) * _floor(resize * w / h))
    short = fn.cast(h < height, dtype=types.FLOAT)
    h, w = short * height + (1 - short) * h, short * _floor(height / h * w) + \
        (1 - short) * w
    narrow = fn.cast(w < width, dtype=types.FLOAT)
    return narrow * _floor(width / w * h) + (1 - narrow) * h, \
        narrow * width + (1 - narrow) * w


def _floor(node):
    """floor of a non-negative float node, as C++ integer conversion truncates (DALI's
    cast rounds)."""
    from nvidia.dali import math
    return math.floor(node)


def build_pipeline(path, idx_path, image_shape, mean, std, batch_size, threads, augment,
                   num_parts, part_index, seed, resize):
    """The DALI pipeline (not built) of `record_iter`, outputs (CHW float images, labels)."""
    from nvidia.dali import fn, pipeline_def, types
    channels, height, width = image_shape
    colour = types.GRAY if channels == 1 else types.RGB
    args = augment

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=seed,
                  prefetch_queue_depth=2)
    def pipeline():
        jpegs, labels = fn.readers.mxnet(
            path=[path], index_path=[idx_path], shard_id=part_index, num_shards=num_parts,
            random_shuffle=args is not None, initial_fill=SHUFFLE_BUFFER,
            stick_to_shard=True, name='Reader')
        if args is not None and args.random_resized_crop:
            images = fn.decoders.image_random_crop(
                jpegs, output_type=colour, num_attempts=10,
                random_area=[args.min_random_area, args.max_random_area],
                random_aspect_ratio=aspect_range(args.max_random_aspect_ratio))
            images = fn.resize(images, resize_x=width, resize_y=height, antialias=False)
        else:
            shape = fn.peek_image_shape(jpegs)
            new_h, new_w = _resized(fn, types, shape, resize, height, width)
            images = fn.resize(fn.decoders.image(jpegs, output_type=colour),
                               resize_x=new_w, resize_y=new_h, antialias=False)
            pad = args.pad_size if args is not None else 0
            room = fn.stack(new_h + 2 * pad - height, new_w + 2 * pad - width)
            if args is not None and args.random_crop:  # in [-pad, size + pad - crop]
                draw = fn.random.uniform(range=[0, 1], shape=[2])
                start = _floor(draw * (room + 1)) - pad
            else:
                start = _floor(room / 2) - pad
            fill = float(args.fill_value if args is not None else 0)
            images = fn.slice(images, start=fn.cast(start, dtype=types.INT32),
                              shape=[height, width], axis_names='HW',
                              out_of_bounds_policy='pad', fill_values=fill)
        mirror = fn.random.coin_flip() if args is not None and args.random_mirror else 0
        if args is not None and (args.brightness or args.contrast or args.saturation or
                                 args.pca_noise):
            images, mean_, std_ = colour_jitter(fn, types, images, args, mean, std)
        else:
            mean_, std_ = list(mean), list(std)
        images = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout='CHW',
                                          mean=mean_, std=std_, mirror=mirror)
        return images, labels

    return pipeline()


def colour_jitter(fn, types, images, args, mean, std):
    """ImageRecordIter's brightness, contrast and saturation jitter and PCA noise: returns
    (images, per-image mean, per-image std) for the normalisation to apply.

    In pixel values y = b c sat(x) + b (1 - c) g + p, with b, c, s uniform in 1 -+
    brightness, contrast, saturation, sat(x) = s x + (1 - s) gray(x) (DALI's `hsv`, on the
    uint8 crop), g the image's mean gray and p the PCA offset: what ImageRecordIter does in
    a random order, which changes only where it rounds and clips to 0..255. Everything but
    the saturation is folded into the normalisation: (y - mean) / std is
    (sat(x) - (mean - b (1 - c) g - p) / (b c)) / (std / (b c))."""
    channels = len(mean)
    weights = GRAY_WEIGHTS if channels == 3 else np.ones(channels) / channels
    brightness, contrast = _factor(fn, args.brightness), _factor(fn, args.contrast)
    gray = fn.reductions.sum(fn.reductions.mean(images, axes=[0, 1]) *
                             types.Constant(weights.astype(np.float32)))
    if args.saturation and channels == 3:
        images = fn.hsv(images, saturation=_factor(fn, args.saturation))
    shift = brightness * (1 - contrast) * gray
    if args.pca_noise and channels == 3:
        alpha = fn.random.normal(stddev=args.pca_noise, shape=[3])
        shift = shift + fn.reductions.sum(types.Constant(PCA_BASIS.astype(np.float32)) *
                                          alpha, axes=[1])
    gain = brightness * contrast
    return (images, (types.Constant(np.asarray(mean, np.float32)) - shift) / gain,
            types.Constant(np.asarray(std, np.float32)) / gain)


def _factor(fn, jitter):
    """A factor uniform in 1 -+ `jitter` for each image (1.0 when it is 0)."""
    return fn.random.uniform(range=[1 - jitter, 1 + jitter]) if jitter else 1.0


def record_iter(path, idx_path, image_shape, mean, std, batch_size, threads=2, augment=None,
                num_parts=1, part_index=0, epoch=0, resize=0):
    """`mxresnet.data.record_iter`'s iterator (same arguments) read by DALI."""
    seed = (augment.seed + epoch) if augment is not None else 0
    pipe = build_pipeline(path, idx_path, image_shape, mean, std, batch_size, threads,
                          augment, num_parts, part_index, seed, resize)
    return DaliIter(pipe)


class DaliIter(mx.io.DataIter):
    """One `mx.io.DataBatch` a step from DALI's MXNet iterator over `pipe` (built here)."""

    def __init__(self, pipe):
        from nvidia.dali.plugin.mxnet import DALIClassificationIterator, LastBatchPolicy
        pipe.build()
        self.source = DALIClassificationIterator(
            pipe, reader_name='Reader', data_name='data', label_name='softmax_label',
            last_batch_policy=LastBatchPolicy.PARTIAL, last_batch_padded=False)
        super(DaliIter, self).__init__(pipe.max_batch_size)
        self.provide_data = self.source.provide_data
        self.provide_label = self.source.provide_label

    def reset(self):
        self.source.reset()

    def next(self):
        return self.source.next()[0]
