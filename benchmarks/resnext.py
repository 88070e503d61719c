#!/usr/bin/env python
"""ResNeXt training images/s: our Module path beside gluoncv and PyTorch, on synthetic
data, float32, on the CPU: ResNeXt-50 32x4d at 3x224x224 or a CIFAR ResNeXt-29 at 3x32x32.

    python benchmarks/resnext.py --batch-size 8 --repeats 3 --torch-python /path/to/python
    python benchmarks/resnext.py --model resnext29_32x4d --batch-size 32 ...

Every measurement runs in its own process, the order of the contenders alternates between
repeats, and the table shows the median of the repeats. Contenders:
- mxnet-module: train_resnet's Trainer (Module, forward_backward/update/metric) over the
  `symbols/resnext.py` graph of the named model (`--model`), with the training rewrites of
  mxresnet.graph.training_graph at their defaults (`--group-channels` the CPU's SIMD width);
- mxnet-module-unmerged: the same with `--group-channels 0` (grouped convolutions as built);
- gluoncv: the same model from gluoncv's model zoo (`resnext50_32x4d`,
  `cifar_resnext29_32x4d`, `cifar_resnext29_16x64d`), hybridized, Gluon Trainer;
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
MODELS = ('resnext50_32x4d', 'resnext29_32x4d', 'resnext29_8x64d', 'resnext29_16x64d')
GLUONCV = {'resnext50_32x4d': 'resnext50_32x4d', 'resnext29_32x4d': 'cifar_resnext29_32x4d',
           'resnext29_16x64d': 'cifar_resnext29_16x64d'}


def model_spec(model):
    """What a worker needs to build the named model `model` without `symbols` (the torch
    workers run where MXNet is not installed)."""
    import symbols
    from symbols.blocks import IMAGENET_UNITS
    config = symbols.model_config(model)
    imagenet = config.image_shape[1] > 32
    return {'model': model, 'num_layers': config.num_layers,
            'groups': config.options['num_group'], 'width': config.options['bottleneck_width'],
            'image_shape': list(config.image_shape), 'num_classes': config.num_classes,
            'imagenet': imagenet, 'units': list(IMAGENET_UNITS[config.num_layers]) if imagenet
            else [(config.num_layers - 2) // 9] * 3}


def bench_mxnet_module(spec, batch_size, warmup, iters, unmerged):
    flags = ['--model', spec['model']]
    if unmerged:
        flags += ['--group-channels', '0']
    return time_trainer(flags, tuple(spec['image_shape']), batch_size, warmup, iters)


def torch_resnext(spec):
    """The ResNeXt of `model_spec` in PyTorch, as symbols/resnext.py builds it:
    post-activation units with the stride in the 3x3, projection shortcuts where the shape
    changes, the input's BatchNorm; a 7x7 stem and max-pooling before 4 stages at ImageNet
    sizes, a 3x3 stem of 64 before 3 stages on CIFAR."""
    from torch import nn
    groups, width = spec['groups'], spec['width']
    if spec['imagenet']:
        stem = [*conv_bn(nn, 3, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    else:
        stem = [*conv_bn(nn, 3, 64, 3), nn.ReLU(inplace=True)]

    class Unit(nn.Module):
        def __init__(self, cin, inner, cout, stride):
            super().__init__()
            self.branch = nn.Sequential(
                *conv_bn(nn, cin, inner, 1), nn.ReLU(inplace=True),
                *conv_bn(nn, inner, inner, 3, stride, groups), nn.ReLU(inplace=True),
                *conv_bn(nn, inner, cout, 1))
            self.shortcut = (nn.Sequential(*conv_bn(nn, cin, cout, 1, stride))
                             if stride != 1 or cin != cout else nn.Identity())
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.relu(self.branch(x) + self.shortcut(x))

    layers = [nn.BatchNorm2d(3)] + stem
    cin = 64
    for stage, count in enumerate(spec['units']):
        for unit in range(count):
            layers.append(Unit(cin, groups * width * 2 ** stage, 256 * 2 ** stage,
                               2 if stage and not unit else 1))
            cin = 256 * 2 ** stage
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, spec['num_classes'])]
    return nn.Sequential(*layers)


def conv_bn(nn, cin, cout, kernel, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout)]


def run_one(contender, spec, batch_size, warmup, iters):
    """Seconds for `iters` steps of one contender (called in a fresh process)."""
    image = tuple(spec['image_shape'])
    if contender.startswith('mxnet-module'):
        return bench_mxnet_module(spec, batch_size, warmup, iters,
                                  contender.endswith('unmerged'))
    if contender == 'gluoncv':
        if spec['model'] not in GLUONCV:
            raise SystemExit('gluoncv has no %s' % spec['model'])
        return time_gluoncv(GLUONCV[spec['model']], image, spec['num_classes'], batch_size,
                            warmup, iters)
    return time_torch(torch_resnext(spec), image, spec['num_classes'], batch_size, warmup,
                      iters, channels_last=contender != 'torch-eager',
                      compile_model=contender == 'torch-compile')


def measure(contender, spec, args):
    """Images/s of one contender in a subprocess, or None with the reason it failed."""
    python = args.torch_python if contender.startswith('torch') else sys.executable
    command = [python, os.path.abspath(__file__), '--worker', contender,
               '--spec', json.dumps(spec), '--batch-size', str(args.batch_size), '--warmup', str(args.warmup),
               '--iters', str(args.iters)]
    return run_worker(command, args.batch_size * args.iters, args.timeout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', choices=MODELS, default=MODELS[0])
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
    parser.add_argument('--spec', type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if not args.worker.startswith('torch'):
            use_all_cores()  # MXNet's thread lever, as train_resnet.py sets it
        seconds = run_one(args.worker, args.spec, args.batch_size, args.warmup, args.iters)
        print(json.dumps({'seconds': seconds}))
        return 0
    spec = model_spec(args.model)
    samples = {name: [] for name in args.contenders}
    for repeat in range(args.repeats):
        order = args.contenders if repeat % 2 == 0 else args.contenders[::-1]
        for name in order:
            speed, reason = measure(name, spec, args)
            if speed is None:
                print('%s failed: %s' % (name, reason), file=sys.stderr)
            else:
                samples[name].append(speed)
                print('%-22s run %d: %.2f img/s' % (name, repeat + 1, speed), file=sys.stderr)
    results = summarize(samples)
    print('%s training images/s, batch %d, %s, median of %d runs, %d timed steps after %d '
          'warm-up steps' % (args.model, args.batch_size,
                             'x'.join(map(str, spec['image_shape'])),
                             args.repeats, args.iters, args.warmup))
    print('| contender | img/s |\n| --- | --- |')
    for name in args.contenders:
        value = results.get(name)
        print('| %s | %s |' % (name, '%.2f' % value if value is not None else 'n/a'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
