"""The training recipe (#23): mixup, CutMix, RandAugment and TrivialAugment, --no-wd,
--last-gamma, --model-ema, distillation from a teacher, and their flags."""
import json
import os
import re
import shutil

import mxnet as mx
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

import symbols
import train_resnet
from mxresnet import augment, checkpoint, fit, flags, graph, inference, log, recordio
from mxresnet.errors import UsageError
from mxresnet.teacher import input_adapter, channel_map
from test_train import SHORT, VAL_REC, load_params, max_difference, prepare, run_cli

FASHION = (72.94, 90.02)


# -- mixup and CutMix ---------------------------------------------------------------------
def numbered_batch(count=8, size=6):
    """Images whose pixels all hold their index in the batch, and labels 0, 1, 2, ..."""
    images = np.repeat(np.arange(count, dtype=np.float32), size * size * 3).reshape(
        count, 3, size, size)
    return images, np.arange(count) % 10


def test_mixup_mixes_each_image_with_its_partner_and_the_targets_alike():
    images, labels = numbered_batch()
    mixed, partner, lam = augment.mixup(images, np.random.RandomState(3), 0.4)
    assert 0 < lam < 1 and list(partner) == [7, 6, 5, 4, 3, 2, 1, 0]
    for i in range(8):
        np.testing.assert_allclose(mixed[i], lam * i + (1 - lam) * (7 - i), rtol=1e-6)
    targets = augment.soft_targets(labels, 10, 0.0, partner, lam)
    np.testing.assert_allclose(targets.sum(axis=1), 1, rtol=1e-6)
    assert (targets >= 0).all()
    for i in range(8):
        expected = np.zeros(10)
        expected[labels[i]] += lam
        expected[labels[partner[i]]] += 1 - lam
        np.testing.assert_allclose(targets[i], expected, atol=1e-6)
    # smoothing as SoftmaxOutput's: 1 - alpha on the label, alpha / 9 on each other class
    smooth = augment.soft_targets(labels, 10, 0.1)
    np.testing.assert_allclose(smooth[0], [0.9] + [0.1 / 9] * 9, rtol=1e-6)
    mixed_smooth = augment.soft_targets(labels, 10, 0.1, partner, lam)
    np.testing.assert_allclose(mixed_smooth, lam * smooth + (1 - lam) * smooth[partner],
                               rtol=1e-6)
    np.testing.assert_allclose(mixed_smooth.sum(axis=1), 1, rtol=1e-6)


def test_cutmix_box_and_label_weights_agree():
    images, labels = numbered_batch(size=28)
    seen_clipped = False
    for seed in range(40):
        mixed, partner, lam, (top, bottom, left, right) = augment.cutmix(
            images, np.random.RandomState(seed), 1.0)
        box = np.zeros((28, 28), bool)
        box[top:bottom, left:right] = True
        seen_clipped |= top == 0 or left == 0 or bottom == 28 or right == 28
        for i in range(8):
            from_partner = mixed[i, 0] == partner[i]
            assert (from_partner == box).all() or partner[i] == i
            assert (mixed[i][:, ~box] == i).all()
        assert lam == pytest.approx(1 - box.mean())
        targets = augment.soft_targets(labels, 10, 0.0, partner, lam)
        for i in range(8):
            assert targets[i, labels[i]] == pytest.approx(lam) or labels[i] == \
                labels[partner[i]]
            assert targets[i, labels[partner[i]]] == pytest.approx(1 - lam, abs=1e-6) or \
                labels[i] == labels[partner[i]]
        np.testing.assert_allclose(targets.sum(axis=1), 1, rtol=1e-6)
    assert seen_clipped  # boxes cut by the border weigh by what is left of them


def test_mix_batch_switches_between_mixup_and_cutmix():
    images, labels = numbered_batch(size=28)
    kinds = set()
    for seed in range(20):
        mixed, targets = augment.mix_batch(images, labels, np.random.RandomState(seed), 10,
                                           0.2, 1.0)
        pure = (mixed == np.round(mixed)).all()   # CutMix pastes pixels, mixup blends them
        kinds.add('cutmix' if pure else 'mixup')
        np.testing.assert_allclose(targets.sum(axis=1), 1, rtol=1e-6)
    assert kinds == {'mixup', 'cutmix'}
    same, targets = augment.mix_batch(images, labels, np.random.RandomState(0), 10)
    assert same is images and (targets.argmax(axis=1) == labels).all()


