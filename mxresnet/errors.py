"""Errors the commands report, and `run_tool`, the one wrapper every command's `main()` uses:
bad input is one line on stderr with a non-zero exit status, never a traceback."""
import os
import signal
import sys


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


def run_tool(body, prog=None):
    """Call body() and return its exit status (None counts as 0). A UsageError exits 2, an
    MXNetError 1, a NonFinite 3 and Ctrl-C 130 (a KeyboardInterrupt with a `signum`, such as
    training's SIGTERM, 128 + it), each as one line on stderr."""
    prog = prog or os.path.basename(sys.argv[0]) or 'tool'
    try:
        status = body()
    except UsageError as err:
        print('%s: error: %s' % (prog, err), file=sys.stderr)
        return 2
    except NonFinite as err:
        print('%s: stopped: %s; the last good checkpoint is kept' % (prog, err),
              file=sys.stderr)
        return 3
    except KeyboardInterrupt as err:
        signum = getattr(err, 'signum', signal.SIGINT)
        print('%s: %s' % (prog, 'interrupted' if signum == signal.SIGINT else
                          'stopped by %s' % signal.Signals(signum).name), file=sys.stderr)
        return 128 + signum
    except RuntimeError as err:
        mxnet_err = _mxnet_error(err)
        if mxnet_err is None:
            raise
        print('%s: error: MXNet failed: %s' % (prog, mxnet_error_summary(mxnet_err)),
              file=sys.stderr)
        return 1
    return status or 0
