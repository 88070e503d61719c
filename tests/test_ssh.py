"""Real ssh: tools/launch.py over an OpenSSH server of the test's own (tests/sshd.py) that
listens on two loopback addresses, 127.0.0.2 and 127.0.0.3, as two hosts. The launcher
reaches them with --ssh-config (the test's key and known_hosts file).

- `--launcher ssh`: 1 server and 2 workers in dist_sync, placed over both hosts;
- `--launcher horovod`: 2 ranks, one a host, over horovodrun's ssh and Gloo on `lo`.

Each trains an epoch to the same parameters on every worker; a worker killed on one host
ends the job non-zero and leaves no process on either. Without sshd (or Horovod) the tests
skip, and under CI, which installs both, they fail.
"""
import os
import re
import signal
import sys
import time

import pytest

import sshd
from jobs import (TRAIN, TRAIN_ARGS, digest_of_checkpoint, horovod_missing, process_env,
                  process_pids, require, worker_digests)


@pytest.fixture(scope='module')
def ssh_server(tmp_path_factory):
    server = sshd.SshServer(tmp_path_factory.mktemp('sshd'))
    try:
        server.start()
    except sshd.Unavailable as err:
        require(str(err))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope='module')
def horovod():
    missing = horovod_missing()
    if missing:
        require(missing)


def launcher_args(server, tmp_path, launcher):
    """Over both hosts, one OpenMP thread a process (they share this machine's cores)."""
    hosts = server.hostfile(str(tmp_path / 'hosts'))
    servers = ['-s', '1'] if launcher == 'ssh' else []
    return ['-n', '2'] + servers + ['-H', hosts, '--launcher', launcher, '--ssh-config',
                                    server.config, '--env', 'OMP_NUM_THREADS:1']


# The scheduler on loopback; horovodrun's rendezvous and Gloo on `lo` (DMLC_INTERFACE).
ENV = {'ssh': {'DMLC_PS_ROOT_URI': '127.0.0.1'}, 'horovod': {'DMLC_INTERFACE': 'lo'}}
KV_STORE = {'ssh': 'dist_sync', 'horovod': 'horovod'}


@pytest.fixture(params=['ssh', 'horovod'])
def launcher(request):
    if request.param == 'horovod':
        request.getfixturevalue('horovod')
    return request.param


def test_ssh_server_is_reachable(ssh_server):
    for host in sshd.HOSTS:
        proc = ssh_server.ssh(host, 'echo $SSH_CONNECTION')
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[2:] == [host, str(ssh_server.port)]


def test_trains_an_epoch_over_ssh(tmp_path, job_factory, ssh_server, launcher):
    prefix = str(tmp_path / 'model')
    job = job_factory(launcher_args(ssh_server, tmp_path, launcher),
                      [sys.executable, TRAIN, '--kv-store', KV_STORE[launcher],
                       '--model-prefix', prefix] + TRAIN_ARGS, env=ENV[launcher])
    assert job.wait(240) == 0, job.text()
    text = job.text()
    digests = worker_digests(text, 1)
    assert sorted(digests) == ['0', '1'], text
    assert digests['0'] == digests['1'] == digest_of_checkpoint(prefix, 1)
    assert text.count('Saved checkpoint %s-0001' % prefix) == 1
    job.assert_no_orphans()


def long_job_under_way(tmp_path, job_factory, ssh_server, launcher):
    """A 5-epoch training job over both hosts, once its first batches are done."""
    args = list(TRAIN_ARGS)
    args[args.index('--num-examples') + 1] = '4000'
    args[args.index('--num-epochs') + 1] = '5'
    job = job_factory(launcher_args(ssh_server, tmp_path, launcher),
                      [sys.executable, TRAIN, '--kv-store', KV_STORE[launcher],
                       '--model-prefix', str(tmp_path / 'model')] + args, env=ENV[launcher])
    job.wait_for(r'Epoch\[1\] Batch \[2/', 180)
    return job


def test_worker_killed_on_one_host_ends_the_job(tmp_path, job_factory, ssh_server, launcher):
    job = long_job_under_way(tmp_path, job_factory, ssh_server, launcher)
    # the worker that came in over ssh to 127.0.0.3 (SSH_CONNECTION: client, then server)
    here = re.compile(r'\S+ \d+ 127\.0\.0\.3 %d$' % ssh_server.port)
    role = {'DMLC_ROLE': 'worker'} if launcher == 'ssh' else {'HOROVOD_RANK': '1'}
    victims = [pid for pid in process_pids(job.marker, **role)
               if here.match(ssh_connection(pid))]
    assert victims, job.text()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    start = time.time()
    code = job.wait(60)
    assert code != 0, job.text()
    assert time.time() - start < 45, job.text()
    job.assert_no_orphans()   # on both hosts: every process of the job carries the marker



def ssh_connection(pid):
    """SSH_CONNECTION of a process that sshd started ('' for another, or one gone)."""
    try:
        return process_env(pid).get('SSH_CONNECTION', '')
    except OSError:
        return ''


def test_launcher_killed_leaves_nothing_on_either_host(tmp_path, job_factory, ssh_server,
                                                        launcher):
    """SIGKILL of the launcher mid-run: the ssh clients go with it (PR_SET_PDEATHSIG, or
    horovodrun's own watch), and the remote processes with their lifeline, the standard
    input the launcher held."""
    job = long_job_under_way(tmp_path, job_factory, ssh_server, launcher)
    remote = [pid for pid in process_pids(job.marker) if ssh_connection(pid)]
    assert len(remote) >= 2, job.text()   # the workers (and server) came in over ssh
    job.proc.send_signal(signal.SIGKILL)
    job.proc.wait()
    deadline = time.time() + 30
    while process_pids(job.marker) and time.time() < deadline:
        time.sleep(0.2)
    job.assert_no_orphans()
