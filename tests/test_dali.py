"""--data-backend dali (mxresnet/dali.py) against ImageRecordIter on small .rec files."""
import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip('nvidia.dali')

from mxresnet import dali, data  # noqa: E402
from mxresnet.recordio import pack_arrays  # noqa: E402
from recio_helpers import ROOT, assert_clean_error  # noqa: E402

MEAN, STD = [123.68, 116.779, 103.939], [58.393, 57.12, 57.375]


def smooth_images(count, height, width, seed=0):
    """Photo-like BGR images (smooth colour fields) of varied sizes around height x width."""
    import cv2
    rng = np.random.RandomState(seed)
    out = []
    for i in range(count):
        h, w = height + 2 * (i % 3), width + 3 * (i % 4)
        small = rng.randint(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
        out.append(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))
    return out


def coordinate_images(count, height, width):
    """Lossless images whose red and green channels are their x and y coordinates (x 2)."""
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([np.zeros_like(xs), 2 * ys, 2 * xs], axis=2).astype(np.uint8)  # BGR
    return [image] * count


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    base = str(tmp_path_factory.mktemp('dali') / 'photos')
    pack_arrays(base, smooth_images(40, 48, 64), list(range(40)), encoding='.jpg',
                quality=95)
    return base + '.rec', base + '.idx'


def flags(**values):
    """The augmentation flags of train_resnet.py, all off but `values`."""
    args = dict(seed=0, random_resized_crop=0, min_random_area=1.0, max_random_area=1.0,
                max_random_aspect_ratio=0.0, random_mirror=0, random_crop=0, brightness=0.0,
                contrast=0.0, saturation=0.0, pca_noise=0.0, pad_size=0, fill_value=127,
                max_random_h=0, max_random_s=0, max_random_l=0, max_random_rotate_angle=0,
                max_random_shear_ratio=0.0, min_random_scale=1.0, max_random_scale=1.0)
    args.update(values)
    return argparse.Namespace(**args)


def read_all(it):
    """(images, labels, pads) of one epoch."""
    images, labels, pads = [], [], []
    for batch in it:
        images.append(batch.data[0].asnumpy())
        labels.append(batch.label[0].asnumpy())
        pads.append(batch.pad)
    return np.concatenate(images), np.concatenate(labels), pads


def test_without_augmentation_equals_image_record_iter(photos):
    rec, idx = photos
    shape = (3, 32, 32)
    ours = read_all(dali.record_iter(rec, idx, shape, MEAN, STD, 8, resize=36))
    theirs = read_all(data.record_iter(rec, idx, shape, MEAN, STD, 8, resize=36))
    assert ours[0].shape == theirs[0].shape == (40,) + shape
    np.testing.assert_array_equal(ours[1], theirs[1])
    # the same decoder, bilinear resize and centre crop: within a grey level or two
    assert np.abs(ours[0] - theirs[0]).max() < 3.0 / 57
    assert np.abs(ours[0] - theirs[0]).mean() < 0.3 / 57


def test_epochs_pad_like_image_record_iter_and_reset(photos):
    rec, idx = photos
    ours = dali.record_iter(rec, idx, (3, 32, 32), MEAN, STD, 16)
    _, labels, pads = read_all(ours)
    _, their_labels, their_pads = read_all(data.record_iter(rec, idx, (3, 32, 32), MEAN,
                                                            STD, 16))
    assert pads == their_pads == [0, 0, 8]  # 40 records: the last batch filled up
    np.testing.assert_array_equal(labels, their_labels)
    np.testing.assert_array_equal(labels, np.arange(48) % 40)
    # after a reset (fit.py's wrap round a short part), a whole epoch again, going on
    # from where the filling stopped (ImageRecordIter's epoch after a reset is shorter)
    ours.reset()
    _, labels, pads = read_all(ours)
    assert pads == [0, 0, 8]
    np.testing.assert_array_equal(labels, (np.arange(48) + 8) % 40)
    assert ours.provide_data[0].shape == (16, 3, 32, 32)
    assert ours.provide_label[0].name == 'softmax_label'


@pytest.mark.parametrize('augment', [None, flags(random_mirror=1, random_crop=1)])
def test_parts_are_disjoint_and_cover_the_records(photos, augment):
    rec, idx = photos
    seen = []
    for part in range(3):
        it = dali.record_iter(rec, idx, (3, 32, 32), MEAN, STD, 4, augment=augment,
                              num_parts=3, part_index=part)
        _, labels, pads = read_all(it)
        seen.append(set(labels[:len(labels) - pads[-1]].astype(int)))
    assert sum(len(s) for s in seen) == 40
    assert set.union(*seen) == set(range(40))


