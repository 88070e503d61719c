"""Training and inference images/s of any network, depth, batch size and dtype, as a table
(tools/benchmark.py; what is timed: its docstring). Functions take its parsed flags.
"""
import statistics
import time

import mxnet as mx

import symbols

from . import flags, graph
from .data import SyntheticDataIter
from .errors import UsageError, mxnet_error_summary
from .runtime import default_group_channels, use_naive_engine

MODES = ('train', 'inference')
CPU_FLOAT16 = 'unsupported: no float16 GEMM on CPU'


def devices(gpus, no_cpu=False):
    """[('cpu', 0) and/or ('gpu', i)]: the CPU, then the GPUs asked for that exist."""
    available = mx.context.num_gpus()
    text = (gpus or 'none').strip().lower()
    if text == 'auto':
        ids = [0] if available > 0 else []
    elif text in ('none', ''):
        ids = []
    else:
        ids = flags.gpu_list(text)
    result = [] if no_cpu else [('cpu', 0)]
    result += [('gpu', i) for i in ids]
    if not result:
        raise UsageError('nothing to run: --no-cpu and no GPU')
    return result


def plan(args):
    """The table's rows: dicts of device, network, layers, dtype, batch, image_shape."""
    layers = flags.int_list(args.num_layers, '--num-layers')
    sizes = flags.int_list(args.batch_sizes, '--batch-sizes')
    dtypes = flags.dtype_list(args.dtypes)
    shape = flags.image_shape(args.image_shape)
    if args.network not in symbols.list_networks():
        raise UsageError('--network %r: choose one of %s'
                         % (args.network, ', '.join(symbols.list_networks())))
    for depth in layers:
        try:  # check every depth before timing anything
            symbols.get_symbol(args.network, num_classes=args.num_classes, num_layers=depth,
                               image_shape=args.image_shape)
        except ValueError as err:
            raise UsageError(str(err))
    modes = MODES if args.mode == 'both' else (args.mode,)
    return [dict(device=device, network=args.network, layers=depth, dtype=dtype, batch=size,
                 image_shape=shape, num_classes=args.num_classes, modes=modes)
            for device in devices(args.gpus, args.no_cpu)
            for depth in layers for dtype in dtypes for size in sizes]


def _context(device):
    kind, index = device
    return mx.gpu(index) if kind == 'gpu' else mx.cpu()


def measure(row, mode, warmup, iters, repeats):
    """Images/s of one cell (a number), or a string saying why there is none."""
    if row['device'][0] == 'cpu' and row['dtype'] == 'float16':
        return CPU_FLOAT16
    shape = (row['batch'],) + row['image_shape']
    sym = symbols.get_symbol(row['network'], num_classes=row['num_classes'],
                             num_layers=row['layers'],
                             image_shape=','.join(map(str, row['image_shape'])),
                             dtype=row['dtype'])
    ctx = _context(row['device'])
    data = SyntheticDataIter(row['num_classes'], shape, 1, dtype='float32')
    batch = data.next()
    batch = mx.io.DataBatch([batch.data[0].as_in_context(ctx)],
                            [batch.label[0].as_in_context(ctx)], pad=0)
    train = mode == 'train'
    if train:  # as train_resnet.py trains it (--group-channels' default)
        sym = graph.training_graph(
            sym, group_channels=default_group_channels(row['device'][0] == 'gpu'),
            data_shape=shape)
    mod = mx.mod.Module(sym, context=ctx)
    try:
        mod.bind(data.provide_data, data.provide_label, for_training=train)
        mod.init_params(mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2))
        if train:
            mod.init_optimizer(optimizer='sgd', optimizer_params={
                'learning_rate': 0.01, 'momentum': 0.9, 'wd': 1e-4,
                'multi_precision': row['dtype'] == 'float16'})

        def step():
            if train:
                mod.forward_backward(batch)
                mod.update()
            else:
                mod.forward(batch, is_train=False)
        for _ in range(warmup):
            step()
        mx.nd.waitall()
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(iters):
                step()
            mx.nd.waitall()
            rates.append(iters * row['batch'] / (time.perf_counter() - start))
        return statistics.median(rates)
    except mx.base.MXNetError as err:
        return 'failed: %s' % mxnet_error_summary(err)[:80]


def format_table(rows):
    """A Markdown table of the rows (with their 'train'/'inference' results)."""
    modes = [m for m in MODES if any(m in r for r in rows)]
    header = ['device', 'network', 'layers', 'dtype', 'batch'] + \
        ['%s img/s' % m for m in modes]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
    for r in rows:
        cells = ['%s(%d)' % r['device'], r['network'], str(r['layers']), r['dtype'],
                 str(r['batch'])]
        for m in modes:
            value = r.get(m, '')
            cells.append('%.1f' % value if isinstance(value, float) else str(value))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def run(args, out, measure_fn=measure, pick_engine=False):
    """Measure every cell of the flags' table and print it to `out`; returns the rows.
    `pick_engine`: choose MXNet's engine for this process (runtime.use_naive_engine)."""
    rows = plan(args)
    if pick_engine and all(row['device'][0] == 'cpu' for row in rows):
        use_naive_engine()  # not with GPUs: the synchronous engine would serialise their work
    for row in rows:
        for mode in row['modes']:
            row[mode] = measure_fn(row, mode, args.warmup, args.iters, args.repeats)
    print(format_table(rows), file=out)
    return rows


