"""TensorBoard curves (`--tensorboard DIR`) through mxboard's SummaryWriter.

The Trainer hands `Curves.write` the same records it writes to the JSON log, so the two
never disagree:
- an `epoch` record gives `train/loss`, `train/top1`, `val/loss`, `val/top1` (and
  `train/topK`, `val/topK` with --top-k K; `val/ema_loss`, `val/ema_top1` with --model-ema),
  `lr` and `images_per_sec`, at step = the epoch number (from 1);
- a `batch` record gives `batch/train_loss`, `batch/train_top1` (and `batch/train_topK`),
  the running metrics of the epoch so far, at step = the update count after that batch,
  (epoch - 1) * batches per epoch + batch.
`--tensorboard-histograms N` adds `weights/NAME` and `grads/NAME` histograms every N epochs,
at step = the epoch number. A resumed run writes a new event file into the same folder at
the same steps, so its curves continue those of the run it resumes. First it removes from
the folder's event files the points after the checkpoint it resumes from (written by a run
killed before its next checkpoint), as the JSON log drops those records: each step is in
the files once, however often the run was stopped and resumed. (TensorBoard's default
loader, the Rust data server, would itself drop a curve's points from a step written again
onwards; its Python loader, EventAccumulator and --load_fast=false, can keep both points
where the new one is in a newer file.)

Nothing here imports mxboard until a writer is asked for. mxboard 0.1.0 imports only with
protobuf 3.20.3 or older, and defines protobuf messages under TensorBoard's names: one
process can write event files with it or read them with `tensorboard`, not both.
"""
import glob
import logging
import os
import struct
import time
import warnings

import numpy as np

from .errors import UsageError

INSTALL = 'pip install mxboard==0.1.0 "protobuf>=3.20.2,<=3.20.3" (or pip install -e ' \
    '".[tensorboard]")'
HISTOGRAM_BINS = 30


def summary_writer_class():
    """mxboard.SummaryWriter; UsageError, one line with the pip command, when mxboard is not
    installed or does not import (protobuf newer than 3.20.3)."""
    try:
        with warnings.catch_warnings():  # its generated protobuf code is deprecated
            warnings.simplefilter('ignore', DeprecationWarning)
            from mxboard import SummaryWriter
    except ImportError:
        raise UsageError('--tensorboard needs mxboard: %s' % INSTALL)
    except TypeError as err:  # "Descriptors cannot be created directly", or a name clash
        try:
            from google.protobuf import __version__ as protobuf
        except ImportError:
            protobuf = 'unknown'
        raise UsageError('--tensorboard: mxboard does not import beside protobuf %s (%s): %s'
                         % (protobuf, str(err).strip().splitlines()[0], INSTALL))
    return SummaryWriter


def check(logdir):
    """Before any work: UsageError unless mxboard imports and `logdir` can be written."""
    summary_writer_class()
    from .checkpoint import check_writable
    check_writable(os.path.join(logdir, ''), '--tensorboard')


def event_files(logdir):
    """The event files in `logdir` (not its subfolders), oldest first."""
    return sorted(path for path in glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))
                  if '.tmp-' not in os.path.basename(path))


def ours(tag):
    """Whether the Trainer writes `tag`."""
    return tag in ('lr', 'images_per_sec') or tag.startswith(
        ('batch/', 'train/', 'val/', 'weights/', 'grads/'))


