#!/usr/bin/env python
"""Training speed on one machine: `--kv-store local` (one process) against `dist_sync`
over the parameter server (tools/launch.py --launcher local, 1 server) with 1 and 2
workers, same network and same total batch.

    python benchmarks/dist.py                      # ResNet-20, 1x28x28, synthetic data
    python benchmarks/dist.py --batch-size 256 --batches 30 --epochs 3

Each round runs the three configurations one after the other; the table gives the
median round of each. Images/s is that of rank 0's last epoch (the first warms up), counting the images of
every worker: the job's throughput. The parameter-server overhead is the time per image
that dist_sync with 1 worker adds to local: 1 - speed(dist_sync, 1) / speed(local).
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


def free_port():
    with socket.socket() as sock:
        sock.bind(('', 0))
        return sock.getsockname()[1]


def train_command(args, kv_store, prefix):
    return [sys.executable, os.path.join(ROOT, 'train_resnet.py'), '--benchmark', '1',
            '--kv-store', kv_store, '--network', args.network, '--num-layers',
            str(args.num_layers), '--image-shape', args.image_shape, '--num-classes', '10',
            '--batch-size', str(args.batch_size), '--num-examples',
            str(args.batch_size * args.batches), '--num-epochs', str(args.epochs),
            '--lr', '0.05', '--disp-batches', '1000', '--model-prefix', prefix]


def run_config(args, name, workers, workdir):
    prefix = os.path.join(workdir, name, 'model')
    if workers == 0:
        command = train_command(args, 'local', prefix)
    else:
        command = [sys.executable, os.path.join(ROOT, 'tools', 'launch.py'), '-n', str(workers),
                   '-s', '1', '--launcher', 'local'] + train_command(args, 'dist_sync', prefix)
    env = dict(os.environ, DMLC_PS_ROOT_PORT=str(free_port()))
    start = time.time()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=args.timeout, start_new_session=True)
    wall = time.time() - start
    if proc.returncode != 0:
        sys.exit('benchmark_dist.py: %s failed (exit %d):\n%s%s'
                 % (name, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    with open(prefix + '-log.jsonl') as f:
        epochs = [r for r in map(json.loads, f) if r['event'] == 'epoch']
    return epochs[-1]['images_per_sec'], wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--network', default='resnet')
    parser.add_argument('--num-layers', type=int, default=20)
    parser.add_argument('--image-shape', default='1,28,28')
    parser.add_argument('--batch-size', type=int, default=128,
                        help='total over the workers, as in train_resnet.py')
    parser.add_argument('--batches', type=int, default=20, help='batches per epoch')
    parser.add_argument('--epochs', type=int, default=2, help='epochs (the last is timed)')
    parser.add_argument('--repeat', type=int, default=3,
                        help='rounds over the configurations (interleaved); medians reported')
    parser.add_argument('--timeout', type=int, default=600, help='per configuration, seconds')
    args = parser.parse_args(argv)
    configs = [('local', 0), ('dist_sync-1', 1), ('dist_sync-2', 2)]
    runs = {name: [] for name, _ in configs}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix='benchmark-dist-') as workdir:
        for round_ in range(args.repeat):
            for name, workers in configs:
                runs[name].append(run_config(args, '%s-%d' % (name, round_), workers, workdir))
                print('round %d %s: %.1f images/s' % (round_ + 1, name, runs[name][-1][0]),
                      file=sys.stderr)
    # the median run of each configuration
    results = {name: sorted(values)[len(values) // 2] for name, values in runs.items()}
    base = results['local'][0]
    print('%s-%d, %s, batch %d in total, %d batches per epoch, last of %d epochs timed, '
          'synthetic data, %d CPU cores, median of %d rounds' % (
              args.network, args.num_layers, args.image_shape, args.batch_size, args.batches,
              args.epochs, os.cpu_count(), args.repeat))
    print('load average (1 min) %.2f before, %.2f after: other work on the machine shows as '
          'spread between rounds' % (load_before, os.getloadavg()[0]))
    print()
    print('| kvstore | workers | servers | batch per worker | images/s (median) | all rounds '
          '| vs local | wall s |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for name, workers in configs:
        speed, wall = results[name]
        print('| %s | %d | %d | %d | %.1f | %s | %.2fx | %.1f |' % (
            'local' if not workers else 'dist_sync', max(workers, 1), 1 if workers else 0,
            args.batch_size // max(workers, 1), speed,
            ', '.join('%.0f' % v for v, _ in runs[name]), speed / base, wall))
    one = results['dist_sync-1'][0]
    print()
    print('Parameter-server overhead (dist_sync, 1 worker, against local): %.1f%% of the '
          'throughput, %.2f ms per batch of %d' % (
              100.0 * (1 - one / base),
              1000.0 * args.batch_size * (1.0 / one - 1.0 / base), args.batch_size))
    return 0


if __name__ == '__main__':
    sys.exit(main())
