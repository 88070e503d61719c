#!/usr/bin/env python3
"""Make image lists (``.lst``) and pack them into RecordIO (``.rec`` + ``.idx``).

Command line and file formats follow MXNet's own ``tools/im2rec.py``, so existing scripts keep
working:

    python tools/im2rec.py PREFIX ROOT --list [--recursive] [--train-ratio R] ...
    python tools/im2rec.py PREFIX ROOT [--resize N] [--num-thread N] ...

``.lst`` lines are ``index<TAB>label[<TAB>label...]<TAB>relative/path``.

Differences from MXNet's script, all deliberate (docs/datasets.md):
- ``--test-ratio`` is honoured when ``--train-ratio`` is not given (the train part is then
  the rest); ratios summing to more than 1 are an error. No image is dropped by rounding.
- ``--recursive`` also writes the label map to ``PREFIX_synset.txt`` (one folder per line,
  line number = label); ``--synset`` reuses a map, ``--val-gt`` labels a flat ImageNet
  ``val/`` folder from a ground-truth file with the same numbering.
- An empty or malformed ``.lst``, a missing root or a prefix matching no ``.lst`` is a one-line
  error (exit status 2). An unreadable or corrupt image is skipped with a warning naming it and
  a count at the end; the rest is still packed.
- ``--num-thread N`` packs on N worker processes and keeps the output in list order.
"""
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import flags  # noqa: E402
from mxresnet.errors import UsageError, run_tool  # noqa: E402
from mxresnet.im2rec import DEFAULT_SEED, make_lists, make_records  # noqa: E402
from mxresnet.recordio import ENCODINGS  # noqa: E402


def build_parser():
    parser = flags.parser('Create an image list or make a record database by reading from an '
                          'image list (compatible with MXNet\'s tools/im2rec.py).', prog='im2rec')
    parser.add_argument('prefix', help='prefix of input/output lst and rec files.')
    parser.add_argument('root', help='path to folder containing images.')
    cgroup = parser.add_argument_group('Options for creating image lists')
    cgroup.add_argument('--list', action='store_true',
                        help='create image list(s) <prefix>.lst by traversing root instead of '
                             'packing <prefix>*.lst into .rec files')
    cgroup.add_argument('--exts', nargs='+', default=['.jpeg', '.jpg', '.png'],
                        help='list of acceptable image extensions.')
    cgroup.add_argument('--chunks', type=int, default=1, help='number of chunks.')
    cgroup.add_argument('--train-ratio', type=float, default=None,
                        help='ratio of images to use for training (default: 1 - test ratio)')
    cgroup.add_argument('--test-ratio', type=float, default=0.0,
                        help='ratio of images to use for testing.')
    cgroup.add_argument('--recursive', action='store_true',
                        help='walk sub-folders and give each folder holding images its own '
                             'label (sorted order); the map goes to <prefix>_synset.txt. '
                             'Otherwise only images directly in root, label 0.')
    cgroup.add_argument('--no-shuffle', dest='shuffle', action='store_false',
                        help='keep the traversal order in the list')
    cgroup.add_argument('--seed', type=int, default=DEFAULT_SEED,
                        help='shuffle seed (the default gives the same order as MXNet\'s '
                             'im2rec.py)')
    cgroup.add_argument('--synset', default=None,
                        help='label map (one folder / class name per line, line number = '
                             'label) to number --recursive folders or --val-gt classes with')
    cgroup.add_argument('--val-gt', default=None,
                        help='ground-truth file ("filename synset" lines, or Kaggle\'s '
                             'LOC_val_solution.csv) labelling the images of a flat ImageNet '
                             'val/ folder through --synset')
    rgroup = parser.add_argument_group('Options for creating database')
    rgroup.add_argument('--pass-through', action='store_true',
                        help='store the image file bytes as they are (still checked to decode)')
    rgroup.add_argument('--resize', type=int, default=0,
                        help='resize the shorter edge of the image to this size; 0 keeps it')
    rgroup.add_argument('--center-crop', action='store_true',
                        help='crop the center square of the image before resizing')
    rgroup.add_argument('--quality', type=int, default=95,
                        help='JPEG quality 1-100, or PNG compression 0-9 (higher values mean 9)')
    rgroup.add_argument('--num-thread', type=int, default=1,
                        help='number of worker processes encoding images; the output keeps list order')
    rgroup.add_argument('--color', type=int, default=1, choices=[-1, 0, 1],
                        help='1: color (BGR, alpha dropped), 0: grayscale, -1: as stored '
                             '(alpha kept)')
    rgroup.add_argument('--encoding', type=str, default='.jpg', choices=list(ENCODINGS),
                        help='encoding of the images in the record file')
    rgroup.add_argument('--pack-label', action='store_true',
                        help='store every label of a multi-label .lst line, not just the first')
    return parser


def run(argv=None):
    args = build_parser().parse_args(argv)
    args.prefix = os.path.abspath(args.prefix)
    args.root = os.path.abspath(args.root)
    if not os.path.isdir(args.root):
        raise UsageError('image root %s is not a folder' % args.root)
    if args.list:
        make_lists(args)
    else:
        make_records(args)
    return 0


def main(argv=None):
    return run_tool(lambda: run(argv), prog='im2rec')


if __name__ == '__main__':
    sys.exit(main())
