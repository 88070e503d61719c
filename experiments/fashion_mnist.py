#!/usr/bin/env python
"""The paper's CIFAR experiments (Sec. 4.2) on Fashion-MNIST: residual vs plain nets.

    python experiments/fashion_mnist.py pack              # 60k/10k .rec from the Debian package
    python experiments/fashion_mnist.py train resnet-20   # the 30-epoch ResNet-20 run
    python experiments/fashion_mnist.py train resnet-20 --recipe regularised
    python experiments/fashion_mnist.py train resnet-20 --recipe regularised --mirror 0
    python experiments/fashion_mnist.py train resnet-20 --recipe tricks --mirror 0 --epochs 36
    python experiments/fashion_mnist.py train resnet-20 --recipe tricks-minus-last-gamma \\
        --mirror 0 --epochs 46                            # the best run in the hour
    python experiments/fashion_mnist.py degradation       # plain/resnet-20/56, 4-epoch schedule
    python experiments/fashion_mnist.py ablation          # --recipe tricks less one ingredient
    python experiments/fashion_mnist.py ablation --jobs 2 # the same, two runs at a time
    python experiments/fashion_mnist.py report            # table + curves from the logs
    python experiments/fashion_mnist.py park              # unfinished runs, to commit

The recipe is the paper's CIFAR-10 one scaled to a shorter schedule: batch 128, SGD with
momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at half and three quarters of the
epochs, 4-px zero (black) padding with random 28x28 crops, and random horizontal flips as on
CIFAR.
Flips are arguable here: Fashion-MNIST's footwear faces one way (in 92% of the test sandals
and all but 0.3% of the sneakers and 0.1% of the ankle boots most of the image's mass lies in
the left half), so a flip makes shoes the test set never shows. Measured (docs/RESULTS.md):
with the paper's recipe ResNet-20 ends at the same test accuracy with and without; with
`--recipe regularised` dropping them gave the best run. `--mirror 0` trains without, in
folders suffixed `-nomirror`.

`--recipe regularised` departs from the paper to reach more in the same epochs (folders
suffixed `-regularised`): random erasing (p 0.5; Zhong et al. 2017 report it on
Fashion-MNIST, e.g. WRN-28-10 from 4.01% to 3.65% test error), label smoothing 0.1, weight
decay 5e-4 and a cosine schedule instead of the steps; `--recipe regularised-b64` is the
same with batch 64 and lr 0.05 (twice the steps per epoch). `--recipe tricks` adds to
`regularised` the training-recipe switches of docs/training.md: no weight decay on BatchNorm
and biases (`--no-wd`), each residual branch's last BN gamma starting at zero
(`--last-gamma`), and an exponential moving average of the weights (`--model-ema`, decay
0.999: about two epochs), scored beside the weights each epoch. `ablation` trains ResNet-20
with `--recipe tricks --mirror 0` on a shorter schedule, then once with each ingredient
taken out (`tricks-minus-<ingredient>`: the paper's value comes back) and once with flips.
`--seed N` repeats a run with another seed, in folders suffixed `-seed<N>`. `ablation` and
`degradation` take `--jobs N`: N runs at a time, each on its own share of the cores.
Runs write to experiments/runs/<name>-<epochs>ep/ (checkpoints, JSON-lines log); an
interrupted run continues from its last checkpoint when started again. `report` copies each
run's per-epoch records to docs/logs/<folder>.jsonl, which is committed, and builds the table
and the curves from there, so that they keep the runs of other machines and sessions; a run
whose archived log has all its epochs is not trained again. Run folders end with the machine:
`park` copies the last checkpoint of each unfinished run to experiments/parked/ (committed),
and a run started on a fresh clone continues from there.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOURCE = '/usr/share/datasets/fashion-mnist'
DATA = os.path.join(HERE, 'data', 'fashion-mnist')
RUNS_DIR = os.path.join(HERE, 'runs')
PARKED = os.path.join(HERE, 'parked')  # committed: see `park`
DOCS = os.path.join(ROOT, 'docs')
sys.path.insert(0, ROOT)
from mxresnet.checkpoint import available, copy  # noqa: E402
from mxresnet.curves import plot  # noqa: E402
from mxresnet.flags import parser as cli_parser  # noqa: E402
from mxresnet.errors import UsageError  # noqa: E402
from mxresnet.log import read_epochs  # noqa: E402

# name -> (network, depth); option A shortcuts for the residual nets, as in the paper.
RUNS = {
    'resnet-20': ('resnet-v1', 20),
    'plain-20': ('plain', 20),
    'resnet-56': ('resnet-v1', 56),
    'plain-56': ('plain', 56),
}
EPOCHS = 30  # the ResNet-20 target run (its time: docs/RESULTS.md)
DEGRADATION_EPOCHS = 4  # all four nets on one schedule of about an hour on 2 cores
MIRROR = 1  # random horizontal flips, as on CIFAR (see the module docstring)
# --recipe: the flags each recipe sets in place of the paper's (None: drops the flag,
# True: a switch without a value)
RECIPES = {
    'paper': {},
    'regularised': {'--random-erasing': '0.5', '--label-smoothing': '0.1', '--wd': '5e-4',
                    '--lr-schedule': 'cosine', '--lr-step-epochs': None, '--lr-factor': None},
}
RECIPES['regularised-b64'] = dict(RECIPES['regularised'], **{'--batch-size': '64',
                                                             '--lr': '0.05'})
RECIPES['tricks'] = dict(RECIPES['regularised'], **{
    '--no-wd': True, '--last-gamma': True, '--model-ema': True,
    '--model-ema-decay': '0.999'})
# ablation: ingredient of `tricks` -> the recipe flags that make it (dropped, the paper's
# value of each flag comes back)
INGREDIENTS = {
    'erasing': ['--random-erasing'], 'smoothing': ['--label-smoothing'], 'wd5e-4': ['--wd'],
    'cosine': ['--lr-schedule', '--lr-step-epochs', '--lr-factor'], 'no-wd': ['--no-wd'],
    'last-gamma': ['--last-gamma'], 'ema': ['--model-ema', '--model-ema-decay'],
}
for _ingredient, _flags in INGREDIENTS.items():
    RECIPES['tricks-minus-' + _ingredient] = {
        flag: value for flag, value in RECIPES['tricks'].items() if flag not in _flags}
ABLATION_EPOCHS = 12  # one run of the recipe and of each ablation: see docs/RESULTS.md


RUN_FOLDER = re.compile(r'^(?:%s)-(\d+)ep(-mirror|-nomirror)?(%s)?(?:-seed(\d+))?$' % (
    '|'.join(RUNS), '|'.join('-' + r for r in RECIPES if r != 'paper')))


def suffix(mirror, recipe='paper', seed=0):
    """Run folders of the paper's recipe with its flips setting and seed 0 have no suffix;
    others do."""
    flips = '' if mirror == MIRROR else ('-mirror' if mirror else '-nomirror')
    return (flips + ('' if recipe == 'paper' else '-' + recipe) +
            ('-seed%d' % seed if seed else ''))


def run_name(name, epochs, mirror=MIRROR, recipe='paper', seed=0):
    return '%s-%dep%s' % (name, epochs, suffix(mirror, recipe, seed))


def run_dir(name, epochs, mirror=MIRROR, recipe='paper', seed=0):
    return os.path.join(RUNS_DIR, run_name(name, epochs, mirror, recipe, seed))


def paper_flags(network, depth, epochs, prefix, mirror=MIRROR, seed=0):
    """{flag: value} of train_resnet.py for the paper's recipe (the module docstring) on the
    full Fashion-MNIST, option A shortcuts for resnet-v1."""
    flags = {'--network': network, '--num-layers': str(depth),
             '--data-train': DATA + '-train.rec', '--data-val': DATA + '-test.rec',
             '--image-shape': '1,28,28', '--num-classes': '10',
             '--rgb-mean': '72.94', '--rgb-std': '90.02',
             '--pad-size': '4', '--fill-value': '0', '--random-crop': '1',
             '--random-mirror': str(mirror),
             '--batch-size': '128', '--lr': '0.1', '--lr-schedule': 'step',
             '--lr-step-epochs': '%d,%d' % (epochs // 2, -(-3 * epochs // 4)),
             '--lr-factor': '0.1', '--wd': '1e-4', '--mom': '0.9',
             '--num-epochs': str(epochs), '--disp-batches': '100', '--model-prefix': prefix,
             '--seed': str(seed)}
    if network == 'resnet-v1':
        flags['--shortcut'] = 'A'
    return flags


def command_of(flags, extra=()):
    """The train_resnet.py command of `flags` (a None value drops the flag), resuming from
    the last complete checkpoint under its --model-prefix (brought back first where the
    run is parked: `unpark`), then `extra`."""
    unpark(os.path.dirname(flags['--model-prefix']))
    command = [sys.executable, os.path.join(ROOT, 'train_resnet.py')]
    for flag, value in flags.items():
        if value is True:
            command.append(flag)
        elif value is not None:
            command += [flag, value]
    last = max(available(flags['--model-prefix'], complete=True), default=None)
    if last and '--load-epoch' not in extra:
        command += ['--load-epoch', str(last)]
    return command + list(extra)


def train_command(name, epochs=EPOCHS, extra=(), mirror=MIRROR, recipe='paper', seed=0):
    network, depth = RUNS[name]
    prefix = os.path.join(run_dir(name, epochs, mirror, recipe, seed), 'model')
    flags = paper_flags(network, depth, epochs, prefix, mirror, seed)
    flags.update(RECIPES[recipe])
    return command_of(flags, extra)


def train(name, epochs, extra=(), mirror=MIRROR, recipe='paper', seed=0):
    """Train one run to its end (`side_by_side`: SIGTERM stops it, and it checkpoints)."""
    directory = run_dir(name, epochs, mirror, recipe, seed)
    if trained_epochs(directory) >= epochs:
        print('%s: %d epochs already trained in %s' % (name, epochs, directory))
        return 0

    def plan():
        if trained_epochs(directory) >= epochs:
            return []
        return [(directory, train_command(name, epochs, extra, mirror, recipe, seed))]
    return side_by_side(plan, 1)


def train_runs(runs, jobs):
    """Train each (name, epochs, mirror, recipe) of `runs` that is not finished yet, `jobs`
    at a time (`side_by_side`)."""
    def plan():
        todo = []
        for name, epochs, mirror, recipe in runs:
            directory = run_dir(name, epochs, mirror, recipe)
            if trained_epochs(directory) < epochs:
                todo.append((directory, train_command(name, epochs, (), mirror, recipe)))
        return todo
    return side_by_side(plan, jobs)


def core_slots(jobs):
    """The cores this process may run on, dealt out into `jobs` equal sets."""
    cores = sorted(os.sched_getaffinity(0))
    if not 1 <= jobs <= len(cores):
        raise UsageError('--jobs %d: accepted 1 to %d, the cores this process may use'
                         % (jobs, len(cores)))
    share = len(cores) // jobs
    return [set(cores[i * share:(i + 1) * share]) for i in range(jobs)]


def add_jobs_flag(parser):
    """--jobs N of a study's command line, checked against the cores as it is parsed (a bad
    N is the parser's one-line error, before any work)."""
    class Jobs(argparse.Action):
        def __call__(self, parser, namespace, value, option_string=None):
            try:
                core_slots(value)
            except UsageError as err:
                parser.error(str(err))
            setattr(namespace, self.dest, value)
    parser.add_argument('--jobs', type=int, default=1, action=Jobs,
                        help='runs at a time, each on its own share of the cores')


