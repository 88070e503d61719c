"""Training support for `train_resnet.py`, laid out as in MXNet's
`example/image-classification/common` (`fit.py`, `data.py`)."""


import os


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
    tools/quantize.py runs 1.4x (float32) to 1.5x (INT8) faster. MXNet reads the setting when its
    engine starts (at the first operator), so call this before any NDArray exists; an
    explicit MXNET_ENGINE_TYPE wins. Not with GPUs, nor for distributed workers, whose
    kvstore needs the threaded engine."""
    if not gpus and not kv_store.startswith('dist'):
        os.environ.setdefault('MXNET_ENGINE_TYPE', 'NaiveEngine')


class UsageError(Exception):
    """Bad input from the user: reported as one line, never as a traceback."""
