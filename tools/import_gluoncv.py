"""Convert a gluon-cv model-zoo parameter file into a checkpoint of the matching network.

    python tools/import_gluoncv.py --model resnet50_v1 \\
        --params ~/.mxnet/models/resnet50_v1-cc729d95.params --prefix imported/resnet50_v1
    python tools/predict.py cat.jpg --model imported/resnet50_v1 --epoch 0

Writes checkpoint 0 of PREFIX (symbol, weights, no optimizer state) with its metadata:
network, options, input shape and gluon-cv's preprocessing. The names it takes, and what
each maps to: mxresnet/gluoncv_import.py and docs/models.md.
"""
import os
import sys

if not __package__:  # run as a file: use the checkout's library
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import runtime  # noqa: E402
from mxresnet.errors import run_tool  # noqa: E402


def build_parser():
    from mxresnet import flags, gluoncv_import
    parser = flags.parser(__doc__.split('\n')[0])
    parser.add_argument('--model', required=True,
                        help='gluon-cv model-zoo name: %s' % ', '.join(gluoncv_import.supported()))
    parser.add_argument('--params', required=True,
                        help="its parameter file (Gluon's save_parameters), e.g. "
                             '~/.mxnet/models/resnet50_v1-cc729d95.params')
    parser.add_argument('--prefix', required=True,
                        help='checkpoint prefix to write (PREFIX-symbol.json, PREFIX-model.json, '
                             'PREFIX-0000.params, PREFIX-0000.json)')
    return parser


def run(args):
    """Convert as the parsed flags say; returns (files written, metadata)."""
    from mxresnet import gluoncv_import
    files, meta = gluoncv_import.convert(args.model, os.path.expanduser(args.params),
                                         args.prefix)
    options = ', '.join('%s=%s' % kv for kv in sorted(meta['options'].items()))
    print('%s -> %s, %d layers (%s), %d classes, input %s: checkpoint %s epoch 0'
          % (args.model, meta['network'], meta['num_layers'], options, meta['num_classes'],
             'x'.join(map(str, meta['image_shape'])), args.prefix))
    for key in ('symbol', 'metadata', 'params', 'progress'):
        print(files[key])
    return files, meta


def main(argv=None):
    runtime.use_all_cores()  # before MXNet loads
    args = build_parser().parse_args(argv)
    return run_tool(lambda: run(args) and 0)


if __name__ == '__main__':
    sys.exit(main())
