#!/usr/bin/env python
"""Launch a distributed MXNet job: a scheduler, servers and workers (ps-lite).

    python tools/launch.py -n 2 -s 1 --launcher local \\
        python train_resnet.py --kv-store dist_sync --batch-size 128
    python tools/launch.py -n 4 -s 2 -H hosts --launcher ssh --sync-dst-dir /tmp/job \\
        python train_resnet.py --kv-store dist_sync

The interface is that of MXNet 1.9.1's `python -m mxnet.tools.launch`, and the work is
done by the `dmlc_tracker` package shipped in the mxnet wheel, unchanged, with these
fixes and additions around it:

- Python 3.9+: the tracker calls `threading.Thread.isAlive`, removed in 3.9; the alias
  is restored before the tracker is imported.
- Supervision: every process the tracker starts on this machine (the scheduler, and the
  workers and servers with `--launcher local`; the ssh/mpi clients otherwise) runs in
  its own process group. When one exits non-zero, or on Ctrl-C or SIGTERM, the launcher
  stops every group (SIGTERM, then SIGKILL after 10 s) and exits non-zero. (The wheel's
  launcher keeps waiting on the scheduler forever when a worker dies, and its local
  tracker leaves the processes running on Ctrl-C.)
- `--env`, `--env-server` and `--env-worker` take effect (the wheel's tracker has no
  such options and appended them to the training command instead), and options of the
  command that the tracker also knows, such as `--log-file`, reach the command.
- `--launcher local` runs over loopback: scheduler at 127.0.0.1, and DMLC_NODE_HOST
  defaults to 127.0.0.1.
- DMLC_PS_ROOT_PORT in the environment sets the first port tried for the scheduler
  (default 9091, the next free one is taken) and DMLC_PS_ROOT_URI the scheduler's
  address as the other machines see it (default: this machine's IP).
"""
import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import types

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import flags  # noqa: E402
from mxresnet.errors import UsageError, run_tool  # noqa: E402

LAUNCHERS = ('local', 'ssh', 'mpi', 'sge', 'yarn')
GRACE_SECONDS = 10.0   # between SIGTERM and SIGKILL when stopping a job
POLL_SECONDS = 0.1


class Stop(Exception):
    """SIGTERM or SIGHUP received by the launcher."""

    def __init__(self, signum):
        super(Stop, self).__init__(signum)
        self.signum = signum


def import_tracker():
    """The wheel's dmlc_tracker package, with the Python 3.9+ fix applied first."""
    if not hasattr(threading.Thread, 'isAlive'):
        threading.Thread.isAlive = threading.Thread.is_alive
    try:
        import dmlc_tracker  # noqa: F401  (the copy installed beside mxnet)
    except ImportError:
        # MXNet's source tree keeps it in 3rdparty/dmlc-core/tracker, as its launch.py knows.
        try:
            import importlib.util
            spec = importlib.util.find_spec('mxnet')
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            raise UsageError('cannot find the dmlc_tracker package: install mxnet 1.9.1 '
                              '(pip install mxnet==1.9.1), which ships it')
        sys.path.append(os.path.join(os.path.dirname(spec.origin), '..', '3rdparty',
                                     'dmlc-core', 'tracker'))
        try:
            import dmlc_tracker  # noqa: F401,F811
        except ImportError:
            raise UsageError('cannot find the dmlc_tracker package beside mxnet (%s)'
                              % os.path.dirname(spec.origin))
    from dmlc_tracker import local, opts, tracker
    return types.SimpleNamespace(local=local, opts=opts, tracker=tracker)


