"""An OpenSSH server of the test's own, on loopback addresses only, with a client
configuration for it: two "hosts" (127.0.0.2 and 127.0.0.3) that are this machine.

Everything lives in one directory: host and client keys made for the test, sshd_config,
the client's ssh_config (its key, a known_hosts file holding the server's key, strict host
key checking) and sshd's log. `SshServer.start()` raises Unavailable when this machine has
no sshd or ssh; `stop()` ends the server.
"""
import getpass
import os
import shutil
import socket
import subprocess
import time

from jobs import marked_pids

HOSTS = ('127.0.0.2', '127.0.0.3')
SSHD = shutil.which('sshd') or '/usr/sbin/sshd'


class Unavailable(Exception):
    """No OpenSSH server or client here."""


def free_port(address):
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


class SshServer(object):
    def __init__(self, directory, hosts=HOSTS):
        self.dir = str(directory)
        self.hosts = hosts
        self.port = None
        self.proc = None
        self.config = os.path.join(self.dir, 'ssh_config')   # for the client: ssh -F

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, timeout=20):
        for tool in (SSHD, shutil.which('ssh'), shutil.which('ssh-keygen')):
            if not tool or not os.access(tool, os.X_OK):
                raise Unavailable('OpenSSH server and client needed (apt-get install '
                                  'openssh-server openssh-client)')
        os.makedirs(self.dir, exist_ok=True)
        for key in ('host_key', 'client_key'):
            subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'test',
                            '-f', self.path(key)], check=True, capture_output=True)
        shutil.copy(self.path('client_key.pub'), self.path('authorized_keys'))
        if os.geteuid() == 0:
            os.makedirs('/run/sshd', mode=0o755, exist_ok=True)   # sshd's privilege separation
        self.port = free_port(self.hosts[0])
        with open(self.path('sshd_config'), 'w') as f:
            f.write(''.join('ListenAddress %s:%d\n' % (host, self.port) for host in self.hosts))
            f.write('HostKey %s\nPidFile %s\nAuthorizedKeysFile %s\n'
                    'PasswordAuthentication no\nKbdInteractiveAuthentication no\n'
                    'PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n'
                    'StrictModes no\nUsePAM no\nUseDNS no\nX11Forwarding no\n'
                    'AllowTcpForwarding no\nMaxStartups 50\nMaxSessions 50\n'
                    'LogLevel ERROR\n'
                    % (self.path('host_key'), self.path('sshd.pid'),
                       self.path('authorized_keys')))
        with open(self.path('host_key.pub')) as f:
            host_key = ' '.join(f.read().split()[:2])
        with open(self.path('known_hosts'), 'w') as f:
            f.writelines('[%s]:%d %s\n' % (host, self.port, host_key) for host in self.hosts)
        with open(self.config, 'w') as f:
            f.write('Host %s\n  User %s\n  Port %d\n  IdentityFile %s\n  IdentitiesOnly yes\n'
                    '  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n'
                    '  LogLevel ERROR\n'
                    % (' '.join(self.hosts), getpass.getuser(), self.port,
                       self.path('client_key'), self.path('known_hosts')))
        self.log = open(self.path('sshd.log'), 'w')
        self.proc = subprocess.Popen([SSHD, '-D', '-e', '-f', self.path('sshd_config')],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while not all(self.accepts(host) for host in self.hosts):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                with open(self.path('sshd.log')) as f:
                    raise RuntimeError('sshd did not start: %s' % f.read())
            time.sleep(0.1)
        return self

    def accepts(self, host):
        try:
            with socket.create_connection((host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def ssh(self, host, command, timeout=30):
        """Run `command` on `host` as the launcher's ssh would."""
        return subprocess.run(['ssh', '-F', self.config, host, command], capture_output=True,
                              text=True, timeout=timeout)

    def hostfile(self, path):
        """A hosts file of the server's addresses, with its port (host:port a line)."""
        with open(path, 'w') as f:
            f.writelines('%s:%d\n' % (host, self.port) for host in self.hosts)
        return path

    def stop(self):
        """End the listener and every session process (their command lines name the
        server's configuration file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in marked_pids(self.path('sshd_config')):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        if getattr(self, 'log', None):
            self.log.close()
