"""Starting and supervising a distributed MXNet job (tools/launch.py; what it adds to
MXNet's `dmlc_tracker` and to horovodrun: its docstring).

`run(args)` takes the parsed flags of tools/launch.py.
"""
import contextlib
import ctypes
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types

from .errors import UsageError

GRACE_SECONDS = 10.0   # between SIGTERM and SIGKILL when stopping a job
POLL_SECONDS = 0.1
# Put first on the PYTHONPATH of the job's processes started here: its sitecustomize.py
# makes a failing process exit at once instead of waiting at ps-lite's shutdown barrier.
WORKER_SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'worker_site')
PR_SET_PDEATHSIG = 1
# Set for the job's processes started over ssh: the startup hook ends such a process when
# its standard input, the ssh connection from the launcher, closes.
LIFELINE = 'MXRESNET_LIFELINE'
# looked up here, not in a forked child; None where there is no prctl (not Linux)
_PRCTL = getattr(ctypes.CDLL(None, use_errno=True), 'prctl', None)


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
    dopts.command = shell_words(args, args.launcher)
    if os.environ.get('DMLC_PS_ROOT_URI'):
        dopts.host_ip = os.environ['DMLC_PS_ROOT_URI']
    return dopts


def shell_words(args, launcher='local'):
    """The words of the command, each quoted for the shell that runs the joined command.

    The tracker joins them with spaces into a shell command line (local.py, tracker.py,
    ssh.py, mpi.py, sge.py), so a word with a space, a quote, `$` or `;` would be split or
    expanded: each is quoted with shlex.quote. ssh.py puts its command line inside '...' for
    the local shell, which hands it to the remote shell: there a second round turns each `'`
    into `'\\''`. The --p3 prefix (`DMLC_PS_VAN_TYPE=p3 ...`, put first by tools/launch.py)
    stays a shell assignment.
    """
    command = list(args.command)
    prefix = command.pop(0).split() if getattr(args, 'p3', False) else []
    words = prefix + [shlex.quote(word) for word in command]
    if launcher == 'ssh':
        words = [word.replace("'", "'\\''") for word in words]
    return words


def set_pdeathsig(parent):
    """In the forked child, before exec: SIGKILL when the launcher's thread that started it
    ends (the launcher killed by SIGKILL included), and at once if the launcher is gone."""
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


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

    def __init__(self, env_all, env_roles, lifeline=False):
        """lifeline: give each child a pipe as standard input, kept open until the job
        stops (a remote process's LIFELINE)."""
        self.env_all = env_all
        self.env_roles = env_roles
        self.lifeline = lifeline
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

    def call(self, cmd, env=None, name=None, **kwargs):
        """Start `cmd` in its own session and wait for it, in the calling tracker thread.

        Each child gets PR_SET_PDEATHSIG = SIGKILL, so it dies with the launcher even when
        the launcher is killed by SIGKILL. The signal comes when the *thread* that forked it
        ends, not the process: here that is the tracker's thread, which waits on the child
        right below, so it ends only after the child. It reaches the real process because
        bash (the tracker's shell for the scheduler and local processes, and the one given
        here to the ssh/mpi commands, which would get /bin/sh) execs the last simple command
        of `bash -c` instead of forking it (dash does not). A process the command forks
        itself (a shell script that does not `exec` the interpreter, say) is not covered.
        The job's processes (DMLC_ROLE set) get WORKER_SITE first on PYTHONPATH. `name`:
        what the launcher's messages call the process (default: its DMLC_ROLE).
        """
        with self.lock:
            if self.stopping:
                return -signal.SIGTERM
            env = dict(os.environ if env is None else env)
            role = env.get('DMLC_ROLE')
            env.update(self.role_env(role))
            if role:
                env['PYTHONPATH'] = os.pathsep.join(
                    [WORKER_SITE] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
            if kwargs.get('shell') and not kwargs.get('executable'):
                kwargs['executable'] = '/bin/bash'
            if self.lifeline and 'stdin' not in kwargs:
                kwargs['stdin'] = subprocess.PIPE
            parent = os.getpid()
            proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                                    preexec_fn=lambda: set_pdeathsig(parent), **kwargs)
            child = Child(proc, name or role, env.get('DMLC_TASK_ID'))
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

    def close_lifelines(self):
        """Close the children's standard input: over ssh, their remote processes end."""
        with self.lock:
            children = list(self.children)
        for child in children:
            if child.proc.stdin:
                try:
                    child.proc.stdin.close()
                except OSError:
                    pass

    def stop(self):
        """Stop every process group: SIGTERM, then SIGKILL for what is left after the grace
        (the remote processes of ssh clients first lose their lifeline)."""
        with self.lock:
            self.stopping = True
        self.close_lifelines()
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
    if args.launcher == 'ssh':
        # ssh.py gives its command line, quoted for the remote shell, to the local
        # scheduler too: it gets the command quoted once.
        tracker_submit = mods.tracker.submit
        scheduler_cmd = ' '.join(shell_words(args, 'local'))

        def submit(nworker, nserver, fun_submit, hostIP='auto', pscmd=None):
            return tracker_submit(nworker, nserver, fun_submit, hostIP=hostIP,
                                  pscmd=None if pscmd is None else scheduler_cmd)
        mods.tracker.submit = submit
    # ssh and mpi pass the environment on their command lines: add --env/--env-* there, and
    # for ssh the startup hook (at the same path on every host) with its lifeline.
    get_env = ssh.get_env
    remote = {LIFELINE: 'stdin', 'PYTHONPATH': WORKER_SITE + '${PYTHONPATH:+:$PYTHONPATH}'}
    ssh.get_env = lambda envs: get_env(dict(envs, **dict(
        remote, **supervisor.role_env(envs.get('DMLC_ROLE')))))
    get_mpi_env = mpi.get_mpi_env
    mpi.get_mpi_env = lambda envs: get_mpi_env(
        dict(envs, **supervisor.role_env(envs.get('DMLC_ROLE'))))