# -- command line ----------------------------------------------------------------------
def build_parser():
    """MXNet 1.9.1 launch.py's options, with its defaults."""
    parser = flags.ArgumentParser(description='Launch a distributed job', prog='launch.py')
    parser.add_argument('-n', '--num-workers', required=True, type=int,
                        help='number of worker nodes to be launched')
    parser.add_argument('-s', '--num-servers', type=int,
                        help='number of server nodes to be launched, '
                             'in default it is equal to NUM_WORKERS')
    parser.add_argument('-H', '--hostfile', type=str,
                        help='the hostfile of slave machines which will run the job. '
                             'Required for ssh and mpi launcher')
    parser.add_argument('--sync-dst-dir', type=str,
                        help='if specificed, it will sync the current directory into slave '
                             'machines\'s SYNC_DST_DIR if ssh launcher is used')
    parser.add_argument('--launcher', type=str, default='ssh', choices=LAUNCHERS,
                        help='the launcher to use')
    parser.add_argument('--env-server', action='append', default=[],
                        help='Given a pair of environment_variable:value, sets this value of '
                             'environment variable for the server processes. Example '
                             'OMP_NUM_THREADS:3')
    parser.add_argument('--env-worker', action='append', default=[],
                        help='Given a pair of environment_variable:value, sets this value of '
                             'environment variable for the worker processes. Example '
                             'OMP_NUM_THREADS:3')
    parser.add_argument('--env', action='append', default=[],
                        help='given a environment variable (or VAR:value), passes its value '
                             'from current system to all workers and servers. Not necessary '
                             'when launcher is local as in that case all environment variables '
                             'which are set are copied.')
    parser.add_argument('--p3', action='store_true', default=False,
                        help='Use P3 distributed training')
    # Everything from the first word that is not an option of the launcher is the command,
    # so options of the command (-n, --env, ...) stay with it.
    parser.add_argument('command', nargs=argparse.REMAINDER,
                        help='command for launching the program')
    return parser


def parse_env(entries, flag):
    """['VAR:value', 'VAR'] -> {'VAR': 'value', 'VAR': os.environ['VAR']}."""
    env = {}
    for entry in entries:
        name, sep, value = entry.partition(':')
        if not sep and '=' in entry:
            name, _, value = entry.partition('=')
            sep = '='
        if not name or not name.replace('_', 'a').isalnum() or name[0].isdigit():
            raise UsageError('%s %r: expected VAR or VAR:value' % (flag, entry))
        if not sep:
            if name not in os.environ:
                raise UsageError('%s %s: the variable is not set here' % (flag, name))
            value = os.environ[name]
        env[name] = value
    return env


def parse_args(argv):
    args = build_parser().parse_args(argv)
    if args.command and args.command[0] == '--':
        args.command = args.command[1:]
    if not args.command:
        raise UsageError('no command given: e.g. launch.py -n 2 --launcher local '
                          'python train_resnet.py --kv-store dist_sync')
    if args.num_workers < 1:
        raise UsageError('-n/--num-workers %d: at least one worker is needed'
                          % args.num_workers)
    if args.num_servers is None:
        args.num_servers = args.num_workers
    if args.num_servers < 1:
        raise UsageError('-s/--num-servers %d: the distributed kvstore needs at least one '
                          'server' % args.num_servers)
    if args.launcher in ('ssh', 'mpi'):
        if not args.hostfile:
            raise UsageError('--launcher %s needs -H/--hostfile (one host per line); '
                              'use --launcher local to run on this machine' % args.launcher)
        if not os.path.isfile(args.hostfile):
            raise UsageError('-H/--hostfile %s: no such file' % args.hostfile)
        with open(args.hostfile) as f:
            if not any(line.strip() for line in f):
                raise UsageError('-H/--hostfile %s: no host in the file' % args.hostfile)
    elif args.hostfile:
        raise UsageError('-H/--hostfile is for --launcher ssh or mpi, not %s'
                          % args.launcher)
    if (args.env_server or args.env_worker) and args.launcher in ('sge', 'yarn'):
        raise UsageError('--env-server/--env-worker are supported with --launcher '
                          'local, ssh and mpi')
    args.env_all = parse_env(args.env, '--env')
    args.env_roles = {'server': parse_env(args.env_server, '--env-server'),
                      'worker': parse_env(args.env_worker, '--env-worker')}
    if args.p3:
        args.command = ['DMLC_PS_VAN_TYPE=p3 DMLC_PS_WATER_MARK=10'] + args.command
    return args


