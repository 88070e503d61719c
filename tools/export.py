"""Export a checkpoint for inference elsewhere: ONNX, or Gluon's SymbolBlock files, each with
its preprocessing (input shape, mean, std, class names) in a `-preprocess.json` beside it.

    python tools/export.py --model runs/resnet-20/model --epoch 4 --format onnx -o resnet-20.onnx
    python tools/export.py --model runs/resnet-20/model --epoch 4 --format gluon -o gluon/r20

What each format holds: mxresnet/export.py.
"""
import os
import sys

if not __package__:  # run as a file: use the checkout's library
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import runtime  # noqa: E402
from mxresnet.errors import UsageError, run_tool  # noqa: E402


def build_parser():
    from mxresnet import flags
    parser = flags.parser(__doc__.split('\n')[0])
    flags.add_checkpoint_args(parser)
    parser.add_argument('--format', choices=('onnx', 'gluon'), default='onnx')
    parser.add_argument('-o', '--output', help='the .onnx file, or the Gluon prefix; '
                        'default: PREFIX-NNNN.onnx or PREFIX-NNNN-gluon')
    flags.add_preprocess_args(parser)
    parser.add_argument('--batch-size', type=int, default=1, help='batch size in the ONNX input')
    parser.add_argument('--static-batch', action='store_true',
                        help='ONNX: a fixed batch dimension instead of a dynamic one')
    return parser


def run(args):
    """Export as the parsed flags say; returns the paths written."""
    from mxresnet import checkpoint, export
    if args.batch_size <= 0:
        raise UsageError('--batch-size %d: must be positive' % args.batch_size)
    model = checkpoint.load_model(args.model, args.epoch, args)
    if args.format == 'gluon':
        output = args.output or '%s-%04d-gluon' % (args.model, args.epoch)
        files = export.export_gluon(model, output)
    else:
        output = args.output or '%s-%04d.onnx' % (args.model, args.epoch)
        files = export.export_onnx(model, output, args.batch_size, not args.static_batch)
    for path in files:
        print(path)
    return files


def main(argv=None):
    runtime.use_all_cores()  # before MXNet loads
    args = build_parser().parse_args(argv)
    return run_tool(lambda: run(args) and 0)


if __name__ == '__main__':
    sys.exit(main())
