"""The command-line contract of train_resnet.py and the tools: bad input is one line on
stderr with a non-zero exit status, never a traceback."""
import os
import sys

import mxnet as mx

from . import UsageError


def mxnet_error_summary(err):
    """The line of an MXNetError that says what failed (its first line is a bare
    'Traceback (most recent call last):' in MXNet 1.9.1)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if 'Error' in line or 'Check failed' in line:
            return line
    return lines[-1] if lines else 'unknown error'


def run_tool(body, prog=None):
    """Call body(); a UsageError exits 2 and an MXNetError exits 1, each as one line on
    stderr (also an MXNetError that `simple_bind` re-raises as a RuntimeError). Returns
    body's exit status (None counts as 0)."""
    prog = prog or os.path.basename(sys.argv[0])
    try:
        status = body()
    except UsageError as err:
        print('%s: error: %s' % (prog, err), file=sys.stderr)
        return 2
    except (mx.base.MXNetError, RuntimeError) as err:
        if not isinstance(err, mx.base.MXNetError):
            err = err.__cause__ or err.__context__
            if not isinstance(err, mx.base.MXNetError):
                raise
        print('%s: error: MXNet failed: %s' % (prog, mxnet_error_summary(err)), file=sys.stderr)
        return 1
    return status or 0