# -- the soft-target loss -----------------------------------------------------------------
def bind_head(temperature=None, hard_weight=1.0, grad_scale=1.0, count=4, classes=5):
    """soft_target_loss over a SoftmaxOutput whose logits are the variable z."""
    head = mx.sym.SoftmaxOutput(mx.sym.Variable('z'), name='softmax')
    sym = graph.soft_target_loss(head, grad_scale, temperature, hard_weight)
    shapes = {name: (count, classes) for name in sym.list_arguments()}
    return sym.simple_bind(mx.cpu(), **shapes)


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_soft_target_loss_with_smoothed_one_hot_targets_is_softmax_output_s():
    """Label smoothing means the same with soft targets as in SoftmaxOutput: the same
    gradients, loss scale included."""
    rng = np.random.RandomState(0)
    z, labels = rng.normal(size=(4, 5)), np.array([0, 3, 4, 1])
    reference = mx.sym.SoftmaxOutput(mx.sym.Variable('z'), name='softmax', smooth_alpha=0.2,
                                     grad_scale=8.0).simple_bind(mx.cpu(), z=(4, 5))
    reference.arg_dict['z'][:] = z
    reference.arg_dict['softmax_label'][:] = labels
    reference.forward(is_train=True)
    reference.backward()
    soft = bind_head(grad_scale=8.0)
    soft.arg_dict['z'][:] = z
    soft.arg_dict['softmax_label'][:] = augment.soft_targets(labels, 5, 0.2)
    soft.forward(is_train=True)
    soft.backward()
    np.testing.assert_allclose(soft.grad_dict['z'].asnumpy(),
                               reference.grad_dict['z'].asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(soft.outputs[0].asnumpy(), reference.outputs[0].asnumpy(),
                               rtol=1e-6)


def test_distillation_loss_is_the_hand_computed_one():
    temperature, weight, scale = 4.0, 0.3, 2.0
    rng = np.random.RandomState(1)
    z = rng.normal(0, 3, size=(4, 5))
    targets = augment.soft_targets([0, 2, 4, 1], 5, 0.1, np.array([3, 2, 1, 0]), 0.7)
    teacher = np.exp(log_softmax(rng.normal(0, 2, size=(4, 5)) / temperature))
    exe = bind_head(temperature, weight, scale)
    exe.arg_dict['z'][:] = z
    exe.arg_dict['softmax_label'][:] = targets
    exe.arg_dict['teacher_label'][:] = teacher
    exe.forward(is_train=True)
    exe.backward()
    hard = -(targets * log_softmax(z)).sum(axis=1)
    soft = -(teacher * log_softmax(z / temperature)).sum(axis=1)
    expected = weight * hard + (1 - weight) * temperature ** 2 * soft
    np.testing.assert_allclose(exe.outputs[1].asnumpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), np.exp(log_softmax(z)), rtol=1e-5)
    # d/dz: w (p - t) + (1 - w) T (p_T - q), times the loss scale
    gradient = weight * (np.exp(log_softmax(z)) - targets) + (1 - weight) * temperature * (
        np.exp(log_softmax(z / temperature)) - teacher)
    np.testing.assert_allclose(exe.grad_dict['z'].asnumpy(), scale * gradient, rtol=1e-4,
                               atol=1e-6)


def test_soft_metric_scores_the_largest_target_and_averages_the_loss():
    metric = fit.make_metrics(2, soft_targets=True)
    targets = mx.nd.array([[0.7, 0.3, 0], [0.4, 0.6, 0], [0, 0.2, 0.8]])
    probabilities = mx.nd.array([[0.5, 0.4, 0.1], [0.6, 0.3, 0.1], [0.1, 0.5, 0.4]])
    fit.update_soft_metric(metric, targets, [probabilities, mx.nd.array([1.0, 2.0, 6.0])])
    values = fit.metric_values(metric)
    assert values['top1'] == pytest.approx(1 / 3) and values['topk'] == pytest.approx(1)
    assert values['loss'] == pytest.approx(3.0)


