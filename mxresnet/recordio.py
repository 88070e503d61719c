"""RecordIO: checking a .rec before training reads it, and writing .rec/.idx pairs (the
dataset tools' encoding, ordered parallel map and progress display).

A `.rec` is MXNet's RecordIO file of `MXImageRecord`s (header, label, encoded image); its
`.idx` lists `key<TAB>byte offset` per record.
"""
import concurrent.futures
import os
import struct
import sys
import time
from collections import deque

import numpy as np

from .errors import UsageError
from .images import decode_image


def warn(message):
    sys.stderr.write('warning: %s\n' % message)
    sys.stderr.flush()


# ----------------------------------------------------------------------------- checking

RECORD_MAGIC = 0xced7230a
_HEADER = struct.Struct('<II')


def _read_header(f, offset, path, size):
    if offset + _HEADER.size > size:
        raise UsageError('%s is truncated: a record starts at byte %d but the file ends at %d'
                         % (path, offset, size))
    f.seek(offset)
    magic, lrec = _HEADER.unpack(f.read(_HEADER.size))
    if magic != RECORD_MAGIC:
        raise UsageError('%s is not a RecordIO file: no record magic at byte %d' % (path, offset))
    length = lrec & ((1 << 29) - 1)
    end = offset + _HEADER.size + length
    if end > size:
        raise UsageError('%s is truncated: the record at byte %d needs %d bytes but the file '
                         'ends at %d' % (path, offset, end, size))
    return lrec >> 29, end + (-length % 4)


def _read_index(idx_path):
    offsets = []
    with open(idx_path) as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                offsets.append(int(parts[1]))
            except (IndexError, ValueError):
                raise UsageError('%s line %d is not "key<TAB>offset": %r'
                                 % (idx_path, line_no, line.strip()))
    return offsets


def _walk(f, path, size):
    """Byte offsets of the records of an open .rec (the first part of each)."""
    offsets, offset = [], 0
    while offset < size:
        start = offset
        cflag, offset = _read_header(f, offset, path, size)
        if cflag in (0, 1):
            offsets.append(start)
    return offsets


def record_offsets(path, idx_path=None, flag='--data-train'):
    """Byte offsets of the records a reader of the .rec sees, checked; UsageError if unusable.

    The record headers are walked (a seek per record, no decoding): the file must not be
    truncated. With an .idx, its offsets must be exactly the records' (an index of another
    file, shifted, or listing only some records is refused, as ImageRecordIter would read
    what it lists and nothing else).
    """
    if not os.path.isfile(path):
        raise UsageError('%s %s: no such file' % (flag, path))
    size = os.path.getsize(path)
    if size == 0:
        raise UsageError('%s %s: the file is empty' % (flag, path))
    with open(path, 'rb') as f:
        walked = _walk(f, path, size)
    if not (idx_path and os.path.isfile(idx_path)):
        return walked
    offsets = _read_index(idx_path)
    if not offsets:
        raise UsageError('%s: the index is empty' % idx_path)
    fix = 'rebuild it, or remove it to read the .rec without one'
    starts = set(walked)
    wrong = [o for o in offsets if o not in starts]
    if wrong:
        raise UsageError('%s is not the index of %s: %d of its %d offsets (the first: byte %d) '
                         'are not where a record starts (%s)'
                         % (idx_path, path, len(wrong), len(offsets), wrong[0], fix))
    if len(set(offsets)) != len(offsets):
        raise UsageError('%s lists a record of %s more than once (%s)' % (idx_path, path, fix))
    if len(offsets) != len(walked):
        raise UsageError('%s lists %d of the %d records of %s: training would read only those '
                         '(%s)' % (idx_path, len(offsets), len(walked), path, fix))
    return offsets


def count_records(path, idx_path=None, flag='--data-train'):
    """Number of records in a .rec file (`record_offsets`' checks)."""
    return len(record_offsets(path, idx_path, flag))


_IR_HEADER = struct.Struct('<IfQQ')   # MXNet's IRHeader: flag, label, id, id2


def read_record(f, offset):
    """(record id, image bytes) of the single-part record at `offset` of an open .rec."""
    f.seek(offset)
    _, lrec = _HEADER.unpack(f.read(_HEADER.size))
    payload = f.read(lrec & ((1 << 29) - 1))
    label_count, _, record_id, _ = _IR_HEADER.unpack(payload[:_IR_HEADER.size])
    return record_id, payload[_IR_HEADER.size + 4 * label_count:]


