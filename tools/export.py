"""Export a checkpoint for inference elsewhere: ONNX, Gluon's SymbolBlock files, or a Multi
Model Server archive, each with its preprocessing (input shape, mean, std, class names).

    python tools/export.py --model runs/resnet-20/model --epoch 4 --format onnx -o resnet-20.onnx
    python tools/export.py --model runs/resnet-20/model --epoch 4 --format gluon -o gluon/r20
    python tools/export.py --model runs/resnet-20/model --epoch 4 --format mar -o mms/r20.mar

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
    parser.add_argument('--format', choices=('onnx', 'gluon', 'mar'), default='onnx')
    parser.add_argument('-o', '--output', help='the .onnx file, the Gluon prefix or the '
                        'NAME.mar; default: PREFIX-NNNN.onnx, PREFIX-NNNN-gluon or '
                        'PREFIX-NNNN.mar')
    flags.add_preprocess_args(parser)
    parser.add_argument('--batch-size', type=int, default=1, help='batch size in the ONNX input')
    parser.add_argument('--static-batch', action='store_true',
                        help='ONNX: a fixed batch dimension instead of a dynamic one')
    parser.add_argument('--top-k', type=int, default=5,
                        help='mar: classes in each answer (a request may ask for others)')
    return parser


def run(args):
    """Export as the parsed flags say; returns the paths written."""
    from mxresnet import checkpoint, export
    if args.batch_size <= 0:
        raise UsageError('--batch-size %d: must be positive' % args.batch_size)
    default = {'onnx': '%s-%04d.onnx', 'gluon': '%s-%04d-gluon', 'mar': '%s-%04d.mar'}
    output = args.output or default[args.format] % (args.model, args.epoch)
    if args.format == 'mar':
        export.mar_name(output, args.top_k)
    model = checkpoint.load_model(args.model, args.epoch, args)
    checkpoint.refuse_int8(model.metadata, '--model ' + args.model,
                           'export (neither ONNX nor Gluon takes its fused INT8 graph)')
    if args.format == 'mar':
        files = [export.export_mar(model, output, args.top_k)]
    elif args.format == 'gluon':
        files = export.export_gluon(model, output)
    else:
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
