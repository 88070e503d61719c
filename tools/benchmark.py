"""Training and inference images/s of any network, depth, batch size and dtype, as a table.

    python tools/benchmark.py --network resnet --num-layers 20,56 --image-shape 3,28,28 \\
        --batch-sizes 32,128 --dtypes float32,float16 --mode both

Synthetic data (one random batch held on the device), so the numbers are compute only.
Training is Module's forward_backward + SGD update (multi-precision for float16) over
common.fit.training_graph, as train_resnet.py trains; inference is
a forward pass bound for inference (on the CPU MXNet 1.9.1 applies its MKLDNN subgraph fusion
to such binds by default). Devices: the CPU and, where a GPU exists, GPU 0 (`--gpus` picks
others, `--gpus none` none; `--no-cpu` leaves the CPU out). MXNet 1.9.1 has no float16 GEMM on
the CPU: those cells say so instead of a number. Each cell is the median of `--repeats` timed
runs of `--iters` steps after `--warmup` steps.
"""
import argparse
import os
import statistics
import sys
import time

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import use_all_cores, use_naive_engine  # noqa: E402
use_all_cores()  # before MXNet loads

import mxnet as mx  # noqa: E402

import symbols  # noqa: E402
from common.cli import run_tool  # noqa: E402
from common import UsageError  # noqa: E402
from common.data import SyntheticDataIter  # noqa: E402
from common.fit import training_graph  # noqa: E402

MODES = ('train', 'inference')
CPU_FLOAT16 = 'unsupported: no float16 GEMM on CPU'


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--network', default='resnet',
                        help='one of %s' % ', '.join(symbols.list_networks()))
    parser.add_argument('--num-layers', default='50', help='depths, comma-separated')
    parser.add_argument('--image-shape', default='3,224,224', help='input shape "C,H,W"')
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--batch-sizes', default='32', help='batch sizes, comma-separated')
    parser.add_argument('--dtypes', '--dtype', default='float32',
                        help='float32 and/or float16, comma-separated')
    parser.add_argument('--mode', choices=('train', 'inference', 'both'), default='both')
    parser.add_argument('--gpus', default='auto',
                        help='GPUs to run on besides the CPU: "auto" (GPU 0 if any), '
                             '"none", or numbers such as "0,1" (one row each)')
    parser.add_argument('--no-cpu', action='store_true', help='leave the CPU out')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    parser.add_argument('--iters', type=int, default=5, help='timed steps per repeat')
    parser.add_argument('--repeats', type=int, default=3, help='timed repeats (median)')
    return parser


def _int_list(text, flag, minimum=1):
    try:
        values = [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise UsageError('%s %r: expected comma-separated numbers' % (flag, text))
    if not values or min(values) < minimum:
        raise UsageError('%s %r: expected numbers from %d' % (flag, text, minimum))
    return values


def devices(gpus, no_cpu=False):
    """[('cpu', 0) and/or ('gpu', i)]: the CPU, then the GPUs asked for that exist."""
    available = mx.context.num_gpus()
    text = (gpus or 'none').strip().lower()
    if text == 'auto':
        ids = [0] if available > 0 else []
    elif text in ('none', ''):
        ids = []
    else:
        ids = _int_list(text, '--gpus', minimum=0)
        missing = [i for i in ids if i >= available]
        if missing:
            raise UsageError('--gpus %s: %s' % (gpus, 'this machine has no GPU' if not available
                                                else 'this machine has GPUs 0..%d'
                                                % (available - 1)))
    result = [] if no_cpu else [('cpu', 0)]
    result += [('gpu', i) for i in ids]
    if not result:
        raise UsageError('nothing to run: --no-cpu and no GPU')
    return result


def plan(args):
    """The table's rows: dicts of device, network, layers, dtype, batch, image_shape."""
    layers = _int_list(args.num_layers, '--num-layers')
    sizes = _int_list(args.batch_sizes, '--batch-sizes')
    dtypes = [d.strip() for d in args.dtypes.split(',') if d.strip()]
    for dtype in dtypes:
        if dtype not in ('float32', 'float16'):
            raise UsageError('--dtypes %r: choose float32 and/or float16' % args.dtypes)
    try:
        shape = tuple(int(v) for v in args.image_shape.split(','))
    except ValueError:
        raise UsageError('--image-shape %r: expected "C,H,W"' % args.image_shape)
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
    mod = mx.mod.Module(training_graph(sym) if train else sym, context=ctx)
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
        lines = [line for line in str(err).strip().split('\n') if line.strip()]
        return 'failed: %s' % (lines[-1] if lines else 'MXNet error')[:80]


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


def run(args, out=None, measure_fn=measure, own_process=False):
    out = out or sys.stdout
    rows = plan(args)
    if own_process and all(row['device'][0] == 'cpu' for row in rows):
        use_naive_engine()  # not with GPUs: the synchronous engine would serialise their work
    for row in rows:
        for mode in row['modes']:
            row[mode] = measure_fn(row, mode, args.warmup, args.iters, args.repeats)
    print(format_table(rows), file=out)
    return rows


def main(argv=None, own_process=False):
    """`own_process`: this process runs only this command, so MXNet's engine may be chosen
    for it (common.use_naive_engine)."""
    args = build_parser().parse_args(argv)
    return run_tool(lambda: run(args, own_process=own_process) and 0)


if __name__ == '__main__':
    sys.exit(main(own_process=True))