# -- RandAugment and TrivialAugment -----------------------------------------------------------
def pil_reference(name, image, magnitude, fill):
    """What torchvision's RandAugment does to a PIL image for `name` (its _apply_op)."""
    if name in ('ShearX', 'ShearY'):
        matrix = (1, magnitude, 0, 0, 1, 0) if name == 'ShearX' else (1, 0, 0, magnitude, 1, 0)
        return image.transform(image.size, Image.AFFINE, matrix, Image.NEAREST, fillcolor=fill)
    if name in ('TranslateX', 'TranslateY'):
        shift = int(magnitude)
        matrix = (1, 0, -shift, 0, 1, 0) if name == 'TranslateX' else (1, 0, 0, 0, 1, -shift)
        return image.transform(image.size, Image.AFFINE, matrix, Image.NEAREST, fillcolor=fill)
    if name == 'Rotate':
        return image.rotate(magnitude, Image.NEAREST, fillcolor=fill)
    enhance = {'Brightness': ImageEnhance.Brightness, 'Color': ImageEnhance.Color,
               'Contrast': ImageEnhance.Contrast, 'Sharpness': ImageEnhance.Sharpness}
    if name in enhance:
        return enhance[name](image).enhance(1 + magnitude)
    if name == 'Posterize':
        return ImageOps.posterize(image, int(magnitude))
    if name == 'Solarize':
        return ImageOps.solarize(image, magnitude)
    if name == 'AutoContrast':
        return ImageOps.autocontrast(image)
    if name == 'Equalize':
        return ImageOps.equalize(image)
    return image


# (difference, share): at most `share` of the pixels may differ from PIL's by more than
# `difference` levels. PIL rounds some blends, the contrast's mean and the gray conversion
# otherwise, and its affine loop adds the matrix step by step (a pixel centre just on a
# boundary may fall to either side).
TOLERANCES = {'Brightness': (1, 0), 'Color': (2, 0), 'Contrast': (2, 0), 'Sharpness': (1, 0),
              'AutoContrast': (1, 0), 'ShearX': (0, 0.01), 'ShearY': (0, 0.01),
              'Rotate': (0, 0.01)}


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('name', augment.OPERATIONS)
def test_each_operation_computes_as_torchvision_s_pil_path(name, channels):
    rng = np.random.RandomState(7)
    base = rng.randint(0, 256, (16, 16, channels))  # a gradient with noise and flat parts
    base[:8] = np.linspace(30, 200, 16)[None, :, None]
    images = np.stack([base, base[::-1], 255 - base, np.full_like(base, 90)]).astype(np.uint8)
    table = augment.magnitudes('ra', 16, 16)
    magnitudes = table[name][[30, 20, 9, 3]].copy()
    if name in augment.SIGNED:
        magnitudes *= [1, -1, 1, -1]
    batch = images.transpose(0, 3, 1, 2).astype(np.float32)
    ours = augment.apply_operation(name, batch, magnitudes, fill=17)
    assert ours.shape == batch.shape and ours.dtype == np.float32
    largest, share = TOLERANCES.get(name, (0, 0))
    for image, magnitude, result in zip(images, magnitudes, ours):
        pil = Image.fromarray(image[:, :, 0] if channels == 1 else image)
        expected = np.asarray(pil_reference(name, pil, float(magnitude),
                                            17 if channels == 1 else (17,) * 3), np.float32)
        expected = expected.reshape(16, 16, channels).transpose(2, 0, 1)
        difference = np.abs(result - expected)
        assert (difference > largest).mean() <= share, (magnitude, difference.max(),
                                                        (difference > largest).mean())


def test_auto_augment_draws_per_image_and_renormalises():
    rng = np.random.RandomState(0)
    mean, std = [FASHION[0]], [FASHION[1]]
    pixels = rng.randint(0, 256, (64, 1, 28, 28)).astype(np.float32)
    images = (pixels - mean[0]) / std[0]
    for policy in augment.POLICIES:
        out = augment.auto_augment(images, np.random.RandomState(5), policy, mean, std, 0)
        assert out.shape == images.shape and out.dtype == np.float32
        restored = out * std[0] + mean[0]
        assert restored.min() > -1e-3 and restored.max() < 255 + 1e-3
        np.testing.assert_allclose(restored, np.round(restored), atol=1e-3)
        again = augment.auto_augment(images, np.random.RandomState(5), policy, mean, std, 0)
        assert (again == out).all()
        changed = (out != images).reshape(64, -1).any(axis=1)
        assert 10 < changed.sum() < 64  # Identity (and no-op draws) leave some images alone
    # RandAugment's draws, replayed one image at a time, give the batch's result
    draws = np.random.RandomState(5)
    expected = pixels.copy()
    table = augment.magnitudes('ra', 28, 28)
    for _ in range(2):
        ops = draws.randint(len(augment.OPERATIONS), size=64)
        signs = np.where(draws.randint(2, size=64), -1.0, 1.0)
        for i in range(64):
            name = augment.OPERATIONS[ops[i]]
            value = table[name][9] * (signs[i] if name in augment.SIGNED else 1)
            expected[i:i + 1] = augment.apply_operation(name, expected[i:i + 1], [value], 0)
    out = augment.auto_augment(images, np.random.RandomState(5), 'ra', mean, std, 0)
    np.testing.assert_allclose(out * std[0] + mean[0], expected, atol=1e-3)