def side_by_side(plan, jobs):
    """Run the train_resnet.py commands of `plan()` ([(run folder, command)] still to train,
    asked again whenever a run ends) to the end, `jobs` at a time. One job runs in the
    foreground on every core. Several each get their own cores and as many OpenMP threads,
    and write their output to train.out in their folder: on 2 cores, two one-core runs of
    these small nets train more images a second in all than one two-core run
    (docs/RESULTS.md), each at a little over half the speed. A failed run stops the others,
    as does SIGTERM (they checkpoint, and resume from there when started again); returns
    the exit status."""
    free = [None] if jobs == 1 else core_slots(jobs)
    running = {}   # run folder -> (process, cores, output path or None)
    finished = set()
    previous = signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    try:
        while True:
            for directory, command in plan():
                if directory in finished:
                    raise SystemExit('%s: train_resnet.py ended without its epochs' % directory)
                if not free:
                    break
                if directory not in running:
                    running[directory] = start(directory, command, free.pop())
            if not running:
                return 0
            time.sleep(1)
            for directory, (process, cores, output) in list(running.items()):
                status = process.poll()
                if status is None:
                    continue
                del running[directory]
                free.append(cores)
                finished.add(directory)
                if status:
                    print('failed (exit status %d): %s%s' % (
                        status, directory, '; its output: ' + output if output else ''),
                        file=sys.stderr, flush=True)
                    return status
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process, _, _ in running.values():
            process.terminate()
        for process, _, _ in running.values():
            process.wait()


