"""--tensorboard DIR: mxboard event files that TensorBoard's own reader reads back as the
JSON log's curves, at the same steps, also across a resume, Ctrl-C and errors.

The event files are read in another process (tests/tensorboard_events.py): mxboard 0.1.0
and tensorboard define the same protobuf messages and cannot both load in one process.
"""
import glob
import importlib.util
import json
import os
import signal
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT
import train_resnet
from mxresnet import fit, tensorboard
from mxresnet.errors import NonFinite, UsageError, run_tool

# The test extra installs both (setup.py); the tests of a missing mxboard run without them.
needs_tensorboard = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ('mxboard', 'tensorboard')),
    reason='mxboard or tensorboard is not installed: pip install -e ".[tensorboard]"')

EPOCH_SIZE = 4
# ResNet-8 on the bundled data: 4 batches of 64 per epoch, a progress record every batch.
SHORT = ['--num-layers', '8', '--num-examples', str(64 * EPOCH_SIZE), '--batch-size', '64',
         '--disp-batches', '1', '--data-nthreads', '1']
# The same without validation (given --data-train, no --data-val: none).
NO_VAL = SHORT + ['--preset', 'fashion-mnist', '--data-train',
                  os.path.join(ROOT, 'data', 'fashion-mnist-train.rec')]


def read_events(logdir):
    """{'scalars': {tag: [[step, value], ...]}, 'histograms': {tag: [[step, count], ...]}}
    as TensorBoard's EventAccumulator reads `logdir`."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'tensorboard_events.py'),
                          str(logdir)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def expected_scalars(records, top_k=0):
    """The curves the JSON log's records describe: {tag: [[step, value], ...]}; an epoch's
    step is its number, a progress record's the update count after its batch."""
    curves = {}
    for record in records:
        event = record['event']
        if event not in ('epoch', 'batch'):
            continue
        if event == 'batch':
            step = (record['epoch'] - 1) * EPOCH_SIZE + record['batch']
            values = {'batch/' + key: value for key, value in record.items()
                      if key.startswith('train_')}
        else:
            step = record['epoch']
            values = {key.replace('_', '/', 1): value for key, value in record.items()
                      if key.startswith(('train_', 'val_'))}
            values.update({key: record[key] for key in ('lr', 'images_per_sec')})
        for tag, value in values.items():
            tag = tag.replace('topk', 'top%d' % top_k)
            curves.setdefault(tag, {})[step] = value
    return {tag: sorted([step, value] for step, value in steps.items())
            for tag, steps in curves.items()}


def assert_same_curves(events, records, top_k=0):
    """Every scalar of the event files is one of the log's, at the same step and equal in
    float32 (the precision of an event's simple_value), and none is missing."""
    expected = expected_scalars(records, top_k)
    scalars = events['scalars']
    assert sorted(scalars) == sorted(expected)
    for tag, points in expected.items():
        assert [step for step, _ in scalars[tag]] == [step for step, _ in points], tag
        assert [np.float32(v) for _, v in scalars[tag]] == \
            [np.float32(v) for _, v in points], tag


@needs_tensorboard
def test_scalars_and_histograms_match_the_json_log(tmp_path):
    prefix, logdir = str(tmp_path / 'model'), tmp_path / 'tb'
    train_resnet.run(SHORT + ['--num-epochs', '2', '--top-k', '3', '--model-prefix', prefix,
                              '--tensorboard', str(logdir), '--tensorboard-histograms', '2'])
    records = read_log(prefix + '-log.jsonl')
    events = read_events(logdir)
    assert_same_curves(events, records, top_k=3)
    scalars = events['scalars']
    assert {'train/loss', 'train/top1', 'train/top3', 'val/loss', 'val/top1', 'val/top3',
            'lr', 'images_per_sec', 'batch/train_loss', 'batch/train_top1'} <= set(scalars)
    assert [step for step, _ in scalars['val/top1']] == [1, 2]
    assert [step for step, _ in scalars['batch/train_loss']] == list(range(1, 9))
    # every 2 epochs: epoch 2 only; one histogram of each parameter and of its gradient
    params = mx.nd.load(prefix + '-0002.params')
    weights = {name[4:]: arr.size for name, arr in params.items() if name.startswith('arg:')}
    histograms = events['histograms']
    assert sorted(histograms) == sorted(['weights/' + n for n in weights] +
                                        ['grads/' + n for n in weights])
    for name, size in weights.items():
        assert histograms['weights/' + name] == [[2, size]]
        assert histograms['grads/' + name] == [[2, size]]
    assert len(glob.glob(str(logdir / '*tfevents*'))) == 1


