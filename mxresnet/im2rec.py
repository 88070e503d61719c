"""Image lists (`.lst`) from image folders, and RecordIO (`.rec` + `.idx`) from lists, as
tools/im2rec.py does them (its docstring lists the differences from MXNet's script).

Functions take the parsed flags of tools/im2rec.py.
"""
import os
import random

from . import flags
from .errors import UsageError
from .images import decode_image
from .recordio import (Progress, RecordWriter, encode_image, ordered_map, pack_record, warn,
                       write_names)

DEFAULT_SEED = 100  # the fixed seed of MXNet's im2rec.py, so default lists are identical


# ----------------------------------------------------------------------------- list mode

def _norm_exts(exts):
    out = []
    for ext in exts:
        ext = ext.strip().lower()
        if not ext:
            continue
        out.append(ext if ext.startswith('.') else '.' + ext)
    return tuple(out)


def list_images(root, recursive, exts, synset=None):
    """``(items, folders)``: items are ``(index, relpath, [label])`` in traversal order.

    Recursive: every folder holding images gets a label, in sorted depth-first order (as
    MXNet's im2rec), unless ``synset`` (a list of folder names) fixes the numbering.
    Flat: the images directly in ``root``, label 0.
    """
    items = []
    folders = []
    if recursive:
        fixed = {name: i for i, name in enumerate(synset)} if synset is not None else None
        labels = {}
        for path, dirs, files in os.walk(root, followlinks=True):
            dirs.sort()
            for fname in sorted(files):
                fpath = os.path.join(path, fname)
                if os.path.splitext(fname)[1].lower() not in exts or not os.path.isfile(fpath):
                    continue
                if path not in labels:
                    rel_dir = os.path.relpath(path, root)
                    if fixed is not None:
                        if rel_dir not in fixed:
                            raise UsageError('folder %r under %s is not in the --synset map'
                                            % (rel_dir, root))
                        labels[path] = fixed[rel_dir]
                    else:
                        labels[path] = len(labels)
                    folders.append(rel_dir)
                items.append((len(items), os.path.relpath(fpath, root), [float(labels[path])]))
        if fixed is not None:
            folders = list(synset)
    else:
        for fname in sorted(os.listdir(root)):
            fpath = os.path.join(root, fname)
            if os.path.splitext(fname)[1].lower() in exts and os.path.isfile(fpath):
                items.append((len(items), fname, [0.0]))
    return items, folders


def read_ground_truth(path):
    """``{image stem: synset}`` from a ground-truth file.

    Accepts ``filename synset`` lines (space, tab or comma separated; the filename with or
    without extension) and Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``,
    whose first token is the synset).
    """
    gt = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise UsageError('cannot read ground-truth file %s: %s' % (path, err.strerror))
    for lineno, line in enumerate(lines, 1):
        fields = line.replace(',', ' ').split()
        if not fields or (lineno == 1 and fields[0].lower() in ('imageid', 'filename', 'image')):
            continue
        if len(fields) < 2:
            raise UsageError('%s:%d: expected "filename synset", got %r' % (path, lineno, line))
        gt[os.path.splitext(os.path.basename(fields[0]))[0]] = fields[1]
    if not gt:
        raise UsageError('ground-truth file %s is empty' % path)
    return gt


def label_by_ground_truth(items, gt, synset, gt_path):
    index = {name: i for i, name in enumerate(synset)}
    out = []
    missing = []
    for i, rel, _ in items:
        stem = os.path.splitext(os.path.basename(rel))[0]
        if stem not in gt:
            missing.append(rel)
            continue
        if gt[stem] not in index:
            raise UsageError('%s gives class %r for %s, which is not in the synset map'
                            % (gt_path, gt[stem], rel))
        out.append((i, rel, [float(index[gt[stem]])]))
    if missing:
        raise UsageError('%d images have no entry in %s (first: %s)'
                        % (len(missing), gt_path, missing[0]))
    return out


