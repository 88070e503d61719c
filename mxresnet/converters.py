"""Readers of the datasets that tools/cifar2rec.py and tools/mnist2rec.py convert to RecordIO,
and the conversions (what each reads and writes: the tools' docstrings).

CIFAR's pickles are read with an unpickler that only builds plain containers and numpy
arrays, so a tampered file cannot run code.
"""
import gzip
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from . import flags
from .errors import UsageError
from .recordio import check_output, pack_arrays, write_synset


# -- CIFAR-10/100, the python-pickle release -------------------------------------------------
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


def convert_cifar(args):
    """tools/cifar2rec.py: both splits of a CIFAR release to .rec/.idx, and the class
    names."""
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


# -- MNIST-format idx files ------------------------------------------------------------------
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


def convert_mnist(args):
    """tools/mnist2rec.py: both splits of MNIST-format idx files to .rec/.idx, and the class
    names."""
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
