#!/usr/bin/env python
"""Error-versus-epoch curves of one or more training runs, as in the ResNet paper's figures:
training error dashed, validation error solid, one colour per run.

    python tools/plot_curves.py runs/plain-20/model-log.jsonl runs/resnet-v1-20/model-log.jsonl \\
        --labels plain-20 resnet-20 -o degradation.png

Each log's last run is drawn (a log holds every run trained into its folder:
mxresnet/log.py).
"""
import os
import sys

if not __package__:  # run as a file: use the checkout's library
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet.errors import UsageError, run_tool  # noqa: E402


def build_parser():
    from mxresnet import flags
    parser = flags.parser(__doc__.split('\n')[1], prog='plot_curves.py')
    parser.add_argument('logs', nargs='+', help='JSON-lines logs written by train_resnet.py')
    parser.add_argument('--labels', nargs='+', help='one label per log (default: the '
                        "logs' folder names)")
    parser.add_argument('-o', '--output', default='curves.png', help='PNG to write')
    parser.add_argument('--title', help='figure title')
    return parser


def run(args):
    from mxresnet.curves import plot
    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p))) or p
                             for p in args.logs]
    if len(labels) != len(args.logs):
        raise UsageError('--labels: %d labels for %d logs' % (len(labels), len(args.logs)))
    plot([(args.logs, labels, args.title)], args.output)
    print('wrote %s' % args.output)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_tool(lambda: run(args), prog='plot_curves.py')


if __name__ == '__main__':
    sys.exit(main())
