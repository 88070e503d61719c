"""Accuracy of a checkpoint on a .rec: top-1, top-k, per-class accuracy, confusion matrix.

    python tools/score.py --model runs/resnet-20/model --epoch 4 \\
        --data-val data/fashion-mnist-val.rec --confusion confusion.png

The images go through `mx.io.ImageRecordIter` with the checkpoint's own preprocessing
(PREFIX-model.json: input shape, mean, std), no augmentation; the last batch's padding is
dropped. Class names come from `--synset`, else from the checkpoint. Images/s covers
decoding and the forward pass (two passes with `--flip 1`, which averages each image's
probabilities with its mirror's).
"""
import os
import sys

if not __package__:  # run as a file: use the checkout's library
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import runtime  # noqa: E402
from mxresnet.errors import run_tool  # noqa: E402


def build_parser():
    from mxresnet import flags
    parser = flags.parser(__doc__.split('\n')[0])
    flags.add_checkpoint_args(parser)
    parser.add_argument('--data-val', required=True, help='the .rec file to score')
    parser.add_argument('--data-val-idx', default='', help='its .idx; default: beside it')
    flags.add_preprocess_args(parser)
    parser.add_argument('--batch-size', type=int, default=64, help='images per forward pass')
    parser.add_argument('--top-k', type=int, default=5, help='also report top-k accuracy '
                        '(k is capped at the number of classes)')
    parser.add_argument('--flip', type=int, choices=(0, 1), default=0,
                        help='1: average the probabilities of each image and its mirror '
                             '(test-time augmentation for nets trained with random mirror)')
    parser.add_argument('--synset', help="class names, one per line; default: the "
                        "checkpoint's")
    parser.add_argument('--confusion', default=None,
                        help='confusion-matrix PNG; default: PREFIX-NNNN-confusion.png')
    parser.add_argument('--json', default=None, help='also write the results as JSON here')
    parser.add_argument('--gpus', default='', help='GPU to use, e.g. "0"; empty: the CPU')
    parser.add_argument('--data-nthreads', type=int, default=2, help='decoding threads')
    return parser


def run(args):
    """Score as the parsed flags say; returns the result dict."""
    from mxresnet import checkpoint, flags, inference
    ctx = runtime.contexts(flags.gpu_list(args.gpus))[0]
    model = checkpoint.load_model(args.model, args.epoch, args)
    if args.gpus:
        checkpoint.refuse_int8(model.metadata, '--model ' + args.model, '--gpus')
    confusion = args.confusion or '%s-%04d-confusion.png' % (args.model, args.epoch)
    checkpoint.check_writable(confusion, '--confusion')
    if args.json:
        checkpoint.check_writable(args.json, '--json')
    result = inference.score(model, args.data_val, args.batch_size, args.top_k,
                             bool(args.flip), ctx, args.data_val_idx, args.data_nthreads,
                             args.synset)
    inference.plot_confusion(result['confusion'], result['names'], confusion,
                             '%s epoch %d: top-1 %.2f%%' % (os.path.basename(args.model),
                                                             args.epoch, 100 * result['top1']))
    result['confusion_png'] = confusion
    if args.json:
        checkpoint.write_json(args.json, result)
    inference.print_scores(result, sys.stdout)
    return result


def main(argv=None):
    runtime.use_all_cores()  # before MXNet loads
    args = build_parser().parse_args(argv)
    runtime.use_naive_engine(args.gpus)
    return run_tool(lambda: run(args) and 0)


if __name__ == '__main__':
    sys.exit(main())
