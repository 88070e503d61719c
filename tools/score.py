"""Accuracy of a checkpoint on a .rec: top-1, top-k, per-class accuracy, confusion matrix.

    python tools/score.py --model runs/resnet-20/model --epoch 4 \\
        --data-val data/fashion-mnist-val.rec --confusion confusion.png

The images go through `mx.io.ImageRecordIter` with the training run's mean and std (the
`--preset`/`--rgb-mean`/`--rgb-std`/`--image-shape` flags, with train_resnet's defaults), no
augmentation; the last batch's padding is dropped. Class names come from `--synset` or a
`synset.txt` beside the .rec. Images/s covers decoding and the forward pass (two passes
with `--flip 1`, which averages each image's probabilities with its mirror's).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import use_all_cores, use_naive_engine  # noqa: E402
use_all_cores()  # before MXNet loads

from common.cli import run_tool  # noqa: E402
from common import UsageError  # noqa: E402
from common import inference  # noqa: E402
from common.fit import contexts, parse_gpus  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    inference.add_model_args(parser)
    parser.add_argument('--data-val', required=True, help='the .rec file to score')
    parser.add_argument('--data-val-idx', default='', help='its .idx (default: beside it)')
    inference.add_preprocess_args(parser)
    parser.add_argument('--batch-size', type=int, default=64, help='images per forward pass')
    parser.add_argument('--top-k', type=int, default=5, help='also report top-k accuracy '
                        '(k is capped at the number of classes)')
    parser.add_argument('--flip', type=int, choices=(0, 1), default=0,
                        help='1: average the probabilities of each image and its mirror '
                             '(test-time augmentation for nets trained with random mirror)')
    parser.add_argument('--synset', help='class names, one per line (default: synset.txt '
                        'beside the .rec, if present)')
    parser.add_argument('--confusion', default=None,
                        help='confusion-matrix PNG (default: PREFIX-NNNN-confusion.png)')
    parser.add_argument('--json', default=None, help='also write the results as JSON here')
    parser.add_argument('--gpus', default='', help='GPU to use, e.g. "0"; empty: the CPU')
    parser.add_argument('--data-nthreads', type=int, default=2, help='decoding threads')
    return parser


def confusion_matrix(labels, predictions, classes):
    """matrix[true, predicted] = count."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def metrics(probs, labels, top_k):
    """Dict of top1, topk, k, per-class accuracy and counts, confusion matrix."""
    classes = probs.shape[1]
    k = max(1, min(top_k, classes))
    order = np.argsort(-probs, axis=1, kind='stable')
    predictions = order[:, 0]
    in_top_k = (order[:, :k] == labels[:, None]).any(axis=1)
    matrix = confusion_matrix(labels, predictions, classes)
    counts = matrix.sum(axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        per_class = np.where(counts > 0, np.diag(matrix) / np.maximum(counts, 1), np.nan)
    return {'images': int(len(labels)), 'top1': float((predictions == labels).mean()),
            'k': k, 'topk': float(in_top_k.mean()), 'per_class': per_class.tolist(),
            'counts': counts.tolist(), 'confusion': matrix.tolist()}


def plot_confusion(matrix, names, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    matrix = np.asarray(matrix)
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * n + 2), max(4, 0.6 * n + 1.5)))
    rows = matrix.sum(axis=1, keepdims=True)
    image = ax.imshow(matrix / np.maximum(rows, 1), cmap='Blues', vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label='fraction of the true class')
    if n <= 30:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(names, rotation=45, ha='right', fontsize=8)
        ax.set_yticklabels(names, fontsize=8)
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha='center', va='center', fontsize=7,
                            color='white' if matrix[i, j] > 0.5 * rows[i, 0] else 'black')
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def score(args):
    if args.batch_size <= 0:
        raise UsageError('--batch-size %d: must be positive' % args.batch_size)
    if not os.path.isfile(args.data_val):
        raise UsageError('--data-val %s: no such file' % args.data_val)
    sym, arg_params, aux_params = inference.load_model(args.model, args.epoch)
    image_shape = inference.resolve_preprocess(args, inference.input_channels(arg_params))
    classes = inference.num_classes(sym, image_shape)
    ctx = contexts(parse_gpus(args.gpus))[0]
    data = inference.val_iter(args, image_shape, args.data_val, args.data_val_idx)
    mod = inference.bind_module(sym, arg_params, aux_params,
                                (args.batch_size,) + image_shape, ctx)
    start = time.perf_counter()
    probs, labels = inference.predict_iter(mod, data, flip=bool(args.flip))
    seconds = time.perf_counter() - start
    if labels.max() >= classes or labels.min() < 0:
        raise UsageError('%s has labels up to %d but the model has %d classes'
                         % (args.data_val, labels.max(), classes))
    result = metrics(probs, labels, args.top_k)
    result['images_per_sec'] = result['images'] / seconds
    names = inference.default_synset(args.synset, args.data_val)
    if names is not None and len(names) != classes:
        raise UsageError('synset has %d names but the model has %d classes'
                         % (len(names), classes))
    result['names'] = names or [str(i) for i in range(classes)]
    confusion = args.confusion or '%s-%04d-confusion.png' % (args.model, args.epoch)
    plot_confusion(result['confusion'], result['names'], confusion,
                   '%s epoch %d: top-1 %.2f%%' % (os.path.basename(args.model), args.epoch,
                                                   100 * result['top1']))
    result['confusion_png'] = confusion
    return result


def report(result, out=None):
    out = out or sys.stdout
    print('images: %d  top-1: %.2f%%  top-%d: %.2f%%  images/s: %.1f' % (
        result['images'], 100 * result['top1'], result['k'], 100 * result['topk'],
        result['images_per_sec']), file=out)
    width = max(len(n) for n in result['names'])
    print('%-*s  %6s  %8s' % (width, 'class', 'images', 'accuracy'), file=out)
    for name, count, acc in zip(result['names'], result['counts'], result['per_class']):
        print('%-*s  %6d  %8s' % (width, name, count,
                                  '-' if count == 0 else '%.2f%%' % (100 * acc)), file=out)
    print('confusion matrix: %s' % result['confusion_png'], file=out)


def main(argv=None, own_process=False):
    """`own_process`: this process runs only this command, so MXNet's engine may be chosen
    for it (common.use_naive_engine)."""
    args = build_parser().parse_args(argv)
    if own_process:
        use_naive_engine(args.gpus)

    def body():
        result = score(args)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(result, f, indent=1)
        report(result)
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main(own_process=True))