def start(directory, command, cores):
    """(process, cores, output path) of `command` started on `cores` (None: in the
    foreground, on every core)."""
    if cores is None:
        print('+ ' + ' '.join(command), flush=True)
        return subprocess.Popen(command, cwd=ROOT), None, None
    os.makedirs(directory, exist_ok=True)
    output = os.path.join(directory, 'train.out')
    print('+ %s > %s' % (' '.join(command), output), flush=True)
    with open(output, 'a') as out:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, OMP_NUM_THREADS=str(len(cores))),
            preexec_fn=lambda: os.sched_setaffinity(0, cores))
    return process, cores, output


def pack():
    os.makedirs(os.path.dirname(DATA), exist_ok=True)
    return subprocess.call([sys.executable, os.path.join(ROOT, 'tools', 'mnist2rec.py'),
                            SOURCE, DATA, '--classes', 'fashion-mnist', '--test-name', 'test'])


def run_epochs(directory):
    """The per-epoch records of the run in `directory` ([] before its first epoch)."""
    return epoch_records(os.path.join(directory, 'model-log.jsonl'))


def trained_epochs(directory):
    """The epochs the run in `directory` has trained: as its log says, or its archived log
    (`archive_logs`) where that says more, so that a run finished on another machine or in
    an earlier session is not trained again."""
    archived = os.path.join(DOCS, 'logs', os.path.basename(directory) + '.jsonl')
    return max(len(run_epochs(directory)), len(epoch_records(archived)))