def read_records(path):
    """[(raw bytes, payload)] of each whole record of a TFRecord file (a length, its CRC, the
    payload, its CRC); a record cut short by a kill, at the end, is left out."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise UsageError('--tensorboard: cannot read %s: %s' % (path, err.strerror or err))
    records, pos = [], 0
    while pos + 12 <= len(data):
        length, = struct.unpack('<Q', data[pos:pos + 8])
        end = pos + 12 + length + 4
        if end > len(data):
            break
        records.append((data[pos:end], data[pos + 12:end - 4]))
        pos = end
    return records


def drop_after(logdir, begin_epoch, begin_update):
    """Remove from the event files of `logdir` the points of our tags after a checkpoint at
    epoch `begin_epoch` (0-based, so epochs are after it from begin_epoch + 1) and update
    count `begin_update` (a batch point's step), rewriting each file that has any
    atomically; returns how many were removed."""
    summary_writer_class()  # mxboard's protobuf messages
    from google.protobuf.message import DecodeError
    from mxboard.proto import event_pb2
    from .checkpoint import atomic_write
    removed = 0
    for path in event_files(logdir):
        records = read_records(path)
        kept = []
        for raw, payload in records:
            try:
                event = event_pb2.Event.FromString(payload)
            except DecodeError:  # not ours to judge: kept
                kept.append(raw)
                continue
            values = event.summary.value if event.HasField('summary') else []
            if values and all(ours(v.tag) and event.step > (
                    begin_update if v.tag.startswith('batch/') else begin_epoch)
                    for v in values):
                continue
            kept.append(raw)
        if len(kept) < len(records):  # (a file that is only cut short stays as it is)
            removed += len(records) - len(kept)

            def write(tmp, kept=kept):
                with open(tmp, 'wb') as f:
                    f.writelines(kept)
            atomic_write(path, write)
    return removed


def tag(key, top_k):
    """The TensorBoard tag of a JSON record's key: train_loss -> train/loss,
    val_topk -> val/top5, val_ema_topk (--model-ema's average) -> val/ema_top5."""
    split, _, metric = key.partition('_')
    if metric.endswith('topk'):
        metric = metric[:-len('topk')] + 'top%d' % top_k
    return '%s/%s' % (split, metric)


class NoCurves(object):
    """What the Trainer writes to without --tensorboard (and on ranks other than 0)."""

    def write(self, record):
        pass

    def histograms(self, module, epoch):
        pass

    def close(self):
        pass


class Curves(object):
    """An open event file in `logdir`; `epoch_size`: batches per epoch (the update count
    of a batch record), `histogram_period`: histograms every N epochs (0: none)."""

    def __init__(self, logdir, epoch_size, top_k=0, histogram_period=0, resume_at=None):
        """`resume_at`: (epoch, batch) of the checkpoint a resumed run starts from."""
        self.logdir = logdir
        self.epoch_size = epoch_size
        self.top_k = top_k
        self.histogram_period = histogram_period
        if resume_at is not None:
            epoch, batch = resume_at
            removed = drop_after(logdir, epoch, epoch * epoch_size + batch)
            if removed:
                logging.info('TensorBoard: removed %d points after epoch %d batch %d (the '
                             'checkpoint this run resumes from) from the event files in %s',
                             removed, epoch, batch, logdir)
        elif event_files(logdir):
            logging.warning('--tensorboard %s already holds event files: this fresh run\'s '
                            'steps start again at 1, on the same curves (give each run its '
                            'own folder, or resume with --load-epoch)', logdir)
        # The suffix keeps two writers started within the same second from sharing a file
        # name (mxboard names files by the second and opens them with 'wb'), in start order.
        suffix = '.%06d.%d' % (int(time.time() % 1 * 1e6), os.getpid())
        self.writer = summary_writer_class()(logdir, flush_secs=30, filename_suffix=suffix,
                                             verbose=False)
        logging.info('TensorBoard: writing event files to %s (view them with tensorboard '
                     '--logdir %s)', logdir, logdir)

    def write(self, record):
        """The scalars of a JSON-log record (`epoch` records also flush the file)."""
        event = record.get('event')
        if event == 'batch':
            step = (record['epoch'] - 1) * self.epoch_size + record['batch']
            for key in sorted(record):
                if key.startswith('train_'):
                    self.writer.add_scalar('batch/' + key.replace('_topk', '_top%d'
                                                                  % self.top_k),
                                           record[key], global_step=step)
        elif event == 'epoch':
            step = record['epoch']
            for key in sorted(record):
                if key.startswith(('train_', 'val_')):
                    self.writer.add_scalar(tag(key, self.top_k), record[key], global_step=step)
            for key in ('lr', 'images_per_sec'):
                if key in record:
                    self.writer.add_scalar(key, record[key], global_step=step)
            self.writer.flush()
            self.writer.clear_scalar_dict()  # else mxboard keeps every scalar in memory

    def histograms(self, module, epoch):
        """Every `histogram_period` epochs (`epoch` from 1): histograms of the learned
        parameters and of their gradients in the epoch's last batch (summed over the devices
        and scaled as the optimizer scales them: the mean over the batch's images)."""
        if not self.histogram_period or epoch % self.histogram_period:
            return
        arg_params, _ = module.get_params()
        for name in sorted(arg_params):
            self.histogram('weights/' + name, arg_params[name].asnumpy(), epoch)
        group = module._exec_group  # pylint: disable=protected-access
        optimizer = module._optimizer  # pylint: disable=protected-access
        scale = optimizer.rescale_grad if optimizer is not None else 1.0
        names = [name for name in group.arg_names if name in group.param_names]
        for name, grads in sorted(zip(names, group.grad_arrays), key=lambda item: item[0]):
            grads = [g for g in grads if g is not None]
            if grads:  # fixed parameters (--freeze-stages) have none
                total = sum(g.asnumpy().astype(np.float64) for g in grads) * scale
                self.histogram('grads/' + name, total, epoch)
        self.writer.flush()

    def histogram(self, name, values, step):
        """HISTOGRAM_BINS equal bins from the least value to the greatest (TensorFlow 2's
        way; mxboard's default, TensorFlow 1's 1,500 exponential buckets, makes files 20
        times larger)."""
        if not np.all(np.isfinite(values)):
            logging.warning('TensorBoard: no histogram of %s at step %d: it holds values that '
                            'are not finite', name, step)
            return
        self.writer.add_histogram(name, values, global_step=step, bins=HISTOGRAM_BINS)

    def close(self):
        self.writer.close()


def open_curves(args, epoch_size, rank=0, begin_epoch=0, begin_batch=0):
    """The Trainer's curves for the flags: Curves on rank 0 with --tensorboard, else
    NoCurves; a run resumed (--load-epoch) after batch `begin_batch` of epoch `begin_epoch`
    first drops the points after that from the event files."""
    logdir = getattr(args, 'tensorboard', None)
    if not logdir or rank != 0:
        return NoCurves()
    resume_at = (begin_epoch, begin_batch) if args.load_epoch is not None else None
    return Curves(logdir, epoch_size, args.top_k, getattr(args, 'tensorboard_histograms', 0),
                  resume_at)