@needs_tensorboard
def test_a_resumed_run_continues_the_curves(tmp_path):
    prefix, logdir = str(tmp_path / 'model'), tmp_path / 'tb'
    argv = NO_VAL + ['--model-prefix', prefix, '--tensorboard', str(logdir)]
    train_resnet.run(argv + ['--num-epochs', '1'])
    train_resnet.run(argv + ['--num-epochs', '2', '--load-epoch', '1'])
    events = read_events(logdir)
    records = read_log(prefix + '-log.jsonl')
    assert_same_curves(events, records)
    assert [step for step, _ in events['scalars']['train/loss']] == [1, 2]
    assert [step for step, _ in events['scalars']['batch/train_loss']] == list(range(1, 9))
    assert events['histograms'] == {}  # none without --tensorboard-histograms
    assert len(glob.glob(str(logdir / '*tfevents*'))) == 2
    # Killed after epoch 2's record, before its checkpoint: the run resumed from checkpoint 1
    # first removes epoch 2 and batches 5-8 from the files, then writes them again: each step
    # once, with the new values (the speed differs).
    for path in glob.glob(prefix + '-0002.*'):
        os.remove(path)
    first = {tag: dict(points) for tag, points in events['scalars'].items()}
    train_resnet.run(argv + ['--num-epochs', '2', '--load-epoch', '1'])
    events = read_events(logdir)
    records = read_log(prefix + '-log.jsonl')
    assert_same_curves(events, records)
    speed = dict(events['scalars']['images_per_sec'])
    assert sorted(speed) == [1, 2]
    assert speed[1] == first['images_per_sec'][1] and speed[2] != first['images_per_sec'][2]
    assert len(glob.glob(str(logdir / '*tfevents*'))) == 3


@needs_tensorboard
def test_a_resume_removes_only_the_points_after_its_checkpoint(tmp_path):
    logdir = str(tmp_path / 'tb')
    curves = tensorboard.Curves(logdir, EPOCH_SIZE)
    for epoch in (1, 2):
        for batch in range(1, EPOCH_SIZE + 1):
            curves.write({'event': 'batch', 'epoch': epoch, 'batch': batch,
                          'train_loss': 1.0 / batch})
        curves.write({'event': 'epoch', 'epoch': epoch, 'train_loss': 0.5, 'lr': 0.1})
    curves.writer.add_scalar('other', 7.0, global_step=99)  # not the Trainer's: kept
    curves.close()
    path, = tensorboard.event_files(logdir)
    with open(path, 'ab') as f:
        f.write(b'\x30\x00\x00\x00')  # a record cut short by a kill
    # a checkpoint after batch 2 of epoch 2 (update 6): batches 7 and 8, epoch 2 go
    assert tensorboard.drop_after(logdir, 1, EPOCH_SIZE + 2) == 4
    scalars = read_events(logdir)['scalars']
    assert {tag: [step for step, _ in points] for tag, points in scalars.items()} == {
        'batch/train_loss': [1, 2, 3, 4, 5, 6], 'train/loss': [1], 'lr': [1], 'other': [99]}
    assert tensorboard.drop_after(logdir, 1, EPOCH_SIZE + 2) == 0


def interrupt_at_batch_2(monkeypatch):
    """Ctrl-C after the record of batch 2 of epoch 1: batch 3 finishes, then a checkpoint."""
    write = fit.Trainer.write_record

    def write_record(self, **record):
        write(self, **record)
        if record['event'] == 'batch' and (record['epoch'], record['batch']) == (1, 2):
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(fit.Trainer, 'write_record', write_record)
    return fit.Interrupted


def fail_at_batch_3(monkeypatch):
    """A parameter found non-finite at batch 3 of epoch 1."""
    calls = []

    def params_finite(module):
        calls.append(1)
        return len(calls) < 3
    monkeypatch.setattr(fit, 'params_finite', params_finite)
    return NonFinite


