#!/usr/bin/env python
"""ResNet-50 training speed on one GPU: this project against PyTorch, in one run.

    python benchmarks/gpu.py                      # from the repository root
    python benchmarks/gpu.py --batch-sizes 128 --iters 30 --json results.json

Ours runs `train_resnet.py --benchmark 1` (synthetic data, Module, SGD with momentum;
float16 with multi_precision and a loss scale) in a child process per configuration.
PyTorch runs torchvision's ResNet-50 in channels-last, float32 or float16 autocast with
a GradScaler, SGD with momentum, in a child process too, without PYTHONPATH, so an MXNet
set-up made through PYTHONPATH (an old numpy next to the wheel) never reaches PyTorch.

Both are timed the same way: `--warmup` iterations, then `--iters` timed iterations
ending in a device synchronisation. The table gives images/s and, per batch size,
ours float16 over PyTorch AMP against the 0.8x target.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mxresnet import flags  # noqa: E402  (loads no MXNet)
from mxresnet.errors import error_line, run_tool  # noqa: E402
from mxresnet.runtime import hide_broken_scipy, restore_numpy_aliases  # noqa: E402

TARGET = 0.8
def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-sizes', default='128,256', help='comma-separated')
    parser.add_argument('--dtypes', default='float32,float16', help='comma-separated')
    parser.add_argument('--warmup', type=int, default=10, help='untimed iterations first')
    parser.add_argument('--iters', type=int, default=40, help='timed iterations')
    parser.add_argument('--loss-scale', type=float, default=128.0,
                        help='static loss scale of our float16 runs')
    parser.add_argument('--gpu', type=int, default=0)
    parser.add_argument('--only', choices=('ours', 'torch'), help='run one side only')
    parser.add_argument('--timeout', type=float, default=240.0,
                        help='seconds allowed to each child run')
    parser.add_argument('--torch-python', default=sys.executable,
                        help='the Python that has torch and torchvision')
    parser.add_argument('--workdir', default='/tmp/benchmark_gpu',
                        help='where our runs write their logs and checkpoints')
    parser.add_argument('--json', help='also write the results to this file')
    return parser


# -- our side ---------------------------------------------------------------------------
def ours_train_args(batch_size, dtype, warmup, iters, gpu, loss_scale, prefix):
    """train_resnet.py flags for one configuration: `warmup + iters` batches, one display
    after the warm-up and one at the end, so the log brackets the timed iterations."""
    argv = ['--benchmark', '1', '--gpus', str(gpu), '--network', 'resnet',
            '--num-layers', '50', '--image-shape', '3,224,224', '--num-classes', '1000',
            '--batch-size', str(batch_size), '--dtype', dtype, '--num-epochs', '1',
            '--num-examples', str(batch_size * (warmup + iters)),
            '--disp-batches', str(warmup), '--model-prefix', prefix]
    if dtype == 'float16':
        argv += ['--loss-scale', str(loss_scale)]
    return argv


def timed_speed(records, batch_size, warmup):
    """Images/s over the batches after `warmup`, from train_resnet's JSON-lines records.

    Each 'batch' record holds the speed since the start of the epoch, so the time to
    batch b is b * batch_size / speed; the rate between the record at the end of the
    warm-up and the last one excludes start-up, autotuning and the first batches."""
    batches = [r for r in records if r.get('event') == 'batch' and r.get('epoch') == 1]
    start = [r for r in batches if r['batch'] == warmup]
    if not start or batches[-1]['batch'] <= warmup:
        raise ValueError('no batch record at the end of the warm-up (%d) and after it'
                         % warmup)
    first, last = start[0], batches[-1]
    t_first = first['batch'] * batch_size / first['images_per_sec']
    t_last = last['batch'] * batch_size / last['images_per_sec']
    return (last['batch'] - first['batch']) * batch_size / (t_last - t_first)


def read_records(path):
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def last_error_line(text):
    """The line of a failed child's output that says why."""
    return error_line(text, default='no output')


