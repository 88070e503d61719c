"""Fast CPU inference: the plain float32 graph, the MKLDNN-fused graph and INT8, timed,
profiled and scored side by side (what each version is: tools/quantize.py).

Functions take the parsed flags of tools/quantize.py.
"""
import json
import math
import os
import statistics
import tempfile
import time

import mxnet as mx
import numpy as np

import symbols

from . import checkpoint, flags, graph, inference
from .errors import UsageError
from .runtime import environment
from .stats import model_stats

VERSIONS = ('plain', 'fused', 'int8')
BUNDLED_PRESET = 'fashion-mnist'  # checkpoints of it calibrate and score on the bundled data


def load(args):
    """(sym, arg_params, aux_params, metadata, trained): the checkpoint of --model, or the
    network of --network with random weights (preprocessing from the flags)."""
    if args.model:
        if args.epoch is None:
            raise UsageError('--model needs --epoch')
        model = checkpoint.load_model(args.model, args.epoch, args)
        checkpoint.refuse_int8(model.metadata, '--model %s' % args.model, 'quantizing again')
        return model.symbol, model.arg_params, model.aux_params, model.metadata, True
    preset = flags.DATASET_PRESETS.get(args.preset, {})
    for key in ('image_shape', 'rgb_mean', 'rgb_std'):
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key, flags.BASE_DEFAULTS[key]))
    image_shape = flags.image_shape(args.image_shape)
    mean, std = flags.normalisation(args, image_shape[0])
    meta = {'image_shape': list(image_shape), 'mean': mean, 'std': std,
            'num_classes': args.num_classes, 'preset': args.preset}
    try:
        sym = symbols.get_symbol(args.network, num_classes=args.num_classes,
                                 num_layers=args.num_layers, image_shape=args.image_shape)
    except ValueError as err:
        raise UsageError(str(err))
    sym = graph.inference_symbol(sym)
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
    return sym, arg_params, aux_params, meta, False


def default_data(args, meta, trained, flag, bundled):
    """The .rec of --data-calib or --data-val, else the bundled one for a checkpoint trained
    on the bundled preset, else None."""
    path = getattr(args, flag)
    if path is None and trained and meta.get('preset') == BUNDLED_PRESET:
        path = flags.BUNDLED_DATA[bundled]
    if path and not os.path.isfile(path):
        raise UsageError('--%s %s: no such file' % (flag.replace('_', '-'), path))
    return path


def calibration_data(args, meta, trained):
    """An iterator over the calibration images (data only): --data-calib, the bundled
    training set for a checkpoint trained on it, random data for random weights."""
    batches = []
    size = args.calib_batch_size
    image_shape = tuple(meta['image_shape'])
    path = default_data(args, meta, trained, 'data_calib', 'data_train')
    if trained and path is None:
        raise UsageError('--data-calib: give a .rec of the images the checkpoint was trained '
                         'on to calibrate INT8 with')
    if path:
        it = inference.val_iter(path, meta, size, threads=args.data_nthreads,
                                flag='--data-calib')
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


def excluded_layers(args):
    """The layer names of --exclude."""
    return [name.strip() for name in args.exclude.split(',') if name.strip()]


def build_versions(args, sym, arg_params, aux_params, meta, trained):
    """{'plain'|'fused'|'int8': (symbol, arg_params, aux_params)}."""
    image_shape = tuple(meta['image_shape'])
    plain = (sym, arg_params, aux_params)
    if args.shortcut_conv:
        sym, arg_params = graph.shortcuts_as_convolutions(sym, arg_params, image_shape)
    if args.batchnorm_conv:
        sym, arg_params = graph.batchnorms_as_convolutions(sym, arg_params, aux_params)
    fused = sym.optimize_for('MKLDNN', dict(arg_params), dict(aux_params), ctx=mx.cpu(),
                             shape_dict={'data': (1,) + image_shape})
    from mxnet.contrib import quantization
    calib, examples = calibration_data(args, meta, trained) if args.calib_mode != 'none' \
        else (None, 0)
    excluded = excluded_layers(args)
    qsym, qargs, qaux = quantization.quantize_model_mkldnn(
        sym, dict(arg_params), dict(aux_params), data_names=('data',), label_names=(),
        ctx=mx.cpu(), excluded_sym_names=excluded, calib_mode=args.calib_mode,
        calib_data=calib,
        num_calib_examples=examples, quantized_dtype=args.quantized_dtype,
        quantize_mode='smart', logger=None)
    return {'plain': plain, 'fused': (fused, arg_params, aux_params),
            'int8': (qsym, qargs, qaux)}


def save_int8(args, version, meta):
    """Write the INT8 version as checkpoint 0 of --save, complete, with the metadata of the
    model it was made from (preprocessing, classes) and, under `quantized`, how it was
    made: score.py, predict.py and --teacher load it as they load any checkpoint."""
    qsym, qargs, qaux = version
    if args.model:
        saved, source = dict(meta), '%s:%d' % (args.model, args.epoch)
    else:
        saved = checkpoint.metadata(args.network, args.num_layers, {}, meta['image_shape'],
                                    meta['mean'], meta['std'], meta['num_classes'],
                                    args.preset)
        source = 'random weights'
    saved['quantized'] = {
        'source': source, 'quantized_dtype': args.quantized_dtype,
        'calib_mode': args.calib_mode, 'calib_batches': args.calib_batches,
        'calib_batch_size': args.calib_batch_size, 'shortcut_conv': args.shortcut_conv,
        'batchnorm_conv': args.batchnorm_conv,
        'excluded': excluded_layers(args)}
    checkpoint.write(args.save, 0, qsym, qargs, qaux,
                     {'epoch': 0, 'batch': 0, 'num_update': 0}, saved)


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
    with environment(MXNET_EXEC_BULK_EXEC_INFERENCE='0'):
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


def top1(version, meta, path, threads=2):
    mod = bind(version, 64, tuple(meta['image_shape']))
    probs, labels = inference.predict_iter(mod, inference.val_iter(path, meta, 64,
                                                                   threads=threads))
    return float((probs.argmax(axis=1) == labels).mean()), len(labels)


def run(args, out):
    """Build, time, profile and score the three versions as the flags say; prints the
    tables to `out` and returns {'rows', 'accuracy', 'profile', 'profile_summary'}."""
    sizes = flags.int_list(args.batch_sizes, '--batch-sizes')
    if args.save:
        checkpoint.check_writable(args.save, '--save')
    sym, arg_params, aux_params, meta, trained = load(args)
    image_shape = tuple(meta['image_shape'])
    data_val = default_data(args, meta, trained, 'data_val', 'data_val')
    versions = build_versions(args, sym, arg_params, aux_params, meta, trained)
    if args.save:
        save_int8(args, versions['int8'], meta)
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
            accuracy[name] = top1(version, meta, data_val, args.data_nthreads)
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


