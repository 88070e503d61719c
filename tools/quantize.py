"""Fast CPU inference: the plain float32 graph, the MKLDNN-fused graph and INT8.

    python tools/quantize.py --model runs/resnet-20/model --epoch 4 --batch-sizes 1,64
    python tools/quantize.py --network resnet --num-layers 50 --image-shape 3,224,224 \\
        --num-classes 1000 --batch-sizes 1,64          # random weights: speed only

Three versions of one network, each bound for inference on the CPU:
- plain: the checkpoint's graph as saved, bound with MXNET_SUBGRAPH_BACKEND=NONE (MXNet
  1.9.1's CPU build otherwise applies the MKLDNN subgraph backend to every inference bind);
- fused: `sym.optimize_for('MKLDNN', args, aux, ctx=mx.cpu())`, MKLDNN's subgraph fusion
  (convolution + BatchNorm + ReLU + add), bound with NONE so that nothing else is applied;
- int8: `mxnet.contrib.quantization.quantize_model_mkldnn` (fusion, quantization, and the
  quantized graph's fusion), with `--calib-mode` calibration on `--calib-batches` batches of
  `--data-calib` (the bundled training .rec), read with the validation preprocessing.
Both optimised versions compute option-A shortcuts (resnet-v1) as 1x1 convolutions with fixed
weights (`mxresnet.graph.shortcuts_as_convolutions`; `--shortcut-conv 0` keeps the saved ops), and
BatchNorms that follow no convolution (pre-activation units, bn_data) as depthwise 1x1
convolutions that fuse with their ReLU and quantize (`mxresnet.graph.batchnorms_as_convolutions`;
`--batchnorm-conv 0` keeps them).
Images/s: forward passes of one batch held in memory, `--rounds` rounds that alternate the
three versions, the median of the rounds. With `--data-val` (default: the bundled validation
set for a 1-channel model) top-1 of each version over the whole .rec. `--save PREFIX` writes
the INT8 model as checkpoint 0 of PREFIX with the source's metadata (docs/inference.md), for
the CPU: score.py, predict.py and --teacher load it. `--profile PASSES` adds each
version's time per operator (MXNet's profiler) at the first batch size, and how fast each
version's convolutions run against a large reference convolution timed the same way: the
plain graph's time over its convolutions' time bounds what any fusion can gain.
"""
import logging
import os
import sys

if not __package__:  # run as a file: use the checkout's library
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import runtime  # noqa: E402
from mxresnet.errors import run_tool  # noqa: E402


def build_parser():
    from mxresnet import flags
    parser = flags.parser(__doc__.split('\n')[0])
    model = parser.add_argument_group('Model', 'a checkpoint, or a network with random weights')
    model.add_argument('--model', help='checkpoint prefix')
    model.add_argument('--epoch', type=int, help='checkpoint number')
    model.add_argument('--network', default='resnet', help='without --model: the network')
    model.add_argument('--num-layers', type=int, default=50, help='without --model: its depth')
    model.add_argument('--num-classes', type=int, default=1000,
                       help='without --model: classes')
    flags.add_preprocess_args(parser)
    parser.add_argument('--batch-sizes', default='1,64', help='batch sizes to time')
    parser.add_argument('--rounds', type=int, default=5, help='alternating timing rounds')
    parser.add_argument('--min-time', type=float, default=1.0,
                        help='seconds of forward passes per version per round')
    parser.add_argument('--calib-mode', choices=('naive', 'entropy', 'none'), default='naive',
                        help='INT8 calibration: min/max, KL-divergence thresholds, or none')
    parser.add_argument('--calib-batches', type=int, default=5, help='calibration batches')
    parser.add_argument('--calib-batch-size', type=int, default=64)
    parser.add_argument('--data-calib', help='calibration .rec; default: the bundled '
                        'training set for a checkpoint of the fashion-mnist preset, random data '
                        'without --model')
    parser.add_argument('--data-val', help='score every version on this .rec; default: '
                        'the bundled validation set for a checkpoint of the fashion-mnist preset')
    parser.add_argument('--quantized-dtype', choices=('auto', 'int8', 'uint8'), default='auto')
    parser.add_argument('--exclude', default='',
                        help='comma-separated layer names to keep in float32')
    parser.add_argument('--shortcut-conv', type=int, choices=(0, 1), default=1,
                        help='fused and int8: option-A shortcuts as 1x1 convolutions')
    parser.add_argument('--batchnorm-conv', type=int, choices=(0, 1), default=1,
                        help='fused and int8: BatchNorms that follow no convolution as '
                             'depthwise 1x1 convolutions')
    parser.add_argument('--profile', type=int, default=0, metavar='PASSES',
                        help="after timing, each version's time per operator over PASSES "
                             "forward passes at the first batch size (MXNet's profiler), and "
                             "its convolutions' GFLOP/s against a reference convolution")
    parser.add_argument('--save', help='write the INT8 model under this prefix')
    parser.add_argument('--data-nthreads', type=int, default=2)
    return parser


def main(argv=None):
    runtime.use_all_cores()  # before MXNet loads
    logging.getLogger().setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    runtime.use_naive_engine()

    def body():
        from mxresnet import quantization
        quantization.run(args, sys.stdout)
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
