#!/usr/bin/env python
"""ResNeXt-50 32x4d training images/s: our Module path beside gluoncv and PyTorch, on
synthetic 3x224x224 data, float32, on the CPU.

    python benchmarks/resnext.py --batch-size 8 --repeats 3 --torch-python /path/to/python

Every measurement runs in its own process, the order of the contenders alternates between
repeats, and the table shows the median of the repeats. Contenders:
- mxnet-module: train_resnet's Trainer (Module, forward_backward/update/metric) over the
  reference `symbols/resnext.py` graph, with the training rewrites of
  mxresnet.graph.training_graph at their defaults (`--group-channels` the CPU's SIMD width);
- mxnet-module-unmerged: the same with `--group-channels 0` (grouped convolutions as built);
- gluoncv: gluoncv's model zoo `resnext50_32x4d`, hybridized, Gluon Trainer;
- torch-eager, torch-channels-last, torch-compile: the same network written in PyTorch,
  run by `--torch-python` (PyTorch lives in its own environment: `pip install
  torch==2.13.0` there; it is not a dependency of this project).
"""
import argparse
import json
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.train import (run_worker, summarize, time_gluoncv,  # noqa: E402
                              time_torch, time_trainer)
from mxresnet.runtime import use_all_cores  # noqa: E402  pylint: disable=wrong-import-position

CONTENDERS = ('mxnet-module', 'mxnet-module-unmerged', 'gluoncv', 'torch-eager',
              'torch-channels-last', 'torch-compile')
IMAGE = (3, 224, 224)
NUM_CLASSES = 1000
# ResNeXt-50 32x4d (Xie et al. 2017, Table 1): units, bottleneck width, output per stage
STAGES = ((3, 128, 256), (4, 256, 512), (6, 512, 1024), (3, 1024, 2048))
GROUPS = 32


def bench_mxnet_module(batch_size, warmup, iters, unmerged):
    flags = ['--network', 'resnext', '--num-layers', '50', '--num-group', str(GROUPS),
             '--image-shape', ','.join(map(str, IMAGE)), '--num-classes', str(NUM_CLASSES)]
    if unmerged:
        flags += ['--group-channels', '0']
    return time_trainer(flags, IMAGE, batch_size, warmup, iters)


def torch_resnext50():
    """ResNeXt-50 32x4d in PyTorch, post-activation units with the stride in the 3x3 and
    projection shortcuts where the shape changes, as symbols/resnext.py builds it."""
    from torch import nn

    def conv_bn(cin, cout, kernel, stride=1, groups=1):
        return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout)]

    class Unit(nn.Module):
        def __init__(self, cin, width, cout, stride):
            super().__init__()
            self.branch = nn.Sequential(
                *conv_bn(cin, width, 1), nn.ReLU(inplace=True),
                *conv_bn(width, width, 3, stride, GROUPS), nn.ReLU(inplace=True),
                *conv_bn(width, cout, 1))
            self.shortcut = (nn.Sequential(*conv_bn(cin, cout, 1, stride))
                             if stride != 1 or cin != cout else nn.Identity())
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.relu(self.branch(x) + self.shortcut(x))

    layers = [nn.BatchNorm2d(3), *conv_bn(3, 64, 7, 2), nn.ReLU(inplace=True),
              nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, (units, width, cout) in enumerate(STAGES):
        for unit in range(units):
            layers.append(Unit(cin, width, cout, 2 if stage and not unit else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, NUM_CLASSES)]
    return nn.Sequential(*layers)


def run_one(contender, batch_size, warmup, iters):
    """Seconds for `iters` steps of one contender (called in a fresh process)."""
    if contender.startswith('mxnet-module'):
        return bench_mxnet_module(batch_size, warmup, iters, contender.endswith('unmerged'))
    if contender == 'gluoncv':
        return time_gluoncv('resnext50_32x4d', IMAGE, NUM_CLASSES, batch_size, warmup, iters)
    return time_torch(torch_resnext50(), IMAGE, NUM_CLASSES, batch_size, warmup, iters,
                      channels_last=contender != 'torch-eager',
                      compile_model=contender == 'torch-compile')


def measure(contender, args):
    """Images/s of one contender in a subprocess, or None with the reason it failed."""
    python = args.torch_python if contender.startswith('torch') else sys.executable
    command = [python, os.path.abspath(__file__), '--worker', contender,
               '--batch-size', str(args.batch_size), '--warmup', str(args.warmup),
               '--iters', str(args.iters)]
    return run_worker(command, args.batch_size * args.iters, args.timeout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--contenders', nargs='+', default=list(CONTENDERS),
                        choices=CONTENDERS)
    parser.add_argument('--repeats', type=int, default=3, help='runs per contender (median)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--timeout', type=int, default=900)
    parser.add_argument('--torch-python', default=sys.executable,
                        help='the Python that has torch (for the torch-* contenders)')
    parser.add_argument('--worker', choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if not args.worker.startswith('torch'):
            use_all_cores()  # MXNet's thread lever, as train_resnet.py sets it
        seconds = run_one(args.worker, args.batch_size, args.warmup, args.iters)
        print(json.dumps({'seconds': seconds}))
        return 0
    samples = {name: [] for name in args.contenders}
    for repeat in range(args.repeats):
        order = args.contenders if repeat % 2 == 0 else args.contenders[::-1]
        for name in order:
            speed, reason = measure(name, args)
            if speed is None:
                print('%s failed: %s' % (name, reason), file=sys.stderr)
            else:
                samples[name].append(speed)
                print('%-22s run %d: %.2f img/s' % (name, repeat + 1, speed), file=sys.stderr)
    results = summarize(samples)
    print('ResNeXt-50 32x4d training images/s, batch %d, 3x224x224, median of %d runs, %d '
          'timed steps after %d warm-up steps' % (args.batch_size, args.repeats, args.iters,
                                                  args.warmup))
    print('| contender | img/s |\n| --- | --- |')
    for name in args.contenders:
        value = results.get(name)
        print('| %s | %s |' % (name, '%.2f' % value if value is not None else 'n/a'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
