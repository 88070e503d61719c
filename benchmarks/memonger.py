#!/usr/bin/env python
"""What `--memonger 1` saves: memory and step time with and without MXNet's mirroring.

    python benchmarks/memonger.py --num-layers 110 --image-shape 3,28,28 --batch-size 128

Each setting runs in its own process, as train_resnet.py does it: the graph's
`mirror_stage` attributes plus `MXNET_BACKWARD_DO_MIRROR=1`. Reported: the executor's
planned memory (`debug_str`), the process's peak resident memory and seconds per step.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(args):
    """One setting, in this process: planned MB, peak RSS MB, seconds per step."""
    import mxnet as mx
    import numpy as np
    import symbols
    from symbols.blocks import parse_image_shape
    memonger = os.environ.get('MXNET_BACKWARD_DO_MIRROR') == '1'
    sym = symbols.get_symbol(args.network, num_classes=args.num_classes,
                             num_layers=args.num_layers, image_shape=args.image_shape,
                             memonger=memonger)
    shape = (args.batch_size,) + parse_image_shape(args.image_shape)
    module = mx.mod.Module(sym, context=mx.cpu())
    module.bind(data_shapes=[('data', shape)], label_shapes=[('softmax_label', shape[:1])])
    module.init_params(mx.init.Xavier(magnitude=2))
    module.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.01,
                                                              'momentum': 0.9})
    planned = [line for line in module._exec_group.execs[0].debug_str().splitlines()  # pylint: disable=W0212
               if 'MB allocated' in line][0].split()[1]
    batch = mx.io.DataBatch([mx.nd.array(np.random.rand(*shape))],
                            [mx.nd.array(np.random.randint(0, args.num_classes, shape[0]))])
    module.forward_backward(batch)
    module.update()
    mx.nd.waitall()
    start = time.time()
    for _ in range(args.steps):
        module.forward_backward(batch)
        module.update()
    mx.nd.waitall()
    return {'planned_mb': float(planned),
            'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            'seconds_per_step': (time.time() - start) / args.steps}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--network', default='resnet')
    parser.add_argument('--num-layers', type=int, default=110)
    parser.add_argument('--image-shape', default='3,28,28')
    parser.add_argument('--num-classes', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args)))
        return 0
    rows = {}
    for mirror in ('0', '1'):
        env = dict(os.environ, MXNET_BACKWARD_DO_MIRROR=mirror)
        out = subprocess.run([sys.executable, os.path.abspath(__file__), '--worker'] +
                             (argv if argv is not None else sys.argv[1:]),
                             env=env, capture_output=True, text=True, check=True).stdout
        rows[mirror] = json.loads(out.strip().splitlines()[-1])
    print('%s-%d, %s, batch %d, CPU' % (args.network, args.num_layers, args.image_shape,
                                       args.batch_size))
    print('| memonger | planned MB | peak RSS MB | s/step |')
    print('| --- | --- | --- | --- |')
    for mirror, label in (('0', 'off'), ('1', 'on')):
        row = rows[mirror]
        print('| %s | %.0f | %.0f | %.2f |' % (label, row['planned_mb'], row['peak_rss_mb'],
                                              row['seconds_per_step']))
    off, on = rows['0'], rows['1']
    print('memonger on vs off: planned %+.1f%%, peak RSS %+.1f%%, step time %+.1f%%' % (
        100 * (on['planned_mb'] / off['planned_mb'] - 1),
        100 * (on['peak_rss_mb'] / off['peak_rss_mb'] - 1),
        100 * (on['seconds_per_step'] / off['seconds_per_step'] - 1)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
