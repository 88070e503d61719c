#!/usr/bin/env python3
"""MNIST-format idx files (MNIST, Fashion-MNIST, ...) to RecordIO.

    python tools/mnist2rec.py SOURCE PREFIX [--classes fashion-mnist] [--subset-per-class 1000,200]

SOURCE is a folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each gzipped or not; the
``train-images.idx3-ubyte`` spelling is accepted too). Writes ``PREFIX-train.rec/.idx``,
``PREFIX-<test-name>.rec/.idx`` and the class names (``--synset``, default
``PREFIX-synset.txt``). Images are stored as 1-channel lossless PNG by default; a record's id
and index key is the image's position in its source file.

``--subset-per-class TRAIN,TEST`` keeps a class-balanced random subset (fixed ``--seed``) of
each split: TRAIN images per class from the training file, TEST per class from the test file
(so the two never overlap), stored in shuffled order. The bundled ``data/`` set is built so.
"""
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import flags  # noqa: E402
from mxresnet.errors import run_tool  # noqa: E402
from mxresnet.converters import CLASS_NAMES, convert_mnist  # noqa: E402
from mxresnet.recordio import add_encoding_args  # noqa: E402


def build_parser():
    parser = flags.parser('Convert MNIST-format idx files (MNIST, Fashion-MNIST) to RecordIO.',
                          prog='mnist2rec')
    parser.add_argument('source', help='folder with the train-*/t10k-* idx files (.gz or not)')
    parser.add_argument('prefix', help='output prefix: writes PREFIX-train.rec/.idx and '
                                       'PREFIX-<test-name>.rec/.idx')
    parser.add_argument('--classes', choices=sorted(CLASS_NAMES), default='mnist',
                        help='class names written to the synset file')
    parser.add_argument('--synset', default=None,
                        help='where to write the class names (default PREFIX-synset.txt)')
    parser.add_argument('--test-name', default='test',
                        help='name of the output made from the t10k files (e.g. val)')
    parser.add_argument('--subset-per-class', default=None, metavar='TRAIN,TEST',
                        help='keep a class-balanced random subset: TRAIN images per class from '
                             'the train files, TEST per class from the t10k files')
    parser.add_argument('--seed', type=int, default=0, help='seed of the subset selection')
    add_encoding_args(parser)
    return parser


def main(argv=None):
    return run_tool(lambda: convert_mnist(build_parser().parse_args(argv)), prog='mnist2rec')


if __name__ == '__main__':
    sys.exit(main())