def submit_function(mods, launcher):
    if launcher == 'local':
        return mods.local.submit
    import importlib
    return importlib.import_module('dmlc_tracker.' + launcher).submit


# -- Horovod ----------------------------------------------------------------------------
# horovodrun 0.28.1 (`OPTIONS -- COMMAND`), with its failure report (a RuntimeError and its
# traceback) as one line and the exit status of the rank that failed first. Its options are
# parsed with a stand-in command: its parser would otherwise take the command's options
# for abbreviations of its own (--network for --network-interface: "ambiguous option").
HOROVODRUN = r"""import logging, re, sys
from horovod.runner import launch
split = sys.argv.index('--')
command, sys.argv = sys.argv[split + 1:], sys.argv[:split] + ['true']
args = launch.parse_args()
args.command = command
if args.log_level:
    logging.addLevelName(logging.NOTSET, 'TRACE')
    logging.basicConfig(level=logging.getLevelName(args.log_level))
try:
    launch._run(args)
except RuntimeError as err:
    found = re.search(r'Process name: (\S+)\s+Exit code: (\d+)', str(err))
    print('horovodrun: ' + ('rank %s exited with code %s' % found.groups() if found else
                            str(err).strip().splitlines()[0]), file=sys.stderr)
    sys.exit(int(found.group(2)) if found else 1)
"""


def read_hosts(path):
    """[(host, ssh port or None, slots or None)] of a hosts file: `host[:port] [slots=N]`
    a line, blank lines skipped."""
    hosts = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            words = line.split()
            if not words:
                continue
            host, _, port = words[0].partition(':')
            slots = None
            for word in words[1:]:
                key, _, value = word.partition('=')
                if key == 'slots' and value.isdigit() and int(value) > 0:
                    slots = int(value)
                else:
                    raise UsageError('-H/--hostfile %s, line %d: %r: expected host[:port] '
                                     '[slots=N]' % (path, number, line.strip()))
            if not host or (port and not port.isdigit()):
                raise UsageError('-H/--hostfile %s, line %d: %r: expected host[:port] '
                                 '[slots=N]' % (path, number, line.strip()))
            hosts.append((host, int(port) if port else None, slots))
    return hosts


