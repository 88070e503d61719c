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


class UsageError(Exception):
    """Bad input from the user: reported as one line, never as a traceback."""
