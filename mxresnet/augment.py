"""Augmentations of decoded training batches, after ImageRecordIter: RandAugment and
TrivialAugment (`--auto-augment`), random erasing (`--random-erasing`), then mixup and
CutMix (`--mixup-alpha`, `--cutmix-alpha`) with the soft targets they train against.

Each works on a whole normalised NCHW numpy batch with vectorised numpy operations, with
its random parameters drawn per image (per batch for mixup and CutMix) from a generator
the Trainer seeds with (seed, epoch, batch, worker): a resumed epoch sees the same images,
and each worker of a distributed job its own draws.
"""
import math

import numpy as np

# Generator streams of `batch_rng`, one per augmentation, so that turning one on leaves the
# draws of the others as they were.
AUTO_AUGMENT_STREAM, MIX_STREAM = 1, 2


def batch_rng(seed, epoch, batch, rank, stream=None):
    """The generator of batch `batch` of `epoch` on worker `rank`; `stream`: one of the
    streams above (None: random erasing's, which predates them)."""
    key = [seed, epoch, batch, rank] + ([] if stream is None else [stream])
    return np.random.RandomState(key)


# -- RandAugment and TrivialAugment ----------------------------------------------------------
# torchvision's definitions (transforms.RandAugment and TrivialAugmentWide: the operations,
# their magnitude bins, random signs, nearest-neighbour geometry) computed as its PIL path
# computes them (tests/test_recipe.py checks each operation against PIL), on pixel values
# 0..255 held in float32 arrays.
NUM_BINS = 31
POLICIES = ('ra', 'ta_wide')
OPERATIONS = ('Identity', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate',
              'Brightness', 'Color', 'Contrast', 'Sharpness', 'Posterize', 'Solarize',
              'AutoContrast', 'Equalize')
SIGNED = ('ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate', 'Brightness', 'Color',
          'Contrast', 'Sharpness')
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma: PIL's convert('L'), OpenCV's too


def magnitudes(policy, height, width):
    """{operation: its NUM_BINS magnitudes} of `policy` for images of height x width."""
    bins = np.arange(NUM_BINS)
    if policy == 'ra':
        shear, rotate, colour, posterize_levels = 0.3, 30.0, 0.9, 4
        translate = (150.0 / 331.0 * width, 150.0 / 331.0 * height)
    else:
        shear, rotate, colour, posterize_levels = 0.99, 135.0, 0.99, 6
        translate = (32.0, 32.0)
    table = {
        'Identity': np.zeros(NUM_BINS),
        'ShearX': np.linspace(0, shear, NUM_BINS), 'ShearY': np.linspace(0, shear, NUM_BINS),
        'TranslateX': np.linspace(0, translate[0], NUM_BINS),
        'TranslateY': np.linspace(0, translate[1], NUM_BINS),
        'Rotate': np.linspace(0, rotate, NUM_BINS),
        'Posterize': 8 - np.round(bins / ((NUM_BINS - 1) / posterize_levels)),
        'Solarize': np.linspace(255.0, 0.0, NUM_BINS),
        'AutoContrast': np.zeros(NUM_BINS), 'Equalize': np.zeros(NUM_BINS),
    }
    for name in ('Brightness', 'Color', 'Contrast', 'Sharpness'):
        table[name] = np.linspace(0, colour, NUM_BINS)
    return table


def _per_image(values):
    return np.asarray(values, np.float32).reshape(-1, 1, 1, 1)


def _blend(image, other, factor):
    """torchvision's _blend on uint8: factor * image + (1 - factor) * other, clipped to
    0..255 and truncated to an integer."""
    return np.floor(np.clip(factor * image + (1 - factor) * other, 0, 255))


def _gray(images):
    if images.shape[1] == 1:
        return images
    weights = np.asarray(GRAY_WEIGHTS, np.float32).reshape(1, 3, 1, 1)
    return np.round((images * weights).sum(axis=1, keepdims=True))


def _affine(images, matrices, fill):
    """Each image resampled as PIL's nearest-neighbour affine transform does: output pixel
    (x, y) takes the input pixel under its 2x3 matrix applied to the pixel's centre
    (x + 0.5, y + 0.5, 1), rounded down; pixels from outside the image get `fill`."""
    count, channels, height, width = images.shape
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    m = matrices[:, :, :, None, None]
    sx = np.floor(m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]).astype(np.int64)
    sy = np.floor(m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]).astype(np.int64)
    inside = (sx >= 0) & (sx < width) & (sy >= 0) & (sy < height)
    first = np.arange(count)[:, None, None] * (height * width)
    index = np.where(inside, sy * width + sx, 0) + first
    planes = images.transpose(1, 0, 2, 3).reshape(channels, -1)
    moved = planes[:, index.ravel()].reshape(channels, count, height, width)
    return np.where(inside[:, None], moved.transpose(1, 0, 2, 3), np.float32(fill))


