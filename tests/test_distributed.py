"""tools/launch.py and the distributed kvstore (ps-lite) on loopback.

Every launch runs in its own process group with a time limit; on a timeout the group and
every process carrying the test's marker (its tmp path, which is on each command line)
are killed. Nothing here skips: the mxnet wheel has the distributed kvstore built in.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import mxnet as mx
import pytest

from conftest import ROOT
from jobs import (LAUNCH, TRAIN, TRAIN_ARGS, TRAIN_IDX, TRAIN_REC, bad_label_rec,
                  digest_of_checkpoint, marked_pids, process_env, worker_digests)
import train_resnet
from mxresnet import data as data_mod
from mxresnet import flags
from mxresnet.recordio import count_records
from tools import launch

# A stand-in for a job's processes: records its role and arguments, then behaves as told.
PROBE = r'''
import json, os, sys, time
out, action = sys.argv[1], sys.argv[2]
role, task = os.environ.get('DMLC_ROLE'), os.environ.get('DMLC_TASK_ID', '')
with open(os.path.join(out, '%s-%s.json' % (role, task)), 'w') as f:
    json.dump({'argv': sys.argv[3:], 'env': dict(os.environ),
               'exit_hooked': sys.exit.__module__ == 'sitecustomize'}, f)
if action == 'sleep' or (action == 'fail' and not (role == 'worker' and task == '1')):
    time.sleep(120)
elif action == 'fail':
    time.sleep(1)
    sys.exit(3)
'''

# A worker that fails after creating the dist_sync kvstore: rank 1 exits 3 or raises, while
# rank 0 waits in its first pull for rank 1's gradients. (The ranks are the scheduler's,
# not the task ids.)
KV_PROBE = r'''
import sys, time
import mxnet as mx
kv = mx.kv.create('dist_sync')
kv.init(3, mx.nd.ones((2,)))
if kv.rank == 1:
    time.sleep(1)
    print('rank 1 fails now', flush=True)
    if sys.argv[1] == 'exit':
        sys.exit(3)
    raise ValueError('worker failed on purpose')
out = mx.nd.zeros((2,))
for _ in range(5):
    kv.push(3, mx.nd.ones((2,)))
    kv.pull(3, out=out)
    out.wait_to_read()
'''
# Arguments the shell would split, expand or run if they were not quoted.
AWKWARD_ARGS = ['a b', "it's", '"quoted"', '$HOME', '${PATH}', 'x;echo injected', '`id`',
                '*', '', 'back\\slash', 'tab\there', '--note=a b', 'new\nline']


# -- the launcher alone (no MXNet in the job: fast) -------------------------------------
def probe_command(tmp_path, action):
    script = tmp_path / 'probe.py'
    script.write_text(PROBE)
    out = tmp_path / 'probe'
    out.mkdir()
    return [sys.executable, str(script), str(out), action], out


def test_roles_environment_and_command_options(tmp_path, job_factory):
    command, out = probe_command(tmp_path, 'exit')
    job = job_factory(['-n', '2', '-s', '1', '--launcher', 'local', '--env', 'FOO_DIST',
                       '--env-worker', 'BAR_DIST:w', '--env-server', 'BAR_DIST:s'],
                      command + ['--log-file', 'x.jsonl', '-n', '3', '--env', 'y']
                      + AWKWARD_ARGS, env={'FOO_DIST': 'foo'})
    assert job.wait(60) == 0, job.text()
    seen = {p.name: json.loads(p.read_text()) for p in out.iterdir()}
    assert sorted(seen) == ['scheduler-.json', 'server-2.json', 'worker-0.json',
                            'worker-1.json']
    for name, record in seen.items():
        # the command's own options reach it (the wheel's tracker took --log-file and --env),
        # and each argument whole (the tracker joins them into a bash command line)
        assert record['argv'] == ['--log-file', 'x.jsonl', '-n', '3', '--env', 'y'] \
            + AWKWARD_ARGS, name
        assert record['exit_hooked'], name   # mxresnet/worker_site/sitecustomize.py
        env = record['env']
        assert env['DMLC_NUM_WORKER'] == '2' and env['DMLC_NUM_SERVER'] == '1'
        assert env['DMLC_PS_ROOT_URI'] == '127.0.0.1' and env['FOO_DIST'] == 'foo'
    assert seen['worker-0.json']['env']['BAR_DIST'] == 'w'
    assert seen['server-2.json']['env']['BAR_DIST'] == 's'
    assert 'BAR_DIST' not in seen['scheduler-.json']['env']
    job.assert_no_orphans()


def test_failed_process_stops_the_job(tmp_path, job_factory):
    command, _ = probe_command(tmp_path, 'fail')   # worker 1 exits 3, the rest sleep
    job = job_factory(['-n', '2', '-s', '1', '--launcher', 'local'], command)
    start = time.time()
    code = job.wait(60)
    assert code == 3, job.text()
    assert time.time() - start < 30
    assert 'worker (task 1)' in job.text() and 'exited with code 3' in job.text()
    assert 'Traceback' not in job.text()
    job.assert_no_orphans()


def test_user_sitecustomize_still_runs(tmp_path, job_factory):
    """The launcher's startup hook imports the next sitecustomize on the path after it."""
    site = tmp_path / 'usersite'
    site.mkdir()
    (site / 'sitecustomize.py').write_text("import os\nos.environ['USER_SITE_RAN'] = 'yes'\n")
    command, out = probe_command(tmp_path, 'exit')
    job = job_factory(['-n', '1', '-s', '1', '--launcher', 'local'], command,
                      env={'PYTHONPATH': str(site)})
    assert job.wait(60) == 0, job.text()
    seen = {p.name: json.loads(p.read_text()) for p in out.iterdir()}
    assert len(seen) == 3
    for name, record in seen.items():
        assert record['env'].get('USER_SITE_RAN') == 'yes', name
        assert record['exit_hooked'], name
        assert record['env']['PYTHONPATH'].endswith(os.pathsep + str(site)), name
    job.assert_no_orphans()


