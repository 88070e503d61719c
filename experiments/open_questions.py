#!/usr/bin/env python
"""The CIFAR reproduction log's open questions, answered on the full Fashion-MNIST.

    python experiments/open_questions.py            # pack, train what is missing, report
    python experiments/open_questions.py --jobs 2   # the same, two runs at a time
    python experiments/open_questions.py status     # runs done and to do, time estimate
    python experiments/open_questions.py report     # docs/open-questions.md from docs/logs/
    python experiments/open_questions.py park       # unfinished runs' checkpoints, to commit

1. Shortcuts: option A (zero-padded identity), B (projections where the shape changes),
   C (projections everywhere).
2. Where BatchNorm goes in a unit: conv, BN, add, ReLU (the paper's reading); conv, add,
   BN, ReLU; for projection shortcuts, with or without their own BN; the pre-activation
   unit (the `resnet` network).
3. ReLU or PReLU.
4. Deeper against shallower, residual and plain: 20, 32 and 56 layers.

Every run has one schedule: the paper's CIFAR recipe of experiments/fashion_mnist.py
(batch 128, SGD lr 0.1, momentum 0.9, weight decay 1e-4, 4-px black padding and random
crops, flips) over EPOCHS epochs with the lr divided by 10 at half and three quarters, so
that the whole study fits about 8 hours of a 2-core machine. Seed 0 first for every
configuration; then seed 1 for each configuration whose seed-0 test error is within NOISE
points of another's in one of its questions. Runs go to experiments/runs/oq-*/ and continue
from their last complete checkpoint when started again (stop with Ctrl-C or SIGTERM at any
time); the report copies each run's per-epoch records to docs/logs/oq-*.jsonl (committed)
and writes the page from there. A session's run folders end with its machine: `park`
copies each unfinished run's last checkpoint to experiments/parked/ (committed), from
where a run started on a fresh clone continues.
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]
import fashion_mnist  # noqa: E402
from fashion_mnist import (DATA, add_jobs_flag, command_of, epoch_records,  # noqa: E402
                           paper_flags, side_by_side, speed_text, sum_wall)
from mxresnet.flags import parser as cli_parser  # noqa: E402

RUNS_DIR = os.path.join(HERE, 'runs')
DOCS = os.path.join(ROOT, 'docs')
EPOCHS = 8
NOISE = 0.3   # points of test error under which two configurations get a second seed
SEEDS = (0, 1)
IMAGE_SHAPE = '1,28,28'

# name -> (network, depth, symbols options, what it is)
CONFIGS = {
    'resnet-20-A': ('resnet-v1', 20, {'shortcut': 'A'},
                    'option A; conv, BN, add, ReLU; ReLU (the paper)'),
    'resnet-20-B': ('resnet-v1', 20, {'shortcut': 'B'}, 'option B'),
    'resnet-20-C': ('resnet-v1', 20, {'shortcut': 'C'}, 'option C'),
    'resnet-20-A-bn-after-add': ('resnet-v1', 20, {'shortcut': 'A', 'bn_position': 'after_add'},
                                 'option A; conv, add, BN, ReLU'),
    'resnet-20-B-no-shortcut-bn': ('resnet-v1', 20, {'shortcut': 'B', 'shortcut_bn': False},
                                   'option B, projections without their BN'),
    'preact-20': ('resnet', 20, {}, 'pre-activation units (BN, ReLU, conv; projections '
                                    'where the shape changes)'),
    'resnet-20-A-prelu': ('resnet-v1', 20, {'shortcut': 'A', 'act_type': 'prelu'},
                          'option A, PReLU'),
    'resnet-32-A': ('resnet-v1', 32, {'shortcut': 'A'}, '32 layers'),
    'resnet-56-A': ('resnet-v1', 56, {'shortcut': 'A'}, '56 layers'),
    'plain-20': ('plain', 20, {}, 'plain, 20 layers'),
    'plain-32': ('plain', 32, {}, 'plain, 32 layers'),
    'plain-56': ('plain', 56, {}, 'plain, 56 layers'),
}

# The papers' own figures beside ours (test error, %): "Deep Residual Learning" (He et al.
# 2015) Table 3 (ImageNet val top-1, 10-crop, ResNet-34) and Table 6 (CIFAR-10);
# "Identity Mappings in Deep Residual Networks" (He et al. 2016) Table 2 (CIFAR-10,
# ResNet-110).
PAPER = {
    'resnet-20-A': '8.75 (CIFAR-10, Table 6); ImageNet ResNet-34 A: 25.03',
    'resnet-20-B': 'ImageNet ResNet-34 B: 24.52',
    'resnet-20-C': 'ImageNet ResNet-34 C: 24.19',
    'resnet-20-A-bn-after-add': 'ResNet-110 "BN after addition": 8.17 (original 6.61)',
    'preact-20': 'ResNet-110 full pre-activation: 6.37 (original 6.61)',
    'resnet-32-A': '7.51 (CIFAR-10, Table 6)',
    'resnet-56-A': '6.97 (CIFAR-10, Table 6)',
    'plain-20': 'Fig. 6: plain-56 above plain-20',
    'plain-56': 'Fig. 6: plain-56 above plain-20',
}

QUESTIONS = [
    ('1. Shortcut options A, B and C', ['resnet-20-A', 'resnet-20-B', 'resnet-20-C']),
    ('2. Where BatchNorm goes in a unit', ['resnet-20-A', 'resnet-20-A-bn-after-add',
                                          'resnet-20-B', 'resnet-20-B-no-shortcut-bn',
                                          'preact-20']),
    ('3. ReLU or PReLU', ['resnet-20-A', 'resnet-20-A-prelu']),
    ('4. Depth, residual and plain', ['plain-20', 'plain-32', 'plain-56', 'resnet-20-A',
                                      'resnet-32-A', 'resnet-56-A']),
]


def option_flags(options):
    """train_resnet.py flags of symbols options (booleans as 0/1)."""
    return {'--' + name.replace('_', '-'): str(int(value)) if isinstance(value, bool)
            else str(value) for name, value in options.items()}


def run_name(config, seed):
    return 'oq-%s-%dep-seed%d' % (config, EPOCHS, seed)


def train_flags(config, seed):
    network, depth, options, _ = CONFIGS[config]
    prefix = os.path.join(RUNS_DIR, run_name(config, seed), 'model')
    flags = paper_flags(network, depth, EPOCHS, prefix, seed=seed)
    flags.pop('--shortcut', None)   # each configuration names its own
    flags.update(option_flags(options))
    return flags


def log_path(config, seed):
    return os.path.join(RUNS_DIR, run_name(config, seed), 'model-log.jsonl')


def archived(config, seed):
    """The run's epoch records, copied first from its run folder to docs/logs/ when that
    has more of them."""
    target = os.path.join(DOCS, 'logs', run_name(config, seed) + '.jsonl')
    records = epoch_records(log_path(config, seed))
    if records and len(records) > len(epoch_records(target)):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'w') as f:
            f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in records)
    return epoch_records(target)


def final_error(records):
    """Test error (%) after the last epoch of a complete run, else None."""
    return 100 * (1 - records[-1]['val_top1']) if len(records) >= EPOCHS else None


def needs_second_seed(errors):
    """Configurations whose seed-0 error is within NOISE of another's in a question."""
    close = set()
    for _, configs in QUESTIONS:
        for a in configs:
            for b in configs:
                if a < b and None not in (errors.get(a), errors.get(b)) \
                        and abs(errors[a] - errors[b]) < NOISE:
                    close.update((a, b))
    return close


