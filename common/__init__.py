"""Training support for `train_resnet.py`, laid out as in MXNet's
`example/image-classification/common` (`fit.py`, `data.py`)."""


class UsageError(Exception):
    """Bad input from the user: reported as one line, never as a traceback."""
