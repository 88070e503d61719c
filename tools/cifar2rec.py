#!/usr/bin/env python3
"""CIFAR-10 / CIFAR-100 (the official python-pickle release) to RecordIO.

    python tools/cifar2rec.py SOURCE PREFIX [--labels fine|coarse]

SOURCE is the extracted folder (``cifar-10-batches-py/`` or ``cifar-100-python/``) or the
downloaded ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``; which dataset it is comes
from the files inside. Writes ``PREFIX-train.rec/.idx``, ``PREFIX-test.rec/.idx`` and the class
names (``--synset``, default ``PREFIX-synset.txt``). Images are stored as lossless PNG by
default (JPEG at 32x32 visibly costs accuracy); ``ImageRecordIter`` decodes them to the
original RGB values. A record's id and index key is the image's position in its split.

The pickles are read with an unpickler that only builds plain containers and numpy arrays,
so a tampered file cannot run code.
"""
import io
import os
import pickle
import sys
import tarfile

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from mxresnet import flags
from mxresnet.errors import UsageError, run_tool
from mxresnet.recordio import add_encoding_args, check_output, pack_arrays, write_synset

LAYOUTS = {
    # dataset: (train files, test files, meta file, names key per label kind)
    'cifar-10': (['data_batch_%d' % i for i in range(1, 6)], ['test_batch'], 'batches.meta',
                 {'fine': (b'labels', b'label_names')}),
    'cifar-100': (['train'], ['test'], 'meta',
                  {'fine': (b'fine_labels', b'fine_label_names'),
                   'coarse': (b'coarse_labels', b'coarse_label_names')}),
}

_ALLOWED_GLOBALS = {
    ('numpy.core.multiarray', '_reconstruct'), ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', 'scalar'), ('_codecs', 'encode'),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super(_SafeUnpickler, self).find_class(module, name)
        raise pickle.UnpicklingError('unexpected object %s.%s' % (module, name))


def load_pickle(data, where):
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding='bytes').load()
    except Exception as err:  # truncated or garbled pickles raise many different types
        raise UsageError('%s is not a readable CIFAR pickle (%s: %s)'
                        % (where, type(err).__name__, err))
    if not isinstance(obj, dict):
        raise UsageError('%s holds a %s, expected a CIFAR dict' % (where, type(obj).__name__))
    # Python 2 pickles have bytes keys; accept str keys as well.
    return {(k.encode() if isinstance(k, str) else k): v for k, v in obj.items()}


class Source(object):
    """The files of a CIFAR release, from a folder or a .tar.gz, by base name."""

    def __init__(self, path):
        self.path = path
        self._files = {}
        if os.path.isdir(path):
            for dirpath, _, files in os.walk(path):
                for f in files:
                    self._files.setdefault(f, os.path.join(dirpath, f))
            self._tar = None
        elif os.path.isfile(path):
            try:
                self._tar = tarfile.open(path, 'r:*')
                for member in self._tar.getmembers():
                    if member.isfile():
                        self._files.setdefault(os.path.basename(member.name), member)
            except (tarfile.TarError, OSError, EOFError) as err:
                raise UsageError('cannot read archive %s: %s' % (path, err))
        else:
            raise UsageError('source %s does not exist' % path)

    def dataset(self):
        for name, (train, test, meta, _) in sorted(LAYOUTS.items()):
            if all(f in self._files for f in train + test + [meta]):
                return name
        raise UsageError('%s is not a CIFAR-10 or CIFAR-100 python release (expected '
                        'data_batch_1..5, test_batch, batches.meta or train, test, meta)'
                        % self.path)

    def where(self, name):
        entry = self._files[name]
        return entry if isinstance(entry, str) else '%s:%s' % (self.path, entry.name)

    def read(self, name):
        entry = self._files[name]
        try:
            if isinstance(entry, str):
                with open(entry, 'rb') as f:
                    return f.read()
            return self._tar.extractfile(entry).read()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise UsageError('cannot read %s: %s' % (self.where(name), err))


def load_batches(source, files, label_key):
    """``(images N x 32 x 32 x 3 RGB, labels)`` of the named batch files, concatenated."""
    images, labels = [], []
    for name in files:
        where = source.where(name)
        batch = load_pickle(source.read(name), where)
        if b'data' not in batch or label_key not in batch:
            raise UsageError('%s has no %r or %r entry' % (where, 'data', label_key.decode()))
        data = np.asarray(batch[b'data'])
        lab = np.asarray(batch[label_key])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise UsageError('%s: data is %s %s, expected uint8 N x 3072'
                            % (where, data.dtype, 'x'.join(map(str, data.shape))))
        if lab.ndim != 1 or len(lab) != len(data):
            raise UsageError('%s has %d images but %d labels' % (where, len(data), lab.size))
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def build_parser():
    parser = flags.parser('Convert CIFAR-10/100 (python pickle release, folder or .tar.gz) to '
                          'RecordIO.', prog='cifar2rec')
    parser.add_argument('source', help='cifar-10-batches-py/ or cifar-100-python/ folder, or '
                                       'the .tar.gz')
    parser.add_argument('prefix', help='output prefix: writes PREFIX-train.rec/.idx and '
                                       'PREFIX-test.rec/.idx')
    parser.add_argument('--labels', choices=['fine', 'coarse'], default='fine',
                        help='CIFAR-100 label set (100 fine or 20 coarse classes)')
    parser.add_argument('--synset', default=None,
                        help='where to write the class names (default PREFIX-synset.txt)')
    add_encoding_args(parser)
    return parser


def run(argv=None):
    args = build_parser().parse_args(argv)
    check_output(args)
    source = Source(args.source)
    dataset = source.dataset()
    train_files, test_files, meta_file, kinds = LAYOUTS[dataset]
    if args.labels not in kinds:
        raise UsageError('%s has no %s labels' % (dataset, args.labels))
    label_key, names_key = kinds[args.labels]
    meta = load_pickle(source.read(meta_file), source.where(meta_file))
    if names_key not in meta:
        raise UsageError('%s has no %r entry' % (source.where(meta_file), names_key.decode()))
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    # Read and check both splits before writing anything.
    splits = [('train', load_batches(source, train_files, label_key)),
              ('test', load_batches(source, test_files, label_key))]
    for split, (images, labels) in splits:
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise UsageError('%s %s labels run from %d to %d but there are %d class names'
                            % (dataset, split, labels.min(), labels.max(), len(names)))
    print('%s (%s labels, %d classes) from %s' % (dataset, args.labels, len(names), args.source))
    for split, (images, labels) in splits:
        base = '%s-%s' % (args.prefix, split)
        bgr = np.ascontiguousarray(images[..., ::-1])  # OpenCV encodes BGR; ImageRecordIter decodes back to RGB
        count = pack_arrays(base, bgr, labels, encoding=args.encoding, quality=args.quality,
                            num_workers=args.num_thread)
        print('wrote %s.rec and %s.idx: %d images' % (base, base, count))
    write_synset(args.synset or args.prefix + '-synset.txt', names)
    return 0


def main(argv=None):
    return run_tool(lambda: run(argv), prog='cifar2rec')


if __name__ == '__main__':
    sys.exit(main())
