#!/usr/bin/env python
"""Fine-tuning on data nobody here made: scikit-learn's handwritten digits.

    python experiments/finetune_digits.py           # pack, pretrain, train, report
    python experiments/finetune_digits.py report    # the page from docs/logs/ alone

The digits (`sklearn.datasets.load_digits`: 1,797 gray 8x8 images shipped inside the wheel,
values 0-16) are written as PNG folders, one per digit, and packed with tools/im2rec.py as a
user would: `--list --recursive --test-ratio 0.2` (its fixed seed: 1,438 training and 359
test images), then 28x28 (`--resize 28`, bilinear upsampling) gray PNG records.

Two pretrained models: the README's first command, ResNet-20 trained for 4 epochs on the
bundled Fashion-MNIST subset (10,000 images, `--preset fashion-mnist`), and the same network
and preset trained for 5 epochs on the full 60,000 (experiments/fashion_mnist.py packs
them from Debian's dataset-fashion-mnist). Each configuration
then trains ResNet-20 on the digits with one recipe (batch 64, SGD lr 0.05 with a cosine
schedule over the run, 2-px black padding and random crops, no flips, Fashion-MNIST's
normalisation), from scratch or from the pretrained weights (its classifier renewed: the
digits' class names are not the clothes'), for two seeds and two budgets, 3 and 10 epochs.
Runs go to experiments/runs/digits/ and continue from their last complete checkpoint when
started again; the report copies each run's per-epoch records to
docs/logs/digits-*.jsonl (committed) and writes docs/finetune-digits.md and its curves from
there.
"""
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]
from fashion_mnist import epoch_records  # noqa: E402
from mxresnet.checkpoint import available  # noqa: E402
from mxresnet.curves import plot  # noqa: E402

DATA = os.path.join(HERE, 'data', 'digits', 'digits')   # the prefix of the .lst/.rec files
IMAGES = os.path.join(HERE, 'data', 'digits', 'images')
RUNS_DIR = os.path.join(HERE, 'runs', 'digits')
DOCS = os.path.join(ROOT, 'docs')
LOGS = os.path.join(DOCS, 'logs')
FASHION = os.path.join(HERE, 'data', 'fashion-mnist')   # experiments/fashion_mnist.py pack
# name -> (prefix, epochs, train_resnet.py flags)
PRETRAINED = {
    '10k': (os.path.join(RUNS_DIR, 'pretrained-fashion-mnist', 'model'), 4, []),
    '60k': (os.path.join(RUNS_DIR, 'pretrained-fashion-mnist-60k', 'model'), 5,
            ['--preset', 'fashion-mnist', '--data-train', FASHION + '-train.rec',
             '--data-val', FASHION + '-test.rec', '--num-epochs', '5']),
}
BUDGETS = (3, 10)   # epochs; the schedule spans each run
NOISE = 0.3   # points of test accuracy below which a difference of means is called noise
SEEDS = (0, 1)
RECIPE = {'--network': 'resnet', '--num-layers': '20', '--image-shape': '1,28,28',
          '--rgb-mean': '72.94', '--rgb-std': '90.02', '--pad-size': '2', '--fill-value': '0',
          '--random-crop': '1', '--random-mirror': '0', '--batch-size': '64', '--lr': '0.05',
          '--lr-schedule': 'cosine', '--wd': '1e-4', '--mom': '0.9', '--disp-batches': '100'}


def from_pretrained(name):
    prefix, epochs, _ = PRETRAINED[name]
    return ['--pretrained', '%s:%d' % (prefix, epochs)]


