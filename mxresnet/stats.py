"""Parameters, multiply-adds and activation memory of a network, per stage and in total,
from the graph's inferred shapes (the ResNet/ResNeXt papers' Table 1 as output, printed by
tools/model_stats.py).

Sections: `stem` (up to the first stage), `stage<i>` (nodes named stage<i>_..., and the
unnamed adds between them), `head` (from pool1 on). Multiply-adds count Convolution
(output elements x input channels per group x kernel area) and FullyConnected (in x out);
BatchNorm, activations, pooling and adds are not counted. Activation memory is the size of
every operator output at batch size 1, at its inferred dtype. Parameters are the learnable
arguments (BatchNorm moving statistics are auxiliary states, not counted).
"""
import collections
import json
import re

import numpy as np

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
