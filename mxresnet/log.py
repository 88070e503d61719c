"""The JSON-lines training log (`PREFIX-log.jsonl`): one JSON object per line, appended and
flushed as training goes.

Records carry an `event`:
- `run`: a training run starts (`run`: its number in this log, 1, 2, ...; `begin_epoch`;
  `resumed`: whether it continues the previous run from a checkpoint);
- `batch`: progress within an epoch;
- `epoch`: an epoch's metrics (`epoch` counts from 1).
A fresh run into a log that has records starts a new run number, so two runs' epochs never
mix; a resumed run keeps the number of the run it continues.
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
            with open(self.path, 'a') as f:
                f.write(json.dumps(record, sort_keys=True) + '\n')

    def start_run(self, begin_epoch, resumed, **details):
        """Write the `run` record of a run starting at `begin_epoch`; returns (its number,
        the runs already in the log)."""
        earlier = runs(read_records(self.path)) if self.path and os.path.isfile(self.path) \
            else []
        number = len(earlier) if resumed and earlier else len(earlier) + 1
        self.write(event='run', run=number, begin_epoch=begin_epoch, resumed=resumed,
                   time=time.time(), **details)
        return number, earlier


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
