"""--data-backend dali: NVIDIA DALI's CPU pipeline over the same .rec/.idx files as
ImageRecordIter, with the augmentation of our ImageRecordIter flags.

DALI reads, decodes and crops: the random resized crop is decoded from the JPEG's crop
window only (`fn.decoders.image_random_crop`). Mirror, colour jitter and normalisation are
one affine map of each crop's pixels (`ColourJitter`, OpenCV's `transform` on each crop,
written into the batch that MXNet then reads without a copy): DALI's own colour operators
on the CPU cost about as much as the decoding. The batches are
`mx.io.DataBatch`es with ImageRecordIter's epoch semantics: a part of `num_parts` read per
epoch, the last batch filled from the start of the part with `pad` saying how many. Flags
it cannot do are refused by `check` before any work (docs/input-pipeline.md lists the
differences).
"""
import cv2
import mxnet as mx
import numpy as np

from .augment import GRAY_WEIGHTS
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


def build_pipeline(path, idx_path, image_shape, batch_size, threads, augment, num_parts,
                   part_index, seed, resize):
    """The DALI pipeline (not built) of `record_iter`: (HWC uint8 crops of `image_shape`,
    labels), the crops as ImageRecordIter's, before mirror, colour and normalisation."""
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
            return fn.resize(images, resize_x=width, resize_y=height, antialias=False), labels
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
        return fn.slice(images, start=fn.cast(start, dtype=types.INT32),
                        shape=[height, width], axis_names='HW', out_of_bounds_policy='pad',
                        fill_values=fill), labels

    return pipeline()


class ColourJitter(object):
    """ImageRecordIter's mirror, brightness, contrast and saturation jitter, PCA noise and
    normalisation of a batch of HWC uint8 crops, as one affine map of each image's pixels.

    In pixel values y = b c sat(x) + b (1 - c) g + p, with b, c, s uniform in 1 -+
    brightness, contrast, saturation, sat(x) = s x + (1 - s) gray(x), g the image's mean
    gray and p the PCA offset, then (y - mean) / std. ImageRecordIter applies the three
    jitters in a random order, rounding and clipping to 0..255 after each; without that
    the order changes nothing, and this map neither rounds nor clips. `augment` None: the
    normalisation only."""

    def __init__(self, augment, mean, std, seed):
        self.mean, self.std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        self.colour = len(mean) == 3
        self.weights = np.asarray(GRAY_WEIGHTS if self.colour else [1.0 / len(mean)] * len(mean))
        self.augment = augment
        self.rng = np.random.RandomState(seed)
        self.pixels = self.mapped = None  # one crop's float32 pixels before and after

    def maps(self, images):
        """(mirror flags, float32 affine maps of shape (images, C, C + 1)) of `images`."""
        count, channels = len(images), len(self.mean)
        args = self.augment
        mirror, gain, shift = np.zeros(count, bool), np.ones(count), np.zeros((count, channels))
        mixing = np.broadcast_to(np.eye(channels), (count, channels, channels))
        if args is not None:
            if args.random_mirror:
                mirror = self.rng.rand(count) < 0.5
            brightness = self._factors(args.brightness, count)
            contrast = self._factors(args.contrast, count)
            gain = brightness * contrast
            if args.contrast:
                gray = np.array([np.dot(cv2.mean(image)[:channels], self.weights)
                                 for image in images])
                shift = shift + (brightness * (1 - contrast) * gray)[:, None]
            if args.saturation and self.colour:
                keep = self._factors(args.saturation, count)[:, None, None]
                mixing = keep * np.eye(3) + (1 - keep) * self.weights[None, None, :]
            if args.pca_noise and self.colour:
                alpha = self.rng.normal(0, args.pca_noise, (count, 3))
                shift = shift + alpha.dot(PCA_BASIS.T)
        linear = gain[:, None, None] * mixing / self.std[None, :, None]
        offset = (shift - self.mean) / self.std
        return mirror, np.concatenate([linear, offset[:, :, None]], axis=2).astype(np.float32)

    def apply(self, crops):
        """NCHW float32 images of the NHWC uint8 `crops`, each through its affine map."""
        mirror, maps = self.maps(crops)
        count, height, width, channels = crops.shape
        if self.pixels is None or self.pixels.shape != crops.shape[1:]:
            self.pixels = np.empty(crops.shape[1:], np.float32)
            self.mapped = np.empty_like(self.pixels)
        out = np.empty((count, channels, height, width), np.float32)
        for i, crop in enumerate(crops):
            np.copyto(self.pixels, crop[:, ::-1] if mirror[i] else crop, casting='unsafe')
            cv2.transform(self.pixels, maps[i], dst=self.mapped)
            out[i] = self.mapped.transpose(2, 0, 1)
        return out

    def _factors(self, jitter, count):
        """A factor uniform in 1 -+ `jitter` for each image (1.0 when it is 0)."""
        if not jitter:
            return np.ones(count)
        return self.rng.uniform(1 - jitter, 1 + jitter, count)


def record_iter(path, idx_path, image_shape, mean, std, batch_size, threads=2, augment=None,
                num_parts=1, part_index=0, epoch=0, resize=0):
    """`mxresnet.data.record_iter`'s iterator (same arguments) read by DALI."""
    seed = (augment.seed + epoch) if augment is not None else 0
    pipe = build_pipeline(path, idx_path, image_shape, batch_size, threads, augment,
                          num_parts, part_index, seed, resize)
    return DaliIter(pipe, image_shape, num_parts, part_index,
                    ColourJitter(augment, mean, std, seed))


class DaliIter(mx.io.DataIter):
    """`mx.io.DataBatch`es of NCHW float32 images from the crops of `pipe` (built here)
    through `jitter` (a ColourJitter), with ImageRecordIter's epochs: the
    part's records in ceil(records / batch) batches, the last one filled from the stream
    that goes on into the next epoch, `pad` saying how many."""

    def __init__(self, pipe, image_shape, num_parts, part_index, jitter):
        pipe.build()
        batch_size = pipe.max_batch_size
        super(DaliIter, self).__init__(batch_size)
        total = pipe.reader_meta('Reader')['epoch_size']
        self.records = total * (part_index + 1) // num_parts - total * part_index // num_parts
        self.batches = -(-self.records // batch_size)
        self.pipe, self.jitter, self.done = pipe, jitter, 0
        self.provide_data = [mx.io.DataDesc('data', (batch_size,) + tuple(image_shape))]
        self.provide_label = [mx.io.DataDesc('softmax_label', (batch_size,))]

    def reset(self):
        self.done = 0

    def next(self):
        if self.done == self.batches:
            raise StopIteration
        crops, labels = self.pipe.run()
        self.done += 1
        pad = self.batches * self.batch_size - self.records if self.done == self.batches \
            else 0
        images = self.jitter.apply(crops.as_array())
        return mx.io.DataBatch([mx.nd.from_numpy(images, zero_copy=True)],
                               [mx.nd.array(labels.as_array().reshape(-1))], pad=pad,
                               provide_data=self.provide_data,
                               provide_label=self.provide_label)