def sleeping_job(tmp_path, job_factory):
    """A local job of 2 workers and 1 server of sleeping probes, once all 4 have started."""
    command, out = probe_command(tmp_path, 'sleep')
    job = job_factory(['-n', '2', '-s', '1', '--launcher', 'local'], command)
    deadline = time.time() + 30
    while len(list(out.iterdir())) < 4 and time.time() < deadline:
        time.sleep(0.1)
    assert len(list(out.iterdir())) == 4, job.text()
    return job


def test_launcher_killed_leaves_nothing(tmp_path, job_factory):
    """SIGKILL of the launcher: PR_SET_PDEATHSIG takes its processes with it."""
    job = sleeping_job(tmp_path, job_factory)
    # the launcher and its 4 processes: bash exec'd each command, no shell in between
    assert len(marked_pids(job.marker)) == 5
    job.proc.send_signal(signal.SIGKILL)
    job.proc.wait()
    deadline = time.time() + 30
    while marked_pids(job.marker) and time.time() < deadline:
        time.sleep(0.1)
    job.assert_no_orphans()


@pytest.mark.parametrize('action, code', [('exit', 3), ('raise', 1)])
def test_worker_failure_after_kvstore_stops_the_job(tmp_path, job_factory, action, code):
    """Without the startup hook the failed worker waits forever at ps-lite's shutdown
    barrier for the other worker, which waits for its gradients."""
    script = tmp_path / 'kv_probe.py'
    script.write_text(KV_PROBE)
    job = job_factory(['-n', '2', '-s', '1', '--launcher', 'local'],
                      [sys.executable, str(script), action])
    job.wait_for('rank 1 fails now', 60)
    start = time.time()
    assert job.wait(45) == code, job.text()
    assert time.time() - start < 30, job.text()
    assert 'exited with code %d: stopping the job' % code in job.text()
    if action == 'raise':
        assert 'ValueError: worker failed on purpose' in job.text()
    job.assert_no_orphans()