def _geometric(name, images, magnitude, fill):
    """torchvision's shears (about the top-left corner, by atan(magnitude)), translations
    (whole pixels) and rotations (degrees counter-clockwise about the centre) as the
    inverse matrices it hands PIL."""
    count, _, height, width = images.shape
    matrices = np.zeros((count, 2, 3))
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1
    if name == 'ShearX':
        matrices[:, 0, 1] = magnitude
    elif name == 'ShearY':
        matrices[:, 1, 0] = magnitude
    elif name == 'TranslateX':
        matrices[:, 0, 2] = -np.trunc(magnitude)
    elif name == 'TranslateY':
        matrices[:, 1, 2] = -np.trunc(magnitude)
    else:
        theta = -np.radians(magnitude)
        cos, sin = np.cos(theta), np.sin(theta)
        cx, cy = width / 2.0, height / 2.0
        matrices[:, 0, 0], matrices[:, 0, 1] = cos, sin
        matrices[:, 1, 0], matrices[:, 1, 1] = -sin, cos
        matrices[:, 0, 2] = cx - cos * cx - sin * cy
        matrices[:, 1, 2] = cy + sin * cx - cos * cy
    return _affine(images, matrices, fill)


def _sharpness(images, factor):
    """Blend with the image smoothed by torchvision's 3x3 kernel (borders kept)."""
    if min(images.shape[2:]) <= 2:
        return images
    smooth = images.copy()
    inner = 5 * images[:, :, 1:-1, 1:-1]
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if (dy, dx) != (1, 1):
                inner = inner + images[:, :, dy:dy + images.shape[2] - 2,
                                       dx:dx + images.shape[3] - 2]
    smooth[:, :, 1:-1, 1:-1] = np.round(inner / 13)
    return _blend(images, smooth, factor)


def _autocontrast(images):
    low = images.min(axis=(2, 3), keepdims=True)
    high = images.max(axis=(2, 3), keepdims=True)
    flat = high == low
    scale = np.where(flat, 1, 255 / np.where(flat, 1, high - low))
    return np.floor(np.clip((images - np.where(flat, 0, low)) * scale, 0, 255))