def run_child(cmd, env, timeout):
    """(returncode, output); a timeout is returncode None."""
    try:
        proc = subprocess.run(cmd, env=env, cwd=ROOT, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
    except subprocess.TimeoutExpired as err:
        out = err.output or ''
        if isinstance(out, bytes):
            out = out.decode('utf-8', 'replace')
        return None, out + '\ntimed out after %.0f s' % timeout
    return proc.returncode, proc.stdout


def run_side(side, cmd, env, args, batch_size, dtype):
    """Run one side's child: (its result so far, its output, whether it exited 0)."""
    rc, out = run_child(cmd, env, args.timeout)
    result = {'side': side, 'batch_size': batch_size, 'dtype': dtype, 'command': cmd}
    if rc != 0:
        result['error'] = last_error_line(out)
        result['output_tail'] = out[-3000:]
    return result, out, rc == 0


def run_ours(args, batch_size, dtype):
    prefix = os.path.join(args.workdir, 'resnet50-%s-%d' % (dtype, batch_size), 'model')
    log = prefix + '-log.jsonl'
    if os.path.exists(log):
        os.remove(log)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    cmd = [sys.executable, os.path.abspath(__file__), '--child-ours'] + ours_train_args(
        batch_size, dtype, args.warmup, args.iters, args.gpu, args.loss_scale, prefix)
    result, _, ok = run_side('ours', cmd, dict(os.environ), args, batch_size, dtype)
    if not ok:
        return result
    try:
        result['images_per_sec'] = timed_speed(read_records(log), batch_size, args.warmup)
    except (OSError, ValueError, KeyError) as err:
        result['error'] = 'no speed in %s: %s' % (log, err)
    return result


def child_ours(argv):
    """Run train_resnet.main in this process, after the numpy aliases mxnet needs."""
    import numpy
    restore_numpy_aliases(numpy)
    hide_broken_scipy()
    import train_resnet
    return train_resnet.main(argv)


# -- PyTorch side -----------------------------------------------------------------------
def torch_env(environ):
    """The environment for the PyTorch child: no PYTHONPATH, so the MXNet side's numpy and
    site folder stay out of it."""
    env = dict(environ)
    env.pop('PYTHONPATH', None)
    return env


def run_torch(args, batch_size, dtype):
    cmd = [args.torch_python, os.path.abspath(__file__), '--child-torch',
           str(batch_size), dtype, str(args.warmup), str(args.iters), str(args.gpu)]
    result, out, ok = run_side('torch', cmd, torch_env(os.environ), args, batch_size, dtype)
    if not ok:
        return result
    for line in out.splitlines():
        if line.startswith('RESULT '):
            result.update(json.loads(line[len('RESULT '):]))
            return result
    result['error'] = 'no RESULT line in the output'
    result['output_tail'] = out[-3000:]
    return result


def child_torch(batch_size, dtype, warmup, iters, gpu):  # pragma: no cover - needs a GPU
    import torch
    import torchvision
    torch.backends.cudnn.benchmark = True
    device = torch.device('cuda', gpu)
    model = torchvision.models.resnet50(num_classes=1000).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    criterion = torch.nn.CrossEntropyLoss()
    amp = dtype == 'float16'
    scaler = torch.amp.GradScaler('cuda', enabled=amp)
    data = torch.randn(batch_size, 3, 224, 224, device=device)
    data = data.contiguous(memory_format=torch.channels_last)
    label = torch.randint(0, 1000, (batch_size,), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast('cuda', dtype=torch.float16, enabled=amp):
            loss = criterion(model(data), label)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    for _ in range(warmup):
        step()
    torch.cuda.synchronize(device)
    start = time.time()
    for _ in range(iters):
        loss = step()
    torch.cuda.synchronize(device)
    elapsed = time.time() - start
    print('RESULT ' + json.dumps({
        'images_per_sec': batch_size * iters / elapsed, 'loss': float(loss),
        'torch': torch.__version__, 'torchvision': torchvision.__version__,
        'gpu_name': torch.cuda.get_device_name(device),
        'tf32_conv': torch.backends.cudnn.allow_tf32,
        'tf32_matmul': torch.backends.cuda.matmul.allow_tf32}))
    return 0


# -- report -----------------------------------------------------------------------------
def gpu_description():
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total',
                              '--format=csv,noheader'], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else 'unknown GPU'
    except (OSError, subprocess.SubprocessError, IndexError):
        return 'unknown GPU'


def speed_cell(result):
    if result is None:
        return '-'
    if 'error' in result:
        return 'failed'
    return '%.0f' % result['images_per_sec']


def ratio(ours, torch):
    if not ours or not torch or 'images_per_sec' not in ours \
            or 'images_per_sec' not in torch:
        return None
    return ours['images_per_sec'] / torch['images_per_sec']


def format_table(results, batch_sizes, dtypes):
    """The images/s table, then ours float16 / PyTorch AMP per batch size vs the target,
    then the error of every failed run."""
    def find(side, bs, dt):
        for r in results:
            if (r['side'], r['batch_size'], r['dtype']) == (side, bs, dt):
                return r
        return None

    rows = [('batch', 'dtype', 'ours img/s', 'PyTorch img/s', 'ours/PyTorch')]
    for bs in batch_sizes:
        for dt in dtypes:
            o, t = find('ours', bs, dt), find('torch', bs, dt)
            r = ratio(o, t)
            rows.append((str(bs), dt + (' (AMP)' if dt == 'float16' else ''),
                         speed_cell(o), speed_cell(t), '-' if r is None else '%.2fx' % r))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ['| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths)) + ' |'
             for row in rows]
    lines.insert(1, '|' + '|'.join('-' * (w + 2) for w in widths) + '|')
    if 'float16' in dtypes:
        for bs in batch_sizes:
            r = ratio(find('ours', bs, 'float16'), find('torch', bs, 'float16'))
            if r is None:
                verdict = 'not measured'
            else:
                verdict = '%.2fx: target %.1fx %s' % (r, TARGET,
                                                     'met' if r >= TARGET else 'NOT met')
            lines.append('batch %d, ours float16 / PyTorch AMP: %s' % (bs, verdict))
    for r in results:
        if 'error' in r:
            lines.append('%s %s batch %d failed: %s' % (r['side'], r['dtype'],
                                                        r['batch_size'], r['error']))
    return '\n'.join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--child-ours']:
        return child_ours(argv[1:])
    if argv[:1] == ['--child-torch']:
        bs, dtype, warmup, iters, gpu = argv[1:6]
        return child_torch(int(bs), dtype, int(warmup), int(iters), int(gpu))
    args = build_parser().parse_args(argv)
    return run_tool(lambda: run(args), prog='benchmarks/gpu.py')


def run(args):
    args.batch_sizes = flags.int_list(args.batch_sizes, '--batch-sizes')
    args.dtypes = flags.dtype_list(args.dtypes)
    flags.int_list('%d,%d' % (args.warmup, args.iters), '--warmup and --iters')
    gpu = gpu_description()
    print('GPU: %s' % gpu, flush=True)
    results = []
    for bs in args.batch_sizes:
        for dt in args.dtypes:
            for side, fn in (('ours', run_ours), ('torch', run_torch)):
                if args.only and args.only != side:
                    continue
                start = time.time()
                result = fn(args, bs, dt)
                result['wall_s'] = time.time() - start
                print('%s batch %d %s: %s (%.0f s)' % (
                    side, bs, dt, result.get('error') or '%.1f images/s'
                    % result['images_per_sec'], result['wall_s']), flush=True)
                results.append(result)
    print()
    print('ResNet-50 training, images/s, %d timed iterations after %d warm-up, on %s'
          % (args.iters, args.warmup, gpu))
    print(format_table(results, args.batch_sizes, args.dtypes))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'gpu': gpu, 'args': vars(args), 'results': results}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
