#!/usr/bin/env python
"""Where a ResNeXt training step spends its time on the CPU, and what merging groups buys.

    python benchmarks/grouped_conv.py conv --channels 128 --size 56 --factors 1 2 4
    python benchmarks/grouped_conv.py profile --group-channels 0

`conv`: one grouped 3x3 convolution, forward and backward, ms a step, with its groups as
built (factor 1) and merged k at a time into block-diagonal ones
(`mxresnet.graph.merged_group_weight`, as `--group-channels` does).
`profile`: a few training steps of ResNeXt-50 32x4d through `Module` (the training graph
of `mxresnet.graph.training_graph` with `--group-channels N`) under MKLDNN's own log
(`DNNL_VERBOSE=1`), its primitives' time summed by kind and implementation.
"""
import argparse
import collections
import os
import subprocess
import sys
import time

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet.runtime import use_all_cores  # noqa: E402  pylint: disable=wrong-import-position


def time_conv(batch, channels, size, groups, factor, steps):
    """ms of one forward and backward of a `groups`-group 3x3 convolution, merged by
    `factor`."""
    import mxnet as mx
    from mxresnet import graph
    data, weight = mx.sym.Variable('data'), mx.sym.Variable('weight')
    if factor > 1:
        weight = graph.merged_group_weight(weight, groups, factor)
    conv = mx.sym.Convolution(data, weight=weight, num_filter=channels,
                              num_group=groups // factor, kernel=(3, 3), pad=(1, 1),
                              no_bias=True)
    executor = mx.sym.MakeLoss(mx.sym.sum(conv)).simple_bind(
        mx.cpu(), data=(batch, channels, size, size), weight=(channels, channels // groups, 3, 3))
    for array in executor.arg_arrays:
        array[:] = mx.nd.random.uniform(shape=array.shape)
    for step in range(steps + 2):
        if step == 2:
            mx.nd.waitall()
            start = time.perf_counter()
        executor.forward(is_train=True)
        executor.backward()
    mx.nd.waitall()
    return (time.perf_counter() - start) / steps * 1000


def train_steps(batch, steps, group_channels):
    """`steps` training steps of ResNeXt-50 32x4d through Module, after one warm-up step."""
    import mxnet as mx
    import symbols
    from mxresnet import graph
    shape = (batch, 3, 224, 224)
    sym = graph.training_graph(symbols.get_model('resnext50_32x4d'),
                               group_channels=group_channels, data_shape=shape)
    module = mx.mod.Module(sym, context=mx.cpu())
    module.bind(data_shapes=[('data', shape)], label_shapes=[('softmax_label', (batch,))])
    module.init_params(mx.init.Xavier(magnitude=2))
    module.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.01,
                                                             'momentum': 0.9})
    data = mx.io.DataBatch([mx.nd.random.uniform(shape=shape)], [mx.nd.zeros((batch,))])
    for _ in range(steps + 1):
        module.forward_backward(data)
        module.update()
    mx.nd.waitall()


def kind_of(fields):
    """A `dnnl_verbose,exec` line's fields -> the row of the profile it counts in."""
    primitive, implementation, problem = fields[3], fields[4], fields[-2]
    if primitive != 'convolution':
        return primitive
    if problem.startswith('g'):
        return 'grouped convolution, %s' % implementation
    if 'kh1' in problem and 'kw1' in problem:
        return '1x1 convolution'
    return 'other convolution, %s' % implementation


def profile(args):
    command = [sys.executable, os.path.abspath(__file__), '--worker', 'profile',
               '--batch-size', str(args.batch_size), '--steps', str(args.steps),
               '--group-channels', str(args.group_channels)]
    env = dict(os.environ, DNNL_VERBOSE='1', MXNET_ENGINE_TYPE='NaiveEngine')
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        print((result.stderr.strip().splitlines() or ['exit code %d' % result.returncode])[-1],
              file=sys.stderr)
        return 1
    totals = collections.Counter()
    for line in result.stdout.splitlines():
        if line.startswith('dnnl_verbose,exec'):
            fields = line.split(',')
            totals[kind_of(fields)] += float(fields[-1])
    total = sum(totals.values())
    print('ResNeXt-50 32x4d, batch %d, %d steps after a warm-up step, --group-channels %d: '
          'MKLDNN primitives %.0f ms' % (args.batch_size, args.steps + 1, args.group_channels,
                                         total))
    print('| primitive | ms | share |\n| --- | --- | --- |')
    for kind, ms in totals.most_common():
        print('| %s | %.0f | %.1f%% |' % (kind, ms, 100 * ms / total))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest='command')
    conv = sub.add_parser('conv', help='one grouped convolution, as built and merged')
    conv.add_argument('--batch-size', type=int, default=8)
    conv.add_argument('--channels', type=int, default=128)
    conv.add_argument('--size', type=int, default=56)
    conv.add_argument('--groups', type=int, default=32)
    conv.add_argument('--factors', type=int, nargs='+', default=[1, 2, 4])
    conv.add_argument('--steps', type=int, default=10)
    prof = sub.add_parser('profile', help="a ResNeXt-50 step under MKLDNN's log")
    prof.add_argument('--batch-size', type=int, default=8)
    prof.add_argument('--steps', type=int, default=2)
    prof.add_argument('--group-channels', type=int, default=0)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error('choose conv or profile')
    use_all_cores()
    if args.worker:
        train_steps(args.batch_size, args.steps, args.group_channels)
        return 0
    if args.command == 'profile':
        return profile(args)
    print('| groups x channels | ms a step (forward + backward) |\n| --- | --- |')
    for factor in args.factors:
        if args.groups % factor:
            print('| %d does not divide %d groups | - |' % (factor, args.groups))
            continue
        ms = time_conv(args.batch_size, args.channels, args.size, args.groups, factor,
                       args.steps)
        print('| %d x %d | %.1f |' % (args.groups // factor, args.channels * factor //
                                      args.groups, ms))
    return 0


if __name__ == '__main__':
    sys.exit(main())
