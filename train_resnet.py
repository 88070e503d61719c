#!/usr/bin/env python
"""Train a ResNet-family network with mx.mod.Module over RecordIO data.

    python train_resnet.py                       # ResNet-20 on the bundled Fashion-MNIST subset
    python train_resnet.py --network resnet --num-layers 56 --gpus 0,1 \\
        --data-train train.rec --data-val val.rec --image-shape 3,28,28 --num-classes 10

Flags follow MXNet's example fit.py/data.py; `--preset cifar10|imagenet|fashion-mnist`
sets the paper's recipe, and explicit flags override it.
"""
import argparse
import logging
import os
import sys

from common import UsageError, use_all_cores
use_all_cores()  # before MXNet loads

import mxnet as mx  # noqa: E402  pylint: disable=wrong-import-position

import symbols  # noqa: E402  pylint: disable=wrong-import-position
from common.cli import mxnet_error_summary  # noqa: E402
from common.data import add_data_args, add_data_aug_args, apply_presets
from common.fit import NonFinite, Trainer, add_fit_args, test_io
from symbols.blocks import parse_image_shape

# train_resnet.py flag -> network option name in `symbols`.
NETWORK_FLAGS = {
    'workspace': 'conv_workspace', 'bn_mom': 'bn_mom', 'memonger': 'memonger',
    'num_group': 'num_group', 'bottleneck_width': 'bottleneck_width',
    'shortcut': 'shortcut', 'act_type': 'act_type',
}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_fit_args(parser)
    add_data_args(parser)
    add_data_aug_args(parser)
    net = parser.add_argument_group('Network options', 'passed to symbols.get_symbol')
    net.add_argument('--num-group', type=int, help='ResNeXt cardinality')
    net.add_argument('--bottleneck-width', type=int, help='ResNeXt width per group (the d)')
    net.add_argument('--shortcut', choices=('A', 'B', 'C'), help='resnet-v1 shortcut option')
    net.add_argument('--act-type', choices=('relu', 'prelu', 'leaky', 'elu'),
                     help='activation')
    net.add_argument('--bn-mom', type=float, help='BatchNorm momentum')
    net.add_argument('--workspace', type=int, help='convolution workspace (MB)')
    net.add_argument('--memonger', type=int, default=0,
                     help='1: mirror (recompute) cheap layers to save memory')
    return parser


def network_options(args):
    """Options for symbols.get_symbol: dtype plus every network flag the user set."""
    options = {'dtype': args.dtype}
    for flag, option in NETWORK_FLAGS.items():
        value = getattr(args, flag)
        if value is not None and value is not False and value != 0:
            options[option] = bool(value) if flag == 'memonger' else value
    return options


def build_symbol(args, image_shape):
    try:
        sym = symbols.get_symbol(args.network, num_classes=args.num_classes,
                                 num_layers=args.num_layers,
                                 image_shape=','.join(map(str, image_shape)),
                                 **network_options(args))
    except ValueError as err:
        raise UsageError(str(err))
    if args.loss_scale != 1.0 or args.label_smoothing > 0:
        # Rebuild the softmax head: same name, with the loss scale and label smoothing.
        logits = sym.get_children()[0]
        sym = mx.sym.SoftmaxOutput(data=logits, name='softmax', grad_scale=args.loss_scale,
                                   smooth_alpha=args.label_smoothing)
    return sym


def prepare(argv=None):
    """Parse and check the command line; returns (args, image_shape)."""
    args = apply_presets(build_parser().parse_args(argv))
    if args.network not in symbols.list_networks():
        raise UsageError('--network %r: choose one of %s'
                         % (args.network, ', '.join(symbols.list_networks())))
    try:
        image_shape = parse_image_shape(args.image_shape)
    except ValueError as err:
        raise UsageError('--' + str(err).replace('_', '-', 1))
    if args.model_prefix is None:
        args.model_prefix = os.path.join('runs', '%s-%d' % (args.network, args.num_layers),
                                         'model')
    if args.log_file is None:  # no prefix (no checkpoints): no log either
        args.log_file = args.model_prefix + '-log.jsonl' if args.model_prefix else ''
    if args.memonger:
        os.environ['MXNET_BACKWARD_DO_MIRROR'] = '1'
    return args, image_shape


def run(argv=None, own_process=False):
    """Train as the command line says; `own_process`: this process is only for this run,
    so MXNet's engine may be chosen for it (see common.use_naive_engine)."""
    args, image_shape = prepare(argv)
    symbol = build_symbol(args, image_shape)
    trainer = Trainer(args, symbol, image_shape, pick_engine=own_process)
    if args.test_io:
        return test_io(trainer)
    trainer.run_record = trainer.run()
    return trainer


def main(argv=None):
    # Progress goes to stdout; stderr is kept for errors.
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s', stream=sys.stdout)
    prog = os.path.basename(sys.argv[0])
    try:
        run(argv, own_process=True)
    except UsageError as err:
        print('%s: error: %s' % (prog, err), file=sys.stderr)
        return 2
    except NonFinite as err:
        print('%s: stopped: %s; the last good checkpoint is kept' % (prog, err),
              file=sys.stderr)
        return 3
    except mx.base.MXNetError as err:
        print('%s: error: MXNet failed: %s' % (prog, mxnet_error_summary(err)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('%s: interrupted' % prog, file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
