#!/usr/bin/env python
"""The paper's CIFAR experiments (Sec. 4.2) on Fashion-MNIST: residual vs plain nets.

    python experiments/fashion_mnist.py pack              # 60k/10k .rec from the Debian package
    python experiments/fashion_mnist.py train resnet-20   # one run (see RUNS)
    python experiments/fashion_mnist.py report            # table + curves from the logs

The recipe is the paper's CIFAR-10 one scaled to a shorter schedule: batch 128, SGD with
momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at half and three quarters of the
epochs, 4-px zero padding with random 28x28 crops, and random horizontal flips. Mirroring is
kept on: every Fashion-MNIST class is left-right symmetric as a category (a flipped shoe is
still a shoe), so flips add label-preserving variety exactly as on CIFAR.
Runs write to experiments/runs/<name>/ (checkpoints, JSON-lines log) and can be resumed
with `train NAME --load-epoch N`.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOURCE = '/usr/share/datasets/fashion-mnist'
DATA = os.path.join(HERE, 'data', 'fashion-mnist')
RUNS_DIR = os.path.join(HERE, 'runs')
DOCS = os.path.join(ROOT, 'docs')

# name -> (network, depth); option A shortcuts for the residual nets, as in the paper.
RUNS = {
    'resnet-20': ('resnet-v1', 20),
    'plain-20': ('plain', 20),
    'resnet-56': ('resnet-v1', 56),
    'plain-56': ('plain', 56),
}
EPOCHS = 30


def train_command(name, epochs=EPOCHS, extra=()):
    network, depth = RUNS[name]
    steps = '%d,%d' % (epochs // 2, -(-3 * epochs // 4))
    command = [sys.executable, os.path.join(ROOT, 'train_resnet.py'),
               '--network', network, '--num-layers', str(depth),
               '--data-train', DATA + '-train.rec', '--data-val', DATA + '-test.rec',
               '--image-shape', '1,28,28', '--num-classes', '10',
               '--rgb-mean', '72.94', '--rgb-std', '90.02',
               '--pad-size', '4', '--random-crop', '1', '--random-mirror', '1',
               '--batch-size', '128', '--lr', '0.1', '--lr-schedule', 'step',
               '--lr-step-epochs', steps, '--lr-factor', '0.1', '--wd', '1e-4', '--mom', '0.9',
               '--num-epochs', str(epochs), '--disp-batches', '100',
               '--model-prefix', os.path.join(RUNS_DIR, name, 'model')]
    if network == 'resnet-v1':
        command += ['--shortcut', 'A']
    return command + list(extra)


def pack():
    os.makedirs(os.path.dirname(DATA), exist_ok=True)
    return subprocess.call([sys.executable, os.path.join(ROOT, 'tools', 'mnist2rec.py'),
                            SOURCE, DATA, '--classes', 'fashion-mnist', '--test-name', 'test'])


def read_epochs(name):
    path = os.path.join(RUNS_DIR, name, 'model-log.jsonl')
    if not os.path.isfile(path):
        return []
    epochs = {}
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if record.get('event') == 'epoch':
                epochs[record['epoch']] = record
    return [epochs[e] for e in sorted(epochs)]


def report():
    sys.path.insert(0, ROOT)
    from tools.plot_curves import plot
    rows = ['| run | epochs | final test error | best test error | final train error | '
            'train wall time | images/s |', '| --- | --- | --- | --- | --- | --- | --- |']
    done = []
    for name in RUNS:
        epochs = read_epochs(name)
        if not epochs:
            rows.append('| %s | not run | | | | | |' % name)
            continue
        done.append(name)
        last = epochs[-1]
        rows.append('| %s | %d | %.2f%% | %.2f%% | %.2f%% | %.0f min | %.0f |' % (
            name, last['epoch'], 100 * (1 - last['val_top1']),
            100 * (1 - max(r['val_top1'] for r in epochs)), 100 * (1 - last['train_top1']),
            sum_wall(epochs) / 60, sorted(r['images_per_sec'] for r in epochs)[len(epochs) // 2]))
    os.makedirs(DOCS, exist_ok=True)
    for depth in (20, 56):
        names = [n for n in ('plain-%d' % depth, 'resnet-%d' % depth) if n in done]
        if names:
            plot([os.path.join(RUNS_DIR, n, 'model-log.jsonl') for n in names], names,
                 os.path.join(DOCS, 'fashion-mnist-%d.png' % depth),
                 'Fashion-MNIST, %d layers' % depth)
    print('\n'.join(rows))
    return 0


def sum_wall(epochs):
    """Wall time of a run, summed over the segments of a resumed run."""
    total, previous = 0.0, 0.0
    for record in epochs:
        wall = record['wall_time']
        total += wall - previous if wall >= previous else wall
        previous = wall
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('pack', help='pack Fashion-MNIST 60k/10k with tools/mnist2rec.py')
    train = sub.add_parser('train', help='train one run')
    train.add_argument('name', choices=sorted(RUNS))
    train.add_argument('--epochs', type=int, default=EPOCHS)
    train.add_argument('--print', action='store_true', help='print the command only')
    sub.add_parser('report', help='print the results table and draw the curves')
    # flags this script does not know go to train_resnet.py (e.g. --load-epoch 10)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != 'train':
        parser.error('unrecognized arguments: %s' % ' '.join(extra))
    if args.command == 'pack':
        return pack()
    if args.command == 'report':
        return report()
    command = train_command(args.name, args.epochs, extra)
    if args.print:
        print(' '.join(command))
        return 0
    return subprocess.call(command, cwd=ROOT)


if __name__ == '__main__':
    sys.exit(main())