def test_mirror_flips_about_half_the_images(photos):
    rec, idx = photos
    shape = (3, 32, 32)
    plain, labels, _ = read_all(dali.record_iter(rec, idx, shape, MEAN, STD, 40))
    order = np.argsort(labels)
    flipped = 0
    for epoch in range(4):
        images, labels2, _ = read_all(dali.record_iter(
            rec, idx, shape, MEAN, STD, 40, augment=flags(random_mirror=1), epoch=epoch))
        images = images[np.argsort(labels2)]
        for image, reference in zip(images, plain[order]):
            if np.allclose(image, reference[:, :, ::-1], atol=1e-4):
                flipped += 1
            else:
                np.testing.assert_allclose(image, reference, atol=1e-4)
    assert 0.35 < flipped / 160.0 < 0.65


def test_random_resized_crops_keep_to_the_area_and_aspect_ranges(tmp_path):
    base = str(tmp_path / 'coords')
    pack_arrays(base, coordinate_images(64, 100, 120), [0] * 64, encoding='.png')
    args = flags(random_resized_crop=1, min_random_area=0.2, max_random_area=0.6,
                 max_random_aspect_ratio=0.25)
    images, _, _ = read_all(dali.record_iter(base + '.rec', base + '.idx', (3, 40, 40),
                                             [0, 0, 0], [1, 1, 1], 64, augment=args))
    # red = 2 x, green = 2 y of the source: the crop's extent from the output's edges
    widths = (images[:, 0, :, -1].mean(1) - images[:, 0, :, 0].mean(1)) / 2 * 40 / 39
    heights = (images[:, 1, -1, :].mean(1) - images[:, 1, 0, :].mean(1)) / 2 * 40 / 39
    areas = widths * heights / (100 * 120)
    ratios = widths / heights
    assert areas.min() > 0.2 * 0.85 and areas.max() < 0.6 * 1.15, areas
    assert ratios.min() > 0.75 * 0.9 and ratios.max() < 4 / 3.0 / 0.9, ratios
    assert areas.std() > 0.05 and ratios.std() > 0.03  # random, not one crop
    lefts = images[:, 0, :, 0].mean(1)
    assert lefts.std() > 2  # at random positions


def test_contrast_and_saturation_keep_the_mean_gray(photos):
    """ImageRecordIter's contrast blends with the image's mean gray and its saturation
    with each pixel's gray: both keep the mean gray, and brightness scales it."""
    rec, idx = photos
    shape = (3, 32, 32)
    weights = np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)

    def gray_means(augment):
        images, labels, _ = read_all(dali.record_iter(rec, idx, shape, MEAN, STD, 40,
                                                      augment=augment))
        pixels = images * np.reshape(STD, (1, 3, 1, 1)) + np.reshape(MEAN, (1, 3, 1, 1))
        return pixels, (pixels * weights).sum(1).mean((1, 2))[np.argsort(labels)]

    plain, reference = gray_means(None)
    jittered, kept = gray_means(flags(contrast=0.5, saturation=0.5))
    assert np.abs(jittered - plain).mean() > 3  # the images did change
    np.testing.assert_allclose(kept, reference, atol=1.0)
    _, scaled = gray_means(flags(brightness=0.4))
    factors = scaled / reference
    assert factors.min() > 0.6 - 0.02 and factors.max() < 1.4 + 0.02
    assert factors.std() > 0.1
    # on average, the jitter leaves the mean gray where it was
    ratios = [gray_means(flags(brightness=0.4, contrast=0.4, saturation=0.4, pca_noise=0.1,
                               seed=seed))[1] / reference for seed in range(5)]
    assert abs(np.mean(ratios) - 1) < 0.05  # 200 images; sd of the mean about 0.017