@needs_tensorboard
@pytest.mark.parametrize('stop', [interrupt_at_batch_2, fail_at_batch_3])
def test_the_event_file_is_complete_after_ctrl_c_and_errors(tmp_path, monkeypatch, stop):
    """Read in the same process right after the run stopped (no exit flushes anything):
    every record the log got is in the event file, which was closed."""
    prefix, logdir = str(tmp_path / 'model'), tmp_path / 'tb'
    argv = NO_VAL + ['--num-epochs', '1', '--model-prefix', prefix, '--tensorboard',
                     str(logdir)]
    with monkeypatch.context() as patch:
        with pytest.raises(stop(patch)):
            train_resnet.run(argv)
    records = read_log(prefix + '-log.jsonl')
    assert [r['batch'] for r in records if r['event'] == 'batch'] == [1, 2]
    events = read_events(logdir)
    assert_same_curves(events, records)
    assert sorted(events['scalars']) == ['batch/train_loss', 'batch/train_top1']
    if stop is interrupt_at_batch_2:
        # The mid-epoch checkpoint holds 3 batches: the resumed run's first progress record
        # is batch 4, update 4.
        train_resnet.run(argv + ['--load-epoch', '1'])
        events = read_events(logdir)
        assert_same_curves(events, read_log(prefix + '-log.jsonl'))
        assert [s for s, _ in events['scalars']['batch/train_loss']] == [1, 2, 4]
        assert [s for s, _ in events['scalars']['train/loss']] == [1]


def test_without_mxboard_it_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'mxboard', None)  # import mxboard raises ImportError
    argv = SHORT + ['--num-epochs', '1', '--model-prefix', str(tmp_path / 'run' / 'model'),
                    '--tensorboard', str(tmp_path / 'tb')]
    status = run_tool(lambda: train_resnet.run(argv), prog='train_resnet.py')
    assert status == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1
    assert err.startswith('train_resnet.py: error: --tensorboard needs mxboard: pip install '
                          'mxboard==0.1.0 "protobuf>=3.20.2,<=3.20.3"'), err
    assert os.listdir(tmp_path) == []  # no log, no checkpoint folder, no event folder


def test_an_mxboard_that_fails_to_import_is_one_line(tmp_path, monkeypatch):
    """mxboard 0.1.0 beside protobuf 4 and later raises TypeError when it is imported."""
    (tmp_path / 'mxboard').mkdir()
    (tmp_path / 'mxboard' / '__init__.py').write_text(
        'raise TypeError("Descriptors cannot be created directly.\\nIf this call came '
        'from a _pb2.py file, your generated code is out of date")\n')
    monkeypatch.delitem(sys.modules, 'mxboard', raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError, match=r'^--tensorboard: mxboard does not import beside '
                       r'protobuf \S+ \(Descriptors cannot be created directly\.\): pip '
                       r'install mxboard==0\.1\.0 "protobuf>=3\.20\.2,<=3\.20\.3"'):
        tensorboard.summary_writer_class()


@pytest.mark.parametrize('argv, message', [
    (['--tensorboard-histograms', '1'], '--tensorboard-histograms 1 needs --tensorboard DIR'),
    (['--tensorboard', 'tb', '--tensorboard-histograms', '-1'],
     '--tensorboard-histograms -1: expected a number from 0'),
])
def test_histogram_flag_is_checked(argv, message):
    args = train_resnet.build_parser().parse_args(argv)
    with pytest.raises(UsageError, match='^' + message):
        fit.configure(args)


@needs_tensorboard
def test_in_a_distributed_job_only_rank_0_writes(tmp_path):
    from jobs import TRAIN, TRAIN_ARGS, Job
    prefix, logdir = str(tmp_path / 'model'), tmp_path / 'tb'
    job = Job(['-n', '2', '-s', '1', '--launcher', 'local'],
              [sys.executable, TRAIN, '--kv-store', 'dist_sync', '--model-prefix', prefix,
               '--tensorboard', str(logdir)] + TRAIN_ARGS, tmp_path)
    try:
        assert job.wait(180) == 0, job.text()
    finally:
        job.kill()
    assert len(tensorboard.event_files(str(logdir))) == 1
    events = read_events(logdir)
    assert_same_curves(events, read_log(prefix + '-log.jsonl'))
    assert [s for s, _ in events['scalars']['batch/train_loss']] == [1, 2, 3, 4]


def test_open_curves_on_other_ranks_writes_nothing(tmp_path):
    args = train_resnet.build_parser().parse_args(['--tensorboard', str(tmp_path)])
    fit.configure(args)
    assert isinstance(tensorboard.open_curves(args, EPOCH_SIZE, rank=1), tensorboard.NoCurves)
    assert os.listdir(tmp_path) == []
    args.tensorboard = None
    assert isinstance(tensorboard.open_curves(args, EPOCH_SIZE), tensorboard.NoCurves)