def park(runs):
    """Copy the last complete checkpoint and the log of each unfinished run of `runs`
    ({run folder: epochs it is to train}) to experiments/parked/<folder>/, and remove the
    parked copies of those finished. That folder is committed: a session's processes and
    its run folders end with it, and a run started again on a fresh clone continues from
    its parked checkpoint (`unpark`)."""
    for directory, epochs in sorted(runs.items()):
        folder = os.path.basename(directory)
        prefix, target = os.path.join(directory, 'model'), os.path.join(PARKED, folder)
        if trained_epochs(directory) >= epochs:
            if os.path.isdir(target):
                shutil.rmtree(target)
                print('removed the parked copy of %s: finished' % folder)
            continue
        last = max(available(prefix, complete=True), default=None)
        if last is None:
            continue
        shutil.rmtree(target, ignore_errors=True)
        copy(prefix, last, os.path.join(target, 'model'))
        shutil.copyfile(prefix + '-log.jsonl', os.path.join(target, 'model-log.jsonl'))
        print('parked %s: checkpoint %d, %d epochs trained' % (
            folder, last, len(run_epochs(directory))))
    return 0


def park_all():
    """`park` every run of this script that has a folder or a parked copy, logs archived
    first."""
    archive_logs()
    folders = set()
    for parent in (RUNS_DIR, PARKED):
        folders.update(os.listdir(parent) if os.path.isdir(parent) else [])
    return park({os.path.join(RUNS_DIR, f): int(RUN_FOLDER.match(f).group(1))
                 for f in folders if RUN_FOLDER.match(f)})