def horovod_placement(hosts, num_workers, path):
    """(horovodrun's -H value, the ssh port or None): the hosts' slots= where every host
    has one, else the workers round robin over the hosts, as the ssh launcher places them."""
    ports = sorted({port or 22 for _, port, _ in hosts})
    if len(ports) > 1:
        raise UsageError('-H/--hostfile %s: ssh ports %s: horovodrun takes one port for all '
                         'hosts' % (path, ', '.join(map(str, ports))))
    if all(slots for _, _, slots in hosts):
        counts = [slots for _, _, slots in hosts]
        if sum(counts) < num_workers:
            raise UsageError('-H/--hostfile %s has %d slots for -n %d workers'
                             % (path, sum(counts), num_workers))
    else:
        counts = [len(range(i, num_workers, len(hosts))) for i in range(len(hosts))]
    placed = ['%s:%d' % (host, count) for (host, _, _), count in zip(hosts, counts) if count]
    return ','.join(placed), (ports[0] if any(port for _, port, _ in hosts) else None)


def horovod_command(args):
    """The horovodrun command line (Gloo) of --launcher horovod."""
    if args.hostfile:
        placed, port = horovod_placement(read_hosts(args.hostfile), args.num_workers,
                                         args.hostfile)
    else:
        placed, port = 'localhost:%d' % args.num_workers, None
    command = [sys.executable, '-c', HOROVODRUN, '--gloo', '--disable-cache', '-np',
               str(args.num_workers), '-H', placed]
    if port is not None:
        command += ['-p', str(port)]
    if os.environ.get('DMLC_INTERFACE'):
        command += ['--network-interface', os.environ['DMLC_INTERFACE']]
    return command + ['--'] + list(args.command)


# -- ssh --------------------------------------------------------------------------------
@contextlib.contextmanager
def ssh_config(path):
    """While the job runs, `ssh` on its PATH is the real one with `-F path` (for the
    tracker's ssh and rsync, and horovodrun's); nothing for None."""
    if not path:
        yield
        return
    real = shutil.which('ssh')
    if real is None:
        raise UsageError('--ssh-config %s: no ssh client on PATH' % path)
    with tempfile.TemporaryDirectory(prefix='mxresnet-ssh-') as directory:
        wrapper = os.path.join(directory, 'ssh')
        with open(wrapper, 'w') as f:
            f.write('#!/bin/sh\nexec %s -F %s "$@"\n'
                    % (shlex.quote(real), shlex.quote(os.path.abspath(path))))
        os.chmod(wrapper, 0o755)
        saved = os.environ['PATH']
        os.environ['PATH'] = directory + os.pathsep + saved
        try:
            yield
        finally:
            os.environ['PATH'] = saved


# -- the launcher -----------------------------------------------------------------------
def run(args):
    with ssh_config(getattr(args, 'ssh_config', None)):
        if args.launcher == 'horovod':
            command = horovod_command(args)
            # horovodrun hands its environment and standard input on to the ranks (over
            # ssh too): the startup hook and its lifeline reach them.
            supervisor = Supervisor(args.env_all, {}, lifeline=True)
            env = dict(os.environ, **dict(args.env_all, **args.env_roles['worker']))
            env[LIFELINE] = 'stdin'
            env['PYTHONPATH'] = os.pathsep.join(
                [WORKER_SITE] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
            logging.info('Launching %d Horovod ranks (%s): %s', args.num_workers,
                         ' '.join(command[3:command.index('-H') + 2]),
                         ' '.join(shell_words(args)))
            return supervise(supervisor, lambda: supervisor.check_call(
                command, env=env, name='horovodrun'))
        mods = import_tracker()
        dopts = dmlc_opts(args, mods.opts)
        supervisor = Supervisor(args.env_all, args.env_roles, lifeline=args.launcher == 'ssh')
        install_hooks(mods, args, supervisor)
        submit = submit_function(mods, args.launcher)
        logging.info('Launching %d workers and %d servers (%s): %s', args.num_workers,
                     args.num_servers, args.launcher, ' '.join(shell_words(args)))
        return supervise(supervisor, lambda: submit(dopts))


def supervise(supervisor, start):
    """Run start() (which starts the job's processes through `supervisor`) in a thread and
    watch the processes until they all exit, one fails, or the launcher is stopped;
    returns the launcher's exit status."""
    tracker_error = []

    def run_tracker():
        try:
            start()
        except Exception as err:  # pylint: disable=broad-except
            if not supervisor.stopping and not isinstance(err, subprocess.CalledProcessError):
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
                supervisor.close_lifelines()
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
