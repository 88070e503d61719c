#!/usr/bin/env python
"""Training images/s of our Module path beside gluoncv and PyTorch, on synthetic data.

    python benchmarks/train.py --depths 20 56 --batch-size 128 --repeats 3

Every measurement runs in its own process (no shared thread pools), the order of the
frameworks alternates between repeats, and the table shows the median of the repeats.
Contenders, all CIFAR-style pre-activation ResNets (16/32/64 filters, 3 stages) at 32x32:
- mxnet-module: our path, train_resnet's Trainer (Module, forward_backward/update/metric)
  over the reference `symbols/resnet.py` graph (built for 28 px, fed 32x32 images), its
  residual sums computed by add_n and its global average pooling by mean (the defaults
  `--residual-sum add_n --global-pool mean`; mxresnet.graph.training_graph);
- mxnet-module-as-built: the same with `--residual-sum elemwise_add --global-pool pooling`,
  the graph as built;
- gluoncv: gluoncv's model zoo `cifar_resnet<depth>_v2`, hybridized, Gluon Trainer;
- torch-eager, torch-channels-last, torch-compile: the same network written in PyTorch.
PyTorch is optional (`pip install torch==2.13.0`); missing contenders are reported as such.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet.runtime import use_all_cores  # noqa: E402  pylint: disable=wrong-import-position

CONTENDERS = ('mxnet-module', 'mxnet-module-as-built', 'gluoncv', 'torch-eager',
              'torch-channels-last', 'torch-compile')
IMAGE = (3, 32, 32)
NUM_CLASSES = 10


def time_steps(step, warmup, iters, sync):
    """Images/s over `iters` steps after `warmup` steps; `sync` waits for the device."""
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    return time.perf_counter() - start


def bench_mxnet_module(depth, batch_size, warmup, iters, as_built):
    flags = ['--network', 'resnet', '--num-layers', str(depth), '--image-shape', '3,28,28',
             '--num-classes', str(NUM_CLASSES)]
    if as_built:
        flags += ['--residual-sum', 'elemwise_add', '--global-pool', 'pooling']
    return time_trainer(flags, IMAGE, batch_size, warmup, iters)


def time_trainer(flags, image, batch_size, warmup, iters):
    """Seconds for `iters` steps of train_resnet's Trainer (forward_backward, update and the
    running metrics) with train_resnet.py's `flags`, on synthetic batches of `image`."""
    import mxnet as mx
    import train_resnet
    from mxresnet import fit
    argv = flags + ['--benchmark', '1', '--batch-size', str(batch_size), '--num-epochs', '1',
                    '--model-prefix', '', '--log-file', '', '--disp-batches', str(10 ** 9)]
    args = train_resnet.build_parser().parse_args(argv)
    image_shape = fit.configure(args)
    symbol = fit.build_symbol(args, image_shape)
    args.num_examples = batch_size * (warmup + iters)
    trainer = fit.Trainer(args, symbol, image, pick_engine=True)  # as train_resnet.py's CLI does
    module = trainer.build_module((batch_size,) + image, None, None, 0)
    metric = mx.metric.create(['acc', 'ce'])
    batch = next(iter(trainer.train_iter(0)))

    def step():
        module.forward_backward(batch)
        module.update()
        module.update_metric(metric, batch.label)
    return time_steps(step, warmup, iters, mx.nd.waitall)


def bench_gluoncv(depth, batch_size, warmup, iters):
    return time_gluoncv('cifar_resnet%d_v2' % depth, IMAGE, NUM_CLASSES, batch_size, warmup,
                        iters)


def time_gluoncv(name, image, num_classes, batch_size, warmup, iters):
    """Seconds for `iters` Gluon training steps of gluoncv's model zoo `name`, hybridized."""
    import mxnet as mx
    from mxnet import autograd, gluon
    # gluoncv 0.10 refuses to import beside torch>=2.0; hide torch in this process
    sys.modules['torch'] = None
    from gluoncv.model_zoo import get_model
    net = get_model(name, classes=num_classes)
    net.initialize(mx.init.Xavier(magnitude=2))
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), 'sgd',
                            {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-4})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    data = mx.nd.random.uniform(shape=(batch_size,) + image)
    label = mx.nd.array([i % num_classes for i in range(batch_size)])

    def step():
        with autograd.record():
            loss = loss_fn(net(data), label)
        loss.backward()
        trainer.step(batch_size)
    return time_steps(step, warmup, iters, mx.nd.waitall)