def test_auto_augment_in_training_batches_is_seeded_per_batch():
    def first(extra, skip=0):
        args, shape = prepare(['--data-nthreads', '1', '--random-mirror', '0',
                               '--random-crop', '0', '--pad-size', '0'] + extra)
        trainer = fit.Trainer(args, fit.build_symbol(args, shape), shape)
        batches = trainer.batches(1, skip)
        return [next(batches)[1].data[0].asnumpy() for _ in range(2 - skip)]
    plain = first([])
    for policy in augment.POLICIES:
        augmented = first(['--auto-augment', policy])
        assert (plain[0] != augmented[0]).reshape(len(plain[0]), -1).any(axis=1).mean() > 0.5
        assert (first(['--auto-augment', policy], skip=1)[0] == augmented[1]).all()


# -- --no-wd -------------------------------------------------------------------------------
def one_sgd_step(extra):
    """(parameters before, after, gradients, rescale_grad, lr, wd) of one update."""
    args, shape = prepare(SHORT + ['--mom', '0', '--wd', '0.05', '--lr-step-epochs', '',
                                   '--model-prefix', ''] + extra)
    trainer = fit.Trainer(args, fit.build_symbol(args, shape), shape)
    module = trainer.start_module(0)
    before = {k: v.asnumpy() for k, v in module.get_params()[0].items()}
    _, batch = next(trainer.batches(0))
    module.forward_backward(batch)
    group = module._exec_group
    grads = {name: g[0].asnumpy() for name, g in zip(group.param_names, group.grad_arrays)}
    module.update()
    mx.nd.waitall()
    after = {k: v.asnumpy() for k, v in module.get_params()[0].items()}
    return before, after, grads, module._optimizer.rescale_grad, args.lr, args.wd


@pytest.mark.parametrize('no_wd', [False, True])
def test_no_wd_leaves_batchnorm_gamma_beta_and_biases_to_the_gradient(no_wd):
    before, after, grads, rescale, lr, wd = one_sgd_step(['--no-wd'] if no_wd else [])
    sym = symbols.get_symbol('resnet', num_classes=10, num_layers=20, image_shape='1,28,28')
    exempt = set(graph.no_decay_names(sym))
    assert {'bn_data_beta', 'bn1_gamma', 'bn1_beta', 'fc1_bias', 'stage2_unit1_bn1_gamma',
            'stage3_unit3_bn2_beta'} <= exempt
    assert not any(name.endswith('_weight') for name in exempt)
    for name in before:
        gradient_only = before[name] - lr * rescale * grads[name]
        with_decay = before[name] - lr * (rescale * grads[name] + wd * before[name])
        expected = gradient_only if no_wd and name in exempt else with_decay
        np.testing.assert_allclose(after[name], expected, rtol=1e-5, atol=1e-7, err_msg=name)
    # the decay term (gamma starts at 1: lr * wd = 0.005) is far above the tolerance
    assert (lr * wd * np.abs(before['bn1_gamma']) > 1e-3).all()


# -- --last-gamma ----------------------------------------------------------------------------
FAMILIES = [('resnet', 20, '1,28,28', {}), ('resnet', 164, '3,28,28', {}),
            ('resnet', 50, '3,224,224', {}), ('resnet', 20, '3,32,32',
                                              {'exact_dim_match': True, 'cifar_max_height': 32}),
            ('resnet-v1', 20, '3,32,32', {'shortcut': 'A'}),
            ('resnet-v1', 20, '3,32,32', {'shortcut': 'C'}),
            ('resnet-v1', 50, '3,224,224', {'stride_in_1x1': False}),
            ('resnext', 50, '3,224,224', {'num_group': 32, 'bottleneck_width': 4}),
            ('resnext', 20, '3,32,32', {'num_group': 4})]