def unpark(directory):
    """Where the run folder `directory` has no complete checkpoint and its run is parked
    (`park`), copy the parked checkpoint and log there; returns whether it did."""
    source = os.path.join(PARKED, os.path.basename(directory), 'model')
    prefix = os.path.join(directory, 'model')
    parked = max(available(source, complete=True), default=None)
    if parked is None or available(prefix, complete=True):
        return False
    copy(source, parked, prefix)
    # the folder's own log, if any, is of a start that left no checkpoint
    shutil.copyfile(source + '-log.jsonl', prefix + '-log.jsonl')
    print('%s: continuing from its parked checkpoint %d' % (directory, parked), flush=True)
    return True


def epoch_records(path):
    """The per-epoch records of a JSON-lines log's last run ([] if there is none yet)."""
    try:
        return read_epochs(path)
    except UsageError:
        return []


def archive_logs():
    """Copy the epoch records of each run folder's log to docs/logs/<folder>.jsonl, unless
    the copy there already has more epochs; returns the archive folder. The archive is
    committed: the table and the curves come from it, so runs of earlier machines and
    sessions stay in them."""
    logs = os.path.join(DOCS, 'logs')
    os.makedirs(logs, exist_ok=True)
    folders = os.listdir(RUNS_DIR) if os.path.isdir(RUNS_DIR) else []
    for folder in filter(RUN_FOLDER.match, folders):
        records = run_epochs(os.path.join(RUNS_DIR, folder))
        target = os.path.join(logs, folder + '.jsonl')
        if records and len(records) >= len(epoch_records(target)):
            with open(target, 'w') as f:
                f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in records)
    return logs


