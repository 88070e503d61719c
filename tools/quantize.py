"""Fast CPU inference: the plain float32 graph, the MKLDNN-fused graph and INT8.

    python tools/quantize.py --model runs/resnet-20/model --epoch 4 --batch-sizes 1,64
    python tools/quantize.py --network resnet --num-layers 50 --image-shape 3,224,224 \\
        --num-classes 1000 --batch-sizes 1,64          # random weights: speed only

Three versions of one network, each bound for inference on the CPU:
- plain: the checkpoint's graph as saved, bound with MXNET_SUBGRAPH_BACKEND=NONE (MXNet
  1.9.1's CPU build otherwise applies the MKLDNN subgraph backend to every inference bind);
- fused: `sym.optimize_for('MKLDNN', args, aux, ctx=mx.cpu())`, MKLDNN's subgraph fusion
  (convolution + BatchNorm + ReLU + add), bound with NONE so that nothing else is applied;
- int8: `mxnet.contrib.quantization.quantize_model_mkldnn` (fusion, quantization, and the
  quantized graph's fusion), with `--calib-mode` calibration on `--calib-batches` batches of
  `--data-calib` (the bundled training .rec), read with the validation preprocessing.
Both optimised versions compute option-A shortcuts (resnet-v1) as 1x1 convolutions with fixed
weights (`inference.shortcuts_as_convolutions`; `--shortcut-conv 0` keeps the saved ops), and
BatchNorms that follow no convolution (pre-activation units, bn_data) as depthwise 1x1
convolutions that fuse with their ReLU and quantize (`inference.batchnorms_as_convolutions`;
`--batchnorm-conv 0` keeps them).
Images/s: forward passes of one batch held in memory, `--rounds` rounds that alternate the
three versions, the median of the rounds. With `--data-val` (default: the bundled validation
set for a 1-channel model) top-1 of each version over the whole .rec. `--save PREFIX` writes
the INT8 model as PREFIX-symbol.json and PREFIX-0000.params. `--profile PASSES` adds each
version's time per operator (MXNet's profiler) at the first batch size, and how fast each
version's convolutions run against a large reference convolution timed the same way: the
plain graph's time over its convolutions' time bounds what any fusion can gain.
"""
import argparse
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import use_all_cores, use_naive_engine  # noqa: E402
use_all_cores()  # before MXNet loads

import mxnet as mx  # noqa: E402

import symbols  # noqa: E402
from common.cli import run_tool  # noqa: E402
from common import UsageError  # noqa: E402
from common import inference  # noqa: E402
from common.data import BUNDLED_DATA  # noqa: E402
from tools.model_stats import model_stats  # noqa: E402

VERSIONS = ('plain', 'fused', 'int8')


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    model = parser.add_argument_group('Model', 'a checkpoint, or a network with random weights')
    model.add_argument('--model', help='checkpoint prefix')
    model.add_argument('--epoch', type=int, help='checkpoint number')
    model.add_argument('--network', default='resnet', help='without --model: the network')
    model.add_argument('--num-layers', type=int, default=50, help='without --model: its depth')
    model.add_argument('--num-classes', type=int, default=1000,
                       help='without --model: classes')
    inference.add_preprocess_args(parser)
    parser.add_argument('--batch-sizes', default='1,64', help='batch sizes to time')
    parser.add_argument('--rounds', type=int, default=5, help='alternating timing rounds')
    parser.add_argument('--min-time', type=float, default=1.0,
                        help='seconds of forward passes per version per round')
    parser.add_argument('--calib-mode', choices=('naive', 'entropy', 'none'), default='naive',
                        help='INT8 calibration: min/max, KL-divergence thresholds, or none')
    parser.add_argument('--calib-batches', type=int, default=5, help='calibration batches')
    parser.add_argument('--calib-batch-size', type=int, default=64)
    parser.add_argument('--data-calib', help='calibration .rec (default: the bundled '
                        'training set; random data without --model)')
    parser.add_argument('--data-val', help='score every version on this .rec (default: the '
                        'bundled validation set for a 1-channel checkpoint)')
    parser.add_argument('--quantized-dtype', choices=('auto', 'int8', 'uint8'), default='auto')
    parser.add_argument('--exclude', default='',
                        help='comma-separated layer names to keep in float32')
    parser.add_argument('--shortcut-conv', type=int, choices=(0, 1), default=1,
                        help='fused and int8: option-A shortcuts as 1x1 convolutions')
    parser.add_argument('--batchnorm-conv', type=int, choices=(0, 1), default=1,
                        help='fused and int8: BatchNorms that follow no convolution as '
                             'depthwise 1x1 convolutions')
    parser.add_argument('--profile', type=int, default=0, metavar='PASSES',
                        help="after timing, each version's time per operator over PASSES "
                             "forward passes at the first batch size (MXNet's profiler), and "
                             "its convolutions' GFLOP/s against a reference convolution")
    parser.add_argument('--save', help='write the INT8 model under this prefix')
    parser.add_argument('--data-nthreads', type=int, default=2)
    return parser


