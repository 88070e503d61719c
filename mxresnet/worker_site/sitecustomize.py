"""Startup hook of the processes tools/launch.py starts on this machine (its directory is put
first on their PYTHONPATH): a failing process of a distributed job exits at once.

A worker that has created a `dist_*` kvstore and then fails (an uncaught exception, or
`sys.exit` with a non-zero code) would otherwise never exit: when the kvstore is freed (as
the frames holding it go, or at interpreter shutdown) its destructor waits at a ps-lite
barrier for every worker, and the others wait for the failed worker's gradients, so the
launcher never sees the failure. (MXNet's C call MXKVStoreSetBarrierBeforeExit turns that
barrier off, but needs every live kvstore's handle; os._exit needs nothing.) Here, only
when DMLC_ROLE is set (the tracker sets it), `sys.excepthook` prints the traceback as
usual, flushes stdout and stderr and ends the process with os._exit(1) (130 for a
KeyboardInterrupt), and `sys.exit` with a non-zero code called from the main thread ends
it with os._exit(code) (a string code is printed and the status is 1, as Python does).
Exit handlers (atexit) do not run then, and such an exit cannot be caught as SystemExit.
`raise SystemExit(3)`, and a script that replaces `sys.excepthook` itself, are not
covered. A status of 0 exits as usual, through the barrier.

A process started over ssh by the launcher (MXRESNET_LIFELINE=stdin, which the launcher
sets there, and for Horovod's ranks wherever they run) ends, with os._exit(129) as if hung up, as soon as its standard input
closes: that is the ssh connection from the launcher, which closes when the launcher stops
the job or dies, so no process of a failed job stays behind on the other hosts (without it,
a ps-lite worker or server whose peer died waits for ever).

Another `sitecustomize` further on sys.path (the user's, the system's) is imported first,
so it still runs; the hooks wrap what it leaves.
"""
import os
import sys


def _chain():
    """Import the next `sitecustomize` on sys.path, as site.py would have without this one."""
    import importlib.machinery
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec('sitecustomize', rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules['sitecustomize'] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules['sitecustomize'] = _self
        raise


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # pylint: disable=broad-except  (closed or None)
            pass


def _install():
    import threading
    previous_hook = sys.excepthook
    real_exit = sys.exit

    def excepthook(exc_type, exc_value, exc_traceback):
        try:
            previous_hook(exc_type, exc_value, exc_traceback)
        finally:
            _flush()
            os._exit(130 if issubclass(exc_type, KeyboardInterrupt) else 1)

    def exit(code=None):  # pylint: disable=redefined-builtin
        if code is not None and threading.current_thread() is threading.main_thread():
            if isinstance(code, int):
                status = code & 0xff
            else:
                print(code, file=sys.stderr)
                status = 1
            if status:
                _flush()
                os._exit(status)
        real_exit(code)

    exit.__doc__ = real_exit.__doc__
    sys.excepthook = excepthook
    sys.exit = exit


def _watch_stdin():
    """End the process when its standard input closes (a daemon thread)."""
    import threading

    def watch():
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        _flush()
        os._exit(129)
    threading.Thread(target=watch, name='lifeline', daemon=True).start()


_self = sys.modules.get(__name__)
try:
    _chain()
finally:
    if os.environ.get('DMLC_ROLE'):
        _install()
    if os.environ.get('MXRESNET_LIFELINE') == 'stdin':
        _watch_stdin()