def _equalize(images):
    """torchvision's per-channel histogram equalisation, all channels of all images at once."""
    count, channels, height, width = images.shape
    rows = images.reshape(count * channels, height * width).astype(np.int64)
    offsets = np.arange(len(rows))[:, None] * 256
    hist = np.bincount((rows + offsets).ravel(), minlength=len(rows) * 256).reshape(-1, 256)
    last = 255 - np.argmax(hist[:, ::-1] > 0, axis=1)
    step = (hist.sum(axis=1) - hist[np.arange(len(rows)), last]) // 255
    lut = (np.cumsum(hist, axis=1) + (step // 2)[:, None]) // np.maximum(step, 1)[:, None]
    lut = np.clip(np.concatenate([np.zeros((len(rows), 1), np.int64), lut[:, :-1]], axis=1),
                  0, 255)
    lut[step == 0] = np.arange(256)
    equalized = lut.ravel()[rows + offsets]
    return equalized.reshape(images.shape).astype(images.dtype)


def apply_operation(name, images, magnitude, fill):
    """Operation `name` of OPERATIONS on pixel values 0..255 (count, C, H, W), with one
    (signed) magnitude per image; geometric ones fill uncovered pixels with `fill`."""
    magnitude = np.asarray(magnitude, np.float64)
    if name == 'Identity':
        return images
    if name in ('ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate'):
        return _geometric(name, images, magnitude, fill)
    factor = _per_image(1 + magnitude)
    if name == 'Brightness':
        return _blend(images, 0, factor)
    if name == 'Color':
        return images if images.shape[1] == 1 else _blend(images, _gray(images), factor)
    if name == 'Contrast':
        return _blend(images, _gray(images).mean(axis=(1, 2, 3), keepdims=True), factor)
    if name == 'Sharpness':
        return _sharpness(images, factor)
    if name == 'Posterize':
        step = _per_image(2 ** (8 - magnitude))
        return np.floor(images / step) * step
    if name == 'Solarize':
        threshold = _per_image(magnitude)
        return np.where(images >= threshold, 255 - images, images)
    if name == 'AutoContrast':
        return _autocontrast(images)
    return _equalize(images)


def auto_augment(images, rng, policy, mean, std, fill, magnitude=9, num_ops=2):
    """RandAugment (`policy` 'ra': `num_ops` operations per image, each at bin `magnitude`
    of NUM_BINS) or TrivialAugment Wide ('ta_wide': one operation per image at a random bin)
    of a normalised NCHW batch (per-channel `mean` and `std` of 0..255 pixels); returns the
    augmented batch, normalised. Each image draws its own operations, bins and signs;
    the images that drew the same operation are computed together."""
    count, channels, height, width = images.shape
    mean = np.asarray(mean, np.float32).reshape(1, channels, 1, 1)
    std = np.asarray(std, np.float32).reshape(1, channels, 1, 1)
    pixels = np.clip(np.rint(images * std + mean), 0, 255).astype(np.float32)
    table = magnitudes(policy, height, width)
    for _ in range(num_ops if policy == 'ra' else 1):
        chosen = rng.randint(len(OPERATIONS), size=count)
        bins = np.full(count, magnitude) if policy == 'ra' else rng.randint(NUM_BINS, size=count)
        signs = np.where(rng.randint(2, size=count), -1.0, 1.0)
        for op in np.unique(chosen):
            name = OPERATIONS[op]
            which = np.flatnonzero(chosen == op)
            values = table[name][bins[which]]
            if name in SIGNED:
                values = values * signs[which]
            pixels[which] = apply_operation(name, pixels[which], values, fill)
    return ((pixels - mean) / std).astype(images.dtype)


# -- random erasing ------------------------------------------------------------------------
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


# -- mixup, CutMix and soft targets ------------------------------------------------------------
def partners(count):
    """The image each image of a batch is mixed with: the batch reversed, as gluon-cv's and
    timm's mixup pair them (the batch is shuffled already)."""
    return np.arange(count)[::-1].copy()


def mixup(images, rng, alpha):
    """Mixup (Zhang et al. 2018): (lam * images + (1 - lam) * their partners, partners, lam)
    with one lam ~ Beta(alpha, alpha) for the batch."""
    lam = float(rng.beta(alpha, alpha))
    partner = partners(len(images))
    return lam * images + (1 - lam) * images[partner], partner, lam


def cutmix(images, rng, alpha):
    """CutMix (Yun et al. 2019), timm's way: a box of area share about 1 - lam
    (lam ~ Beta(alpha, alpha)) centred anywhere, clipped to the image, pasted from each
    image's partner; returns (images, partners, lam, (top, bottom, left, right)) where lam
    is the share of each image left outside the box, the weight of its own label."""
    count, _, height, width = images.shape
    cut = math.sqrt(1 - float(rng.beta(alpha, alpha)))
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = rng.randint(height), rng.randint(width)
    top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    partner = partners(count)
    mixed = images.copy()
    mixed[:, :, top:bottom, left:right] = images[partner, :, top:bottom, left:right]
    lam = 1 - float((bottom - top) * (right - left)) / (height * width)
    return mixed, partner, lam, (int(top), int(bottom), int(left), int(right))


def soft_targets(labels, num_classes, smoothing=0.0, partner=None, lam=1.0):
    """(count, num_classes) float32 targets: each image's one-hot label, smoothed, weighted
    lam, plus its partner's weighted 1 - lam; each row sums to one.

    Smoothing keeps the meaning --label-smoothing has in MXNet's SoftmaxOutput: 1 - alpha
    on the label and alpha / (classes - 1) on each other class (timm, torchvision and
    gluon-cv spread alpha over all classes: 1 - alpha + alpha / classes on the label)."""
    labels = np.asarray(labels).astype(np.int64)
    off = smoothing / max(num_classes - 1, 1)
    targets = np.full((len(labels), num_classes), off, np.float64)
    targets[np.arange(len(labels)), labels] = 1 - smoothing
    if partner is not None:
        targets = lam * targets + (1 - lam) * targets[partner]
    return targets.astype(np.float32)


def mix_batch(images, labels, rng, num_classes, mixup_alpha=0.0, cutmix_alpha=0.0,
              smoothing=0.0):
    """(images, soft targets) of a batch: mixup or CutMix (one of them, even odds, per batch
    when both alphas are set, as timm and torchvision switch), or neither when both are 0."""
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha == 0 or rng.uniform() < 0.5)
    if use_cutmix:
        images, partner, lam, _ = cutmix(images, rng, cutmix_alpha)
    elif mixup_alpha > 0:
        images, partner, lam = mixup(images, rng, mixup_alpha)
    else:
        partner, lam = None, 1.0
    return images, soft_targets(labels, num_classes, smoothing, partner, lam)
