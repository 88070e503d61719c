#!/usr/bin/env python3
"""MNIST-format idx files (MNIST, Fashion-MNIST, ...) to RecordIO.

    python tools/mnist2rec.py SOURCE PREFIX [--classes fashion-mnist] [--subset-per-class 1000,200]

SOURCE is a folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each gzipped or not; the
``train-images.idx3-ubyte`` spelling is accepted too). Writes ``PREFIX-train.rec/.idx``,
``PREFIX-<test-name>.rec/.idx`` and the class names (``--synset``, default
``PREFIX-synset.txt``). Images are stored as 1-channel lossless PNG by default; a record's id
and index key is the image's position in its source file.

``--subset-per-class TRAIN,TEST`` keeps a class-balanced random subset (fixed ``--seed``) of
each split: TRAIN images per class from the training file, TEST per class from the test file
(so the two never overlap), stored in shuffled order. The bundled ``data/`` set is built so.
"""
import gzip
import os
import sys
import zlib

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from mxresnet import flags
from mxresnet.errors import UsageError, run_tool
from mxresnet.recordio import add_encoding_args, check_output, pack_arrays, write_synset

CLASS_NAMES = {
    'mnist': [str(i) for i in range(10)],
    'fashion-mnist': ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                      'Sneaker', 'Bag', 'Ankle boot'],
}

SPLIT_FILES = {'train': 'train', 'test': 't10k'}


def read_idx(path):
    """The array stored in an idx file (gzipped or not), with its header checked."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
        if raw[:2] == b'\x1f\x8b':
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise UsageError('cannot read %s: %s' % (path, err))
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UsageError('%s is not an idx file (bad magic number)' % path)
    if raw[2] != 0x08:
        raise UsageError('%s holds data type 0x%02x, only unsigned bytes (0x08) are supported'
                        % (path, raw[2]))
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise UsageError('%s has a truncated header' % path)
    dims = tuple(int(x) for x in np.frombuffer(raw, dtype='>u4', count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise UsageError('%s: header says %s bytes of data (shape %s) but the file holds %d'
                        % (path, expected - header, 'x'.join(map(str, dims)),
                           len(raw) - header))
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def find_split(source, split):
    """``(images_path, labels_path)`` of a split in ``source``."""
    stem = SPLIT_FILES[split]
    found = []
    for kind, dims in (('images', 3), ('labels', 1)):
        names = ['%s-%s-idx%d-ubyte' % (stem, kind, dims), '%s-%s.idx%d-ubyte' % (stem, kind, dims)]
        candidates = [os.path.join(source, n + gz) for n in names for gz in ('.gz', '')]
        path = next((p for p in candidates if os.path.isfile(p)), None)
        if path is None:
            raise UsageError('no %s file in %s (looked for %s)'
                            % (kind, source, ', '.join(os.path.basename(p) for p in candidates)))
        found.append(path)
    return tuple(found)


def load_split(source, split, num_classes):
    images_path, labels_path = find_split(source, split)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise UsageError('%s holds a %d-d array, expected N x rows x cols images'
                        % (images_path, images.ndim))
    if labels.ndim != 1:
        raise UsageError('%s holds a %d-d array, expected a 1-d label vector'
                        % (labels_path, labels.ndim))
    if len(images) != len(labels):
        raise UsageError('%s has %d images but %s has %d labels'
                        % (images_path, len(images), labels_path, len(labels)))
    if len(labels) and labels.max() >= num_classes:
        raise UsageError('%s has label %d, more than the %d class names'
                        % (labels_path, labels.max(), num_classes))
    return images, labels, images_path


def balanced_subset(labels, per_class, seed, num_classes, what):
    """Positions of ``per_class`` random images of every class, in a shuffled order."""
    rng = np.random.RandomState(seed)
    picked = []
    for c in range(num_classes):
        pool = np.flatnonzero(labels == c)
        if len(pool) < per_class:
            raise UsageError('%s has only %d images of class %d, %d asked'
                            % (what, len(pool), c, per_class))
        picked.append(np.sort(rng.choice(pool, per_class, replace=False)))
    order = np.concatenate(picked)
    rng.shuffle(order)
    return order


def build_parser():
    parser = flags.parser('Convert MNIST-format idx files (MNIST, Fashion-MNIST) to RecordIO.',
                          prog='mnist2rec')
    parser.add_argument('source', help='folder with the train-*/t10k-* idx files (.gz or not)')
    parser.add_argument('prefix', help='output prefix: writes PREFIX-train.rec/.idx and '
                                       'PREFIX-<test-name>.rec/.idx')
    parser.add_argument('--classes', choices=sorted(CLASS_NAMES), default='mnist',
                        help='class names written to the synset file')
    parser.add_argument('--synset', default=None,
                        help='where to write the class names (default PREFIX-synset.txt)')
    parser.add_argument('--test-name', default='test',
                        help='name of the output made from the t10k files (e.g. val)')
    parser.add_argument('--subset-per-class', default=None, metavar='TRAIN,TEST',
                        help='keep a class-balanced random subset: TRAIN images per class from '
                             'the train files, TEST per class from the t10k files')
    parser.add_argument('--seed', type=int, default=0, help='seed of the subset selection')
    add_encoding_args(parser)
    return parser


def run(argv=None):
    args = build_parser().parse_args(argv)
    if not os.path.isdir(args.source):
        raise UsageError('source %s is not a folder' % args.source)
    check_output(args)
    subset = None
    if args.subset_per_class:
        subset = flags.int_list(args.subset_per_class, '--subset-per-class')
        if len(subset) != 2:
            raise UsageError('--subset-per-class %r: expected TRAIN,TEST, two numbers'
                             % args.subset_per_class)
    names = CLASS_NAMES[args.classes]
    # Read and check both splits before writing anything.
    splits = [(split, load_split(args.source, split, len(names))) for split in ('train', 'test')]
    for k, (split, (images, labels, images_path)) in enumerate(splits):
        if subset:
            order = balanced_subset(labels, subset[k], args.seed + k, len(names), images_path)
        else:
            order = np.arange(len(labels))
        base = '%s-%s' % (args.prefix, 'train' if split == 'train' else args.test_name)
        count = pack_arrays(base, images[order], labels[order], ids=order,
                            encoding=args.encoding, quality=args.quality,
                            num_workers=args.num_thread)
        print('wrote %s.rec and %s.idx: %d images from %s' % (base, base, count, images_path))
    write_synset(args.synset or args.prefix + '-synset.txt', names)
    return 0


def main(argv=None):
    return run_tool(lambda: run(argv), prog='mnist2rec')


if __name__ == '__main__':
    sys.exit(main())