def check_images(path, offsets, limit=0):
    """Decode `limit` records of a .rec spread evenly over `offsets` (0: all of them); returns
    (number decoded, [(record id, why)] of those that cannot be used, [(height, width)] of
    the others)."""
    if limit and limit < len(offsets):
        step = len(offsets) / float(limit)
        offsets = [offsets[int(i * step)] for i in range(limit)]
    bad, sizes = [], []
    with open(path, 'rb') as f:
        for offset in offsets:
            record_id, data = read_record(f, offset)
            decoded, why = decode_image(data)
            if decoded is None:
                bad.append((record_id, why))
            else:
                sizes.append(decoded.shape[:2])
    return len(offsets), bad, sizes


def default_idx(rec_path, idx_path):
    """The given .idx, or the one beside the .rec if it exists, else ''."""
    if idx_path:
        if not os.path.isfile(idx_path):
            raise UsageError('index %s: no such file' % idx_path)
        return idx_path
    candidate = os.path.splitext(rec_path)[0] + '.idx'
    return candidate if os.path.isfile(candidate) else ''


# ----------------------------------------------------------------------------- encoding

ENCODINGS = ('.jpg', '.png')


def add_encoding_args(parser):
    """The flags of the converters that write images: --encoding, --quality, --num-thread."""
    parser.add_argument('--encoding', choices=list(ENCODINGS), default='.png',
                        help='image encoding (.png is lossless)')
    parser.add_argument('--quality', type=int, default=9,
                        help='PNG compression 0-9, or JPEG quality 1-100')
    parser.add_argument('--num-thread', type=int, default=1, help='encoding threads')


def check_output(args):
    """UsageError unless --num-thread is positive and the folder of PREFIX exists and can
    be written."""
    from .checkpoint import check_writable
    out_dir = os.path.dirname(os.path.abspath(args.prefix))
    if not os.path.isdir(out_dir):
        raise UsageError('output folder %s does not exist' % out_dir)
    check_writable(args.prefix + '.rec', 'output')
    if args.num_thread < 1:
        raise UsageError('--num-thread must be at least 1, got %d' % args.num_thread)


