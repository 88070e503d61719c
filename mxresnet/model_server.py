"""Multi Model Server on this machine's loopback interface, for the tests and the serving
benchmark: a config of its own (free ports on 127.0.0.1, its own temporary folder for the
pid file, sockets and unpacked archives), started in the foreground in a process group of
its own, stopped with the whole group (its Python workers outlive a killed frontend).

    with LocalModelServer('store/fmnist.mar', 'serve-work') as server:
        status, answer = server.predict(open('image.png', 'rb').read())
"""
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

from .errors import UsageError

HOST = '127.0.0.1'


def free_port(low=20000, high=32767):
    """A TCP port on HOST that nothing listens on now, at most 32767: MMS 1.1.11 reads a
    port as a Java short ("Invalid port number" above it)."""
    for port in random.sample(range(low, high + 1), 200):
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError('no free port from %d to %d on %s' % (low, high, HOST))


class LocalModelServer:
    """`multi-model-server` serving the archive NAME.mar as NAME with `workers` workers."""

    def __init__(self, archive, workdir, workers=1, timeout=180):
        self.archive = os.path.abspath(archive)
        self.name = os.path.basename(archive)[:-len('.mar')]
        self.workdir = os.path.abspath(workdir)
        self.workers = workers
        self.timeout = timeout
        self.port = self.management_port = None
        self.process = None
        self.log_path = os.path.join(self.workdir, 'server.log')

    def write_config(self):
        self.port, self.management_port = free_port(), free_port()
        os.makedirs(os.path.join(self.workdir, 'tmp'), exist_ok=True)
        path = os.path.join(self.workdir, 'config.properties')
        with open(path, 'w') as f:
            f.write('inference_address=http://%s:%d\n' % (HOST, self.port))
            f.write('management_address=http://%s:%d\n' % (HOST, self.management_port))
            f.write('model_store=%s\n' % os.path.dirname(self.archive))
            f.write('load_models=%s=%s\n' % (self.name, os.path.basename(self.archive)))
            f.write('default_workers_per_model=%d\n' % self.workers)
        return path

    def start(self):
        try:
            import mms  # noqa: F401
        except ImportError:
            raise UsageError('serving needs Multi Model Server: pip install -e ".[serving]" '
                             '(and Java)')
        config = self.write_config()
        tmp = os.path.join(self.workdir, 'tmp')
        env = dict(os.environ, TEMP=tmp, TMPDIR=tmp)
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(
                [sys.executable, '-m', 'mms.model_server', '--start', '--foreground',
                 '--mms-config', config], cwd=self.workdir, env=env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('Multi Model Server did not start (%s); the end of %s:\n%s'
                                   % ('it exited' if self.process.returncode is not None
                                      else 'timeout', self.log_path, self.log_tail()))
            time.sleep(0.5)
        return self

    def ready(self):
        """Whether the model has as many workers READY as asked."""
        try:
            status, answer = self.request('GET', '/models/' + self.name,
                                          port=self.management_port)
        except OSError:
            return False
        ready = [w for w in (answer.get('workers') or []) if w.get('status') == 'READY'] \
            if status == 200 and isinstance(answer, dict) else []
        return len(ready) >= self.workers

    def request(self, method, path, body=None, headers=None, port=None, timeout=60):
        """(HTTP status, the answer's JSON or text) of one request."""
        connection = http.client.HTTPConnection(HOST, port or self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            text = response.read().decode('utf-8', 'replace')
        finally:
            connection.close()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text

    def predict(self, body, content_type='application/octet-stream'):
        """(status, answer) of a POST of `body` to the model."""
        return self.request('POST', '/predictions/' + self.name, body,
                            {'Content-Type': content_type})

    def group_alive(self):
        """Whether any process of the server's group is left."""
        try:
            os.killpg(self.process.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop(self):
        """Stop the frontend and its workers: SIGTERM to the group, SIGKILL after 10 s."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while self.group_alive() and time.monotonic() < deadline:
                self.process.poll()   # reaps the frontend: a zombie still counts in the group
                time.sleep(0.1)
            if not self.group_alive():
                break
        self.process.wait()

    def log_tail(self, lines=30):
        with open(self.log_path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