@pytest.mark.parametrize('network,depth,shape,options', FAMILIES)
def test_last_gamma_names_the_last_layer_of_every_residual_branch(network, depth, shape,
                                                                  options):
    """By name: in each unit the highest-numbered BatchNorm's gamma (post-activation), or
    convolution's weight (the pre-activation resnet), never a shortcut's."""
    sym = symbols.get_symbol(network, num_classes=10, num_layers=depth, image_shape=shape,
                             **options)
    layer, suffix = ('conv', 'weight') if network == 'resnet' else ('bn', 'gamma')
    pattern = re.compile(r'^(stage\d+_unit\d+)_%s(\d+)_%s$' % (layer, suffix))
    last = {}
    for name in sym.list_arguments():
        match = pattern.match(name)
        if match:
            unit, number = match.group(1), int(match.group(2))
            last[unit] = max(last.get(unit, 0), number)
    expected = ['%s_%s%d_%s' % (unit, layer, number, suffix) for unit, number in last.items()]
    assert len(expected) == sum(symbols.blocks.depth_spec(
        network, depth, shape, 28 if network == 'resnet' and not options else 32).units)
    assert graph.residual_branch_ends(sym) == expected
    assert not any('_sc' in name for name in expected)
    assert graph.residual_branch_ends(graph.training_graph(sym)) == expected


@pytest.mark.parametrize('network', ['resnet', 'resnet-v1'])
def test_last_gamma_zeroes_those_and_nothing_else(network):
    def zeros(extra):
        args, shape = prepare(SHORT + ['--network', network, '--num-layers', '8',
                                       '--model-prefix', ''] + extra)
        trainer = fit.Trainer(args, fit.build_symbol(args, shape), shape)
        arg_params, _ = trainer.start_module(0).get_params()
        return trainer, {name for name, value in arg_params.items()
                         if not value.asnumpy().any()}
    trainer, zeroed = zeros(['--last-gamma'])
    _, already = zeros([])  # the biases and betas start at zero anyway
    assert sorted(zeroed - already) == sorted(trainer.branch_ends)
    assert len(trainer.branch_ends) == 3  # one unit per stage


