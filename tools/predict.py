"""Top-k classes and probabilities of a checkpoint for image files.

    python tools/predict.py shoe.png shirt.jpg --model runs/resnet-20/model --epoch 4 \\
        --synset data/synset.txt --top-k 3

Preprocessing is training's validation path: decode (grey for a 1-channel model, RGB for a
3-channel one), resize the shorter side to `--resize` if given (and, when the image is
smaller than the input, up to the input size), crop the centre to the input size, subtract
the mean and divide by the std of the training run (`--preset`/`--rgb-mean`/`--rgb-std`,
with train_resnet's defaults), NCHW. A file that cannot be read is reported on stderr and
the others are still predicted; the exit code is then 2.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import use_all_cores  # noqa: E402
use_all_cores()  # before MXNet loads

import mxnet as mx  # noqa: E402

from common.cli import run_tool  # noqa: E402
from common import UsageError  # noqa: E402
from common import inference  # noqa: E402
from common.data import ROOT  # noqa: E402
from common.fit import contexts, parse_gpus  # noqa: E402

DEFAULT_SYNSET = os.path.join(ROOT, 'data', 'synset.txt')


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('images', nargs='+', help='image files (PNG, JPEG, ...)')
    inference.add_model_args(parser)
    inference.add_preprocess_args(parser)
    parser.add_argument('--resize', type=int, default=0,
                        help='resize the shorter side to this before the centre crop '
                             '(0: only when the image is smaller than the input)')
    parser.add_argument('--synset', help='class names, one per line (default: data/synset.txt '
                        'if it exists and matches the number of classes)')
    parser.add_argument('--top-k', type=int, default=5, help='classes to show per image')
    parser.add_argument('--json', action='store_true', help='print JSON lines instead')
    parser.add_argument('--gpus', default='', help='GPU to use, e.g. "0"; empty: the CPU')
    return parser


def load_image(path, image_shape, mean, std, resize=0):
    """(C, H, W) float32 array as training's validation iterator makes it; UsageError if the
    file cannot be decoded."""
    channels, height, width = image_shape
    if not os.path.isfile(path):
        raise UsageError('%s: no such file' % path)
    # OpenCV's decoder, as mx.image.imread uses (grey or BGR turned RGB); imread itself
    # reports a corrupt file asynchronously, where it cannot be caught per file.
    with open(path, 'rb') as f:
        buf = np.frombuffer(f.read(), np.uint8)
    decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR) \
        if buf.size else None
    if decoded is None or decoded.size == 0:
        raise UsageError('%s: cannot decode the image' % path)
    if channels == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    img = mx.nd.array(decoded.reshape(decoded.shape[0], decoded.shape[1], channels),
                      dtype=np.uint8)
    short = min(img.shape[0], img.shape[1])
    target = resize or 0
    if short < max(height, width) and target < max(height, width):
        target = max(height, width)
    if target and target != short:
        img = mx.image.resize_short(img, target)
    img, _ = mx.image.center_crop(img, (width, height))
    array = img.asnumpy().astype(np.float32).reshape(height, width, channels)
    array = (array - mean) / std
    return array.transpose(2, 0, 1)


def predict(args, out=None, err=None):
    """Predict every image; returns the number of images that could not be read."""
    out, err = out or sys.stdout, err or sys.stderr
    if args.top_k <= 0:
        raise UsageError('--top-k %d: must be positive' % args.top_k)
    sym, arg_params, aux_params = inference.load_model(args.model, args.epoch)
    image_shape = inference.resolve_preprocess(args, inference.input_channels(arg_params))
    classes = inference.num_classes(sym, image_shape)
    names = None
    if args.synset:
        names = inference.default_synset(args.synset)
        if len(names) != classes:
            raise UsageError('--synset %s has %d names but the model has %d classes'
                             % (args.synset, len(names), classes))
    elif os.path.isfile(DEFAULT_SYNSET):
        names = inference.read_synset(DEFAULT_SYNSET)
        if len(names) != classes:
            names = None
    names = names or [str(i) for i in range(classes)]

    arrays, paths, failed = [], [], 0
    for path in args.images:
        try:
            arrays.append(load_image(path, image_shape, args.mean, args.std, args.resize))
            paths.append(path)
        except UsageError as error:
            print('%s: error: %s' % (os.path.basename(sys.argv[0]), error), file=err)
            failed += 1
    if not arrays:
        return failed
    ctx = contexts(parse_gpus(args.gpus))[0]
    mod = inference.bind_module(sym, arg_params, aux_params, (len(arrays),) + image_shape, ctx)
    mod.forward(mx.io.DataBatch([mx.nd.array(np.stack(arrays))]), is_train=False)
    probs = mod.get_outputs()[0].asnumpy()
    k = min(args.top_k, classes)
    for path, p in zip(paths, probs):
        top = np.argsort(-p, kind='stable')[:k]
        if args.json:
            print(json.dumps({'image': path, 'top': [
                {'class': int(c), 'label': names[c], 'probability': float(p[c])}
                for c in top]}), file=out)
        else:
            print('%s: %s' % (path, ', '.join('%s %.3f' % (names[c], p[c]) for c in top)),
                  file=out)
    return failed


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_tool(lambda: 2 if predict(args) else 0)


if __name__ == '__main__':
    sys.exit(main())