def report():
    """Print and write (docs/fashion-mnist.md) the table of every archived run
    (`archive_logs`), then the ablation's (`ablation_table`) for each schedule it ran; draw
    docs/fashion-mnist-<E>ep.png for each schedule (with the folder's suffix for the other
    flips setting or recipe)."""
    rows = ['| run | recipe | schedule | flips | epochs done | final test error | '
            'best test error | weight average (EMA): final, best | final train error | '
            'wall time | images/s |',
            '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    logs_dir = archive_logs()
    runs = [f[:-len('.jsonl')] for f in os.listdir(logs_dir) if f.endswith('.jsonl')]
    schedules = sorted({(int(m.group(1)), m.group(2) or '', (m.group(3) or '-paper')[1:],
                         int(m.group(4) or 0))
                        for m in map(RUN_FOLDER.match, runs) if m})
    for epochs, flips, recipe, seed in schedules:
        mirror = MIRROR if not flips else int(flips == '-mirror')
        paths = {n: os.path.join(logs_dir, run_name(n, epochs, mirror, recipe, seed) + '.jsonl')
                 for n in RUNS}
        logs = {n: epoch_records(paths[n]) for n in RUNS}
        done = [n for n in RUNS if logs[n]]
        for name in done:
            records = logs[name]
            last = records[-1]
            ema = [r['val_ema_top1'] for r in records if 'val_ema_top1' in r]
            rows.append('| %s | %s%s | %d epochs | %s | %d | %.2f%% | %.2f%% | %s | %.2f%% '
                        '| %.1f min | %s |' % (
                            name, recipe, ', seed %d' % seed if seed else '', epochs,
                            'on' if mirror else 'off', last['epoch'],
                            100 * (1 - last['val_top1']),
                            100 * (1 - max(r['val_top1'] for r in records)),
                            '%.2f%%, %.2f%%' % (100 * (1 - ema[-1]), 100 * (1 - max(ema)))
                            if ema else '-',
                            100 * (1 - last['train_top1']), sum_wall(records) / 60,
                            speed_text(records)))
        # The paper's Fig. 6 layout: plain nets on the left, residual nets on the right.
        panels = []
        for kind, title in (('plain', 'plain'), ('resnet', 'residual')):
            names = [n for n in done if n.startswith(kind + '-')]
            if names:
                panels.append(([paths[n] for n in names], names,
                               'Fashion-MNIST, %s nets, %d-epoch schedule%s%s%s' % (
                                   title, epochs, ', flips' if mirror else '',
                                   '' if recipe == 'paper' else ', ' + recipe,
                                   ', seed %d' % seed if seed else '')))
        if panels:
            plot(panels, os.path.join(DOCS, 'fashion-mnist-%dep%s.png' % (
                epochs, suffix(mirror, recipe, seed))))
    table = '\n'.join(rows) + '\n'
    # an ablation's table for each schedule of the recipe's own run (a cut run alone, such
    # as the one-hour run without --last-gamma, is no ablation)
    recipe_runs = {e for e, flips, recipe, seed in schedules
                   if (flips, recipe, seed) == ('-nomirror', 'tricks', 0)}
    for epochs in sorted(recipe_runs & {e for e, _, recipe, _ in schedules
                                        if recipe.startswith('tricks-minus-')}):
        table += '\n' + ablation_table(logs_dir, epochs)
    with open(os.path.join(DOCS, 'fashion-mnist.md'), 'w') as f:
        f.write(table)
    print(table, end='')
    return 0


def ablation_table(logs_dir, epochs):
    """The ablation's table of `epochs`-epoch runs: `--recipe tricks` without flips, each
    ingredient taken out, and flips put back; test error (%) of the weights and of their
    moving average after the last epoch, and each against the recipe's."""
    paper = paper_flags('resnet-v1', 20, epochs, '')

    def text(flags, names):
        words = [f if flags[f] is True else '%s %s' % (f, flags[f])
                 for f in names if flags.get(f) is not None]
        return '`%s`' % ' '.join(words) if words else 'none'
    runs = [('the recipe (`--recipe tricks --mirror 0`)', 0, 'tricks')] + [
        ('%s -> %s' % (text(RECIPES['tricks'], names), text(paper, names)), 0,
         'tricks-minus-' + ingredient) for ingredient, names in INGREDIENTS.items()] + [
        ('flips: `--random-mirror 1`', 1, 'tricks')]
    rows = ['| %d epochs, ResNet-20: taken out -> what comes back | epochs done | test error '
            '| moving average | against the recipe: weights, average |' % epochs,
            '| --- | ---: | ---: | ---: | --- |']
    base = None   # the recipe's errors, once its run is complete
    for what, mirror, recipe in runs:
        records = epoch_records(os.path.join(logs_dir, run_name(
            'resnet-20', epochs, mirror, recipe) + '.jsonl'))
        if not records:
            rows.append('| %s | 0 | - | - | - |' % what)
            continue
        last = records[-1]
        errors = (100 * (1 - last['val_top1']),
                  100 * (1 - last['val_ema_top1']) if 'val_ema_top1' in last else None)
        finished = len(records) >= epochs
        is_recipe = (mirror, recipe) == (0, 'tricks')
        if is_recipe and finished:
            base = errors
        against = '-'
        if finished and base is not None and not is_recipe:
            against = ', '.join('%+.2f' % (e - b) if None not in (e, b) else '-'
                                for e, b in zip(errors, base))
        rows.append('| %s | %d | %.2f%% | %s | %s |' % (
            what, len(records), errors[0], '-' if errors[1] is None else '%.2f%%' % errors[1],
            against))
    return '\n'.join(rows) + '\n'


def speed_text(records):
    """The median epoch's images/s of a run and, where every epoch's record says
    (`cpu_cores`: epochs from 2026-12-02 on), the cores its epochs ran on."""
    if not records:
        return '-'
    median = sorted(r['images_per_sec'] for r in records)[len(records) // 2]
    if not all('cpu_cores' in r for r in records):
        return '%.0f' % median
    cores = sorted({r['cpu_cores'] for r in records})
    return '%.0f (%s core%s)' % (median, '/'.join(map(str, cores)), 's' * (cores != [1]))


def sum_wall(epochs):
    """Wall time of a run, summed over the segments of a resumed run."""
    total, previous = 0.0, 0.0
    for record in epochs:
        wall = record['wall_time']
        total += wall - previous if wall >= previous else wall
        previous = wall
    return total


def main(argv=None):
    parser = cli_parser(__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('pack', help='pack Fashion-MNIST 60k/10k with tools/mnist2rec.py')
    one = sub.add_parser('train', help='train one run')
    one.add_argument('name', choices=sorted(RUNS))
    one.add_argument('--epochs', type=int, default=EPOCHS)
    one.add_argument('--mirror', type=int, choices=(0, 1), default=MIRROR,
                     help='random horizontal flips (the recipe: %d)' % MIRROR)
    one.add_argument('--recipe', choices=sorted(RECIPES), default='paper',
                     help="the paper's recipe, or with the regularisers above")
    one.add_argument('--seed', type=int, default=0,
                     help='seed of init, shuffle and augmentation (folders suffixed -seed<N>)')
    one.add_argument('--print', action='store_true', help='print the command only')
    four = sub.add_parser('degradation', help='train the four nets on one schedule, then report')
    four.add_argument('--epochs', type=int, default=DEGRADATION_EPOCHS)
    four.add_argument('--mirror', type=int, choices=(0, 1), default=MIRROR,
                      help='random horizontal flips (the recipe: %d)' % MIRROR)
    cut = sub.add_parser('ablation', help='ResNet-20, --recipe tricks less each ingredient, '
                                          'then report')
    cut.add_argument('--epochs', type=int, default=ABLATION_EPOCHS)
    for command in (four, cut):
        add_jobs_flag(command)
    sub.add_parser('report', help='print the results table and draw the curves')
    sub.add_parser('park', help="copy unfinished runs' last checkpoints to experiments/parked "
                                "(committed), from where `train` continues them")
    # flags this script does not know go to train_resnet.py (e.g. --data-nthreads 4)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != 'train':
        parser.error('unrecognized arguments: %s' % ' '.join(extra))
    if args.command == 'pack':
        return pack()
    if args.command == 'report':
        return report()
    if args.command == 'park':
        return park_all()
    if args.command in ('ablation', 'degradation'):
        if args.command == 'ablation':
            runs = [('resnet-20', args.epochs, 0, 'tricks')] + \
                [('resnet-20', args.epochs, 0, 'tricks-minus-' + i) for i in INGREDIENTS] + \
                [('resnet-20', args.epochs, 1, 'tricks')]  # the last: flips back
        else:
            runs = [(name, args.epochs, args.mirror, 'paper') for name in RUNS]
        return train_runs(runs, args.jobs) or report()
    if args.print:
        print(' '.join(train_command(args.name, args.epochs, extra, args.mirror, args.recipe,
                                     args.seed)))
        return 0
    return train(args.name, args.epochs, extra, args.mirror, args.recipe, args.seed)


if __name__ == '__main__':
    sys.exit(main())
