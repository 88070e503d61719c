"""Parameters, multiply-adds and activation memory of a network, per stage and in total,
from the graph's inferred shapes (the ResNet/ResNeXt papers' Table 1 as output).

    python tools/model_stats.py --network resnext --num-layers 50 --image-shape 3,224,224

Sections: `stem` (up to the first stage), `stage<i>` (nodes named stage<i>_..., and the
unnamed adds between them), `head` (from pool1 on). Multiply-adds count Convolution
(output elements x input channels per group x kernel area) and FullyConnected (in x out);
BatchNorm, activations, pooling and adds are not counted. Activation memory is the size of
every operator output at batch size 1, at its inferred dtype. Parameters are the learnable
arguments (BatchNorm moving statistics are auxiliary states, not counted).
"""
import argparse
import collections
import json
import os
import re
import sys

import numpy as np

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import symbols  # noqa: E402  (after the sys.path fix above)

NOT_PARAMS = ('data', 'softmax_label')
STAGE_NAME = re.compile(r'^(stage\d+)_')
HEAD_START = 'pool1'

Section = collections.namedtuple('Section', 'name params macs activation_bytes output_shape')


def _size(shape):
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def model_stats(sym, data_shape):
    """[Section(name, params, macs, activation_bytes, output_shape)] for stem, stages, head,
    with `data_shape` (C, H, W) or (N, C, H, W) at batch size 1."""
    data_shape = (1,) + tuple(data_shape[-3:])
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=data_shape)
    _, out_types, _ = internals.infer_type(data=np.float32)
    outputs = {name: (shape, np.dtype(dtype).itemsize)
               for name, shape, dtype in zip(internals.list_outputs(), out_shapes, out_types)}
    arg_shapes, _, _ = sym.infer_shape(data=data_shape)
    params = {name: shape for name, shape in zip(sym.list_arguments(), arg_shapes)
              if name not in NOT_PARAMS}

    nodes = json.loads(sym.tojson())['nodes']
    order, totals = [], {}
    section = 'stem'
    for node in nodes:
        if node['op'] == 'null':
            continue
        name = node['name']
        stage = STAGE_NAME.match(name)
        if stage:
            section = stage.group(1)
        elif name == HEAD_START:
            section = 'head'
        if section not in totals:
            order.append(section)
            totals[section] = dict(params=0, macs=0, activation_bytes=0, output_shape=None)
        entry = totals[section]
        inputs = [nodes[i[0]]['name'] for i in node['inputs']]
        weights = [params[n] for n in inputs if n in params]
        entry['params'] += sum(_size(shape) for shape in weights)
        out_shape, itemsize = outputs[name + '_output']
        entry['activation_bytes'] += _size(out_shape) * itemsize
        if node['op'] in ('Convolution', 'FullyConnected'):
            # weight: (out, in / groups, kh, kw) or (out, in): each output element costs
            # one multiply-add per weight of its filter.
            entry['macs'] += _size(out_shape[1:]) * _size(weights[0][1:])
        if node['op'] != 'SoftmaxOutput':
            entry['output_shape'] = tuple(out_shape[1:])
    return [Section(name, **totals[name]) for name in order]


def format_table(sections):
    """The rows of `model_stats` and a total, as text."""
    lines = ['%-8s %-16s %14s %16s %16s' % ('section', 'output', 'parameters', 'multiply-adds',
                                             'activations MB')]
    for s in sections:
        lines.append('%-8s %-16s %14s %16s %16.2f' % (
            s.name, 'x'.join(str(d) for d in s.output_shape), '{:,}'.format(s.params),
            '{:,}'.format(s.macs), s.activation_bytes / 2.0 ** 20))
    params = sum(s.params for s in sections)
    macs = sum(s.macs for s in sections)
    act = sum(s.activation_bytes for s in sections)
    lines.append('%-8s %-16s %14s %16s %16.2f' % ('total', '', '{:,}'.format(params),
                                                   '{:,}'.format(macs), act / 2.0 ** 20))
    lines.append('total: %.2fM parameters, %.2f GMACs, %.1f MB of activations per image'
                 % (params / 1e6, macs / 1e9, act / 2.0 ** 20))
    return '\n'.join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, '%s: error: %s\n' % (self.prog, message))


def parse_args(argv=None):
    parser = _Parser(prog='model_stats', description=__doc__.split('\n\n')[0])
    parser.add_argument('--network', required=True, choices=symbols.list_networks())
    parser.add_argument('--num-layers', type=int, required=True)
    parser.add_argument('--image-shape', required=True, help="'C,H,W', e.g. 3,224,224")
    parser.add_argument('--num-classes', type=int,
                        help='default: 1000 for inputs higher than 32 px, else 10')
    parser.add_argument('--dtype', help='float32 or float16')
    parser.add_argument('--num-group', type=int, help='resnext: cardinality C')
    parser.add_argument('--bottleneck-width', type=int, help='resnext: the d of "32x4d"')
    parser.add_argument('--shortcut', help='resnet-v1: A, B or C')
    parser.add_argument('--act-type', help='relu, prelu, leaky or elu')
    return parser, parser.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    options = {key: value for key, value in vars(args).items() if value is not None and key in
               ('dtype', 'num_group', 'bottleneck_width', 'shortcut', 'act_type')}
    try:
        shape = symbols.blocks.parse_image_shape(args.image_shape)
        num_classes = args.num_classes or (1000 if shape[1] > 32 else 10)
        sym = symbols.get_symbol(args.network, num_classes=num_classes,
                                 num_layers=args.num_layers, image_shape=args.image_shape,
                                 **options)
    except ValueError as err:
        parser.error(str(err))
    print('%s, %d layers, input %s, %d classes%s' % (
        args.network, args.num_layers, 'x'.join(str(d) for d in shape), num_classes,
        ''.join(', %s=%s' % kv for kv in sorted(options.items()))))
    print(format_table(model_stats(sym, shape)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
