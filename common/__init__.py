"""Training support for `train_resnet.py`, laid out as in MXNet's
`example/image-classification/common` (`fit.py`, `data.py`)."""


import os
import sys


def use_all_cores():
    """Give MXNet's CPU operators every core this process may run on.

    Without OMP_NUM_THREADS, MXNet 1.9.1 runs them on fewer OpenMP threads than there are
    cores (ResNet-20 trains 1.7x faster on 2 cores with it set). It must be set before
    `import mxnet`; an explicit OMP_NUM_THREADS wins.
    """
    os.environ.setdefault('OMP_NUM_THREADS', str(len(os.sched_getaffinity(0))))


def use_naive_engine(gpus='', kv_store='local'):
    """Run MXNet's operators on its synchronous engine when the process computes on the CPU
    alone. On the 2-core machines measured in the README it is faster than the threaded
    engine: ResNet-20 trains about 1.5x faster, and ResNet-50 inference at batch 1 in
    tools/quantize.py runs 1.4x (float32) to 1.5x (INT8) faster. MXNet chooses its engine
    once, at the first NDArray, so call this before any exists (a later call changes
    nothing); an explicit MXNET_ENGINE_TYPE wins. Not with GPUs, nor for distributed
    workers, whose kvstore needs the threaded engine.

    The engine is started here, with stderr silenced for that moment: MXNet logs a line
    whenever the engine type is set, which would otherwise join any later one-line error."""
    if gpus or kv_store.startswith('dist') or 'MXNET_ENGINE_TYPE' in os.environ:
        return
    os.environ['MXNET_ENGINE_TYPE'] = 'NaiveEngine'
    import mxnet as mx
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        mx.nd.zeros((1,)).wait_to_read()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class UsageError(Exception):
    """Bad input from the user: reported as one line, never as a traceback."""