def planned_runs():
    """[(config, seed)] of the study as far as the finished runs decide it: seed 0 of every
    configuration, then seed 1 where `needs_second_seed`."""
    runs = [(config, 0) for config in CONFIGS]
    errors = {config: final_error(archived(config, 0)) for config in CONFIGS}
    if all(e is not None for e in errors.values()):
        runs += [(config, 1) for config in CONFIGS if config in needs_second_seed(errors)]
    return runs


def train_all(jobs=1):
    """Train every planned run to its end, `jobs` at a time; returns the exit status."""
    if not os.path.isfile(DATA + '-test.rec'):
        if fashion_mnist.pack():
            raise SystemExit('packing Fashion-MNIST failed')

    def plan():
        return [(os.path.dirname(log_path(*run)), command_of(train_flags(*run)))
                for run in planned_runs() if final_error(archived(*run)) is None]
    return side_by_side(plan, jobs)


def park():
    """`fashion_mnist.park` of the planned runs, their logs archived first."""
    runs = planned_runs()
    for run in runs:
        archived(*run)
    return fashion_mnist.park({os.path.dirname(log_path(*run)): EPOCHS for run in runs})


def param_count(config):
    import symbols
    from mxresnet.stats import model_stats
    network, depth, options, _ = CONFIGS[config]
    sym = symbols.get_symbol(network, num_classes=10, num_layers=depth,
                             image_shape=IMAGE_SHAPE, **options)
    return sum(s.params for s in model_stats(sym, (1, 28, 28)))


