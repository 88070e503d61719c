#!/usr/bin/env python
"""Training speed on one machine: `--kv-store local` (one process) against `dist_sync`
over the parameter server (tools/launch.py --launcher local, 1 server) and Horovod
(tools/launch.py --launcher horovod), same network.

    python benchmarks/dist.py                      # ResNet-20, 1x28x28, synthetic data
    python benchmarks/dist.py --batch-size 256 --batches 30 --epochs 3
    python benchmarks/dist.py --bundled --per-worker --batch-size 64 \\
        --configs local,dist_sync-2,horovod-2      # the bundled data, 64 a worker

A configuration is `local`, `dist_sync-N` or `horovod-N` (N workers). `--batch-size` is
the total of each configuration (train_resnet.py's meaning), or with --per-worker the batch
of each worker (the total then grows with the workers). Each round runs the configurations
one after the other; the table gives the median round of each. Images/s is that of rank 0's
last epoch (the first warms up), counting the images of every worker: the job's
throughput. With `dist_sync-1` and `local`, the parameter-server overhead is the time per
image that dist_sync with 1 worker adds: 1 - speed(dist_sync, 1) / speed(local).
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(ROOT, 'data', 'fashion-mnist-train.rec')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def parse_config(name):
    """'local' -> ('local', 1); 'dist_sync-2' -> ('dist_sync', 2); 'horovod-2' likewise."""
    kind, _, count = name.partition('-')
    if name == 'local':
        return 'local', 1
    if kind in ('dist_sync', 'horovod') and count.isdigit() and int(count) > 0:
        return kind, int(count)
    raise argparse.ArgumentTypeError('%r: expected local, dist_sync-N or horovod-N' % name)


def config_list(text):
    return [(name, ) + parse_config(name) for name in text.split(',') if name]


def total_batch(args, workers):
    return args.batch_size * workers if args.per_worker else args.batch_size


def train_command(args, kv_store, workers, prefix):
    batch = total_batch(args, workers)
    data = ['--preset', 'fashion-mnist', '--data-train', BUNDLED] if args.bundled else \
        ['--benchmark', '1', '--image-shape', args.image_shape, '--num-classes', '10']
    return [sys.executable, os.path.join(ROOT, 'train_resnet.py'), '--kv-store', kv_store,
            '--network', args.network, '--num-layers', str(args.num_layers),
            '--batch-size', str(batch), '--num-examples', str(batch * args.batches),
            '--num-epochs', str(args.epochs), '--lr', '0.05', '--disp-batches', '1000',
            '--model-prefix', prefix] + data


def job_command(args, kind, workers, prefix):
    """The command line of one configuration."""
    launch = [sys.executable, os.path.join(ROOT, 'tools', 'launch.py'), '-n', str(workers)]
    if kind == 'local':
        return train_command(args, 'local', 1, prefix)
    if kind == 'dist_sync':
        return launch + ['-s', '1', '--launcher', 'local'] + \
            train_command(args, 'dist_sync', workers, prefix)
    return launch + ['--launcher', 'horovod'] + train_command(args, 'horovod', workers, prefix)


def run_config(args, kind, workers, prefix):
    command = job_command(args, kind, workers, prefix)
    env = dict(os.environ, DMLC_PS_ROOT_PORT=str(free_port()))
    start = time.time()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=args.timeout, start_new_session=True)
    wall = time.time() - start
    if proc.returncode != 0:
        sys.exit('benchmarks/dist.py: %s failed (exit %d):\n%s%s'
                 % (' '.join(command), proc.returncode, proc.stdout[-3000:],
                    proc.stderr[-3000:]))
    with open(prefix + '-log.jsonl') as f:
        epochs = [r for r in map(json.loads, f) if r['event'] == 'epoch']
    return epochs[-1]['images_per_sec'], wall


def display_command(args, kind, workers):
    """The configuration's command as a user would type it (paths relative to the root)."""
    words = ['python' if w == sys.executable else
             os.path.relpath(w, ROOT) if w.startswith(ROOT + os.sep) else w
             for w in job_command(args, kind, workers, 'PREFIX')]
    return ' '.join(words)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--network', default='resnet')
    parser.add_argument('--num-layers', type=int, default=20)
    parser.add_argument('--image-shape', default='1,28,28', help='synthetic data only')
    parser.add_argument('--bundled', action='store_true',
                        help='train on the bundled Fashion-MNIST subset (--preset '
                             'fashion-mnist) instead of synthetic data')
    parser.add_argument('--batch-size', type=int, default=128,
                        help='total over the workers, as in train_resnet.py (with '
                             '--per-worker: each worker\'s)')
    parser.add_argument('--per-worker', action='store_true',
                        help='--batch-size is each worker\'s batch')
    parser.add_argument('--configs', type=config_list,
                        default=config_list('local,dist_sync-1,dist_sync-2'),
                        help='comma-separated: local, dist_sync-N, horovod-N '
                             '(default: local,dist_sync-1,dist_sync-2)')
    parser.add_argument('--batches', type=int, default=20, help='batches per epoch')
    parser.add_argument('--epochs', type=int, default=2, help='epochs (the last is timed)')
    parser.add_argument('--repeat', type=int, default=3,
                        help='rounds over the configurations (interleaved); medians reported')
    parser.add_argument('--timeout', type=int, default=600, help='per configuration, seconds')
    args = parser.parse_args(argv)
    runs = {name: [] for name, _, _ in args.configs}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix='benchmark-dist-') as workdir:
        for round_ in range(args.repeat):
            for name, kind, workers in args.configs:
                prefix = os.path.join(workdir, '%s-%d' % (name, round_), 'model')
                runs[name].append(run_config(args, kind, workers, prefix))
                print('round %d %s: %.1f images/s' % (round_ + 1, name, runs[name][-1][0]),
                      file=sys.stderr)
    # the median run of each configuration
    results = {name: sorted(values)[len(values) // 2] for name, values in runs.items()}
    base = results.get('local', (None,))[0]
    print('%s-%d, %s, %s, %d batches per epoch, last of %d epochs timed, %d CPU cores, '
          'median of %d rounds' % (
              args.network, args.num_layers,
              'bundled Fashion-MNIST (1x28x28)' if args.bundled else
              'synthetic %s' % args.image_shape,
              'batch %d per worker' % args.batch_size if args.per_worker else
              'batch %d in total' % args.batch_size,
              args.batches, args.epochs, os.cpu_count(), args.repeat))
    print('load average (1 min) %.2f before, %.2f after: other work on the machine shows as '
          'spread between rounds' % (load_before, os.getloadavg()[0]))
    print()
    print('| kvstore | workers | servers | batch per worker | images/s (median) | all rounds '
          '| vs local | wall s |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for name, kind, workers in args.configs:
        speed, wall = results[name]
        print('| %s | %d | %d | %d | %.1f | %s | %s | %.1f |' % (
            kind, workers, 1 if kind == 'dist_sync' else 0,
            total_batch(args, workers) // workers, speed,
            ', '.join('%.0f' % v for v, _ in runs[name]),
            '%.2fx' % (speed / base) if base else '-', wall))
    print()
    print('Commands (PREFIX: a fresh checkpoint prefix):')
    for name, kind, workers in args.configs:
        print('- %s: `%s`' % (name, display_command(args, kind, workers)))
    if base and 'dist_sync-1' in results:
        one = results['dist_sync-1'][0]
        batch = total_batch(args, 1)
        print()
        print('Parameter-server overhead (dist_sync, 1 worker, against local): %.1f%% of the '
              'throughput, %.2f ms per batch of %d' % (
                  100.0 * (1 - one / base), 1000.0 * batch * (1.0 / one - 1.0 / base), batch))
    return 0


if __name__ == '__main__':
    sys.exit(main())