# -- --model-ema -------------------------------------------------------------------------------
def test_moving_average_follows_the_formula_over_updates():
    args, shape = prepare(SHORT + ['--model-ema', '--model-ema-decay', '0.6',
                                   '--model-prefix', ''])
    trainer = fit.Trainer(args, fit.build_symbol(args, shape), shape)
    module = trainer.start_module(0)
    metric = fit.make_metrics(0)

    def values():
        mx.nd.waitall()
        arg_params, aux_params = module.get_params()
        return {k: v.asnumpy().astype(np.float64) for k, v in
                list(arg_params.items()) + list(aux_params.items())}
    expected = values()
    batches = trainer.batches(0)
    for _ in range(4):
        nbatch, batch = next(batches)
        trainer.train_step(module, batch, 0, nbatch, metric)
        current = values()
        expected = {k: 0.6 * expected[k] + 0.4 * current[k] for k in expected}
    ema_args, ema_aux = trainer.average.params()
    averaged = dict(ema_args, **ema_aux)
    assert sorted(averaged) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(averaged[name].asnumpy(), expected[name], rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    assert np.abs(averaged['bn1_moving_mean'].asnumpy() - current['bn1_moving_mean']).max() \
        > 1e-4  # an average, not the weights


RECIPE = ['--mixup-alpha', '0.3', '--cutmix-alpha', '1', '--label-smoothing', '0.1',
          '--auto-augment', 'ra', '--no-wd', '--last-gamma', '--model-ema',
          '--model-ema-decay', '0.9', '--random-erasing', '0.5']


@pytest.fixture(scope='module')
def recipe_run(tmp_path_factory):
    """Two epochs with the whole recipe, without interruption."""
    prefix = str(tmp_path_factory.mktemp('recipe') / 'model')
    record = train_resnet.run(SHORT + RECIPE + ['--num-epochs', '2', '--model-prefix', prefix])
    return prefix, record


def test_resume_with_the_recipe_equals_an_uninterrupted_run(tmp_path, recipe_run):
    """Resumed from a copy of its checkpoint in another folder (checkpoint.copy: how the
    experiments park a run), the original gone: the optimizer state and the moving average
    came along."""
    uninterrupted, _ = recipe_run
    first, prefix = str(tmp_path / 'first' / 'model'), str(tmp_path / 'model')
    train_resnet.run(SHORT + RECIPE + ['--num-epochs', '1', '--model-prefix', first])
    checkpoint.copy(first, 1, prefix)
    shutil.rmtree(str(tmp_path / 'first'))
    train_resnet.run(SHORT + RECIPE + ['--num-epochs', '2', '--model-prefix', prefix,
                                       '--load-epoch', '1'])
    assert max_difference(load_params(prefix, 2), load_params(uninterrupted, 2)) < 1e-6
    ema = checkpoint.ema_prefix
    assert max_difference(load_params(ema(prefix), 2), load_params(ema(uninterrupted), 2)) \
        < 1e-6
    assert max_difference(load_params(ema(prefix), 2), load_params(prefix, 2)) > 1e-3


def test_the_recipe_is_logged_and_checkpoints_as_the_normal_graph(recipe_run):
    prefix, record = recipe_run
    assert record['val_ema_top1'] >= 0 and 'val_ema_loss' in record
    runs = [r for r in log.read_records(prefix + '-log.jsonl') if r['event'] == 'run']
    assert runs[0]['recipe'] == {
        'mixup_alpha': 0.3, 'cutmix_alpha': 1.0, 'mixup_off_epoch': 0, 'label_smoothing': 0.1,
        'auto_augment': 'ra', 'ra_magnitude': 9, 'ra_num_ops': 2, 'random_erasing': 0.5,
        'no_wd': True, 'last_gamma': True, 'model_ema': True, 'model_ema_decay': 0.9,
        'teacher': None}
    epochs = log.read_epochs(prefix + '-log.jsonl')
    assert 'val_ema_top1' in epochs[0] and 0 <= epochs[-1]['train_top1'] <= 1
    built = symbols.get_symbol('resnet', num_classes=10, num_layers=20, image_shape='1,28,28')
    for saved in (prefix, checkpoint.ema_prefix(prefix)):
        sym = checkpoint.load_symbol(saved)
        assert [n['op'] for n in json.loads(sym.tojson())['nodes']] == \
            [n['op'] for n in json.loads(built.tojson())['nodes']]
        model = checkpoint.load_model(saved, 2)
        assert model.metadata['image_shape'] == [1, 28, 28]
    with open(checkpoint.paths(prefix, 2)['progress']) as f:
        assert json.load(f)['has_ema'] is True
    assert checkpoint.read_metadata(checkpoint.ema_prefix(prefix))['ema_decay'] == 0.9
    # the moving average scores and fine-tunes as any checkpoint of our tools
    assert sorted(checkpoint.available(checkpoint.ema_prefix(prefix), complete=True)) == [1, 2]
    model = checkpoint.load_model(checkpoint.ema_prefix(prefix), 2)
    scores = inference.score(model, VAL_REC, batch_size=500)
    assert scores['images'] == recordio.count_records(VAL_REC)
    assert scores['top1'] == pytest.approx(
        record['val_ema_top1'], abs=0.002)


# -- distillation ------------------------------------------------------------------------------
def write_checkpoint(prefix, network, depth, shape, mean, std, classes=10, synset=None):
    """Checkpoint 1 of a freshly initialised network, with its metadata."""
    sym = symbols.get_symbol(network, num_classes=classes, num_layers=depth,
                             image_shape=','.join(map(str, shape)))
    module = mx.mod.Module(sym, context=mx.cpu())
    module.bind([('data', (1,) + tuple(shape))], [('softmax_label', (1,))],
                for_training=False)
    mx.random.seed(0)
    module.init_params(mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2))
    arg_params, aux_params = module.get_params()
    checkpoint.write(prefix, 1, sym, arg_params, aux_params,
                     {'epoch': 1, 'batch': 0, 'num_update': 1},
                     checkpoint.metadata(network, depth, {}, shape, mean, std, classes,
                                         synset=synset))
    return prefix


def test_teacher_input_adapter_maps_the_student_s_normalisation_to_its_own():
    weight, bias = input_adapter([72.94], [90.02], [100, 110, 120], [50, 60, 70],
                                 channel_map(1, 3))
    pixels = np.array([0.0, 128.0, 255.0])
    student = (pixels - 72.94) / 90.02
    teacher = weight[:, 0, 0, 0][:, None] * student[None] + bias[:, None]
    np.testing.assert_allclose(teacher, (pixels[None] - np.array([[100], [110], [120]]))
                               / np.array([[50], [60], [70]]), rtol=1e-5, atol=1e-5)
    assert channel_map(3, 1).sum() == pytest.approx(1) and channel_map(2, 3) is None