def status():
    """Print each planned run's state and an estimate of the time left."""
    per_epoch = {}
    for config, seed in planned_runs():
        records = archived(config, seed)
        if records:
            per_epoch[config] = sum_wall(records) / len(records)
    base = np.median([per_epoch[c] / relative_cost(c) for c in per_epoch]) if per_epoch else None
    left = 0.0
    for config, seed in planned_runs():
        done = len(archived(config, seed))
        print('%-28s seed %d: %d/%d epochs' % (config, seed, done, EPOCHS))
        if base is not None:
            left += (EPOCHS - done) * per_epoch.get(config, base * relative_cost(config))
    if base is not None:
        print('about %.1f hours left (from the measured epochs)' % (left / 3600))
    return 0


def relative_cost(config):
    """A run's time per epoch relative to a 20-layer one, guessed from its depth."""
    return CONFIGS[config][1] / 20.0


def mean_text(errors):
    return '%.2f' % np.mean(errors) if errors else '-'


def conclusion(configs, results):
    """One line per configuration against the question's first: the difference of means,
    called noise when under NOISE points or when the seeds' ranges overlap."""
    base = configs[0]
    lines = []
    for config in configs[1:]:
        a, b = results[base], results[config]
        if not a or not b:
            lines.append('- %s: not measured yet.' % config)
            continue
        gap = np.mean(b) - np.mean(a)
        overlap = min(max(a), max(b)) >= max(min(a), min(b))
        if abs(gap) < NOISE or (overlap and len(a) > 1 and len(b) > 1):
            said = 'within noise'
        else:
            said = 'lower error' if gap < 0 else 'higher error'
        lines.append('- %s against %s: %+.2f points (%s; %d and %d seeds).'
                     % (config, base, gap, said, len(b), len(a)))
    return lines


def report():
    from mxresnet.curves import plot
    sections = []
    results = {config: [e for e in (final_error(archived(config, seed)) for seed in SEEDS)
                        if e is not None] for config in CONFIGS}
    for title, configs in QUESTIONS:
        rows = ['| configuration | what | parameters | test error (mean) | seeds 0 / 1 | '
                'images/s | the papers |', '| --- | --- | ---: | ---: | --- | ---: | --- |']
        for config in configs:
            records = archived(config, 0)
            rows.append('| %s | %s | %d | %s | %s | %s | %s |' % (
                config, CONFIGS[config][3], param_count(config), mean_text(results[config]),
                ' / '.join('%.2f' % e for e in results[config]) or 'not run yet',
                speed_text(records), PAPER.get(config, '-')))
        sections.append('## %s\n\n%s\n\n%s\n' % (title, '\n'.join(rows),
                                                  '\n'.join(conclusion(configs, results))))
    depth = QUESTIONS[3][1]
    panels = []
    for kind in ('plain', 'resnet'):
        names = [c for c in depth if c.startswith(kind) and archived(c, 0)]
        if names:
            panels.append(([os.path.join(DOCS, 'logs', run_name(c, 0) + '.jsonl')
                            for c in names], names, 'Fashion-MNIST, %s nets, %d epochs, seed 0'
                           % ('plain' if kind == 'plain' else 'residual', EPOCHS)))
    figure = ''
    if panels:
        figure = '![error per epoch](%s)\n' % os.path.basename(
            plot(panels, os.path.join(DOCS, 'open-questions-depth.png')))
    page = os.path.join(DOCS, 'open-questions.md')
    with open(page, 'w') as f:
        f.write(PAGE % {'epochs': EPOCHS, 'noise': NOISE, 'sections': '\n'.join(sections),
                        'figure': figure})
    print('wrote %s' % page)
    return 0


PAGE = '''# The reproduction log's open questions

Written by `python experiments/open_questions.py` from the logs in `docs/logs/oq-*.jsonl`
(its docstring has the recipe). Full Fashion-MNIST (60,000 training and 10,000 test images,
1x28x28), one schedule for every run: the paper's CIFAR recipe over %(epochs)d epochs. Test
error in %% on the 10,000 test images after the last epoch; the mean of the seeds run
(a second seed where two configurations of a question came within %(noise)s points);
images/s: the median epoch's training speed on the 2-core VM, other work sometimes beside
it. Parameters from the graph. The papers' figures are CIFAR-10 or ImageNet errors, for
the direction of a difference, not its size. A test image is 0.01 points.

%(sections)s
%(figure)s'''


def main(argv=None):
    parser = cli_parser(__doc__.split('\n')[0])
    parser.add_argument('command', nargs='?', choices=('status', 'report', 'park'),
                        help='without one: train what is missing, then report; park: copy '
                             "unfinished runs' last checkpoints to experiments/parked "
                             '(committed), from where they continue')
    add_jobs_flag(parser)
    args = parser.parse_args(argv)
    if args.command == 'status':
        return status()
    if args.command == 'park':
        return park()
    if args.command is None:
        return train_all(args.jobs) or report()
    return report()


if __name__ == '__main__':
    sys.exit(main())
