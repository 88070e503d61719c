"""Data for training and evaluation: ImageRecordIter over a worker's part of a .rec, and
synthetic batches.

ImageRecordIter's augmentation takes the flags of `mxresnet.flags` (MXNet's example
`data.py` names); the augmentations after it are in `mxresnet.augment`.
"""
import logging

import mxnet as mx
import numpy as np

from .errors import UsageError
from .recordio import check_images, record_offsets

# A crop that keeps less than this share of the stored image is warned about.
MIN_CROP_SHARE = 0.5


def describe_records(bad, shown=5):
    """'records 1, 3 and 9 more: why; record 4: why' for [(record id, why)]."""
    by_reason = {}
    for record_id, why in bad:
        by_reason.setdefault(why, []).append(record_id)
    parts = []
    for why, ids in by_reason.items():
        listed = ', '.join(map(str, ids[:shown]))
        if len(ids) > shown:
            listed += ' and %d more' % (len(ids) - shown)
        parts.append('record%s %s: %s' % ('s' * (len(ids) > 1), listed, why))
    return '; '.join(parts)


def check_dataset(path, idx_path, image_shape, flag, sample=0, resize=0, batch_size=1,
                  num_parts=1, rescales=False):
    """Check a .rec before it is read (`record_offsets`, then `sample` images decoded, all if
    0); returns its number of records. UsageError when most decoded images are unusable or
    a worker's part holds fewer records than its batch; a warning naming the unusable ones,
    and one when the centre crop to `image_shape` (after `resize`, the shorter side) keeps
    less than MIN_CROP_SHARE of the stored images, unless the augmentation `rescales`."""
    offsets = record_offsets(path, idx_path, flag)
    checked, bad, sizes = check_images(path, offsets, sample)
    scope = 'all %d records' % checked if checked == len(offsets) else \
        '%d of its %d records' % (checked, len(offsets))
    if bad:
        summary = '%s %s: %d of %s cannot be used (%s)' % (flag, path, len(bad), scope,
                                                           describe_records(bad))
        if 2 * len(bad) > checked:
            raise UsageError(summary + ': repack the images with tools/im2rec.py')
        logging.warning('warning: %s: the iterator would read them as garbage or fail on '
                        'them; repack the images without them', summary)
    if sizes and not rescales:
        height, width = sorted(sizes, key=lambda s: s[0] * s[1])[len(sizes) // 2]
        if resize:
            scale = float(resize) / min(height, width)
            height, width = int(round(height * scale)), int(round(width * scale))
        if image_shape[1] * image_shape[2] < MIN_CROP_SHARE * height * width:
            logging.warning('warning: %s %s: the images are %dx%d%s but --image-shape %s takes '
                            'a %dx%d centre crop of them (%.0f%% of each image); pass --resize '
                            '%d to scale their shorter side first', flag, path, height, width,
                            ' after --resize %d' % resize if resize else '',
                            ','.join(map(str, image_shape)), image_shape[1], image_shape[2],
                            100.0 * image_shape[1] * image_shape[2] / (height * width),
                            max(image_shape[1:]))
    if len(offsets) // num_parts < batch_size:
        raise UsageError('%s %s has %d records%s, fewer than a batch of %d: pass a smaller '
                         '--batch-size' % (flag, path, len(offsets),
                                           ' (%d per worker)' % (len(offsets) // num_parts)
                                           if num_parts > 1 else '', batch_size))
    return len(offsets)


def record_iter(path, idx_path, image_shape, mean, std, batch_size, threads=2, augment=None,
                num_parts=1, part_index=0, epoch=0, resize=0):
    """An ImageRecordIter of `batch_size` images over part `part_index` of `num_parts` of a
    .rec, normalised with the per-channel `mean` and `std`. With `augment` (the parsed
    training flags) it shuffles and augments, else it reads in order as validation does.

    The shuffle and augmentation seeds depend on `epoch`, so a fresh iterator per
    epoch gives the same data order whether or not the run was resumed. `resize`: the
    shorter side scaled to it first (0: as stored).
    """
    params = dict(path_imgrec=path, label_width=1, data_shape=image_shape,
                  batch_size=batch_size, num_parts=num_parts, part_index=part_index,
                  preprocess_threads=threads, round_batch=True, ctx='cpu', verbose=False)
    if resize:
        params['resize'] = resize
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


def backend_record_iter(args, idx_paths):
    """`record_iter`, or the function of the same arguments of --data-backend, checked
    against the parsed flags `args` first; `idx_paths`: {flag: .idx path} of its .rec files."""
    if getattr(args, 'data_backend', 'mxnet') == 'dali':
        from . import dali
        dali.check(args, idx_paths)
        return dali.record_iter
    return record_iter


def check_labels(batch, num_classes, where):
    """UsageError naming the first label of `batch` (its padding left out) that is not a
    class number, an integer from 0 to num_classes - 1; `where` says which batch it is."""
    labels = batch.label[0].asnumpy()[:batch.label[0].shape[0] - (batch.pad or 0)]
    bad = labels[(labels < 0) | (labels >= num_classes) | (labels != np.round(labels))]
    if bad.size:
        raise UsageError('%s: label %g is not a class number (expected an integer from 0 to '
                         '%d for %d classes: check the data and --num-classes)'
                         % (where, bad[0], num_classes - 1, num_classes))


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