def test_distillation_from_a_teacher_of_another_input_is_the_hand_computed_loss(tmp_path):
    """A colour 32x32 teacher with its own mean and std, a gray 28x28 student: the teacher
    sees the student's batch resized and normalised its own way, and the loss of one batch
    is the numpy reference's."""
    temperature, weight = 3.0, 0.25
    teacher = write_checkpoint(str(tmp_path / 'teacher'), 'resnet-v1', 8, (3, 32, 32),
                               [100.0, 110.0, 120.0], [50.0, 60.0, 70.0])
    args, shape = prepare(SHORT + ['--teacher', teacher, '--temperature', str(temperature),
                                   '--hard-weight', str(weight), '--model-prefix', ''])
    trainer = fit.Trainer(args, fit.build_symbol(args, shape), shape)
    module = trainer.start_module(0)
    _, batch = next(trainer.batches(0))
    trained = trainer.training_batch(batch, 0, 0)
    # the teacher's probabilities, from its own preprocessing of the same pixels
    pixels = batch.data[0].asnumpy() * FASHION[1] + FASHION[0]
    colour = mx.nd.contrib.BilinearResize2D(mx.nd.array(np.repeat(pixels, 3, axis=1)),
                                            height=32, width=32, align_corners=False)
    own = (colour.asnumpy() - np.array([100, 110, 120]).reshape(1, 3, 1, 1)) / \
        np.array([50, 60, 70]).reshape(1, 3, 1, 1)
    model = checkpoint.load_model(teacher, 1)
    logits = inference.bind_module(graph.logits(model.symbol), model.arg_params,
                                   model.aux_params, (64, 3, 32, 32))
    logits.forward(mx.io.DataBatch([mx.nd.array(own)]), is_train=False)
    z_teacher = logits.get_outputs()[0].asnumpy()
    q = np.exp(log_softmax(z_teacher / temperature))
    assert q.std(axis=0).max() > 1e-3  # the teacher tells the images apart
    np.testing.assert_allclose(trained.label[1].asnumpy(), q, rtol=1e-4, atol=1e-6)
    targets = trained.label[0].asnumpy()
    np.testing.assert_array_equal(targets.argmax(axis=1), batch.label[0].asnumpy())
    module.forward(trained, is_train=True)
    p, loss = (out.asnumpy().astype(np.float64) for out in module.get_outputs())
    log_p = np.log(p)  # the student's log_softmax; at T, log_softmax(log p / T)
    expected = weight * -(targets * log_p).sum(axis=1) + (1 - weight) * temperature ** 2 * \
        -(q * log_softmax(log_p / temperature)).sum(axis=1)
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_a_short_distillation_run_trains_and_checkpoints_a_normal_student(tmp_path):
    teacher = write_checkpoint(str(tmp_path / 'teacher'), 'resnet', 8, (1, 28, 28),
                               list(FASHION[:1]), list(FASHION[1:]))
    prefix = str(tmp_path / 'student')
    record = train_resnet.run(SHORT + ['--num-epochs', '1', '--teacher', teacher + ':1',
                                       '--mixup-alpha', '0.2', '--model-prefix', prefix])
    assert record['val_top1'] >= 0 and np.isfinite(record['train_loss'])
    run = [r for r in log.read_records(prefix + '-log.jsonl') if r['event'] == 'run'][0]
    assert run['recipe']['teacher'] == teacher + ':1'
    assert (run['recipe']['temperature'], run['recipe']['hard_weight']) == (20.0, 0.5)
    assert checkpoint.load_model(prefix, 1).symbol.list_arguments()[-1] == 'fc1_bias'


# -- flags -------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def teachers(tmp_path_factory):
    folder = tmp_path_factory.mktemp('teachers')
    return {'TEACHER': write_checkpoint(str(folder / 'teacher'), 'resnet', 8, (1, 28, 28),
                                        [72.94], [90.02]),
            'TWELVE': write_checkpoint(str(folder / 'twelve'), 'resnet', 8, (1, 28, 28),
                                       [72.94], [90.02], classes=12)}