@pytest.mark.parametrize('signum, code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_the_job(tmp_path, job_factory, signum, code):
    job = sleeping_job(tmp_path, job_factory)
    os.killpg(job.proc.pid, signum) if signum == signal.SIGINT else job.proc.send_signal(signum)
    start = time.time()
    assert job.wait(40) == code, job.text()
    assert time.time() - start < 30
    job.assert_no_orphans()


@pytest.mark.parametrize('argv, message', [
    (['-n', '0', '--launcher', 'local', 'python', 'x.py'], 'at least one worker'),
    (['-n', '2', '-s', '0', '--launcher', 'local', 'python', 'x.py'], 'at least one server'),
    (['-n', '2', '--launcher', 'local'], 'no command given'),
    (['-n', '2', 'python', 'x.py'], 'needs -H/--hostfile'),
    (['-n', '2', '-H', '/nonexistent/hosts', 'python', 'x.py'], 'no such file'),
    (['-n', '2', '--launcher', 'pbs', 'python', 'x.py'], 'invalid choice'),
    (['-n', 'two', '--launcher', 'local', 'python', 'x.py'], 'invalid int value'),
    (['--launcher', 'local', 'python', 'x.py'], 'required'),
    (['-n', '1', '--launcher', 'local', '--env', 'NOT_SET_ANYWHERE_42', 'python', 'x.py'],
     'not set'),
])
def test_bad_input_is_one_line(argv, message):
    proc = subprocess.run([sys.executable, LAUNCH] + argv, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count('\n') == 1 and message in proc.stderr, proc.stderr
    assert proc.stderr.startswith('launch.py: error: ')


def test_interface_matches_mxnet_launch():
    parser = launch.build_parser()
    args = launch.parse_args(['-n', '3', '--launcher', 'local', 'python', 'train.py', '-n',
                              '5', '--kv-store', 'dist_sync'])
    assert args.num_servers == 3   # MXNet's default: as many servers as workers
    assert args.command == ['python', 'train.py', '-n', '5', '--kv-store', 'dist_sync']
    assert parser.get_default('launcher') == 'ssh'
    options = {o for action in parser._actions for o in action.option_strings}
    assert {'-n', '--num-workers', '-s', '--num-servers', '-H', '--hostfile', '--launcher',
            '--env', '--env-server', '--env-worker', '--sync-dst-dir', '--p3'} <= options


# -- training on the distributed kvstore ------------------------------------------------
def test_record_iter_parts_are_disjoint():
    """What each worker reads: part k of 2 of the bundled data, disjoint, covering it all."""
    args = flags.apply_presets(train_resnet.build_parser().parse_args(
        ['--preset', 'fashion-mnist']))
    mean, std = flags.normalisation(args, 1)
    total = count_records(TRAIN_REC, TRAIN_IDX)
    parts = []
    for rank in range(2):
        images = set()
        for batch in data_mod.record_iter(TRAIN_REC, TRAIN_IDX, (1, 28, 28), mean, std, 100,
                                          num_parts=2, part_index=rank):
            data = batch.data[0].asnumpy()
            for k in range(data.shape[0] - batch.pad):
                images.add(hashlib.sha1(data[k].tobytes()).hexdigest())
        parts.append(images)
    assert not parts[0] & parts[1]
    assert len(parts[0]) + len(parts[1]) >= total * 0.99   # (a few duplicate images)
    assert abs(len(parts[0]) - len(parts[1])) <= 0.01 * total


def test_dist_sync_two_workers(tmp_path, job_factory):
    prefix = str(tmp_path / 'model')
    job = job_factory(['-n', '2', '-s', '1', '--launcher', 'local'],
                      [sys.executable, TRAIN, '--kv-store', 'dist_sync', '--model-prefix',
                       prefix] + TRAIN_ARGS)
    assert job.wait(120) == 0, job.text()
    text = job.text()
    # each worker read its own part of the data
    for rank in (0, 1):
        assert 'Worker %d of 2 (kvstore dist_sync): reading part %d of 2' % (rank, rank) in text
    # both ended with the same parameters, which are those of rank 0's checkpoint
    digests = worker_digests(text, 1)
    assert sorted(digests) == ['0', '1'], text
    assert digests['0'] == digests['1'] == digest_of_checkpoint(prefix, 1)
    # only rank 0 wrote the checkpoint and the log
    assert text.count('Saved checkpoint %s-0001' % prefix) == 1
    log = [json.loads(line) for line in open(prefix + '-log.jsonl')]
    epochs = [r for r in log if r['event'] == 'epoch']
    assert len(epochs) == 1 and epochs[0]['params_sha1'] == digests['0']
    assert epochs[0]['batches'] == 4
    assert os.path.isfile(prefix + '-0001.states')
    assert sorted(os.listdir(tmp_path)) == sorted(
        ['launch.out', 'model-0001.json', 'model-0001.params', 'model-0001.states',
         'model-model.json', 'model-log.jsonl', 'model-symbol.json'])
    job.assert_no_orphans()


def test_dist_sync_with_the_training_recipe(tmp_path, job_factory):
    """Mixup and CutMix (drawn per rank), RandAugment, --no-wd, --last-gamma and --model-ema
    in a synchronous job: the workers end with the same parameters, and rank 0 alone saves
    them and their moving average."""
    prefix = str(tmp_path / 'model')
    job = job_factory(['-n', '2', '-s', '1', '--launcher', 'local'],
                      [sys.executable, TRAIN, '--kv-store', 'dist_sync', '--model-prefix',
                       prefix] + TRAIN_ARGS +
                      ['--mixup-alpha', '0.2', '--cutmix-alpha', '1', '--auto-augment', 'ra',
                       '--no-wd', '--last-gamma', '--model-ema'])
    assert job.wait(180) == 0, job.text()
    text = job.text()
    digests = worker_digests(text, 1)
    assert digests['0'] == digests['1'] == digest_of_checkpoint(prefix, 1)
    assert text.count('--last-gamma: 3 residual branches start at zero') == 2
    assert text.count('Saved checkpoint %s-0001' % prefix) == 1
    assert all(os.path.isfile(prefix + '-ema-0001' + ext) for ext in ('.params', '.json'))
    assert digest_of_checkpoint(prefix + '-ema', 1) != digests['0']
    job.assert_no_orphans()


def test_dist_sync_unequal_shards(tmp_path, job_factory):
    """97 records: part 0 has 7 batches of 8 per pass, part 1 has 6. Every worker runs
    --num-examples // --batch-size = 7 batches per epoch (part 1 wraps round), so the
    synchronous pushes stay paired and nothing waits forever."""
    src = mx.recordio.MXIndexedRecordIO(TRAIN_IDX, TRAIN_REC, 'r')
    rec, idx = str(tmp_path / 'odd.rec'), str(tmp_path / 'odd.idx')
    dst = mx.recordio.MXIndexedRecordIO(idx, rec, 'w')
    for i in range(97):
        dst.write_idx(i, src.read_idx(src.keys[i]))
    dst.close()
    src.close()
    prefix = str(tmp_path / 'model')
    args = list(TRAIN_ARGS)
    args[args.index('--data-train') + 1] = rec
    args[args.index('--batch-size') + 1] = '16'
    args[args.index('--num-examples') + 1] = '112'
    args[args.index('--num-epochs') + 1] = '2'
    job = job_factory(['-n', '2', '-s', '1', '--launcher', 'local'],
                      [sys.executable, TRAIN, '--kv-store', 'dist_sync', '--model-prefix',
                       prefix] + args)
    assert job.wait(120) == 0, job.text()
    text = job.text()
    assert text.count('Epoch[2] Batch [7/7]') == 2
    digests = worker_digests(text, 2)
    assert digests['0'] == digests['1'] == digest_of_checkpoint(prefix, 2)
    job.assert_no_orphans()


def test_dist_async_completes(tmp_path, job_factory):
    prefix = str(tmp_path / 'model')
    job = job_factory(['-n', '2', '-s', '1', '--launcher', 'local'],
                      [sys.executable, TRAIN, '--kv-store', 'dist_async', '--model-prefix',
                       prefix] + TRAIN_ARGS)
    assert job.wait(120) == 0, job.text()
    text = job.text()
    assert text.count('Epoch[1] Batch [4/4]') == 2
    assert sorted(worker_digests(text, 1)) == ['0', '1']
    assert os.path.isfile(prefix + '-0001.params')
    job.assert_no_orphans()


def test_worker_with_bad_labels_stops_the_job(tmp_path, job_factory):
    """The second half of the records (worker 1's part) has labels out of range: worker 1
    stops at its first batch with a UsageError after the kvstore is up, and run_tool ends it
    at once instead of waiting at ps-lite's shutdown barrier."""
    rec = bad_label_rec(tmp_path)
    args = list(TRAIN_ARGS)
    args[args.index('--data-train') + 1] = rec
    job = job_factory(['-n', '2', '-s', '1', '--launcher', 'local'],
                      [sys.executable, TRAIN, '--kv-store', 'dist_sync', '--model-prefix',
                       str(tmp_path / 'model')] + args)
    job.wait_for('label 99 is not a class number', 90)
    start = time.time()
    assert job.wait(45) == 2, job.text()
    assert time.time() - start < 30, job.text()
    text = job.text()
    assert 'exited with code 2: stopping the job' in text
    assert 'Traceback' not in text
    job.assert_no_orphans()


def test_worker_killed_mid_run(tmp_path, job_factory):
    prefix = str(tmp_path / 'model')
    args = list(TRAIN_ARGS)
    args[args.index('--num-examples') + 1] = '2000'
    args[args.index('--num-epochs') + 1] = '5'
    job = job_factory(['-n', '2', '-s', '1', '--launcher', 'local'],
                      [sys.executable, TRAIN, '--kv-store', 'dist_sync', '--model-prefix',
                       prefix] + args)
    job.wait_for(r'Epoch\[1\] Batch \[2/', 120)
    victims = [pid for pid in marked_pids(job.marker)
               if process_env(pid).get('DMLC_ROLE') == 'worker'
               and process_env(pid).get('DMLC_TASK_ID') == '1']
    assert victims, job.text()
    for pid in victims:   # the worker (and its shell, if the shell did not exec it)
        os.kill(pid, signal.SIGKILL)
    start = time.time()
    code = job.wait(60)
    assert code != 0
    assert time.time() - start < 30
    assert 'exited with signal 9' in job.text() or 'exited with code 137' in job.text()
    job.assert_no_orphans()


FAKE_SSH = '''#!/bin/bash
# Stands in for ssh: records its arguments, runs the remote command here.
echo "$@" >> "$(dirname "$0")/ssh.log"
exec bash -c "${@: -1}"
'''


def test_ssh_launcher_with_a_stand_in_ssh(tmp_path, job_factory):
    """The ssh path (hosts file, placement, environment over the command line, failure
    handling) with an `ssh` that runs the remote command on this machine."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'ssh').write_text(FAKE_SSH)
    (bin_dir / 'ssh').chmod(0o755)
    hosts = tmp_path / 'hosts'
    hosts.write_text('127.0.0.1\n\n127.0.0.1:2222 slots=4\n')
    command, out = probe_command(tmp_path, 'exit')
    awkward = [arg for arg in AWKWARD_ARGS if '\n' not in arg]   # (ssh.log: one line a call)
    job = job_factory(['-n', '2', '-s', '1', '-H', str(hosts), '--launcher', 'ssh',
                       '--env-worker', 'BAR_DIST:w'], command + ['--log-file', 'x'] + awkward,
                      env={'PATH': '%s:%s' % (bin_dir, os.environ['PATH']),
                           'DMLC_PS_ROOT_URI': '127.0.0.1'})
    assert job.wait(60) == 0, job.text()
    records = {p.name: json.loads(p.read_text()) for p in out.iterdir()}
    for name, record in records.items():   # quoted for the remote shell (and the local one)
        assert record['argv'] == ['--log-file', 'x'] + awkward, name
    seen = {name: record['env'] for name, record in records.items()}
    assert sorted(seen) == ['scheduler-.json', 'server-.json', 'worker-.json']  # no task ids
    assert seen['worker-.json']['BAR_DIST'] == 'w' and 'BAR_DIST' not in seen['server-.json']
    calls = (bin_dir / 'ssh.log').read_text().splitlines()
    assert len(calls) == 3   # server on host 1, workers on host 2 then host 1
    ports = {c.split(' -p ')[1].split()[0]: c for c in calls}
    assert sorted(c.split(' -p ')[1].split()[0] for c in calls) == ['22', '22', '2222']
    assert 'export DMLC_ROLE=worker;' in ports['2222']
    assert all('export DMLC_PS_ROOT_URI=127.0.0.1;' in c and '--log-file x' in c
               for c in calls)
    job.assert_no_orphans()
