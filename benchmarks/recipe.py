#!/usr/bin/env python
"""The training-speed cost of each feature of the training recipe on the bundled
Fashion-MNIST subset, against the same run without it.

    python benchmarks/recipe.py --rounds 6 --pairs 6

Every configuration trains ResNet-20 in this one process (the fashion-mnist preset: 1x28x28,
batch 128, ImageRecordIter's crops and flips over data/fashion-mnist-train.rec) through the
Trainer's own step (mxresnet.fit.Trainer.train_step after Trainer.batches: reading, the
batch's augmentation and soft targets, the teacher, forward, backward, update, the moving
average, the metrics). Each step of a configuration is timed right beside a step of the
plain run, in pairs (plain first in every other pair), --pairs pairs per turn, the
configurations taking turns for --rounds rounds (the order reversed every other round; the
first round is a warm-up and not counted). Other work on a shared machine changes the
speed of both steps of a pair alike, so the cost is the median over the pairs of (its step
/ the plain step) - 1, with the 25th and 75th percentiles; beside it the images/s of the
fastest step of each, and for the --auto-augment policies the augmentation's own
milliseconds per batch (the fastest of 20 on one of its batches). --no-wd and --last-gamma
cost nothing by construction (a weight-decay multiplier, an initial value): their
apparent costs show the measurement's noise. The teachers: a ResNet-20 and a ResNet-56
trained on a few batches first, and their INT8 models (tools/quantize.py --save).
"""
import argparse
import os
import sys
import tempfile
import time

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet.runtime import use_all_cores, use_naive_engine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_REC = os.path.join(ROOT, 'data', 'fashion-mnist-train.rec')
BASE = ['--data-train', TRAIN_REC, '--preset', 'fashion-mnist', '--model-prefix', '',
        '--log-file', '', '--data-check', '1']
# teachers this script trains first, by depth; each also as NAME-INT8: names in CONFIGS
TEACHERS = {'RESNET-20': 20, 'RESNET-56': 56}
CONFIGS = (
    ('plain', []),
    ('--mixup-alpha 0.2', ['--mixup-alpha', '0.2']),
    ('--cutmix-alpha 1', ['--cutmix-alpha', '1']),
    ('--no-wd', ['--no-wd']),
    ('--last-gamma', ['--last-gamma']),
    ('--model-ema', ['--model-ema']),
    ('--auto-augment ra', ['--auto-augment', 'ra']),
    ('--auto-augment ta_wide', ['--auto-augment', 'ta_wide']),
    ('--teacher (a ResNet-20)', ['--teacher', 'RESNET-20']),
    ('--teacher (that ResNet-20 in INT8)', ['--teacher', 'RESNET-20-INT8']),
    ('--teacher (a ResNet-56)', ['--teacher', 'RESNET-56']),
    ('--teacher (that ResNet-56 in INT8)', ['--teacher', 'RESNET-56-INT8']),
    ('all but the teacher (ra)', ['--mixup-alpha', '0.2', '--cutmix-alpha', '1', '--no-wd',
                                  '--last-gamma', '--model-ema', '--auto-augment', 'ra']),
    ('all of them (ra)', ['--mixup-alpha', '0.2', '--cutmix-alpha', '1', '--no-wd',
                          '--last-gamma', '--model-ema', '--auto-augment', 'ra',
                          '--teacher', 'RESNET-20']),
)


def train_teachers(folder):
    """{name in TEACHERS: its checkpoint}: ResNets of a few batches (their speed, not their
    accuracy, matters) and their INT8 models (tools/quantize.py --save, calibrated on the
    bundled training set)."""
    import train_resnet
    from mxresnet import quantization
    from tools import quantize
    teachers = {}
    for name, depth in TEACHERS.items():
        prefix = os.path.join(folder, name.lower())
        train_resnet.run(BASE[:4] + ['--num-layers', str(depth), '--num-examples', '256',
                                     '--num-epochs', '1', '--model-prefix', prefix,
                                     '--disp-batches', '1000'])
        quantization.run(quantize.build_parser().parse_args(
            ['--model', prefix, '--epoch', '1', '--batch-sizes', '1', '--rounds', '1',
             '--min-time', '0.01', '--save', prefix + '-int8']), open(os.devnull, 'w'))
        teachers.update({name: prefix + ':1', name + '-INT8': prefix + '-int8:0'})
    return teachers


