"""Runtime settings of a command's process: MXNet's CPU threads, its engine, devices, and
environment variables scoped to a block.

Commands apply them from `main()`, never at import, and leave `os.environ` as they found it.
This module imports MXNet only inside its functions: `use_all_cores` must run before MXNet
loads.
"""
import contextlib
import os
import sys
import warnings


@contextlib.contextmanager
def environment(**variables):
    """Set environment variables for a block (MXNet reads many of them when it loads, binds
    or starts its engine); None unsets one. The previous values come back afterwards."""
    old = {name: os.environ.get(name) for name in variables}
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def use_all_cores():
    """Load MXNet with one OpenMP thread per core this process may run on, shared out
    among the ranks of a Horovod job on this machine.

    MXNet reads OMP_NUM_THREADS once, when it loads; without it MXNet 1.9.1 assumes
    hyper-threading and runs its CPU operators on half the cores. Call this before anything
    imports MXNet (a later call changes nothing); an explicit OMP_NUM_THREADS wins. The
    variable is set only while MXNet loads."""
    if 'mxnet' in sys.modules or 'OMP_NUM_THREADS' in os.environ:
        return
    from .horovod import local_size
    threads = max(1, len(os.sched_getaffinity(0)) // local_size())
    with environment(OMP_NUM_THREADS=threads):
        import mxnet  # noqa: F401  pylint: disable=unused-import


def simd_channels(cpuinfo='/proc/cpuinfo'):
    """float32 lanes of this CPU's widest vector unit that MKLDNN uses: 16 with AVX-512,
    else 8 (AVX2; also the answer where `cpuinfo` cannot be read)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith('flags'):
                    return 16 if 'avx512f' in line.split() else 8
    except OSError:
        pass
    return 8


def default_group_channels(gpus):
    """--group-channels when not given: none on GPUs (cuDNN has grouped kernels of its own),
    else the CPU's SIMD width."""
    return 0 if gpus else simd_channels()


def use_naive_engine(gpus=(), kv_store='local'):
    """Run MXNet's operators on its synchronous engine when the process computes on the CPU
    alone, where it is faster than the threaded engine (docs/training.md). MXNet starts its
    engine once, at the first NDArray, so call this before any exists (a later call changes
    nothing); an explicit MXNET_ENGINE_TYPE wins. Not with GPUs, nor for distributed
    workers, whose kvstore (or Horovod's asynchronous operators) needs the threaded engine.

    The engine is started here, with stderr silenced for that moment: MXNet logs a line
    whenever the engine type is set, which would otherwise join any later one-line error.
    Returns whether it chose the engine."""
    if gpus or kv_store.startswith('dist') or kv_store == 'horovod' or \
            'MXNET_ENGINE_TYPE' in os.environ:
        return False
    import mxnet as mx
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with environment(MXNET_ENGINE_TYPE='NaiveEngine'):
            mx.nd.zeros((1,)).wait_to_read()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return True


def contexts(gpus):
    """The MXNet contexts of a list of GPU numbers; the CPU for none."""
    import mxnet as mx
    return [mx.gpu(g) for g in gpus] if gpus else [mx.cpu()]


# -- MXNet 1.9.1 beside a newer numpy (the GPU set-up, docs/gpu.md) --------------------------
# numpy 1.24 removed these aliases and mxnet 1.9.1 still uses some (np.bool at import).
NUMPY_ALIASES = (('bool', bool), ('int', int), ('float', float), ('complex', complex),
                 ('object', object), ('str', str))


def restore_numpy_aliases(numpy_module):
    """Put back the builtin aliases numpy>=1.24 dropped; returns the names it set."""
    restored = []
    for name, value in NUMPY_ALIASES:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try:
                getattr(numpy_module, name)
                continue
            except AttributeError:
                pass
        setattr(numpy_module, name, value)
        restored.append(name)
    return restored


def hide_broken_scipy():
    """mxnet imports scipy.sparse if it can, and skips it only on ImportError. A scipy built
    for numpy 2 (the GPU machine's) fails under the numpy 1.x mxnet needs with other errors
    (AttributeError: numpy has no attribute 'long'); make it look absent instead.
    Returns True when it was hidden."""
    if sys.modules.get('scipy', False) is None:
        return True
    try:
        import scipy.sparse  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        return False
    except Exception:  # pylint: disable=broad-except
        for name in [n for n in sys.modules if n == 'scipy' or n.startswith('scipy.')]:
            del sys.modules[name]
        sys.modules['scipy'] = None  # `import scipy...` now raises ImportError
        return True
    return False