@pytest.mark.parametrize('argv, expected', [
    (['--mixup-alpha', '-1'], '--mixup-alpha -1.0: expected a number from 0'),
    (['--mixup-alpha', 'x'], "argument --mixup-alpha: invalid float value: 'x'"),
    (['--cutmix-alpha', '-0.5'], '--cutmix-alpha -0.5: expected a number from 0'),
    (['--mixup', '--mixup-alpha', '0'], '--mixup with --mixup-alpha 0: mixup would be off'),
    (['--mixup-off-epoch', '-1', '--mixup'], '--mixup-off-epoch -1: expected a number from 0'),
    (['--mixup-off-epoch', '2'], '--mixup-off-epoch 2 needs --mixup-alpha or --cutmix-alpha'),
    (['--mixup-off-epoch', '4', '--cutmix-alpha', '1'],
     '--mixup-off-epoch 4 leaves no epoch of --num-epochs 4 with mixup or CutMix'),
    (['--auto-augment', 'aa'], "argument --auto-augment: invalid choice: 'aa'"),
    (['--ra-magnitude', '31', '--auto-augment', 'ra'],
     '--ra-magnitude 31: expected a number from 0 to 30'),
    (['--ra-magnitude', '5', '--auto-augment', 'ta_wide'], '--ra-magnitude 5 needs '
     '--auto-augment ra'),
    (['--ra-num-ops', '0', '--auto-augment', 'ra'], '--ra-num-ops 0: expected a number from 1'),
    (['--no-wd', '1'], 'unrecognized arguments: 1'),
    (['--last-gamma', '--network', 'plain'], '--last-gamma: --network plain has no residual '
     'branches'),
    (['--model-ema-decay', '1.5', '--model-ema'], '--model-ema-decay 1.5: expected a number '
     'from 0 to 1'),
    (['--model-ema-decay', '0.9'], '--model-ema-decay 0.9 needs --model-ema'),
    (['--teacher', 'MISSING'], '--teacher MISSING: no checkpoint with this prefix'),
    (['--teacher', 'TWELVE'], 'has 12 classes, the student 10'),
    (['--temperature', '0', '--teacher', 'TEACHER'], '--temperature 0.0: expected a number '
     'above 0'),
    (['--temperature', '2'], '--temperature 2.0 needs --teacher'),
    (['--hard-weight', '1.5', '--teacher', 'TEACHER'], '--hard-weight 1.5: expected a number '
     'from 0 to 1'),
    (['--hard-weight', '0'], '--hard-weight 0.0 needs --teacher'),
])
def test_a_bad_recipe_flag_is_one_line_before_any_work(argv, expected, teachers, tmp_path,
                                                       capsys):
    teachers = dict(teachers, MISSING=str(tmp_path / 'missing'))
    argv = [teachers.get(a, a) for a in argv]
    expected = expected.replace('MISSING', teachers['MISSING'])
    prefix = str(tmp_path / 'run' / 'model')
    try:
        args, shape = prepare(['--model-prefix', prefix] + argv)
        fit.Trainer(args, fit.build_symbol(args, shape), shape)
    except SystemExit as exit_:   # argparse: one line on stderr, status 2
        assert exit_.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], lines
    except UsageError as err:
        assert expected in str(err) and '\n' not in str(err)
    else:
        pytest.fail('accepted: %s' % argv)
    assert not os.path.exists(os.path.dirname(prefix))  # before any work


def test_a_bad_recipe_flag_on_the_command_line_is_one_line(tmp_path):
    for argv, expected in ((['--mixup-alpha', '-1'], '--mixup-alpha -1.0: expected'),
                           (['--network', 'plain', '--last-gamma'], 'no residual branches')):
        result = run_cli(argv + ['--model-prefix', str(tmp_path / 'model')])
        assert result.returncode == 2 and 'Traceback' not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('train_resnet.py: error: ') and \
            expected in lines[0], result.stderr
    assert not os.listdir(tmp_path)


def test_gluoncv_s_mixup_switch_and_the_defaults():
    args = prepare(['--mixup'])[0]
    assert args.mixup_alpha == flags.GLUONCV_MIXUP_ALPHA and flags.soft_targets(args)
    args = prepare(['--mixup', '--mixup-alpha', '0.4', '--model-ema', '--auto-augment', 'ra'])[0]
    assert (args.mixup_alpha, args.model_ema_decay, args.ra_magnitude, args.ra_num_ops) == \
        (0.4, 0.9998, 9, 2)
    args = prepare(['--label-smoothing', '0.1'])[0]
    assert args.mixup_alpha == 0 and not flags.soft_targets(args)
