"""Data for training and evaluation: ImageRecordIter over a worker's part of a .rec,
synthetic batches, and random erasing.

Augmentation takes the flags of `mxresnet.flags` (MXNet's example `data.py` names).
"""
import math

import mxnet as mx
import numpy as np

from .errors import UsageError


def record_iter(path, idx_path, image_shape, mean, std, batch_size, threads=2, augment=None,
                num_parts=1, part_index=0, epoch=0):
    """An ImageRecordIter of `batch_size` images over part `part_index` of `num_parts` of a
    .rec, normalised with the per-channel `mean` and `std`. With `augment` (the parsed
    training flags) it shuffles and augments, else it reads in order as validation does.

    The shuffle and augmentation seeds depend on `epoch`, so a fresh iterator per
    epoch gives the same data order whether or not the run was resumed.
    """
    params = dict(path_imgrec=path, label_width=1, data_shape=image_shape,
                  batch_size=batch_size, num_parts=num_parts, part_index=part_index,
                  preprocess_threads=threads, round_batch=True, ctx='cpu', verbose=False)
    if idx_path:
        params['path_imgidx'] = idx_path
    for name, m, s in zip('rgb', mean, std):
        params['mean_' + name] = m
        params['std_' + name] = s
    args = augment
    if args is not None:
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


def check_labels(batch, num_classes, where):
    """UsageError naming the first label of `batch` (its padding left out) that is not a
    class number, an integer from 0 to num_classes - 1; `where` says which batch it is."""
    labels = batch.label[0].asnumpy()[:batch.label[0].shape[0] - (batch.pad or 0)]
    bad = labels[(labels < 0) | (labels >= num_classes) | (labels != np.round(labels))]
    if bad.size:
        raise UsageError('%s: label %g is not a class number (expected an integer from 0 to '
                         '%d for %d classes: check the data and --num-classes)'
                         % (where, bad[0], num_classes - 1, num_classes))


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