def encode_params(encoding, quality):
    """OpenCV parameters for ``cv2.imencode``, as ``mx.recordio.pack_img`` builds them.

    For PNG, ``quality`` is the zlib compression level; values above 9 (the JPEG-style default
    95) are clamped to 9, as OpenCV itself does.
    """
    import cv2
    if encoding == '.jpg':
        return [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if encoding == '.png':
        return [cv2.IMWRITE_PNG_COMPRESSION, max(0, min(int(quality), 9))]
    raise UsageError('unknown encoding %r (use .jpg or .png)' % (encoding,))


def encode_image(img, encoding='.png', quality=9):
    """Encode an HxW or HxWxC uint8 array (BGR order, as OpenCV) to bytes."""
    import cv2
    ok, buf = cv2.imencode(encoding, img, encode_params(encoding, quality))
    if not ok:
        raise ValueError('OpenCV could not encode a %s image of shape %s'
                         % (encoding, getattr(img, 'shape', '?')))
    return buf.tobytes()


def pack_record(label, record_id, payload):
    """One ``MXImageRecord``: a float label (or a 1-D label array) and the encoded image.

    Byte-for-byte what ``mx.recordio.pack(IRHeader(0, label, record_id, 0), payload)`` writes.
    """
    import mxnet as mx
    if np.ndim(label) == 0:
        header = mx.recordio.IRHeader(0, float(label), int(record_id), 0)
    else:
        header = mx.recordio.IRHeader(0, np.asarray(label, dtype=np.float32).ravel(),
                                      int(record_id), 0)
    return mx.recordio.pack(header, payload)


# ----------------------------------------------------------------------------- writing

class RecordWriter(object):
    """Writes ``<base>.rec`` and ``<base>.idx`` through temporary files.

    The final names appear only when :meth:`close` succeeds, so an interrupted run never
    leaves a half-written pair that looks complete. Use as a context manager.
    """

    def __init__(self, base):
        import mxnet as mx
        self.rec_path = base + '.rec'
        self.idx_path = base + '.idx'
        directory = os.path.dirname(os.path.abspath(self.rec_path))
        if not os.path.isdir(directory):
            raise UsageError('output folder %s does not exist' % directory)
        from .checkpoint import check_writable
        check_writable(self.rec_path, 'output')
        self._tmp_rec = self.rec_path + '.part'
        self._tmp_idx = self.idx_path + '.part'
        self._record = mx.recordio.MXIndexedRecordIO(self._tmp_idx, self._tmp_rec, 'w')
        self.count = 0
        self._keys = set()

    def write(self, key, packed):
        key = int(key)
        if key in self._keys:
            raise UsageError('duplicate record index %d in %s' % (key, self.rec_path))
        self._keys.add(key)
        self._record.write_idx(key, packed)
        self.count += 1

    def close(self):
        self._record.close()
        os.replace(self._tmp_rec, self.rec_path)
        os.replace(self._tmp_idx, self.idx_path)

    def abort(self):
        self._record.close()
        for path in (self._tmp_rec, self._tmp_idx):
            if os.path.exists(path):
                os.remove(path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def write_names(path, names):
    """One name per line, line number = label (the ``synset.txt`` convention)."""
    with open(path, 'w') as f:
        for name in names:
            f.write('%s\n' % name)


def write_synset(path, names):
    """write_names, then say where the class names went (the converters' last step)."""
    write_names(path, names)
    print('class names written to %s' % path)


# ----------------------------------------------------------------------------- parallel map

def ordered_map(func, items, num_workers=1, window=None, processes=False):
    """``map(func, items)`` on ``num_workers`` threads or processes, results in input order.

    Threads: at most ``window`` items are in flight, so memory stays bounded; OpenCV's
    imdecode/imencode/resize release the GIL. Processes (``func`` and items must pickle;
    forked where the platform allows): immune to GIL hand-off stalls when the machine is busy.
    """
    if num_workers <= 1:
        for item in items:
            yield func(item)
        return
    if processes:
        import multiprocessing
        try:
            ctx = multiprocessing.get_context('fork')
        except ValueError:
            ctx = multiprocessing.get_context()
        with ctx.Pool(num_workers) as pool:
            for result in pool.imap(func, items, chunksize=4):
                yield result
        return
    window = window or 4 * num_workers
    pending = deque()
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_workers) as pool:
        try:
            for item in items:
                pending.append(pool.submit(func, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


# ----------------------------------------------------------------------------- progress

class Progress(object):
    """A one-line progress bar with images/s on stderr.

    On a terminal the line is redrawn in place (``\\r``) at most 5 times a second; otherwise
    (CI logs, pipes) a plain line is printed every 10 seconds. :meth:`close` prints the final
    count, time and rate.
    """

    def __init__(self, total, label='', stream=None, width=24):
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.count = 0
        self.skipped = 0
        self.start = time.time()
        self._last = self.start
        try:
            self._tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self._tty = False
        self._interval = 0.2 if self._tty else 10.0

    def rate(self):
        elapsed = time.time() - self.start
        return self.count / elapsed if elapsed > 0 else 0.0

    def _line(self):
        rate = self.rate()
        if self.total:
            done = self.count + self.skipped
            frac = min(1.0, float(done) / self.total)
            filled = int(round(frac * self.width))
            bar = '[%s%s]' % ('#' * filled, '.' * (self.width - filled))
            eta = (self.total - done) / rate if rate > 0 else 0.0
            text = '%s %s %d/%d %.1f img/s ETA %.0fs' % (self.label, bar, done,
                                                          self.total, rate, eta)
        else:
            text = '%s %d %.1f img/s' % (self.label, self.count, rate)
        if self.skipped:
            text += ' (%d skipped)' % self.skipped
        return text.strip()

    def update(self, n=1, skipped=0):
        """``n`` more images written, ``skipped`` more left out."""
        self.count += n
        self.skipped += skipped
        now = time.time()
        if now - self._last >= self._interval:
            self._last = now
            if self._tty:
                self.stream.write('\r' + self._line())
            else:
                self.stream.write(self._line() + '\n')
            self.stream.flush()

    def close(self):
        elapsed = time.time() - self.start
        end = '\r' if self._tty else ''
        self.stream.write('%s%s done: %d images in %.1fs (%.1f img/s)%s\n' % (
            end, self.label, self.count, elapsed, self.rate(),
            ', %d skipped' % self.skipped if self.skipped else ''))
        self.stream.flush()


def pack_arrays(base, images, labels, ids=None, encoding='.png', quality=9, num_workers=1,
                label=None):
    """Encode in-memory images (N x H x W, or N x H x W x C in BGR order) to ``base.rec/.idx``.

    Record ``i`` has label ``labels[i]`` and id/key ``ids[i]`` (default ``i``). Returns the
    number of records written.
    """
    import cv2  # noqa: F401  (imported before the clock starts)
    n = len(images)
    if len(labels) != n:
        raise ValueError('%d images but %d labels' % (n, len(labels)))
    ids = np.arange(n) if ids is None else np.asarray(ids)

    def encode(i):
        return pack_record(labels[i], ids[i], encode_image(images[i], encoding, quality))

    progress = Progress(n, label or os.path.basename(base))
    with RecordWriter(base) as writer:
        for i, packed in enumerate(ordered_map(encode, range(n), num_workers)):
            writer.write(ids[i], packed)
            progress.update(1)
        progress.close()
    return writer.count
