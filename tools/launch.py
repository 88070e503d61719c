#!/usr/bin/env python
"""Launch a distributed MXNet job: a scheduler, servers and workers (ps-lite), or the ranks
of a Horovod job (horovodrun over Gloo).

    python tools/launch.py -n 2 -s 1 --launcher local \\
        python train_resnet.py --kv-store dist_sync --batch-size 128
    python tools/launch.py -n 4 -s 2 -H hosts --launcher ssh --sync-dst-dir /tmp/job \\
        python train_resnet.py --kv-store dist_sync
    python tools/launch.py -n 4 -H hosts --launcher horovod \\
        python train_resnet.py --kv-store horovod

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
- A failing worker exits. Once a `dist_*` kvstore exists, a worker that raises or calls
  `sys.exit(3)` used to hang for ever: freeing the kvstore (when the frames holding it go,
  or at interpreter shutdown) waits at a ps-lite barrier for all the workers, which wait
  for its gradients. Such a process now ends with os._exit: in train_resnet.py and the
  tools, `run_tool` does it for a worker (DMLC_ROLE=worker) with a non-zero status; in any
  Python command, a startup hook the launcher puts first on the PYTHONPATH of the
  processes it starts here (mxresnet/worker_site/sitecustomize.py, which imports the next
  sitecustomize on the path too) does it after an uncaught exception (traceback printed,
  status 1) and a non-zero `sys.exit` (not `raise SystemExit`). os._exit rather than
  turning the barrier off (MXNet 1.9.1's Python has no `_set_barrier_before_exit`, only
  the C call MXKVStoreSetBarrierBeforeExit on a kvstore's handle): it needs no handle.
- Nothing outlives the launcher, even killed by SIGKILL: each process it starts has
  PR_SET_PDEATHSIG = SIGKILL (sent when the launcher's thread that started it, which
  waits on it, ends). Shell commands run under bash, which execs the command instead of
  forking it (/bin/sh, dash, would stay in between and take the signal alone).
- The command's words reach the processes whole: each is quoted for the shell the
  tracker joins them into (twice for ssh: local shell, then remote), so an argument with
  a space, a quote, `$` or `;` is passed as it is.
- `--env`, `--env-server` and `--env-worker` take effect (the wheel's tracker has no
  such options and appended them to the training command instead), and options of the
  command that the tracker also knows, such as `--log-file`, reach the command.
- `--launcher local` runs over loopback: scheduler at 127.0.0.1, and DMLC_NODE_HOST
  defaults to 127.0.0.1.
- DMLC_PS_ROOT_PORT in the environment sets the first port tried for the scheduler
  (default 9091, the next free one is taken) and DMLC_PS_ROOT_URI the scheduler's
  address as the other machines see it (default: this machine's IP).
- `--launcher ssh`: the processes on the other hosts end when the launcher stops the job
  or dies. Each ssh client's standard input is a pipe the launcher holds, and the startup
  hook (exported to the remote command on PYTHONPATH, so at the same path on every host)
  ends the remote process when that input closes (MXRESNET_LIFELINE).
- `--ssh-config FILE`: every ssh the job starts (the tracker's, rsync's for
  --sync-dst-dir, horovodrun's) runs as `ssh -F FILE`: keys, known hosts, users and ports
  for the job without touching ~/.ssh/config.
- `--launcher horovod`: runs horovodrun (Gloo, no MPI needed) under the same supervision:
  -n ranks, on this machine or round robin over the -H hosts (their `slots=N` when every
  line has one; one ssh port for all), `--env`/`--env-worker` for every rank,
  DMLC_INTERFACE as its --network-interface. A failing rank ends the job with that rank's
  exit status and one line (`horovodrun: rank 1 exited with code 2`), not horovodrun's
  traceback.
"""
import argparse
import logging
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import flags  # noqa: E402
from mxresnet.errors import UsageError, run_tool  # noqa: E402
from mxresnet.launch import run  # noqa: E402

LAUNCHERS = ('local', 'ssh', 'mpi', 'sge', 'yarn', 'horovod')


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
    parser.add_argument('--ssh-config', metavar='FILE',
                        help='ssh client configuration for the job\'s ssh connections '
                             '(--launcher ssh and horovod): every ssh it starts runs as '
                             'ssh -F FILE')
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


def check_horovod_args(args):
    """--launcher horovod: the options that have no meaning there are refused."""
    refused = [(args.num_servers is not None, '-s/--num-servers: Horovod has no servers'),
               (args.env_server, '--env-server: Horovod has no servers'),
               (args.sync_dst_dir, '--sync-dst-dir: horovodrun starts each rank in this '
                                   'directory\'s path on its host; copy the code there'),
               (args.p3, '--p3: P3 is for the parameter server')]
    for given, message in refused:
        if given:
            raise UsageError('%s (--launcher horovod)' % message)
    args.num_servers = 0


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
    if args.launcher == 'horovod':
        check_horovod_args(args)
    elif args.num_servers is None:
        args.num_servers = args.num_workers
    if args.launcher != 'horovod' and args.num_servers < 1:
        raise UsageError('-s/--num-servers %d: the distributed kvstore needs at least one '
                          'server' % args.num_servers)
    if args.ssh_config:
        if args.launcher not in ('ssh', 'horovod'):
            raise UsageError('--ssh-config is for --launcher ssh or horovod, not %s'
                             % args.launcher)
        if not os.path.isfile(args.ssh_config):
            raise UsageError('--ssh-config %s: no such file' % args.ssh_config)
    if args.launcher in ('ssh', 'mpi') or (args.launcher == 'horovod' and args.hostfile):
        if not args.hostfile:
            raise UsageError('--launcher %s needs -H/--hostfile (one host per line); '
                              'use --launcher local to run on this machine' % args.launcher)
        if not os.path.isfile(args.hostfile):
            raise UsageError('-H/--hostfile %s: no such file' % args.hostfile)
        with open(args.hostfile) as f:
            if not any(line.strip() for line in f):
                raise UsageError('-H/--hostfile %s: no host in the file' % args.hostfile)
    elif args.hostfile:
        raise UsageError('-H/--hostfile is for --launcher ssh, mpi or horovod, not %s'
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


def main(argv=None):
    logging.basicConfig(format='%(asctime)s %(levelname)s %(message)s', level=logging.INFO)
    return run_tool(lambda: run(parse_args(sys.argv[1:] if argv is None else argv)),
                    prog='launch.py')


if __name__ == '__main__':
    sys.exit(main())