def torch_resnet(depth):
    """The CIFAR pre-activation ResNet (He et al. 2016) in PyTorch: 16/32/64 filters."""
    from torch import nn

    class Unit(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.relu = nn.ReLU(inplace=False)
            self.sc = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                       if stride != 1 or cin != cout else None)

        def forward(self, x):
            act = self.relu(self.bn1(x))
            out = self.conv2(self.relu(self.bn2(self.conv1(act))))
            return out + (self.sc(act) if self.sc is not None else x)

    n = (depth - 2) // 6
    layers = [nn.BatchNorm2d(3), nn.Conv2d(3, 16, 3, 1, 1, bias=False)]
    cin = 16
    for stage, cout in enumerate((16, 32, 64)):
        for unit in range(n):
            layers.append(Unit(cin, cout, 2 if stage and not unit else 1))
            cin = cout
    layers += [nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(64, NUM_CLASSES)]
    return nn.Sequential(*layers)


def bench_torch(depth, batch_size, warmup, iters, channels_last=False, compile_model=False):
    return time_torch(torch_resnet(depth), IMAGE, NUM_CLASSES, batch_size, warmup, iters,
                      channels_last, compile_model)


def time_torch(model, image, num_classes, batch_size, warmup, iters, channels_last,
               compile_model):
    """Seconds for `iters` SGD steps of the PyTorch `model` on all cores."""
    import torch
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    data = torch.rand((batch_size,) + image)
    label = torch.arange(batch_size) % num_classes
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        data = data.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    forward = torch.compile(model) if compile_model else model

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(forward(data), label).backward()
        optimizer.step()
    return time_steps(step, warmup, iters, lambda: None)


def run_one(contender, depth, batch_size, warmup, iters):
    """Seconds for `iters` steps of one contender (called in a fresh process)."""
    if contender.startswith('mxnet-module'):
        return bench_mxnet_module(depth, batch_size, warmup, iters,
                                  as_built=contender.endswith('as-built'))
    if contender == 'gluoncv':
        return bench_gluoncv(depth, batch_size, warmup, iters)
    return bench_torch(depth, batch_size, warmup, iters,
                       channels_last=contender != 'torch-eager',
                       compile_model=contender == 'torch-compile')


def measure(contender, depth, args):
    """Images/s of one contender in a subprocess, or None with the reason it failed."""
    command = [sys.executable, os.path.abspath(__file__), '--worker', contender,
               '--depths', str(depth), '--batch-size', str(args.batch_size),
               '--warmup', str(args.warmup), '--iters', str(args.iters)]
    return run_worker(command, args.batch_size * args.iters, args.timeout)


def run_worker(command, images, timeout):
    """Images/s of a worker process that prints {"seconds": S} for `images` images, or
    None with the reason it gave none (its last line on stderr)."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, 'no result within --timeout %d s' % timeout
    for line in reversed(result.stdout.splitlines()):
        if line.startswith('{'):
            return images / json.loads(line)['seconds'], None
    reason = (result.stderr.strip().splitlines() or ['exit code %d' % result.returncode])[-1]
    return None, reason


def summarize(samples):
    """{contender: median images/s} over the successful samples."""
    return {name: statistics.median(values) for name, values in samples.items() if values}


def format_table(results, depths, contenders):
    header = '| contender | ' + ' | '.join('ResNet-%d img/s' % d for d in depths) + ' |'
    lines = [header, '|' + ' --- |' * (len(depths) + 1)]
    for name in contenders:
        cells = []
        for depth in depths:
            value = results[depth].get(name)
            cells.append('%.0f' % value if value is not None else 'n/a')
        lines.append('| %s | %s |' % (name, ' | '.join(cells)))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--depths', type=int, nargs='+', default=[20, 56])
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--contenders', nargs='+', default=list(CONTENDERS),
                        choices=CONTENDERS)
    parser.add_argument('--repeats', type=int, default=3, help='runs per contender (median)')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--timeout', type=int, default=900)
    parser.add_argument('--worker', choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        # Both MXNet contenders get MXNet's thread lever, as train_resnet.py sets it.
        use_all_cores()
        seconds = run_one(args.worker, args.depths[0], args.batch_size, args.warmup, args.iters)
        print(json.dumps({'seconds': seconds}))
        return 0
    results = {}
    for depth in args.depths:
        samples = {name: [] for name in args.contenders}
        for repeat in range(args.repeats):
            order = args.contenders if repeat % 2 == 0 else args.contenders[::-1]
            for name in order:
                speed, reason = measure(name, depth, args)
                if speed is None:
                    print('ResNet-%d %s failed: %s' % (depth, name, reason), file=sys.stderr)
                else:
                    samples[name].append(speed)
                    print('ResNet-%d %-20s run %d: %.1f img/s' % (depth, name, repeat + 1, speed),
                          file=sys.stderr)
        results[depth] = summarize(samples)
    print('Training images/s, batch %d, 32x32, median of %d runs, %d timed steps after %d '
          'warm-up steps' % (args.batch_size, args.repeats, args.iters, args.warmup))
    print(format_table(results, args.depths, args.contenders))
    return 0


if __name__ == '__main__':
    sys.exit(main())