def split_items(items, chunks, train_ratio, test_ratio):
    """``[(suffix, items)]`` as MXNet's im2rec names them, without dropping any image.

    Each chunk is split into test (first), train, then val (the rest); with no val part the
    train part takes everything after the test part.
    """
    n = len(items)
    chunk_size = (n + chunks - 1) // chunks
    parts = []
    for c in range(chunks):
        chunk = items[c * chunk_size:(c + 1) * chunk_size]
        tag = '_%d' % c if chunks > 1 else ''
        if train_ratio >= 1.0 and test_ratio <= 0:
            parts.append((tag, chunk))
            continue
        n_test = int(len(chunk) * test_ratio)
        has_val = train_ratio + test_ratio < 1.0 - 1e-9
        n_train = int(len(chunk) * train_ratio) if has_val else len(chunk) - n_test
        if test_ratio > 0:
            parts.append((tag + '_test', chunk[:n_test]))
        if has_val:
            parts.append((tag + '_val', chunk[n_test + n_train:]))
        parts.append((tag + '_train', chunk[n_test:n_test + n_train]))
    return parts


def write_list(path, items):
    with open(path, 'w') as f:
        for index, rel, labels in items:
            f.write('%d\t%s%s\n' % (index, ''.join('%f\t' % x for x in labels), rel))


def make_lists(args):
    if args.chunks < 1:
        raise UsageError('--chunks must be at least 1, got %d' % args.chunks)
    test_ratio = args.test_ratio
    train_ratio = args.train_ratio if args.train_ratio is not None else 1.0 - test_ratio
    for name, value in (('--train-ratio', train_ratio), ('--test-ratio', test_ratio)):
        if not 0.0 <= value <= 1.0:
            raise UsageError('%s must be between 0 and 1, got %g' % (name, value))
    if train_ratio + test_ratio > 1.0 + 1e-9:
        raise UsageError('--train-ratio %g plus --test-ratio %g is more than 1'
                        % (train_ratio, test_ratio))
    out_dir = os.path.dirname(args.prefix)
    if not os.path.isdir(out_dir):
        raise UsageError('output folder %s does not exist' % out_dir)
    exts = _norm_exts(args.exts)
    synset = flags.read_synset(args.synset) if args.synset else None
    if args.val_gt:
        if synset is None:
            raise UsageError('--val-gt needs --synset (the label map of the train folders)')
        if args.recursive:
            raise UsageError('--val-gt labels a flat folder; do not combine it with --recursive')
    items, folders = list_images(args.root, args.recursive, exts, synset)
    if not items:
        raise UsageError('no images with extension %s %s %s'
                        % ('/'.join(exts), 'under' if args.recursive else 'directly in',
                           args.root))
    if args.val_gt:
        items = label_by_ground_truth(items, read_ground_truth(args.val_gt), synset, args.val_gt)
    if args.shuffle:
        random.Random(args.seed).shuffle(items)
    if args.recursive:
        for label, folder in enumerate(folders):
            print(folder, label)
        synset_out = args.prefix + '_synset.txt'
        write_names(synset_out, folders)
        print('label map written to %s' % synset_out)
    for suffix, part in split_items(items, args.chunks, train_ratio, test_ratio):
        path = args.prefix + suffix + '.lst'
        write_list(path, part)
        print('%s: %d images' % (path, len(part)))


# ----------------------------------------------------------------------------- record mode

def read_list(path, class_labels=True):
    """``[(index, relpath, [labels])]`` from a ``.lst``; any malformed line is an error, and
    with `class_labels` (unless --pack-label) so is a label that is not a class number."""
    items = []
    seen = set()
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError('cannot read %s: %s' % (path, err))
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = [x.strip() for x in line.strip().split('\t')]
        if len(fields) < 3:
            raise UsageError('%s:%d: expected "index<TAB>label<TAB>path", got %r'
                            % (path, lineno, line))
        try:
            index = int(fields[0])
        except ValueError:
            raise UsageError('%s:%d: index %r is not an integer' % (path, lineno, fields[0]))
        try:
            labels = [float(x) for x in fields[1:-1]]
        except ValueError:
            raise UsageError('%s:%d: label in %r is not a number' % (path, lineno, line))
        if class_labels and not (labels[0] >= 0 and labels[0] == int(labels[0])):
            raise UsageError('%s:%d: label %s is not a class number (an integer from 0); '
                             'pass --pack-label to pack other labels as they are'
                             % (path, lineno, fields[1]))
        if not fields[-1]:
            raise UsageError('%s:%d: empty image path' % (path, lineno))
        if index in seen:
            raise UsageError('%s:%d: index %d appears twice' % (path, lineno, index))
        seen.add(index)
        items.append((index, fields[-1], labels))
    if not items:
        raise UsageError('%s is empty' % path)
    return items