def parse_batch_sizes(text):
    try:
        sizes = [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise UsageError('--batch-sizes %r: expected numbers such as "1,64"' % text)
    if not sizes or min(sizes) <= 0:
        raise UsageError('--batch-sizes %r: expected positive numbers' % text)
    return sizes


def load(args):
    """(sym, arg_params, aux_params, image_shape, trained)."""
    if args.model:
        if args.epoch is None:
            raise UsageError('--model needs --epoch')
        sym, arg_params, aux_params = inference.load_model(args.model, args.epoch)
        image_shape = inference.resolve_preprocess(args, inference.input_channels(arg_params))
        return sym, arg_params, aux_params, image_shape, True
    if args.image_shape is None:
        args.image_shape = '3,224,224'
    try:
        sym = symbols.get_symbol(args.network, num_classes=args.num_classes,
                                 num_layers=args.num_layers, image_shape=args.image_shape)
    except ValueError as err:
        raise UsageError(str(err))
    sym = inference.inference_symbol(sym)
    channels = int(args.image_shape.split(',')[0])
    image_shape = inference.resolve_preprocess(args, channels)
    exe = sym.simple_bind(mx.cpu(), data=(1,) + image_shape, grad_req='null')
    init = mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)
    mx.random.seed(0)
    attrs = sym.attr_dict()
    arg_params, aux_params = {}, {}
    for name, arr in exe.arg_dict.items():
        if name != 'data':
            init(mx.init.InitDesc(name, attrs.get(name)), arr)
            arg_params[name] = arr.copy()
    for name, arr in exe.aux_dict.items():
        init(mx.init.InitDesc(name, attrs.get(name)), arr)
        aux_params[name] = arr.copy()
    return sym, arg_params, aux_params, image_shape, False


def calibration_data(args, image_shape, trained):
    """An iterator over the calibration images (data only)."""
    batches = []
    size = args.calib_batch_size
    path = args.data_calib or (BUNDLED_DATA['data_train'] if trained else None)
    if path:
        it = inference.val_iter(args, image_shape, path, batch_size=size)
        for batch in it:
            batches.append(batch.data[0].asnumpy())
            if len(batches) >= args.calib_batches:
                break
    else:
        rng = np.random.RandomState(0)
        batches = [rng.uniform(-2, 2, (size,) + image_shape).astype(np.float32)
                   for _ in range(args.calib_batches)]
    data = np.concatenate(batches)
    return mx.io.NDArrayIter(data, batch_size=size, label_name=None, data_name='data'), len(data)


def build_versions(args, sym, arg_params, aux_params, image_shape, trained):
    """{'plain'|'fused'|'int8': (symbol, arg_params, aux_params)}."""
    plain = (sym, arg_params, aux_params)
    if args.shortcut_conv:
        sym, arg_params = inference.shortcuts_as_convolutions(sym, arg_params, image_shape)
    if args.batchnorm_conv:
        sym, arg_params = inference.batchnorms_as_convolutions(sym, arg_params, aux_params)
    fused = sym.optimize_for('MKLDNN', dict(arg_params), dict(aux_params), ctx=mx.cpu(),
                             shape_dict={'data': (1,) + image_shape})
    from mxnet.contrib import quantization
    calib, examples = calibration_data(args, image_shape, trained)
    excluded = [n for n in args.exclude.split(',') if n.strip()]
    qsym, qargs, qaux = quantization.quantize_model_mkldnn(
        sym, dict(arg_params), dict(aux_params), data_names=('data',), label_names=(),
        ctx=mx.cpu(), excluded_sym_names=excluded, calib_mode=args.calib_mode,
        calib_data=calib if args.calib_mode != 'none' else None,
        num_calib_examples=examples, quantized_dtype=args.quantized_dtype,
        quantize_mode='smart', logger=None)
    return {'plain': plain, 'fused': (fused, arg_params, aux_params),
            'int8': (qsym, qargs, qaux)}


def bind(version, batch_size, image_shape):
    sym, arg_params, aux_params = version
    return inference.bind_module(sym, arg_params, aux_params, (batch_size,) + image_shape,
                                 backend='NONE')


