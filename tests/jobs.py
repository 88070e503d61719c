"""Distributed jobs under test: a launcher (or horovodrun) in its own process group with its
output in a file, a time limit, and the processes it leaves behind found by a marker (the
test's tmp path, which is on each command line) and killed."""
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import mxnet as mx
import pytest

from conftest import ROOT

LAUNCH = os.path.join(ROOT, 'tools', 'launch.py')
TRAIN = os.path.join(ROOT, 'train_resnet.py')
TRAIN_REC = os.path.join(ROOT, 'data', 'fashion-mnist-train.rec')
TRAIN_IDX = os.path.join(ROOT, 'data', 'fashion-mnist-train.idx')
# A short run without validation: ResNet-8 on the bundled data.
TRAIN_ARGS = ['--preset', 'fashion-mnist', '--data-train', TRAIN_REC, '--num-layers', '8',
              '--batch-size', '64', '--num-examples', '256', '--num-epochs', '1',
              '--data-nthreads', '1', '--disp-batches', '1']


def bad_label_rec(tmp_path, records=256, first_bad=160):
    """Path of a copy of the first `records` bundled training records whose labels from
    record `first_bad` on are 99, out of range: the last worker's part in a 2-worker job."""
    src = mx.recordio.MXIndexedRecordIO(TRAIN_IDX, TRAIN_REC, 'r')
    rec, idx = str(tmp_path / 'bad.rec'), str(tmp_path / 'bad.idx')
    dst = mx.recordio.MXIndexedRecordIO(idx, rec, 'w')
    for i in range(records):
        header, image = mx.recordio.unpack(src.read_idx(src.keys[i]))
        if i >= first_bad:
            header = header._replace(label=99.0)
        dst.write_idx(i, mx.recordio.pack(header, image))
    dst.close()
    src.close()
    return rec


def free_port():
    with socket.socket() as sock:
        sock.bind(('', 0))
        return sock.getsockname()[1]


def marked_pids(marker):
    """Processes whose command line contains `marker`."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as f:
                cmdline = f.read().decode(errors='replace')
            with open('/proc/%s/stat' % entry) as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != 'Z':
            pids.append(int(entry))
    return pids


def process_env(pid):
    with open('/proc/%d/environ' % pid, 'rb') as f:
        return dict(item.split('=', 1) for item in f.read().decode(errors='replace')
                    .split('\0') if '=' in item)


def default_sigint():
    """Ctrl-C as in a terminal: a shell starts background jobs (pytest under `cmd &`) with
    SIGINT ignored, which their children would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Job(object):
    """tools/launch.py (or `program`) in its own process group, output to a file."""

    def __init__(self, launch_args, command, tmp_path, env=None, program=None, name='launch'):
        self.marker = str(tmp_path)
        self.output = tmp_path / (name + '.out')
        run_env = dict(os.environ, DMLC_PS_ROOT_PORT=str(free_port()), **(env or {}))
        program = program or [sys.executable, LAUNCH]
        with open(self.output, 'w') as out:
            self.proc = subprocess.Popen(program + launch_args + command,
                                         cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         env=run_env, start_new_session=True,
                                         preexec_fn=default_sigint)

    def text(self):
        return self.output.read_text()

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail('the launcher did not finish in %d s:\n%s' % (timeout, self.text()))

    def wait_for(self, pattern, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.text()):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.kill()
        pytest.fail('%r not seen in the output:\n%s' % (pattern, self.text()))

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in marked_pids(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def assert_no_orphans(self):
        time.sleep(0.5)
        left = marked_pids(self.marker)
        if left:
            self.kill()
        assert not left, 'processes left behind: %s' % left


def digest_of_checkpoint(prefix, epoch):
    """fit.params_digest of a saved checkpoint."""
    saved = mx.nd.load('%s-%04d.params' % (prefix, epoch))
    args = {k[4:]: v for k, v in saved.items() if k.startswith('arg:')}
    digest = hashlib.sha1()
    for name in sorted(args):
        digest.update(name.encode())
        digest.update(args[name].asnumpy().tobytes())
    return digest.hexdigest()


def worker_digests(text, epoch):
    return dict(re.findall(r'Epoch\[%d\] Worker (\d) of 2: parameters sha1 (\w+)' % epoch,
                           text))


def require(reason):
    """Skip the test for `reason` (something this machine lacks), but fail under CI
    (CI=true), whose .ci/run installs everything the tests need."""
    if os.environ.get('CI') == 'true':
        pytest.fail('%s; .ci/run installs it' % reason)
    pytest.skip(reason)


def horovod_missing():
    """Why Horovod cannot run here (None if it can): horovod.mxnet must import."""
    proc = subprocess.run([sys.executable, '-c', 'import horovod.mxnet'], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    return 'Horovod for MXNet is not installed (%s)' % (lines[-1] if lines else 'no output')


def process_pids(marker, **env):
    """Marked processes whose environment has every variable of `env` at that value."""
    found = []
    for pid in marked_pids(marker):
        try:
            seen = process_env(pid)
        except OSError:   # gone meanwhile
            continue
        if all(seen.get(name) == value for name, value in env.items()):
            found.append(pid)
    return found