def dmlc_opts(args, tracker_opts):
    """The tracker's options for `args`, as MXNet's launch.py builds them."""
    argv = ['--num-workers', str(args.num_workers), '--num-servers', str(args.num_servers),
            '--cluster', args.launcher, '--host-file', str(args.hostfile),
            '--sync-dst-dir', str(args.sync_dst_dir)]
    if args.launcher == 'yarn':
        for entry in args.env:   # yarn's own use of --env: for its ApplicationMaster
            argv += ['--env', entry]
    # The command is set afterwards: parsed with the tracker's options, its own options
    # (--log-file, --env, ...) would be taken by the tracker.
    dopts = tracker_opts.get_opts(argv + ['command'])
    dopts.command = list(args.command)
    if os.environ.get('DMLC_PS_ROOT_URI'):
        dopts.host_ip = os.environ['DMLC_PS_ROOT_URI']
    return dopts


# -- supervision -----------------------------------------------------------------------
class Child(object):
    def __init__(self, proc, role, task):
        self.proc, self.role, self.task = proc, role, task

    def describe(self):
        name = self.role or 'process'
        if self.task is not None and self.role in ('worker', 'server'):
            name += ' (task %s)' % self.task
        return '%s pid %d' % (name, self.proc.pid)


class Supervisor(object):
    """Starts the tracker's processes in their own process groups and stops them together.

    It stands in for the `subprocess` module inside the tracker's modules: their
    `subprocess.call`/`check_call` come here, everything else goes to the real module.
    """

    def __init__(self, env_all, env_roles):
        self.env_all = env_all
        self.env_roles = env_roles
        self.children = []
        self.lock = threading.Lock()
        self.stopping = False

    def role_env(self, role):
        env = dict(self.env_all)
        env.update(self.env_roles.get(role, {}))
        return env

    # the subprocess interface the tracker uses
    def __getattr__(self, name):
        return getattr(subprocess, name)

    def call(self, cmd, env=None, **kwargs):
        with self.lock:
            if self.stopping:
                return -signal.SIGTERM
            env = dict(os.environ if env is None else env)
            role = env.get('DMLC_ROLE')
            env.update(self.role_env(role))
            proc = subprocess.Popen(cmd, env=env, start_new_session=True, **kwargs)
            child = Child(proc, role, env.get('DMLC_TASK_ID'))
            self.children.append(child)
        logging.debug('started %s: %s', child.describe(), cmd)
        return proc.wait()

    def check_call(self, cmd, **kwargs):
        ret = self.call(cmd, **kwargs)
        if ret:
            raise subprocess.CalledProcessError(ret, cmd)
        return 0

    # the launcher's side
    def failed(self):
        """The first child that exited non-zero, or None."""
        with self.lock:
            children = list(self.children)
        for child in children:
            code = child.proc.poll()
            if code:
                return child
        return None

    def running(self):
        with self.lock:
            return [c for c in self.children if c.proc.poll() is None]

    def signal_all(self, signum):
        with self.lock:
            children = list(self.children)
        for child in children:
            try:
                os.killpg(child.proc.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self):
        """Stop every process group: SIGTERM, then SIGKILL for what is left after the grace."""
        with self.lock:
            self.stopping = True
        self.signal_all(signal.SIGTERM)
        deadline = time.time() + GRACE_SECONDS
        while self.running() and time.time() < deadline:
            time.sleep(POLL_SECONDS)
        self.signal_all(signal.SIGKILL)   # also any process left in a group after its leader
        for child in list(self.children):
            try:
                child.proc.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                logging.error('%s did not stop', child.describe())


def exit_status(code):
    """A child's return code as a launcher exit status (non-zero)."""
    if code < 0:
        return 128 - code
    return code if 0 < code < 256 else 1


