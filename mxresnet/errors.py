"""Errors the commands report, and `run_tool`, the one wrapper every command's `main()` uses:
bad input is one line on stderr with a non-zero exit status, never a traceback."""
import os
import signal
import sys
import traceback


class UsageError(Exception):
    """Bad input from the user (flags, files, data): one line on stderr, exit status 2."""


class NonFinite(Exception):
    """A NaN or infinity in the loss or the parameters: training stops, exit status 3."""


def error_line(text, default='unknown error'):
    """The line of an error report (a traceback, a child process's output, an MXNetError's
    text) that says what failed: the last one that names an error or a failure."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if ('Error' in line or 'error:' in line or 'failed' in line) \
                and not line.startswith('File '):
            return line
    return lines[-1] if lines else default


def mxnet_error_summary(err):
    """The line of an MXNetError that says what failed (its first line is a bare
    'Traceback (most recent call last):' in MXNet 1.9.1)."""
    return error_line(err)


def _mxnet_error(err):
    """`err` if it is an MXNetError, or the one it re-raises (`simple_bind` wraps one in a
    plain RuntimeError), else None; MXNet is only looked at when it is loaded already."""
    base = sys.modules.get('mxnet.base')
    if base is None:
        return None
    for candidate in (err, err.__cause__, err.__context__):
        if isinstance(candidate, base.MXNetError):
            return candidate
    return None


def exit_now(status):
    """Flush stdout and stderr, then end the process with `status` at once (os._exit): no
    exit handlers, no destructors."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # pylint: disable=broad-except  (closed or None)
            pass
    os._exit(status)


def run_tool(body, prog=None):
    """Call body() and return its exit status (None counts as 0). A UsageError exits 2, an
    MXNetError 1, a NonFinite 3 and Ctrl-C 130 (a KeyboardInterrupt with a `signum`, such as
    training's SIGTERM, 128 + it), each as one line on stderr.

    In a worker of a distributed job (DMLC_ROLE=worker, as the tracker sets it, or a rank
    that horovodrun or mpirun started) a non-zero status, or any other exception (its
    traceback printed), ends the process at once."""
    from .horovod import launched
    prog = prog or os.path.basename(sys.argv[0]) or 'tool'
    worker = os.environ.get('DMLC_ROLE') == 'worker' or launched()
    try:
        status = body()
    except (Exception, KeyboardInterrupt) as err:   # pylint: disable=broad-except
        status = report(err, prog)
        if status is None:
            if not worker:
                raise
            traceback.print_exc()
            status = 1
        if worker:
            # Now, before this block ends: the traceback holds training's frames, and when it
            # goes the dist_* kvstore in them is freed, whose destructor waits at a ps-lite
            # barrier for every worker; the others wait for this one's gradients, so the
            # job would hang and the launcher never see the failure. os._exit skips that
            # whichever kvstores are alive (MXNet 1.9.1's Python has no
            # _set_barrier_before_exit, only the C call MXKVStoreSetBarrierBeforeExit).
            exit_now(status)
        return status
    if status and worker:
        exit_now(status)
    return status or 0


def report(err, prog):
    """Print the one line of an error run_tool knows and return its exit status; None for
    any other error."""
    if isinstance(err, UsageError):
        print('%s: error: %s' % (prog, err), file=sys.stderr)
        return 2
    if isinstance(err, NonFinite):
        print('%s: stopped: %s; the last good checkpoint is kept' % (prog, err),
              file=sys.stderr)
        return 3
    if isinstance(err, KeyboardInterrupt):
        signum = getattr(err, 'signum', signal.SIGINT)
        print('%s: %s' % (prog, 'interrupted' if signum == signal.SIGINT else
                          'stopped by %s' % signal.Signals(signum).name), file=sys.stderr)
        return 128 + signum
    if isinstance(err, RuntimeError):
        mxnet_err = _mxnet_error(err)
        if mxnet_err is not None:
            print('%s: error: MXNet failed: %s' % (prog, mxnet_error_summary(mxnet_err)),
                  file=sys.stderr)
            return 1
    return None
