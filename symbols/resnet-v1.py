"""`import_module('symbols.resnet-v1')`, as MXNet's example scripts load `--network resnet-v1`:
the same module as `symbols.resnet_v1` (a hyphen cannot appear in an import statement)."""
from .resnet_v1 import get_plain_symbol, get_symbol, residual_unit  # noqa: F401