# name -> (what it is, its flags over the recipe)
CONFIGS = {
    'scratch': ('from scratch', []),
    'finetune': ('from the 10k model, every layer at the full rate', from_pretrained('10k')),
    'finetune-lr0.1': ('from the 10k model, backbone at 0.1x the rate',
                       from_pretrained('10k') + ['--backbone-lr-mult', '0.1']),
    'finetune-frozen2': ('from the 10k model, stem and stages 1-2 frozen',
                         from_pretrained('10k') + ['--freeze-stages', '2']),
    'finetune-60k': ('from the 60k model, every layer at the full rate',
                     from_pretrained('60k')),
    'finetune-60k-lr0.1': ('from the 60k model, backbone at 0.1x the rate',
                           from_pretrained('60k') + ['--backbone-lr-mult', '0.1']),
}


def python(script, *args):
    command = [sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args]
    print('+ ' + ' '.join(command), flush=True)
    if subprocess.call(command, cwd=ROOT):
        raise SystemExit('failed: ' + ' '.join(command))


def pack():
    """The digits as PNG folders, then .lst and .rec files made by tools/im2rec.py."""
    if os.path.isfile(DATA + '_test.rec'):
        return
    import cv2
    from sklearn.datasets import load_digits
    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = os.path.join(IMAGES, str(label))
        os.makedirs(folder, exist_ok=True)
        pixels = np.round(image * (255.0 / 16)).astype(np.uint8)
        cv2.imwrite(os.path.join(folder, '%04d.png' % index), pixels)
    python('tools/im2rec.py', DATA, IMAGES, '--list', '--recursive', '--test-ratio', 0.2)
    python('tools/im2rec.py', DATA, IMAGES, '--resize', 28, '--color', 0, '--encoding', '.png',
           '--num-thread', 2)


def pretrain():
    """The pretrained models, into experiments/runs/digits/ (each continues from its last
    complete checkpoint)."""
    if not os.path.isfile(FASHION + '-test.rec'):
        python('experiments/fashion_mnist.py', 'pack')
    for prefix, epochs, flags in PRETRAINED.values():
        done = available(prefix, complete=True)
        if epochs not in done:
            python('train_resnet.py', *(flags + ['--model-prefix', prefix] + (
                ['--load-epoch', max(done)] if done else [])))


def run_name(name, epochs, seed):
    return '%s-%dep-seed%d' % (name, epochs, seed)


def run_prefix(name, epochs, seed):
    return os.path.join(RUNS_DIR, run_name(name, epochs, seed), 'model')


def train(name, epochs, seed):
    prefix = run_prefix(name, epochs, seed)
    if len(epoch_records(prefix + '-log.jsonl')) >= epochs:
        return
    args = ['--data-train', DATA + '_train.rec', '--data-val', DATA + '_test.rec',
            '--model-prefix', prefix, '--num-epochs', epochs, '--seed', seed]
    for flag, value in RECIPE.items():
        args += [flag, value]
    last = max(available(prefix, complete=True), default=None)
    python('train_resnet.py', *(args + CONFIGS[name][1] +
                                (['--load-epoch', last] if last else [])))


def archive(name, epochs, seed):
    """The run's epoch records copied to docs/logs/ (unless the copy has more); its path."""
    target = os.path.join(LOGS, 'digits-%s.jsonl' % run_name(name, epochs, seed))
    records = epoch_records(run_prefix(name, epochs, seed) + '-log.jsonl')
    if records and len(records) >= len(epoch_records(target)):
        os.makedirs(LOGS, exist_ok=True)
        with open(target, 'w') as f:
            f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in records)
    return target


def pretrained_accuracy(name):
    """The pretrained model's last validation accuracy, from its log archived in docs/logs/
    (copied there from its run folder when that has it)."""
    prefix, epochs, _ = PRETRAINED[name]
    target = os.path.join(LOGS, 'digits-pretrained-%s.jsonl' % name)
    records = epoch_records(prefix + '-log.jsonl')
    if len(records) >= epochs:
        os.makedirs(LOGS, exist_ok=True)
        with open(target, 'w') as f:
            f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in records)
    records = epoch_records(target)
    return '%.2f%%' % (100 * records[-1]['val_top1']) if records else 'not measured'