class Contender(object):
    """One configuration's Trainer, Module and endless stream of batches."""

    def __init__(self, extra):
        import train_resnet
        from mxresnet import fit
        args = train_resnet.build_parser().parse_args(BASE + extra)
        shape = fit.configure(args)
        self.trainer = fit.Trainer(args, fit.build_symbol(args, shape), shape)
        self.module = self.trainer.start_module(0)
        self.metric = fit.make_metrics(0, self.trainer.soft_targets)
        self.stream = self.batches()

    def batches(self):
        epoch = 0
        while True:
            for nbatch, batch in self.trainer.batches(epoch):
                yield epoch, nbatch, batch
            epoch += 1

    def step(self):
        """The seconds of one training step (reading its batch included)."""
        import mxnet as mx
        mx.nd.waitall()
        start = time.perf_counter()
        epoch, nbatch, batch = next(self.stream)
        self.trainer.train_step(self.module, batch, epoch, nbatch, self.metric)
        mx.nd.waitall()
        return time.perf_counter() - start


def augmentation_ms(policy, contender, repeats=20):
    """The best milliseconds of augment.auto_augment on one of the contender's batches."""
    from mxresnet import augment, flags
    args = contender.trainer.args
    images = next(contender.stream)[2].data[0].asnumpy()
    mean, std = flags.normalisation(args, images.shape[1])
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        augment.auto_augment(images, augment.batch_rng(0, 0, i, 0), policy, mean, std,
                             args.fill_value, args.ra_magnitude, args.ra_num_ops)
        times.append(1000 * (time.perf_counter() - start))
    return min(times)


def quantile(values, q):
    return sorted(values)[int(round(q * (len(values) - 1)))]


def format_table(ratios, fastest, extra_ms, batch_size):
    """`ratios`: {configuration: [its step / the plain step]}; `fastest`: {configuration:
    its fastest step's seconds}."""
    lines = ['| configuration | cost: median (25th to 75th percentile) | fastest step, '
             'images/s | augmentation ms/batch |', '| --- | --- | --- | --- |']
    for name, _ in CONFIGS:
        cost = '-' if name == 'plain' else '%+.1f%% (%+.1f%% to %+.1f%%)' % tuple(
            100 * (quantile(ratios[name], q) - 1) for q in (0.5, 0.25, 0.75))
        ms = '%.1f (the plain step: %.0f)' % (extra_ms[name], 1000 * fastest['plain']) \
            if name in extra_ms else ''
        lines.append('| %s | %s | %.0f | %s |' % (name, cost, batch_size / fastest[name], ms))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=6, help='turns of each configuration')
    parser.add_argument('--pairs', type=int, default=6, help='pairs of steps per turn')
    args = parser.parse_args(argv)
    use_all_cores()
    use_naive_engine()  # as train_resnet.py's command line trains on the CPU
    import logging
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        teachers = train_teachers(folder)
        contenders = {name: Contender([teachers.get(a, a) for a in extra])
                      for name, extra in CONFIGS}
        plain = contenders['plain']
        ratios = {name: [] for name in contenders}
        fastest = {name: float('inf') for name in contenders}
        names = [name for name, _ in CONFIGS[1:]]
        for turn in range(args.rounds):
            for name in names if turn % 2 == 0 else names[::-1]:
                contender = contenders[name]
                for pair in range(args.pairs):
                    order = (plain, contender) if pair % 2 == 0 else (contender, plain)
                    seconds = {one: one.step() for one in order}
                    if turn:
                        ratios[name].append(seconds[contender] / seconds[plain])
                        fastest[name] = min(fastest[name], seconds[contender])
                        fastest['plain'] = min(fastest['plain'], seconds[plain])
                if turn:
                    print('round %d %-24s cost %+.1f%% (median so far)' % (
                        turn, name, 100 * (quantile(ratios[name], 0.5) - 1)), file=sys.stderr)
        extra_ms = {name: augmentation_ms(extra[1], contenders[name])
                    for name, extra in CONFIGS if extra[:1] == ['--auto-augment']}
    batch_size = plain.trainer.args.batch_size
    print('ResNet-20, batch %d, bundled Fashion-MNIST; %d rounds of %d pairs of steps'
          % (batch_size, args.rounds - 1, args.pairs))
    print(format_table(ratios, fastest, extra_ms, batch_size))
    return 0


if __name__ == '__main__':
    sys.exit(main())