def time_versions(versions, batch_size, image_shape, rounds, min_time):
    """{name: median images/s} over `rounds` rounds that alternate the versions."""
    rng = np.random.RandomState(1)
    batch = mx.io.DataBatch([mx.nd.array(rng.uniform(-2, 2, (batch_size,) + image_shape))])
    mods = {name: bind(v, batch_size, image_shape) for name, v in versions.items()}
    iters = {}
    for name, mod in mods.items():
        for _ in range(2):  # warm-up: MKLDNN primitives are created on the first passes
            mod.forward(batch, is_train=False)
            mod.get_outputs()[0].wait_to_read()
        start = time.perf_counter()
        mod.forward(batch, is_train=False)
        mod.get_outputs()[0].wait_to_read()
        iters[name] = max(1, int(math.ceil(min_time / (time.perf_counter() - start))))
    rates = {name: [] for name in mods}
    for r in range(rounds):
        names = list(mods) if r % 2 == 0 else list(reversed(list(mods)))
        for name in names:
            mod = mods[name]
            start = time.perf_counter()
            for _ in range(iters[name]):
                mod.forward(batch, is_train=False)
                mod.get_outputs()[0].wait_to_read()
            rates[name].append(iters[name] * batch_size / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def profile_versions(versions, batch_size, image_shape, passes):
    """{name: {operator: ms per forward pass}} from MXNet's profiler (aggregate statistics
    of the symbolic operators; fused operators are named by what they fused)."""
    rng = np.random.RandomState(1)
    batch = mx.io.DataBatch([mx.nd.array(rng.uniform(-2, 2, (batch_size,) + image_shape))])
    with tempfile.TemporaryDirectory() as trace_dir:
        # MXNet writes its trace file when the statistics are read, replacing whatever is at
        # that path (never a device such as /dev/null)
        mx.profiler.set_config(profile_symbolic=True, profile_imperative=False,
                               aggregate_stats=True,
                               filename=os.path.join(trace_dir, 'profile.json'))
        return {name: _profile_one(version, batch, passes)
                for name, version in versions.items()}


def _profile_one(version, batch, passes):
    """{operator: ms per forward pass} of one version."""
    # unbulked, or the executor runs (and the profiler names) the graph as one segment
    with inference.environment(MXNET_EXEC_BULK_EXEC_INFERENCE='0'):
        mod = bind(version, batch.data[0].shape[0], batch.data[0].shape[1:])
    for _ in range(2):
        mod.forward(batch, is_train=False)
        mod.get_outputs()[0].wait_to_read()
    mx.profiler.dumps(reset=True)
    mx.profiler.set_state('run')
    for _ in range(passes):
        mod.forward(batch, is_train=False)
        mod.get_outputs()[0].wait_to_read()
    mx.profiler.set_state('stop')
    operators = json.loads(mx.profiler.dumps(format='json', reset=True))['Time'].get(
        'operator', {})
    return {op: stat['Total'] / passes for op, stat in operators.items()}


def is_multiply_add_op(op):
    """Operators that do a network's multiply-adds: convolutions and the classifier, plain,
    fused (_sg_mkldnn_conv, _sg_mkldnn_fully_connected) or quantized."""
    name = op.lower().replace('_', '')
    return 'conv' in name or 'fullyconnected' in name


def reference_convolution_gflops():
    """GFLOP/s of one large convolution (3x3, 256 to 256 channels, 14x14, batch 32), timed
    as the versions are: about the fastest convolution MKLDNN runs on this CPU."""
    channels, side, batch_size = 256, 14, 32
    sym = mx.sym.Convolution(mx.sym.var('data'), kernel=(3, 3), pad=(1, 1),
                             num_filter=channels, no_bias=True, name='reference')
    weight = mx.nd.array(np.random.RandomState(2).normal(0, 0.03, (channels, channels, 3, 3)))
    rates = time_versions({'reference': (sym, {'reference_weight': weight}, {})}, batch_size,
                          (channels, side, side), rounds=5, min_time=0.2)
    flops_per_image = 2 * channels * side * side * channels * 9
    return rates['reference'] * flops_per_image / 1e9


def profile_summary(times, macs, batch_size, reference_gflops):
    """{version: {'total_ms', 'multiply_add_ms', 'gflops'}}, and for the plain graph
    'bound': its total over its convolutions' and classifier's time, the most any fusion of
    the other operators can gain."""
    summary = {}
    for name, ops in times.items():
        total = sum(ops.values())
        busy = sum(ms for op, ms in ops.items() if is_multiply_add_op(op))
        summary[name] = {'total_ms': total, 'multiply_add_ms': busy,
                         'gflops': 2 * macs * batch_size / busy / 1e6 if busy else 0.0}
    summary['plain']['bound'] = summary['plain']['total_ms'] / summary['plain']['multiply_add_ms']
    summary['reference_gflops'] = reference_gflops
    return summary


def print_profile(times, summary, batch_size, out):
    print('time per operator at batch %d (MXNet profiler, ms per forward pass):' % batch_size,
          file=out)
    print('| version | operator | ms | share |', file=out)
    print('| --- | --- | --- | --- |', file=out)
    for name, ops in times.items():
        total = sum(ops.values())
        for op, ms in sorted(ops.items(), key=lambda item: -item[1]):
            print('| %s | %s | %.3f | %.1f%% |' % (name, op, ms, 100 * ms / total), file=out)
        print('| %s | all | %.3f | 100%% |' % (name, total), file=out)
    print('convolutions and classifier (G(FL)OP/s: 2 x multiply-adds per second; reference: '
          'a 3x3 256-channel convolution at 14x14, batch 32, %.0f GFLOP/s):'
          % summary['reference_gflops'], file=out)
    print('| version | all ms | their ms | their share | G(FL)OP/s | of reference |', file=out)
    print('| --- | --- | --- | --- | --- | --- |', file=out)
    for name in times:
        row = summary[name]
        print('| %s | %.3f | %.3f | %.1f%% | %.0f | %.0f%% |' % (
            name, row['total_ms'], row['multiply_add_ms'],
            100 * row['multiply_add_ms'] / row['total_ms'], row['gflops'],
            100 * row['gflops'] / summary['reference_gflops']), file=out)
    print('bound on fused/plain (plain: all / convolutions and classifier): %.2fx'
          % summary['plain']['bound'], file=out)


def top1(version, args, image_shape, path):
    mod = bind(version, 64, image_shape)
    probs, labels = inference.predict_iter(
        mod, inference.val_iter(args, image_shape, path, batch_size=64))
    return float((probs.argmax(axis=1) == labels).mean()), len(labels)


def run(args, out=None):
    out = out or sys.stdout
    sizes = parse_batch_sizes(args.batch_sizes)
    sym, arg_params, aux_params, image_shape, trained = load(args)
    data_val = args.data_val
    if data_val is None and trained and image_shape[0] == 1:
        data_val = BUNDLED_DATA['data_val']
    if data_val and not os.path.isfile(data_val):
        raise UsageError('--data-val %s: no such file' % data_val)
    versions = build_versions(args, sym, arg_params, aux_params, image_shape, trained)
    if args.save:
        qsym, qargs, qaux = versions['int8']
        mx.model.save_checkpoint(args.save, 0, qsym, qargs, qaux)
    rows = []
    for size in sizes:
        rates = time_versions(versions, size, image_shape, args.rounds, args.min_time)
        rows.append((size, rates))
    profile = summary = None
    if args.profile > 0:
        profile = profile_versions(versions, sizes[0], image_shape, args.profile)
        macs = sum(section.macs for section in model_stats(sym, image_shape))
        summary = profile_summary(profile, macs, sizes[0], reference_convolution_gflops())
    accuracy = {}
    if data_val:
        for name, version in versions.items():
            accuracy[name] = top1(version, args, image_shape, data_val)
    name = ('%s-%d' % (os.path.basename(args.model), args.epoch) if args.model else
            '%s-%d (random weights)' % (args.network, args.num_layers))
    print('%s, input %s, calibration %s on %d batches of %d' % (
        name, ','.join(map(str, image_shape)), args.calib_mode, args.calib_batches,
        args.calib_batch_size), file=out)
    print('| batch | plain img/s | fused img/s | fused/plain | int8 img/s | int8/plain |',
          file=out)
    print('| --- | --- | --- | --- | --- | --- |', file=out)
    for size, rates in rows:
        print('| %d | %.1f | %.1f | %.2fx | %.1f | %.2fx |' % (
            size, rates['plain'], rates['fused'], rates['fused'] / rates['plain'],
            rates['int8'], rates['int8'] / rates['plain']), file=out)
    if profile:
        print_profile(profile, summary, sizes[0], out)
    if accuracy:
        print('top-1 on %s (%d images): %s' % (
            data_val, accuracy['plain'][1], ', '.join(
                '%s %.2f%%' % (n, 100 * accuracy[n][0]) for n in VERSIONS)), file=out)
    return {'rows': rows, 'accuracy': accuracy, 'profile': profile, 'profile_summary': summary}


def main(argv=None, own_process=False):
    """`own_process`: this process runs only this command, so MXNet's engine may be chosen
    for it (common.use_naive_engine)."""
    logging.getLogger().setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    if own_process:
        use_naive_engine()
    return run_tool(lambda: run(args) and 0)


if __name__ == '__main__':
    sys.exit(main(own_process=True))
