"""Training and inference images/s of any network, depth, batch size and dtype, as a table.

    python tools/benchmark.py --network resnet --num-layers 20,56 --image-shape 3,28,28 \\
        --batch-sizes 32,128 --dtypes float32,float16 --mode both

Synthetic data (one random batch held on the device), so the numbers are compute only.
Training is Module's forward_backward + SGD update (multi-precision for float16) over
mxresnet.graph.training_graph, as train_resnet.py trains; inference is
a forward pass bound for inference (on the CPU MXNet 1.9.1 applies its MKLDNN subgraph fusion
to such binds by default). Devices: the CPU and, where a GPU exists, GPU 0 (`--gpus` picks
others, `--gpus none` none; `--no-cpu` leaves the CPU out). MXNet 1.9.1 has no float16 GEMM on
the CPU: those cells say so instead of a number. Each cell is the median of `--repeats` timed
runs of `--iters` steps after `--warmup` steps.
"""
import os
import sys

if not __package__:  # run as a file: use the checkout's library
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import runtime  # noqa: E402
from mxresnet.errors import run_tool  # noqa: E402


def build_parser():
    import symbols
    from mxresnet import flags
    parser = flags.parser(__doc__.split('\n')[0])
    parser.add_argument('--network', default='resnet',
                        help='one of %s' % ', '.join(symbols.list_networks()))
    parser.add_argument('--num-layers', default='50', help='depths, comma-separated')
    parser.add_argument('--image-shape', default='3,224,224', help='input shape "C,H,W"')
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--batch-sizes', default='32', help='batch sizes, comma-separated')
    parser.add_argument('--dtypes', '--dtype', default='float32',
                        help='float32 and/or float16, comma-separated')
    parser.add_argument('--mode', choices=('train', 'inference', 'both'), default='both')
    parser.add_argument('--gpus', default='auto',
                        help='GPUs to run on besides the CPU: "auto" (GPU 0 if any), '
                             '"none", or numbers such as "0,1" (one row each)')
    parser.add_argument('--no-cpu', action='store_true', help='leave the CPU out')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    parser.add_argument('--iters', type=int, default=5, help='timed steps per repeat')
    parser.add_argument('--repeats', type=int, default=3, help='timed repeats (median)')
    return parser


def main(argv=None):
    runtime.use_all_cores()  # before MXNet loads
    args = build_parser().parse_args(argv)

    def body():
        from mxresnet import benchmark
        benchmark.run(args, sys.stdout, pick_engine=True)
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
