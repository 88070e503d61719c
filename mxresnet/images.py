"""Encoded images: what is wrong with one before it is decoded, decoding as ImageRecordIter
does, and the preprocessing of training's validation path for one image.

Self-contained (the standard library, numpy, OpenCV and MXNet only): `export.export_mar`
ships this module inside model archives beside the serving handler.
"""
import struct

import numpy as np

# The most pixels an image's header may claim: a bigger one is refused before decoding
# (OpenCV would try to allocate it).
MAX_IMAGE_PIXELS = 1 << 28
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageError(ValueError):
    """An encoded image that cannot be used; the message says why."""


def header_size(data):
    """(height, width) that a PNG's or JPEG's header states, or None for other data."""
    if data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) >= 24:
        width, height = struct.unpack('>II', data[16:24])
        return height, width
    if data[:2] != b'\xff\xd8':
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 1 if marker == 0xFF else 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack('>HH', data[i + 5:i + 9])
            return height, width
        i += 2 + struct.unpack('>H', data[i + 2:i + 4])[0]
    return None


def image_problem(data):
    """Why the encoded image `data` cannot be used as it is (empty, truncated, a header
    claiming more than MAX_IMAGE_PIXELS, undecodable), or None. Truncation is checked
    where OpenCV would decode silently: a JPEG without its end-of-image marker after the
    last scan (OpenCV returns the image with grey rows), a PNG without its end chunk."""
    if not data:
        return 'no image data'
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        return 'its header claims %dx%d pixels (more than %d)' % (size + (MAX_IMAGE_PIXELS,))
    if data[:2] == b'\xff\xd8' and data.rfind(b'\xff\xd9') < data.rfind(b'\xff\xda'):
        return 'a truncated JPEG (no end-of-image marker)'
    if data[:4] == b'\x89PNG' and b'IEND' not in data[-12:]:
        return 'a truncated PNG (no IEND chunk)'
    return None


def decode_image(data, flags=None):
    """The image `data` decoded by OpenCV (as ImageRecordIter decodes it), or (None, why)."""
    import cv2
    problem = image_problem(data)
    if problem:
        return None, problem
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8),
                               cv2.IMREAD_UNCHANGED if flags is None else flags)
    except cv2.error as err:
        return None, 'OpenCV cannot decode it (%s)' % str(err).strip().splitlines()[-1]
    if decoded is None or decoded.size == 0:
        return None, 'not a decodable image (corrupt, or not JPEG/PNG)'
    return decoded, None


def preprocess(data, image_shape, mean, std, resize=0):
    """(C, H, W) float32 array of the encoded image `data` as the validation iterator makes
    it: decoded (gray for a 1-channel input, RGB for a 3-channel one), the shorter side
    resized to `resize` if given (and, when the image is smaller than the input, up to the
    input size), the centre cropped to `image_shape`, then (pixel - mean) / std. ImageError
    saying why if it cannot be used (`decode_image`)."""
    import cv2
    import mxnet as mx
    channels, height, width = image_shape
    decoded, why = decode_image(data, cv2.IMREAD_GRAYSCALE if channels == 1
                                else cv2.IMREAD_COLOR)
    if decoded is None:
        raise ImageError(why)
    if channels == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    img = mx.nd.array(decoded.reshape(decoded.shape[0], decoded.shape[1], channels),
                      dtype=np.uint8)
    short = min(img.shape[0], img.shape[1])
    target = resize
    if short < max(height, width) and target < max(height, width):
        target = max(height, width)
    if target and target != short:
        img = mx.image.resize_short(img, target)
    img, _ = mx.image.center_crop(img, (width, height))
    array = img.asnumpy().astype(np.float32).reshape(height, width, channels)
    array = (array - np.array(mean, np.float32)) / np.array(std, np.float32)
    return array.transpose(2, 0, 1)