def find_lists(prefix):
    """The ``.lst`` files MXNet's im2rec would pack for ``prefix``, sorted."""
    if os.path.isdir(prefix):
        working_dir, start = prefix, ''
    else:
        working_dir, start = os.path.dirname(prefix), os.path.basename(prefix)
    if not os.path.isdir(working_dir):
        raise UsageError('folder %s of prefix %s does not exist' % (working_dir, prefix))
    found = [os.path.join(working_dir, f) for f in sorted(os.listdir(working_dir))
             if f.startswith(start) and f.endswith('.lst')
             and os.path.isfile(os.path.join(working_dir, f))]
    if not found:
        raise UsageError('no .lst file matches prefix %s (looked for %s*.lst)'
                        % (prefix, os.path.join(working_dir, start)))
    return found


class ImageEncoder(object):
    """Turns one ``.lst`` item into a packed record, or ``(None, reason)`` to skip it."""

    def __init__(self, args):
        self.root = args.root
        self.color = args.color
        self.resize = args.resize
        self.center_crop = args.center_crop
        self.encoding = args.encoding
        self.quality = args.quality
        self.pass_through = args.pass_through
        self.pack_label = args.pack_label

    def __call__(self, item):
        import cv2
        index, rel, labels = item
        path = os.path.join(self.root, rel)
        label = labels if (self.pack_label and len(labels) > 1) else labels[0]
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as err:
            return None, 'cannot read %s: %s' % (path, err.strerror or err)
        try:
            # Stored as is with --pass-through, but only if it decodes whole: a truncated or
            # corrupt file would fail in training, or train as grey rows.
            img, why = decode_image(data, cv2.IMREAD_REDUCED_GRAYSCALE_8 if self.pass_through
                                    else self.color)
            if img is None:
                return None, 'cannot decode %s (%s)' % (path, 'empty file' if not data else why)
            if self.pass_through:
                return pack_record(label, index, data), None
            img = self.transform(img)
            return pack_record(label, index, encode_image(img, self.encoding, self.quality)), None
        except (cv2.error, ValueError) as err:
            return None, 'cannot pack %s: %s' % (path, str(err).strip().splitlines()[-1])

    def transform(self, img):
        """Center crop to a square, then shorter side to ``resize`` (MXNet's im2rec arithmetic)."""
        import cv2
        h, w = img.shape[:2]
        if self.center_crop:
            if h > w:
                m = (h - w) // 2
                img = img[m:m + w, :]
            else:
                m = (w - h) // 2
                img = img[:, m:m + h]
            h, w = img.shape[:2]
        if self.resize:
            if h > w:
                size = (self.resize, h * self.resize // w)
            else:
                size = (w * self.resize // h, self.resize)
            img = cv2.resize(img, size)
        return img


def pack_list(args, lst_path, items):
    import cv2  # noqa: F401  (imported before the clock starts)
    import mxnet  # noqa: F401
    base = os.path.splitext(lst_path)[0]
    encoder = ImageEncoder(args)
    progress = Progress(len(items), os.path.basename(lst_path))
    skipped = []
    with RecordWriter(base) as writer:
        for item, (packed, reason) in zip(items, ordered_map(encoder, items, args.num_thread,
                                                                processes=True)):
            if packed is None:
                warn('skipped: ' + reason)
                skipped.append(item[1])
                progress.update(0, skipped=1)
                continue
            writer.write(item[0], packed)
            progress.update(1)
        progress.close()
        if writer.count == 0:
            raise UsageError('no image of %s could be packed' % lst_path)
    if skipped:
        warn('%d of %d images in %s were skipped (see the warnings above)'
             % (len(skipped), len(items), lst_path))
    print('wrote %s and %s: %d records' % (writer.rec_path, writer.idx_path, writer.count))
    return writer.count, skipped


def make_records(args):
    if args.num_thread < 1:
        raise UsageError('--num-thread must be at least 1, got %d' % args.num_thread)
    if args.resize < 0:
        raise UsageError('--resize must not be negative, got %d' % args.resize)
    lists = [(path, read_list(path, not args.pack_label)) for path in find_lists(args.prefix)]
    for path, items in lists:
        print('Creating .rec file from %s in %s' % (path, os.path.dirname(path)))
        pack_list(args, path, items)


# ----------------------------------------------------------------------------- command line
