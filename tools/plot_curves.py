#!/usr/bin/env python
"""Error-versus-epoch curves of one or more training runs, as in the ResNet paper's figures:
training error dashed, validation error solid, one colour per run.

    python tools/plot_curves.py runs/plain-20/model-log.jsonl runs/resnet-v1-20/model-log.jsonl \\
        --labels plain-20 resnet-20 -o degradation.png
"""
import argparse
import json
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LogError(Exception):
    """A log that cannot be plotted."""


def read_epochs(path):
    """The per-epoch records of a train_resnet.py JSON-lines log, by epoch number."""
    if not os.path.isfile(path):
        raise LogError('%s: no such file' % path)
    epochs = {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise LogError('%s line %d is not JSON' % (path, line_no))
            if record.get('event') == 'epoch':
                epochs[record['epoch']] = record  # a resumed run repeats epochs: keep the last
    if not epochs:
        raise LogError('%s has no epoch records (is it a train_resnet.py log?)' % path)
    return [epochs[e] for e in sorted(epochs)]


def draw(ax, logs, labels, title=None):
    """Training (dashed) and validation (solid) error of each log on one matplotlib axes."""
    for index, (path, label) in enumerate(zip(logs, labels)):
        records = read_epochs(path)
        color = 'C%d' % (index % 10)
        epochs = [r['epoch'] for r in records]
        ax.plot(epochs, [100 * (1 - r['train_top1']) for r in records], '--', color=color,
                label='%s train' % label)
        if all('val_top1' in r for r in records):
            ax.plot(epochs, [100 * (1 - r['val_top1']) for r in records], '-', color=color,
                    linewidth=2, label='%s val' % label)
    ax.set_xlabel('epoch')
    ax.set_ylabel('error (%)')
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)


def plot(panels, output):
    """One figure, side by side, of `panels`: a list of (logs, labels, title); saved as PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for ax, (logs, labels, title) in zip(axes[0], panels):
        draw(ax, logs, labels, title)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('logs', nargs='+', help='JSON-lines logs written by train_resnet.py')
    parser.add_argument('--labels', nargs='+', help='one label per log (default: file names)')
    parser.add_argument('-o', '--output', default='curves.png', help='PNG to write')
    parser.add_argument('--title', help='figure title')
    args = parser.parse_args(argv)
    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p))) or p
                             for p in args.logs]
    if len(labels) != len(args.logs):
        parser.error('--labels: %d labels for %d logs' % (len(labels), len(args.logs)))
    try:
        plot([(args.logs, labels, args.title)], args.output)
    except LogError as err:
        print('plot_curves.py: error: %s' % err, file=sys.stderr)
        return 2
    print('wrote %s' % args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