def test_colour_jitter_is_one_affine_map_an_image():
    """mxresnet.dali.ColourJitter on uint8 crops: saturation keeps every pixel's gray and
    scales its colour about it by one factor an image, contrast scales about the image's
    mean gray, brightness scales, mirror flips; all factors in 1 -+ 0.4."""
    rng = np.random.RandomState(1)
    crops = rng.randint(40, 216, (24, 8, 10, 3)).astype(np.uint8)  # NHWC
    x = crops.transpose(0, 3, 1, 2).astype(np.float64)
    weights = np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
    mean, std = np.reshape(MEAN, (1, 3, 1, 1)), np.reshape(STD, (1, 3, 1, 1))

    def pixels(**values):
        jitter = dali.ColourJitter(flags(**values), MEAN, STD, seed=3)
        return jitter.apply(crops) * std + mean

    def factors(y, x, centre_y, centre_x):
        """The one factor f an image with y - centre_y = f (x - centre_x), checked."""
        dy, dx = (y - centre_y).reshape(len(y), -1), (x - centre_x).reshape(len(x), -1)
        f = (dy * dx).sum(1) / (dx * dx).sum(1)
        np.testing.assert_allclose(dy, f[:, None] * dx, atol=0.01)
        assert f.min() >= 0.6 - 1e-6 and f.max() <= 1.4 + 1e-6 and f.std() > 0.1
        return f

    np.testing.assert_allclose(pixels(), x, atol=1e-3)  # the normalisation only
    y = pixels(saturation=0.4)
    gray_x, gray_y = (x * weights).sum(1, keepdims=True), (y * weights).sum(1, keepdims=True)
    np.testing.assert_allclose(gray_y, gray_x, atol=0.01)
    factors(y, x, gray_y, gray_x)
    y = pixels(contrast=0.4)
    mean_gray = gray_x.mean((2, 3), keepdims=True)
    np.testing.assert_allclose((y * weights).sum(1, keepdims=True).mean((2, 3), keepdims=True),
                               mean_gray, atol=0.01)
    factors(y, x, mean_gray, mean_gray)
    factors(pixels(brightness=0.4), x, 0, 0)
    y = pixels(random_mirror=1)
    flipped = np.array([np.allclose(a, b[:, :, ::-1], atol=1e-3) for a, b in zip(y, x)])
    for a, b in zip(y[~flipped], x[~flipped]):
        np.testing.assert_allclose(a, b, atol=1e-3)
    assert 0 < flipped.sum() < len(x)


def test_pad_and_crop_for_small_images(tmp_path):
    base = str(tmp_path / 'digits')
    rng = np.random.RandomState(1)
    digits = [rng.randint(60, 256, (28, 28)).astype(np.uint8) for _ in range(32)]
    pack_arrays(base, digits, list(range(32)), encoding='.png')
    rec, idx = base + '.rec', base + '.idx'
    plain, labels, _ = read_all(dali.record_iter(rec, idx, (1, 28, 28), [0], [1], 32))
    np.testing.assert_array_equal(plain[np.argsort(labels), 0], np.stack(digits))
    args = flags(pad_size=4, fill_value=0, random_crop=1)
    shifted, labels, _ = read_all(dali.record_iter(rec, idx, (1, 28, 28), [0], [1], 32,
                                                   augment=args))
    shifted = shifted[np.argsort(labels), 0]
    found = set()
    for image, digit in zip(shifted, digits):  # each a window of the padded digit
        padded = np.pad(digit, 4)
        match = [(y, x) for y in range(9) for x in range(9)
                 if np.array_equal(padded[y:y + 28, x:x + 28], image)]
        assert match
        found.update(match)
    assert len(found) > 8


def run_train(args):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'train_resnet.py')] + args,
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize('extra, needle', [
    (['--aug-level', '2'], '--max-random-h 36'),
    (['--max-random-rotate-angle', '10'], '--max-random-rotate-angle 10'),
    (['--max-random-aspect-ratio', '0.2'], '--max-random-aspect-ratio 0.2'),
    (['--min-random-scale', '0.5'], '--min-random-scale 0.5'),
])
def test_unsupported_flags_are_refused_before_any_work(photos, extra, needle):
    proc = run_train(['--data-train', photos[0], '--data-backend', 'dali', '--num-classes',
                      '40', '--image-shape', '3,32,32', '--model-prefix', '', '--test-io',
                      '1'] + extra)
    assert_clean_error(proc.returncode, proc.stderr, needle, '--data-backend mxnet')


def test_a_rec_without_idx_is_refused(tmp_path, photos):
    rec = str(tmp_path / 'noidx.rec')
    with open(photos[0], 'rb') as src, open(rec, 'wb') as dst:
        dst.write(src.read())
    proc = run_train(['--data-train', rec, '--data-backend', 'dali', '--num-classes', '40',
                      '--image-shape', '3,32,32', '--model-prefix', '', '--test-io', '1'])
    assert_clean_error(proc.returncode, proc.stderr, '--data-train', '.idx')


def test_trains_with_the_dali_backend(tmp_path, photos):
    proc = run_train(['--data-train', photos[0], '--data-val', photos[0], '--data-backend',
                      'dali', '--num-classes', '40', '--image-shape', '3,32,32',
                      '--network', 'resnet-v1', '--num-layers', '8', '--batch-size', '8',
                      '--num-epochs', '1', '--random-crop', '1', '--pad-size', '4',
                      '--random-mirror', '1', '--brightness', '0.3', '--model-prefix',
                      str(tmp_path / 'm'), '--lr', '0.05'])
    assert proc.returncode == 0, proc.stderr
    assert 'Validation' in proc.stdout and 'Epoch[1] Batch [5/5]' in proc.stdout
