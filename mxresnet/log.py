"""The JSON-lines training log (`PREFIX-log.jsonl`): one JSON object per line, appended and
flushed as training goes.

Records carry an `event`:
- `run`: a training run starts (`run`: its number in this log, 1, 2, ...; `begin_epoch`;
  `resumed`: whether it continues the previous run from a checkpoint);
- `batch`: progress within an epoch;
- `epoch`: an epoch's metrics (`epoch` counts from 1).
A fresh run into a log that has records starts a new run number, so two runs' epochs never
mix; a resumed run keeps the number of the run it continues, and first drops the records
its run wrote after the checkpoint it resumes from (a kill between an epoch's record and its
checkpoint), so that the log holds each epoch once however often the run was stopped.
"""
import json
import os
import time

from .errors import UsageError


class JsonLog(object):
    """Appends records to `path` ('' or None: writes nothing)."""

    def __init__(self, path):
        self.path = path
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(self, **record):
        if self.path:
            try:
                with open(self.path, 'a') as f:
                    f.write(json.dumps(record, sort_keys=True) + '\n')
            except OSError as err:
                raise UsageError('cannot write the log %s: %s' % (self.path,
                                                                  err.strerror or err))

    def start_run(self, begin_epoch, resumed, begin_batch=0, **details):
        """Write the `run` record of a run starting after batch `begin_batch` of epoch
        `begin_epoch` (0-based); returns (its number, the runs already in the log)."""
        earlier = runs(read_records(self.path)) if self.path and os.path.isfile(self.path) \
            else []
        number = len(earlier) if resumed and earlier else len(earlier) + 1
        if resumed and earlier:
            kept = [r for r in earlier[-1] if not _after(r, begin_epoch, begin_batch)]
            if len(kept) < len(earlier[-1]):
                earlier[-1] = kept
                self._rewrite([r for run in earlier for r in run])
        self.write(event='run', run=number, begin_epoch=begin_epoch, begin_batch=begin_batch,
                   resumed=resumed, time=time.time(), **details)
        return number, earlier

    def _rewrite(self, records):
        from .checkpoint import atomic_write

        def write(tmp):
            with open(tmp, 'w') as f:
                f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in records)
        atomic_write(self.path, write)


def _after(record, begin_epoch, begin_batch):
    """Whether an epoch or batch record describes training after batch `begin_batch` of
    epoch `begin_epoch` (0-based; records count epochs from 1)."""
    if record.get('event') == 'epoch':
        return record['epoch'] > begin_epoch
    if record.get('event') == 'batch':
        return (record['epoch'], record['batch']) > (begin_epoch + 1, begin_batch)
    return False


def read_records(path):
    """Every record of a log, in order."""
    if not os.path.isfile(path):
        raise UsageError('%s: no such file' % path)
    records = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                raise UsageError('%s line %d is not JSON' % (path, line_no))
    return records


def runs(records):
    """The records split into runs: a list of lists, each starting at a fresh run's `run`
    record (resumed runs stay with the run they continue). Records before any `run` record
    (logs written before runs were marked) form the first run."""
    split = []
    for record in records:
        fresh = record.get('event') == 'run' and not record.get('resumed')
        if fresh or not split:
            split.append([])
        split[-1].append(record)
    return split


def read_epochs(path, run=-1):
    """The `epoch` records of one run of a log (default: the last), one per epoch in epoch
    order: where a resumed run repeats an epoch, its last record."""
    all_runs = runs(read_records(path))
    try:
        records = all_runs[run]
    except IndexError:
        records = []
    epochs = {r['epoch']: r for r in records if r.get('event') == 'epoch'}
    if not epochs:
        raise UsageError('%s has no epoch records%s (is it a train_resnet.py log?)'
                         % (path, '' if len(all_runs) < 2 else ' in run %s' % run))
    return [epochs[e] for e in sorted(epochs)]
