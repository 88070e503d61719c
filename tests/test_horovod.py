"""`--kv-store horovod` on this machine: horovodrun and tools/launch.py --launcher horovod
with 2 ranks over Gloo on loopback (real ssh: tests/test_ssh.py).

The training tests need Horovod built for MXNet (README, "Horovod"); without it they skip,
and under CI, which installs it, they fail. The checks of bad input run either way.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import mxnet as mx
import pytest

from conftest import ROOT
from jobs import (LAUNCH, TRAIN, TRAIN_ARGS, bad_label_rec, digest_of_checkpoint,
                  horovod_missing, require, worker_digests)
from mxresnet import launch as launch_mod
from mxresnet.errors import UsageError
from mxresnet.horovod import LOCAL_SIZE_VARIABLES

HOROVODRUN = [sys.executable, '-m', 'horovod.runner.launch', '--gloo', '--disable-cache',
              '--network-interface', 'lo']


@pytest.fixture(scope='module')
def horovod():
    missing = horovod_missing()
    if missing:
        require(missing)


def train(prefix, *extra):
    return [sys.executable, TRAIN, '--kv-store', 'horovod', '--model-prefix', str(prefix)] + \
        TRAIN_ARGS + list(extra)


# -- training --------------------------------------------------------------------------
def test_horovodrun_trains_what_dist_sync_trains(tmp_path, job_factory, horovod):
    """2 ranks under horovodrun: each reads its part, only rank 0 writes, and every rank
    ends with the parameters that dist_sync with 2 workers reaches from the same flags (the
    same total batch and learning rate, the gradients summed alike)."""
    prefix = tmp_path / 'hvd' / 'model'
    job = job_factory(['-np', '2'], train(prefix), program=HOROVODRUN)
    assert job.wait(180) == 0, job.text()
    text = job.text()
    for rank in (0, 1):
        assert 'Worker %d of 2 (kvstore horovod): reading part %d of 2' % (rank, rank) in text
    digests = worker_digests(text, 1)
    assert sorted(digests) == ['0', '1'], text
    assert digests['0'] == digests['1'] == digest_of_checkpoint(str(prefix), 1)
    assert text.count('Saved checkpoint %s-0001' % prefix) == 1
    log = [json.loads(line) for line in open(str(prefix) + '-log.jsonl')]
    epochs = [r for r in log if r['event'] == 'epoch']
    assert len(epochs) == 1 and epochs[0]['params_sha1'] == digests['0']
    assert epochs[0]['batches'] == 4
    assert sorted(os.listdir(prefix.parent)) == sorted(
        ['model-0001.json', 'model-0001.params', 'model-0001.states', 'model-model.json',
         'model-log.jsonl', 'model-symbol.json'])
    job.assert_no_orphans()

    dist_prefix = tmp_path / 'dist' / 'model'
    dist = job_factory(['-n', '2', '-s', '1', '--launcher', 'local'],
                       [sys.executable, TRAIN, '--kv-store', 'dist_sync', '--model-prefix',
                        str(dist_prefix)] + TRAIN_ARGS)
    assert dist.wait(180) == 0, dist.text()
    assert worker_digests(dist.text(), 1) == digests


def test_launcher_broadcasts_rank_0s_parameters(tmp_path, job_factory, horovod):
    """tools/launch.py --launcher horovod. The ranks start from different seeds, then
    resume from checkpoints whose weights differ: each time rank 0's parameters reach
    rank 1 before the first update, so both end equal."""
    for rank in (0, 1):
        (tmp_path / ('r%d' % rank)).mkdir()
    # each rank its own seed and checkpoint folder (r0, r1)
    command = ['bash', '-c', 'exec "$@" --seed $((HOROVOD_RANK + 7)) --model-prefix '
               '%s/r$HOROVOD_RANK/model --num-epochs "$EPOCHS" $RESUME' % tmp_path, 'bash',
               sys.executable, TRAIN, '--kv-store', 'horovod'] + TRAIN_ARGS
    job = job_factory(['-n', '2', '--launcher', 'horovod'], command,
                      env={'EPOCHS': '1', 'RESUME': ''})
    assert job.wait(180) == 0, job.text()
    assert 'Launching 2 Horovod ranks' in job.text()
    digests = worker_digests(job.text(), 1)
    assert sorted(digests) == ['0', '1'] and digests['0'] == digests['1'], job.text()
    job.assert_no_orphans()

    # rank 1 resumes from other weights (rank 0's checkpoint, changed), with the same state
    for name in os.listdir(tmp_path / 'r0'):
        shutil.copy(tmp_path / 'r0' / name, tmp_path / 'r1' / name)
    params = str(tmp_path / 'r1' / 'model-0001.params')
    saved = mx.nd.load(params)
    mx.nd.save(params, {k: v * 1.5 if k.startswith('arg:') else v for k, v in saved.items()})
    assert digest_of_checkpoint(str(tmp_path / 'r1' / 'model'), 1) != digests['0']
    job = job_factory(['-n', '2', '--launcher', 'horovod'], command,
                      env={'EPOCHS': '2', 'RESUME': '--load-epoch 1'})
    assert job.wait(180) == 0, job.text()
    resumed = worker_digests(job.text(), 2)
    assert sorted(resumed) == ['0', '1'] and resumed['0'] == resumed['1'], job.text()
    assert resumed['0'] == digest_of_checkpoint(str(tmp_path / 'r0' / 'model'), 2)
    assert not os.path.exists(tmp_path / 'r1' / 'model-0002.params')   # rank 0 writes
    job.assert_no_orphans()


def test_failing_rank_stops_the_job(tmp_path, job_factory, horovod):
    """Rank 1's part of the records has labels out of range: it stops at its first batch
    with the one-line error (exit 2) while rank 0 waits in the allreduce, and the launcher
    ends the job with that status, without a traceback."""
    rec = bad_label_rec(tmp_path)
    # (--network: horovodrun's own parser would take it for --network-interface)
    command = train(tmp_path / 'model', '--data-train', rec, '--network', 'resnet')
    job = job_factory(['-n', '2', '--launcher', 'horovod'], command)
    job.wait_for('label 99 is not a class number', 120)
    start = time.time()
    assert job.wait(60) == 2, job.text()
    assert time.time() - start < 30, job.text()
    text = job.text()
    assert 'horovodrun: rank 1 exited with code 2' in text
    assert 'horovodrun pid' in text and 'exited with code 2: stopping the job' in text
    assert 'Traceback' not in text
    job.assert_no_orphans()


LR_MULT_PROBE = r'''
import sys
sys.path.insert(0, sys.argv[1])
import mxnet as mx
from mxresnet.horovod import HorovodStore
fc = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=2, name='fc')
net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(fc, num_hidden=2, name='head'),
                           name='softmax')
module = mx.mod.Module(net)
module.bind([('data', (4, 3))], [('softmax_label', (4,))])
module.init_params()
optimizer = mx.optimizer.create('sgd', learning_rate=0.1)
optimizer.set_lr_mult({'fc_weight': 0.5})
HorovodStore().init_optimizer(module, optimizer)
rates = [optimizer._get_lr(i) for i in range(len(module._exec_group.param_names))]
print('rates', dict(zip(module._exec_group.param_names, rates)))
'''


def test_per_name_rates_survive_the_wrapper(tmp_path, job_factory, horovod):
    """--backbone-lr-mult's per-name multipliers need the optimizer's index -> name map,
    which Module hands to Horovod's wrapper: it reaches the wrapped optimizer."""
    script = tmp_path / 'probe.py'
    script.write_text(LR_MULT_PROBE)
    job = job_factory(['-np', '1'], [sys.executable, str(script), ROOT], program=HOROVODRUN)
    assert job.wait(120) == 0, job.text()
    assert "rates {'fc_weight': 0.05, 'fc_bias': 0.1, 'head_weight': 0.1, " \
        "'head_bias': 0.1}" in job.text(), job.text()


