#!/usr/bin/env python3
"""CIFAR-10 / CIFAR-100 (the official python-pickle release) to RecordIO.

    python tools/cifar2rec.py SOURCE PREFIX [--labels fine|coarse]

SOURCE is the extracted folder (``cifar-10-batches-py/`` or ``cifar-100-python/``) or the
downloaded ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``; which dataset it is comes
from the files inside. Writes ``PREFIX-train.rec/.idx``, ``PREFIX-test.rec/.idx`` and the class
names (``--synset``, default ``PREFIX-synset.txt``). Images are stored as lossless PNG by
default (JPEG at 32x32 visibly costs accuracy); ``ImageRecordIter`` decodes them to the
original RGB values. A record's id and index key is the image's position in its split.

The pickles are read with an unpickler that only builds plain containers and numpy arrays,
so a tampered file cannot run code.
"""
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet import flags  # noqa: E402
from mxresnet.errors import run_tool  # noqa: E402
from mxresnet.converters import convert_cifar  # noqa: E402
from mxresnet.recordio import add_encoding_args  # noqa: E402


def build_parser():
    parser = flags.parser('Convert CIFAR-10/100 (python pickle release, folder or .tar.gz) to '
                          'RecordIO.', prog='cifar2rec')
    parser.add_argument('source', help='cifar-10-batches-py/ or cifar-100-python/ folder, or '
                                       'the .tar.gz')
    parser.add_argument('prefix', help='output prefix: writes PREFIX-train.rec/.idx and '
                                       'PREFIX-test.rec/.idx')
    parser.add_argument('--labels', choices=['fine', 'coarse'], default='fine',
                        help='CIFAR-100 label set (100 fine or 20 coarse classes)')
    parser.add_argument('--synset', default=None,
                        help='where to write the class names (default PREFIX-synset.txt)')
    add_encoding_args(parser)
    return parser


def main(argv=None):
    return run_tool(lambda: convert_cifar(build_parser().parse_args(argv)), prog='cifar2rec')


if __name__ == '__main__':
    sys.exit(main())
