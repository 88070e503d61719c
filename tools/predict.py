"""Top-k classes and probabilities of a checkpoint for image files.

    python tools/predict.py data/samples/*.png --model runs/resnet-20/model --epoch 4 --top-k 3

Preprocessing is training's validation path with the checkpoint's own input shape, mean and
std (PREFIX-model.json): decode (gray for a 1-channel model, RGB for a 3-channel one),
resize the shorter side to `--resize` if given (and, when the image is smaller than the
input, up to the input size), crop the centre to the input size, normalise, NCHW. Class
names come from `--synset`, else from the checkpoint. A file that cannot be read is
reported on stderr and the others are still predicted; the exit code is then 2.
"""
import json
import os
import sys

if not __package__:  # run as a file: use the checkout's library
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import runtime  # noqa: E402
from mxresnet.errors import UsageError, run_tool  # noqa: E402


def build_parser():
    from mxresnet import flags
    parser = flags.parser(__doc__.split('\n')[0])
    parser.add_argument('images', nargs='+', help='image files (PNG, JPEG, ...)')
    flags.add_checkpoint_args(parser)
    flags.add_preprocess_args(parser)
    parser.add_argument('--resize', type=int, default=0,
                        help='resize the shorter side to this before the centre crop '
                             '(0: only when the image is smaller than the input)')
    parser.add_argument('--synset', help="class names, one per line; default: the "
                        "checkpoint's")
    parser.add_argument('--top-k', type=int, default=5, help='classes to show per image')
    parser.add_argument('--json', action='store_true', help='print JSON lines instead')
    parser.add_argument('--gpus', default='', help='GPU to use, e.g. "0"; empty: the CPU')
    return parser


def run(args, out=None, err=None):
    """Predict every image; returns the number of images that could not be read."""
    from mxresnet import checkpoint, flags, inference
    out, err = out or sys.stdout, err or sys.stderr
    if args.top_k <= 0:
        raise UsageError('--top-k %d: must be positive' % args.top_k)
    ctx = runtime.contexts(flags.gpu_list(args.gpus))[0]
    model = checkpoint.load_model(args.model, args.epoch, args)
    if args.gpus:
        checkpoint.refuse_int8(model.metadata, '--model ' + args.model, '--gpus')
    names = inference.class_names(model, args.synset)
    results, failed = inference.predict_files(model, args.images, args.top_k, args.resize, ctx)
    for path, result in zip(args.images, results):
        if isinstance(result, UsageError):
            print('%s: error: %s' % (os.path.basename(sys.argv[0]), result), file=err)
        elif args.json:
            print(json.dumps({'image': path, 'top': [
                {'class': c, 'label': names[c], 'probability': p} for c, p in result]}),
                file=out)
        else:
            print('%s: %s' % (path, ', '.join('%s %.3f' % (names[c], p) for c, p in result)),
                  file=out)
    return failed


def main(argv=None):
    runtime.use_all_cores()  # before MXNet loads
    args = build_parser().parse_args(argv)
    return run_tool(lambda: 2 if run(args) else 0)


if __name__ == '__main__':
    sys.exit(main())