# -- bad input -------------------------------------------------------------------------
def run_quietly(argv, env=None):
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def assert_one_line(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count('\n') == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_horovod_kvstore_outside_horovodrun_is_one_line():
    env = {name: '' for name in ('HOROVOD_RANK', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK',
                                 'PMIX_RANK')}
    clean = {k: v for k, v in os.environ.items() if k not in env}
    proc = subprocess.run([sys.executable, TRAIN, '--kv-store', 'horovod', '--model-prefix',
                           ''] + TRAIN_ARGS, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=clean)
    assert_one_line(proc, '--kv-store horovod needs one process per worker', 'horovodrun -np')


def test_horovod_missing_is_one_line(tmp_path):
    """A `horovod` without its MXNet part (as a build without HOROVOD_WITH_MXNET has)."""
    (tmp_path / 'horovod').mkdir()
    (tmp_path / 'horovod' / '__init__.py').write_text('')
    proc = run_quietly([sys.executable, TRAIN, '--kv-store', 'horovod', '--model-prefix', '']
                       + TRAIN_ARGS, env={'HOROVOD_RANK': '0', 'HOROVOD_SIZE': '1',
                                          'PYTHONPATH': str(tmp_path)})
    assert_one_line(proc, 'needs Horovod built for MXNet', 'HOROVOD_WITH_MXNET=1',
                    '--no-build-isolation horovod==0.28.1')


@pytest.mark.parametrize('argv, message', [
    (['-n', '2', '-s', '1', '--launcher', 'horovod'], '-s/--num-servers: Horovod has no'),
    (['-n', '2', '--sync-dst-dir', '/tmp/x', '--launcher', 'horovod'], '--sync-dst-dir'),
    (['-n', '2', '--env-server', 'A:1', '--launcher', 'horovod'], '--env-server'),
    (['-n', '2', '--ssh-config', '/nonexistent/config', '--launcher', 'horovod'],
     '--ssh-config /nonexistent/config: no such file'),
    (['-n', '2', '--ssh-config', LAUNCH, '--launcher', 'local'],
     '--ssh-config is for --launcher ssh or horovod'),
])
def test_launcher_bad_input_is_one_line(argv, message):
    proc = run_quietly([sys.executable, LAUNCH] + argv + ['python', 'x.py'])
    assert_one_line(proc, message)
    assert proc.stderr.startswith('launch.py: error: ')


@pytest.mark.parametrize('lines, message', [
    ('127.0.0.2:2222\n127.0.0.3\n', 'ssh ports 22, 2222: horovodrun takes one port'),
    ('127.0.0.2 slots=two\n', "line 1: '127.0.0.2 slots=two': expected host[:port]"),
    ('127.0.0.2 slots=1\n127.0.0.3 slots=1\n', 'has 2 slots for -n 3 workers'),
])
def test_bad_hosts_file_is_one_line(tmp_path, lines, message):
    hosts = tmp_path / 'hosts'
    hosts.write_text(lines)
    proc = run_quietly([sys.executable, LAUNCH, '-n', '3', '-H', str(hosts), '--launcher',
                        'horovod', 'python', 'x.py'])
    assert proc.returncode == 2 and proc.stderr.count('\n') == 1, proc.stderr
    assert message in proc.stderr


def test_horovod_placement(tmp_path):
    """Round robin over the hosts as the ssh launcher places workers, or their slots."""
    hosts = tmp_path / 'hosts'
    hosts.write_text('a:2222\n\nb:2222\nc:2222\n')
    found = launch_mod.read_hosts(str(hosts))
    assert found == [('a', 2222, None), ('b', 2222, None), ('c', 2222, None)]
    assert launch_mod.horovod_placement(found, 5, 'hosts') == ('a:2,b:2,c:1', 2222)
    assert launch_mod.horovod_placement(found, 2, 'hosts') == ('a:1,b:1', 2222)
    slots = [('a', None, 3), ('b', None, 1)]
    assert launch_mod.horovod_placement(slots, 2, 'hosts') == ('a:3,b:1', None)
    with pytest.raises(UsageError):
        launch_mod.horovod_placement(slots, 5, 'hosts')


def test_ranks_of_a_machine_share_its_cores(tmp_path):
    """Each of HOROVOD_LOCAL_SIZE ranks loads MXNet with its share of the cores (a stand-in
    mxnet prints the OMP_NUM_THREADS it was loaded with)."""
    (tmp_path / 'mxnet').mkdir()
    (tmp_path / 'mxnet' / '__init__.py').write_text(
        "import os\nprint(os.environ.get('OMP_NUM_THREADS'))\n")
    cores = len(os.sched_getaffinity(0))
    env = {k: v for k, v in os.environ.items()
           if k != 'OMP_NUM_THREADS' and k not in LOCAL_SIZE_VARIABLES}
    env['PYTHONPATH'] = str(tmp_path)
    for local_size, threads in ((None, cores), ('2', max(1, cores // 2)), ('64', 1)):
        if local_size:
            env['HOROVOD_LOCAL_SIZE'] = local_size
        proc = subprocess.run([sys.executable, '-c', 'from mxresnet import runtime; '
                               'runtime.use_all_cores()'], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.stdout.split() == [str(threads)], proc.stderr