def verdict(epochs, means):
    """One line comparing the best fine-tuned mean with scratch's at `epochs` epochs."""
    if 'scratch' not in means or len(means) < 2:
        return None
    best = max((m, n) for n, m in means.items() if n != 'scratch')
    gap = best[0] - means['scratch']
    said = 'within the noise of two seeds' if abs(gap) < NOISE else \
        ('fine-tuning ahead' if gap > 0 else 'training from scratch ahead')
    return '- %d epochs: scratch %.2f%%, best fine-tuned (%s) %.2f%%: %s (%+.2f points).' % (
        epochs, means['scratch'], best[1], best[0], said, gap)


def report():
    rows, curves, labels, verdicts = [], [], [], []
    for epochs in BUDGETS:
        means = {}
        for name, (what, _) in CONFIGS.items():
            runs = [epoch_records(archive(name, epochs, seed)) for seed in SEEDS]
            if not all(len(run) == epochs for run in runs):
                continue
            final = [100 * run[-1]['val_top1'] for run in runs]
            means[name] = np.mean(final)
            rows.append('| %d | %s | %s | %.2f | %s | %.2f | %.0f |' % (
                epochs, name, what, np.mean(final), ' / '.join('%.2f' % a for a in final),
                np.mean([100 * run[0]['val_top1'] for run in runs]),
                np.mean([run[-1]['wall_time'] for run in runs])))
            if epochs == max(BUDGETS):
                curves.append(archive(name, epochs, SEEDS[0]))
                labels.append(name)
        verdicts.append(verdict(epochs, means))
    if not rows:
        raise SystemExit('no complete run in docs/logs/digits-*.jsonl yet')
    figure = plot([(curves, labels, 'digits, ResNet-20, %d epochs, seed %d'
                    % (max(BUDGETS), SEEDS[0]))], os.path.join(DOCS, 'finetune-digits.png'))
    page = os.path.join(DOCS, 'finetune-digits.md')
    with open(page, 'w') as f:
        f.write(PAGE % {'rows': '\n'.join(rows), 'figure': os.path.basename(figure),
                        'verdicts': '\n'.join(v for v in verdicts if v) or '- none yet',
                        'small': pretrained_accuracy('10k'), 'noise': NOISE,
                        'full': pretrained_accuracy('60k')})
    print('wrote %s and %s' % (page, figure))


PAGE = '''# Fine-tuning on scikit-learn's digits

Written by `python experiments/finetune_digits.py` (its docstring has the data, the recipe
and the pretrained model) from the logs in `docs/logs/digits-*.jsonl`. ResNet-20 on the
1,797 handwritten digits of `sklearn.datasets.load_digits` (1,438 training and 359 test
images from `tools/im2rec.py --list --test-ratio 0.2`), upsampled to 28x28; the same
recipe for every row, its cosine schedule over the run's epochs; seeds 0 and 1. Pretrained:
ResNet-20 after 4 epochs on the bundled 10,000 Fashion-MNIST images (the 10k model, %(small)s
on its 2,000 validation images) and after 5 epochs on all 60,000 (the 60k model, %(full)s on
the 10,000 test images). Test accuracy in %%, the mean of the two seeds unless said; time: the
training run's wall time in seconds (2-core VM, other work beside it).

| epochs | run | what | test acc. | seeds 0 / 1 | after epoch 1 | time (s) |
| --- | --- | --- | --- | --- | --- | --- |
%(rows)s

Test accuracy at equal epochs (a test image is 0.28 points; differences under %(noise)s
points are called noise):
%(verdicts)s

Rows appear when both seeds of a run are complete; the curves are the longest budget's,
seed 0.

![error per epoch](%(figure)s)
'''


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ['report']:
        pack()
        pretrain()
        for epochs in BUDGETS:
            for seed in SEEDS:
                for name in CONFIGS:
                    train(name, epochs, seed)
    report()
    return 0


if __name__ == '__main__':
    sys.exit(main())