def install_hooks(mods, args, supervisor):
    """Route the tracker's process starts through `supervisor`, and configure it."""
    from dmlc_tracker import ssh, mpi
    for module in (mods.tracker, mods.local, ssh, mpi):
        module.subprocess = supervisor
    port = os.environ.get('DMLC_PS_ROOT_PORT')
    if port:
        try:
            port = int(port)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise UsageError('DMLC_PS_ROOT_PORT=%s: expected a port number' % port)
        # PSTracker(hostIP, cmd, port=9091, port_end=9999, envs=None): the first port tried
        mods.tracker.PSTracker.__init__.__defaults__ = (port, min(max(port + 1000, 9999), 65536),
                                                        None)
    if args.launcher == 'local':
        host = os.environ.get('DMLC_PS_ROOT_URI') or '127.0.0.1'
        mods.tracker.get_host_ip = lambda host_ip=None: host
        os.environ.setdefault('DMLC_NODE_HOST', '127.0.0.1')
        # The workers share this machine's cores: without this each would start one OpenMP
        # thread per core (train_resnet.py's default) and they would oversubscribe them.
        os.environ.setdefault('OMP_NUM_THREADS',
                              str(max(1, len(os.sched_getaffinity(0)) // args.num_workers)))
    # ssh and mpi pass the environment on their command lines: add --env/--env-* there.
    get_env = ssh.get_env
    ssh.get_env = lambda envs: get_env(dict(envs, **supervisor.role_env(envs.get('DMLC_ROLE'))))
    get_mpi_env = mpi.get_mpi_env
    mpi.get_mpi_env = lambda envs: get_mpi_env(
        dict(envs, **supervisor.role_env(envs.get('DMLC_ROLE'))))


def submit_function(mods, launcher):
    if launcher == 'local':
        return mods.local.submit
    import importlib
    return importlib.import_module('dmlc_tracker.' + launcher).submit


def run(args):
    mods = import_tracker()
    dopts = dmlc_opts(args, mods.opts)
    supervisor = Supervisor(args.env_all, args.env_roles)
    install_hooks(mods, args, supervisor)
    submit = submit_function(mods, args.launcher)
    tracker_error = []

    def run_tracker():
        try:
            submit(dopts)
        except Exception as err:  # pylint: disable=broad-except
            if not supervisor.stopping:
                tracker_error.append(err)

    def thread_hook(hook_args):
        # A failed process also raises in the tracker's thread that waited on it; the
        # launcher reports the failure itself, without that thread's traceback.
        if isinstance(hook_args.exc_value, (subprocess.CalledProcessError, RuntimeError)):
            logging.debug('tracker thread: %s', hook_args.exc_value)
        else:
            sys.__excepthook__(hook_args.exc_type, hook_args.exc_value,
                               hook_args.exc_traceback)
    threading.excepthook = thread_hook

    def on_signal(signum, frame):
        raise Stop(signum)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    logging.info('Launching %d workers and %d servers (%s): %s', args.num_workers,
                 args.num_servers, args.launcher, ' '.join(args.command))
    thread = threading.Thread(target=run_tracker, name='tracker', daemon=True)
    try:
        thread.start()
        while True:
            failed = supervisor.failed()
            if failed is not None:
                code = failed.proc.returncode
                logging.error('%s exited with %s: stopping the job', failed.describe(),
                              'signal %d' % -code if code < 0 else 'code %d' % code)
                supervisor.stop()
                return exit_status(code)
            if tracker_error:
                logging.error('the tracker failed: %s', tracker_error[0])
                supervisor.stop()
                return 1
            if not thread.is_alive() and not supervisor.running():
                supervisor.signal_all(signal.SIGKILL)  # nothing may outlive the job
                logging.info('All %d processes exited normally', len(supervisor.children))
                return 0
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        logging.warning('Interrupted: stopping the job')
        supervisor.stop()
        return 130
    except Stop as stop:
        logging.warning('Signal %d: stopping the job', stop.signum)
        supervisor.stop()
        return 128 + stop.signum


def main(argv=None):
    logging.basicConfig(format='%(asctime)s %(levelname)s %(message)s', level=logging.INFO)
    return run_tool(lambda: run(parse_args(sys.argv[1:] if argv is None else argv)),
                    prog='launch.py')


if __name__ == '__main__':
    sys.exit(main())
