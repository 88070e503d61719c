#!/usr/bin/env python
"""Train a ResNet-family network with mx.mod.Module over RecordIO data.

    python train_resnet.py                       # ResNet-20 on the bundled Fashion-MNIST subset
    python train_resnet.py --model resnet56      # a named model (python -m symbols --list)
    python train_resnet.py --network resnet --num-layers 56 --gpus 0,1 \\
        --data-train train.rec --data-val val.rec --image-shape 3,28,28 --num-classes 10

Flags follow MXNet's example fit.py/data.py; `--preset cifar10|imagenet|fashion-mnist`
sets the paper's recipe, and explicit flags override it (docs/training.md).
"""
import logging
import sys

from mxresnet import runtime
from mxresnet.errors import run_tool


def build_parser():
    from mxresnet import flags
    parser = flags.parser(__doc__.split('\n')[0])
    flags.add_fit_args(parser)
    flags.add_network_args(parser)
    flags.add_data_args(parser)
    flags.add_data_aug_args(parser)
    flags.add_recipe_args(parser)
    return parser


def run(argv=None, pick_engine=False):
    """Train as the command line `argv` says; returns the last epoch's record (with
    --test-io, the reading speed's). `pick_engine`: see mxresnet.fit.Trainer."""
    from mxresnet import fit
    return fit.train(build_parser().parse_args(argv), pick_engine)


def main(argv=None):
    runtime.use_all_cores()  # before MXNet loads
    # Progress goes to stdout; stderr is kept for errors.
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s', stream=sys.stdout)
    return run_tool(lambda: run(argv, pick_engine=True) and 0)


if __name__ == '__main__':
    sys.exit(main())
