"""Inference on a checkpoint as training fed it: the validation iterator, images read from
files the same way, binding, forward passes without the last batch's padding, and the
scores tools/score.py reports.

The preprocessing (input shape, mean, std) comes from the checkpoint's metadata
(`checkpoint.load_model`), so nothing here guesses it.
"""
import os
import time

import mxnet as mx
import numpy as np

from . import flags
from .checkpoint import atomic_write
from .data import check_dataset, record_iter
from .errors import UsageError
from .images import ImageError, preprocess
from .recordio import default_idx
from .runtime import environment


def val_iter(path, meta, batch_size, idx_path='', threads=2, flag='--data-val',
             sample=1000):
    """A fresh, unshuffled, unaugmented ImageRecordIter over `path`, resized and normalised
    as the metadata `meta` says (one per pass: after a reset its round-robin padding shifts
    the data), after `data.check_dataset` with `sample` images."""
    idx = default_idx(path, idx_path)
    shape = tuple(meta['image_shape'])
    check_dataset(path, idx, shape, flag, sample, meta.get('resize') or 0, batch_size)
    return record_iter(path, idx, shape, meta['mean'], meta['std'], batch_size, threads,
                       resize=meta.get('resize') or 0)


def load_image(path, meta, resize=0):
    """(C, H, W) float32 array of an image file as the validation iterator makes it
    (`images.preprocess` with the metadata's input shape, mean and std; `resize` defaults to
    the metadata's). UsageError naming the file if it cannot be used."""
    if not os.path.isfile(path):
        raise UsageError('%s: no such file' % path)
    # Read and decoded here rather than by mx.image.imread, which reports a corrupt file
    # asynchronously, where it cannot be caught per file.
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return preprocess(data, meta['image_shape'], meta['mean'], meta['std'],
                          resize or meta.get('resize') or 0)
    except ImageError as error:
        raise UsageError('%s: cannot decode the image: %s' % (path, error))


def bind_module(sym, arg_params, aux_params, data_shape, ctx=None, backend=None,
                dtype='float32'):
    """An inference Module over `sym` with the given parameters; `backend` sets
    MXNET_SUBGRAPH_BACKEND for the bind (None: MXNet's default; MXNet 1.9.1's CPU build
    applies the MKLDNN subgraph backend to every inference bind unless it is NONE)."""
    mod = mx.mod.Module(sym, data_names=('data',), label_names=None,
                        context=ctx or mx.cpu())
    with environment(**({'MXNET_SUBGRAPH_BACKEND': backend} if backend else {})):
        mod.bind([mx.io.DataDesc('data', data_shape, dtype)], for_training=False)
    mod.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
    return mod


def predict_iter(mod, data_iter, flip=False):
    """(probabilities, labels) over a whole iterator, without the last batch's padding;
    `flip`: the mean of the probabilities of each image and of its horizontal mirror."""
    probs, labels = [], []
    for batch in data_iter:
        mod.forward(batch, is_train=False)
        keep = batch.data[0].shape[0] - (batch.pad or 0)
        prob = mod.get_outputs()[0].asnumpy()[:keep]
        if flip:
            mod.forward(mx.io.DataBatch([mx.nd.flip(batch.data[0], axis=3)]), is_train=False)
            prob = (prob + mod.get_outputs()[0].asnumpy()[:keep]) / 2
        probs.append(prob)
        labels.append(batch.label[0].asnumpy()[:keep])
    return np.concatenate(probs), np.concatenate(labels).astype(np.int64)


def class_names(model, synset=None):
    """The class names: from the `synset` file if given, else the checkpoint's, else the
    class numbers."""
    classes = model.metadata['num_classes']
    if synset:
        names = flags.read_synset(synset)
        if len(names) != classes:
            raise UsageError('--synset %s has %d names but the model has %d classes'
                             % (synset, len(names), classes))
        return names
    return model.metadata.get('synset') or [str(i) for i in range(classes)]


# -- scores -------------------------------------------------------------------------------
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
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format='png'))
    finally:
        plt.close(fig)


def print_scores(result, out):
    """The table tools/score.py prints."""
    print('images: %d  top-1: %.2f%%  top-%d: %.2f%%  images/s: %.1f' % (
        result['images'], 100 * result['top1'], result['k'], 100 * result['topk'],
        result['images_per_sec']), file=out)
    width = max(len(n) for n in result['names'])
    print('%-*s  %6s  %8s' % (width, 'class', 'images', 'accuracy'), file=out)
    for name, count, acc in zip(result['names'], result['counts'], result['per_class']):
        print('%-*s  %6d  %8s' % (width, name, count,
                                  '-' if count == 0 else '%.2f%%' % (100 * acc)), file=out)
    print('confusion matrix: %s' % result['confusion_png'], file=out)




def score(model, path, batch_size=64, top_k=5, flip=False, ctx=None, idx_path='', threads=2,
          synset=None):
    """Scores of a checkpoint (`checkpoint.load_model`) on the .rec `path`: the dict of
    `metrics` with `images_per_sec` (decoding and forward passes) and the class `names`."""
    if batch_size <= 0:
        raise UsageError('--batch-size %d: must be positive' % batch_size)
    if not os.path.isfile(path):
        raise UsageError('--data-val %s: no such file' % path)
    classes = model.metadata['num_classes']
    names = class_names(model, synset)
    data = val_iter(path, model.metadata, batch_size, idx_path, threads)
    mod = bind_module(model.symbol, model.arg_params, model.aux_params,
                      (batch_size,) + tuple(model.metadata['image_shape']), ctx)
    start = time.perf_counter()
    probs, labels = predict_iter(mod, data, flip=flip)
    seconds = time.perf_counter() - start
    if labels.max() >= classes or labels.min() < 0:
        raise UsageError('%s has labels from %d to %d but the model has %d classes (0 to %d)'
                         % (path, labels.min(), labels.max(), classes, classes - 1))
    result = metrics(probs, labels, top_k)
    result['images_per_sec'] = result['images'] / seconds
    result['names'] = names
    return result


def predict_files(model, paths, top_k=5, resize=0, ctx=None):
    """([[(class, probability)] top_k of each image, or the UsageError that it cannot be
    read], the number of images that could not be read), in the order of `paths`."""
    arrays, results = [], []
    for path in paths:
        try:
            arrays.append(load_image(path, model.metadata, resize))
            results.append(None)
        except UsageError as error:
            results.append(error)
    if arrays:
        shape = (len(arrays),) + tuple(model.metadata['image_shape'])
        mod = bind_module(model.symbol, model.arg_params, model.aux_params, shape, ctx)
        mod.forward(mx.io.DataBatch([mx.nd.array(np.stack(arrays))]), is_train=False)
        probs = iter(mod.get_outputs()[0].asnumpy())
        k = min(top_k, model.metadata['num_classes'])
        for i, result in enumerate(results):
            if result is None:
                p = next(probs)
                results[i] = [(int(c), float(p[c])) for c in np.argsort(-p, kind='stable')[:k]]
    return results, len(paths) - len(arrays)
