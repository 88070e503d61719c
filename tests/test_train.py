"""train_resnet.py end to end on the bundled data, and its parts."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT
import symbols
import train_resnet
from mxresnet import augment, checkpoint, fit, flags, graph, log, runtime
from mxresnet import data as data_mod
from mxresnet import recordio
from mxresnet.errors import UsageError

TRAIN_REC = os.path.join(ROOT, 'data', 'fashion-mnist-train.rec')
VAL_REC = os.path.join(ROOT, 'data', 'fashion-mnist-val.rec')

# A short, exactly reproducible run: 5 batches of 64 per epoch, lr divided by 10 after epoch 1.
SHORT = ['--num-examples', '320', '--batch-size', '64', '--lr', '0.1', '--lr-schedule', 'step',
         '--lr-step-epochs', '1', '--disp-batches', '1', '--data-nthreads', '1']


def run_cli(args, **kwargs):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'train_resnet.py')] + args,
                          cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs)


def load_params(prefix, epoch):
    return mx.nd.load('%s-%04d.params' % (prefix, epoch))


def max_difference(a, b):
    assert sorted(a) == sorted(b)
    return max(float(np.abs(a[k].asnumpy() - b[k].asnumpy()).max()) for k in a)


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    """Two epochs without interruption: the reference for every resume test."""
    prefix = str(tmp_path_factory.mktemp('uninterrupted') / 'model')
    train_resnet.run(SHORT + ['--num-epochs', '2', '--model-prefix', prefix])
    return prefix


def test_short_run_learns_and_logs(tmp_path):
    prefix = str(tmp_path / 'model')
    record = train_resnet.run(['--num-examples', '1920', '--batch-size', '64', '--lr', '0.1',
                               '--num-epochs', '2', '--model-prefix', prefix])
    # a random model scores 10% on the 10 balanced classes (this run reaches 50-75%)
    assert record['val_top1'] > 0.4
    epochs = [r for r in read_log(prefix + '-log.jsonl') if r['event'] == 'epoch']
    assert [r['epoch'] for r in epochs] == [1, 2]
    for key in ('batches', 'train_top1', 'train_loss', 'val_top1', 'val_loss', 'lr',
                'images_per_sec', 'cpu_cores', 'wall_time'):
        assert all(key in r for r in epochs), key
    assert {r['cpu_cores'] for r in epochs} == {len(os.sched_getaffinity(0))}
    assert epochs[-1]['batches'] == 30
    sym, args, aux = mx.model.load_checkpoint(prefix, 2)
    assert 'fc1_weight' in args and 'bn1_moving_var' in aux
    assert os.path.isfile(prefix + '-0002.states')
    # the checkpoint keeps the graph as built, not the executor's add_n form
    built = symbols.get_symbol('resnet', num_classes=10, num_layers=20, image_shape='1,28,28')
    assert [n['op'] for n in json.loads(sym.tojson())['nodes']] == \
        [n['op'] for n in json.loads(built.tojson())['nodes']]
    assert sym.list_arguments() == built.list_arguments()


def forward_backward(sym, seed=0):
    """Outputs and every argument's gradient for one fixed random batch of 4."""
    executor = sym.simple_bind(mx.cpu(), data=(4, 1, 28, 28), softmax_label=(4,))
    rng = np.random.RandomState(seed)
    for name, array in zip(sym.list_arguments(), executor.arg_arrays):
        array[:] = rng.randint(0, 10, array.shape) if name == 'softmax_label' else \
            rng.normal(0, 0.1, array.shape)
    executor.forward(is_train=True)
    executor.backward()
    grads = {n: g.asnumpy() for n, g in zip(sym.list_arguments(), executor.grad_arrays)}
    return executor.outputs[0].asnumpy(), grads


@pytest.mark.parametrize('network,kwargs', [('resnet', {}), ('resnet-v1', {'shortcut': 'A'}),
                                            ('resnet-v1', {'shortcut': 'B'})])
def test_training_graph_rewrites_compute_the_same(network, kwargs):
    """Residual sums by add_n and the global average pooling by mean: same names,
    parameters, user attributes (mirror_stage), outputs and gradients."""
    sym = symbols.get_symbol(network, num_classes=10, num_layers=20, image_shape='1,28,28',
                             memonger=True, **kwargs)
    trained = graph.training_graph(sym)
    nodes = json.loads(trained.tojson())['nodes']
    ops = [node['op'] for node in nodes]
    assert 'elemwise_add' not in ops and ops.count('add_n') == 9
    assert [n['name'] for n in nodes if n['op'] == 'mean'] == ['pool1']
    assert [n['name'] for n in nodes if n['op'] != 'null'] == \
        [n['name'] for n in json.loads(sym.tojson())['nodes'] if n['op'] != 'null']
    assert trained.list_arguments() == sym.list_arguments()
    assert trained.list_auxiliary_states() == sym.list_auxiliary_states()
    attrs = trained.attr_dict()  # every attribute kept (mirror_stage included) ...
    for name, value in sym.attr_dict().items():
        if name == 'pool1':  # ... but Pooling's own parameters
            value = {k: v for k, v in value.items() if k.startswith('__')}
        assert attrs[name].items() >= value.items(), name
    out, grads = forward_backward(sym)
    fast_out, fast_grads = forward_backward(trained)
    np.testing.assert_allclose(fast_out, out, rtol=1e-5, atol=1e-6)
    for name in grads:
        scale = np.abs(grads[name]).max() + 1e-12
        # summation order differs: bn_data_beta's gradient, a sum over the whole batch
        # with cancellation, moves by 2e-4 of itself
        assert np.abs(fast_grads[name] - grads[name]).max() / scale < 1e-3, name
    assert graph.training_graph(sym, 'elemwise_add', 'pooling') is sym
    ops = [n['op'] for n in json.loads(graph.training_graph(sym, 'add_n', 'pooling').tojson())['nodes']]
    assert 'mean' not in ops and 'Pooling' in ops


@pytest.mark.parametrize('groups,channels,block,factor', [
    (32, 4, 8, 2), (32, 8, 8, 1), (32, 4, 16, 4), (32, 8, 16, 2), (6, 4, 8, 2), (3, 4, 8, 1),
    (4, 3, 8, 1), (8, 3, 8, 8)])
def test_group_merge_factor(groups, channels, block, factor):
    assert graph.group_merge_factor(groups, channels, block) == factor


def bind_and_run(sym, values, head_grad):
    grads = {name: mx.nd.zeros(value.shape) for name, value in values.items()}
    executor = sym.bind(mx.cpu(), dict(values), args_grad=grads)
    executor.forward(is_train=True)
    executor.backward(head_grad)
    return executor.outputs[0].asnumpy(), {n: g.asnumpy() for n, g in grads.items()}


def test_merged_group_convolution_computes_the_same():
    """32 groups of 4 channels as 16 block-diagonal groups of 8: same output, same
    gradients for the data and the (32-group) weight, under the same names."""
    data = mx.sym.Variable('data')
    sym = mx.sym.Convolution(data, num_filter=128, num_group=32, kernel=(3, 3), pad=(1, 1),
                             stride=(2, 2), no_bias=True, name='conv2')
    merged = graph.training_graph(sym, group_channels=8, data_shape=(2, 128, 9, 9))
    conv, = [n for n in json.loads(merged.tojson())['nodes'] if n['op'] == 'Convolution']
    assert (conv['name'], conv['attrs']['num_group']) == ('conv2', '16')
    assert merged.list_arguments() == ['data', 'conv2_weight']
    rng = np.random.RandomState(0)
    values = {'data': mx.nd.array(rng.normal(size=(2, 128, 9, 9))),
              'conv2_weight': mx.nd.array(rng.normal(size=(128, 4, 3, 3)))}
    head = mx.nd.array(rng.normal(size=(2, 128, 5, 5)))
    out, grads = bind_and_run(sym, values, head)
    merged_out, merged_grads = bind_and_run(merged, values, head)
    np.testing.assert_allclose(merged_out, out, rtol=1e-4, atol=1e-4)
    for name in grads:
        np.testing.assert_allclose(merged_grads[name], grads[name], rtol=1e-4, atol=1e-4)
    assert graph.training_graph(sym, group_channels=4, data_shape=(2, 128, 9, 9)) is sym


def test_resnext_training_graph_merges_the_small_groups_only():
    sym = symbols.get_model('resnext50_32x4d', image_shape='3,64,64', num_classes=10)
    shape = (2, 3, 64, 64)
    trained = graph.training_graph(sym, group_channels=8, data_shape=shape)
    groups = {n['name']: n['attrs'].get('num_group', '1')
              for n in json.loads(trained.tojson())['nodes'] if n['op'] == 'Convolution'}
    assert {n for n, g in groups.items() if g == '16'} == {
        'stage1_unit%d_conv2' % u for u in (1, 2, 3)}
    assert sum(g == '32' for g in groups.values()) == 4 + 6 + 3
    assert trained.list_arguments() == sym.list_arguments()
    assert trained.list_auxiliary_states() == sym.list_auxiliary_states()
    assert trained.infer_shape(data=shape) == sym.infer_shape(data=shape)
    built = [n['name'] for n in json.loads(sym.tojson())['nodes'] if n['op'] != 'null']
    names = [n['name'] for n in json.loads(trained.tojson())['nodes'] if n['op'] != 'null']
    assert [n for n in names if n in set(built)] == built  # every op kept, in order
    executors = [s.simple_bind(mx.cpu(), data=shape, grad_req='null') for s in (sym, trained)]
    rng = np.random.RandomState(0)
    for name, array in zip(sym.list_arguments(), executors[0].arg_arrays):
        array[:] = rng.normal(0, 0.05, array.shape) if name != 'softmax_label' else 1
        executors[1].arg_dict[name][:] = array
    for executor in executors:
        for array in executor.aux_arrays:
            array[:] = 1
    outputs = [e.forward(is_train=True)[0].asnumpy() for e in executors]
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match='stage1_unit1_conv2 and needs data_shape'):
        graph.training_graph(sym, group_channels=8)
    assert graph.training_graph(sym, group_channels=0).list_arguments() == sym.list_arguments()


@pytest.mark.parametrize('model, shape', [('resnet20', (2, 3, 28, 28)),
                                          ('resnet50', (2, 3, 64, 64))])
def test_group_merging_leaves_resnets_as_they_are(model, shape):
    """No grouped convolution, nothing to merge: the ResNets train the same graph."""
    sym = symbols.get_model(model, image_shape=','.join(map(str, shape[1:])))
    assert graph.training_graph(sym, group_channels=16, data_shape=shape).tojson() == \
        graph.training_graph(sym, group_channels=0, data_shape=shape).tojson()


def test_trainer_merges_groups_by_the_cpus_simd_width(monkeypatch):
    def trained_groups(*argv):
        args = train_resnet.build_parser().parse_args(
            ['--benchmark', '1', '--network', 'resnext', '--num-layers', '50',
             '--image-shape', '3,64,64', '--num-classes', '10', '--batch-size', '2',
             '--num-examples', '2', '--model-prefix', '', '--log-file', ''] + list(argv))
        image_shape = fit.configure(args)
        trainer = fit.Trainer(args, fit.build_symbol(args, image_shape), image_shape)
        module = trainer.build_module((2,) + image_shape, None, None, 0)
        return {n['attrs'].get('num_group') for n in json.loads(module.symbol.tojson())['nodes']
                if n['name'] == 'stage1_unit1_conv2'}
    monkeypatch.setattr(runtime, 'simd_channels', lambda: 8)
    assert trained_groups() == {'16'}
    assert trained_groups('--group-channels', '0') == {'32'}
    monkeypatch.setattr(runtime, 'simd_channels', lambda: 16)
    assert trained_groups() == {'8'}


@pytest.mark.parametrize('flags_line,lanes', [('flags\t\t: fpu sse2 avx avx2 fma', 8),
                                              ('flags\t\t: fpu avx2 avx512f avx512bw', 16),
                                              ('processor\t: 0', 8)])
def test_simd_channels_reads_the_cpu_flags(tmp_path, flags_line, lanes):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\n%s\n' % flags_line)
    assert runtime.simd_channels(str(cpuinfo)) == lanes
    assert runtime.simd_channels(str(tmp_path / 'missing')) == 8


def test_negative_group_channels_is_refused():
    result = run_cli(['--group-channels', '-1', '--num-epochs', '1'])
    assert result.returncode == 2 and result.stderr.count('\n') == 1
    assert '--group-channels -1' in result.stderr


def test_top_k_is_reported(tmp_path):
    prefix = str(tmp_path / 'model')
    record = train_resnet.run(SHORT + ['--num-epochs', '1', '--top-k', '5',
                                       '--model-prefix', prefix])
    assert record['val_topk'] >= record['val_top1']
    assert 'train_topk' in record


def test_resume_equals_uninterrupted(tmp_path, uninterrupted):
    prefix = str(tmp_path / 'model')
    train_resnet.run(SHORT + ['--num-epochs', '1', '--model-prefix', prefix])
    train_resnet.run(SHORT + ['--num-epochs', '2', '--model-prefix', prefix, '--load-epoch', '1'])
    assert max_difference(load_params(prefix, 2), load_params(uninterrupted, 2)) < 1e-6
    log = read_log(prefix + '-log.jsonl')
    assert [r['epoch'] for r in log if r['event'] == 'epoch'] == [1, 2]


def wait_for(proc, lines, pattern, timeout=240):
    """Read proc's stdout until a line contains `pattern`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if pattern in line:
            return
    raise AssertionError('never saw %r; output:\n%s' % (pattern, ''.join(lines)))


def start(args):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, 'train_resnet.py')] + args,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize('signum, status, said', [
    (signal.SIGINT, 130, 'interrupted'), (signal.SIGTERM, 143, 'stopped by SIGTERM')])
def test_ctrl_c_and_sigterm_save_mid_epoch_and_resume_exactly(tmp_path, uninterrupted,
                                                              signum, status, said):
    prefix = str(tmp_path / 'model')
    proc = start(SHORT + ['--num-epochs', '2', '--model-prefix', prefix])
    lines = []
    wait_for(proc, lines, 'Epoch[2] Batch [2/5]')
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == status, out
    assert out.strip().splitlines()[-1] == 'train_resnet.py: ' + said
    assert '%s in epoch 2 after batch' % signal.Signals(signum).name in out
    assert 'resume with --load-epoch 2' in out
    # The mid-epoch checkpoint takes the number of the epoch it is in: epoch 1's is intact.
    with open(prefix + '-0001.json') as f:
        assert json.load(f)['batch'] == 0
    assert max_difference(load_params(prefix, 1), load_params(uninterrupted, 1)) < 1e-6
    with open(prefix + '-0002.json') as f:
        progress = json.load(f)
    assert progress['epoch'] == 1 and 2 <= progress['batch'] < 5
    train_resnet.run(SHORT + ['--num-epochs', '2', '--model-prefix', prefix, '--load-epoch', '2'])
    assert max_difference(load_params(prefix, 2), load_params(uninterrupted, 2)) < 1e-6


def test_sigkill_mid_epoch_resumes_from_last_checkpoint(tmp_path, uninterrupted):
    prefix = str(tmp_path / 'model')
    proc = start(SHORT + ['--num-epochs', '2', '--model-prefix', prefix])
    lines = []
    wait_for(proc, lines, 'Epoch[2] Batch [3/5]')
    proc.kill()
    proc.wait(timeout=60)
    assert not os.path.exists(prefix + '-0002.params')
    mx.model.load_checkpoint(prefix, 1)  # the last complete checkpoint loads
    train_resnet.run(SHORT + ['--num-epochs', '2', '--model-prefix', prefix, '--load-epoch', '1'])
    assert max_difference(load_params(prefix, 2), load_params(uninterrupted, 2)) < 1e-6


def kill_during_a_checkpoint_write(proc, folder, timeout=240):
    """SIGKILL `proc` as soon as one of its temporary checkpoint files exists; returns
    whether one did then."""
    marker = '.tmp-%d' % proc.pid
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(marker in name for name in os.listdir(folder)):
            proc.kill()
            proc.wait()
            return any(marker in name for name in os.listdir(folder))
        time.sleep(0.0005)
    proc.kill()
    proc.wait()
    return False


def kill_after_batches(proc, log_path, count, timeout=240):
    """SIGKILL `proc` once it has logged `count` more batches than the log held when it
    started (a moment in its run, whatever the machine's speed); returns whether it was
    still running then."""
    def batches():
        if not os.path.isfile(log_path):
            return 0
        with open(log_path) as f:
            return sum('"event": "batch"' in line for line in f)
    target = batches() + count
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and batches() < target:
        time.sleep(0.005)
    running = proc.poll() is None
    proc.kill()
    proc.wait()
    return running


def test_kill_loop_resumes_exactly(tmp_path, uninterrupted):
    """SIGKILLs at moments spread over the run (after some batches of each attempt) and
    during checkpoint writes: each time the run resumes from the last complete checkpoint
    (from the start when there is none, as experiments/ does); it ends as the uninterrupted
    run, the log holds each epoch once, and no temporary file is left."""
    prefix = str(tmp_path / 'model')
    kills = ['write', 1, 'write', 'write', 3, 'write', 2, 'write']  # numbers: batches
    during_writes = killed = 0
    for kill in kills + [None]:
        complete = checkpoint.available(prefix, complete=True)
        if 2 in complete:
            break  # a killed run had finished
        resume = ['--load-epoch', str(max(complete))] if complete else []
        proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, 'train_resnet.py')] + SHORT +
            ['--num-epochs', '2', '--model-prefix', prefix] + resume, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill is None:
            assert proc.wait(timeout=300) == 0
        elif kill == 'write':
            during_writes += kill_during_a_checkpoint_write(proc, str(tmp_path))
            killed += 1
        else:
            killed += kill_after_batches(proc, prefix + '-log.jsonl', kill)
    assert killed >= 6 and during_writes >= 3, (killed, during_writes)
    assert max_difference(load_params(prefix, 2), load_params(uninterrupted, 2)) < 1e-6
    assert [r['epoch'] for r in log.read_epochs(prefix + '-log.jsonl')] == [1, 2]
    assert not [name for name in os.listdir(str(tmp_path)) if '.tmp-' in name]


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path, uninterrupted):
    prefix = str(tmp_path / 'model')
    for suffix in ('-symbol.json', '-0001.params', '-0001.states', '-0001.json'):
        with open(uninterrupted + suffix, 'rb') as src, open(prefix + suffix, 'wb') as dst:
            dst.write(src.read())
    before = load_params(prefix, 1)
    result = run_cli(SHORT + ['--num-epochs', '2', '--model-prefix', prefix, '--load-epoch', '1',
                              '--lr', '1e30', '--lr-schedule', 'cosine'])
    assert result.returncode == 3, result.stderr
    assert 'Traceback' not in result.stderr
    assert 'in epoch 2 at batch' in result.stderr
    assert 'last good checkpoint is kept' in result.stderr
    assert not os.path.exists(prefix + '-0002.params')
    assert max_difference(load_params(prefix, 1), before) == 0


def test_benchmark_trains_on_synthetic_data(tmp_path):
    record = train_resnet.run(['--benchmark', '1', '--image-shape', '1,28,28',
                               '--num-classes', '10', '--num-layers', '20',
                               '--num-examples', '128', '--batch-size', '32', '--num-epochs', '1',
                               '--model-prefix', str(tmp_path / 'model')])
    assert record['event'] == 'epoch' and record['batches'] == 4
    assert record['images_per_sec'] > 0
    assert 'val_top1' not in record


def test_test_io_only_reads(tmp_path, capsys):
    record = train_resnet.run(['--test-io', '1', '--num-examples', '256', '--batch-size', '64',
                               '--model-prefix', str(tmp_path / 'model')])
    assert record['event'] == 'test_io' and record['images'] == 256
    assert record['images_per_sec'] > 0
    assert not os.listdir(tmp_path)


def prepare(argv):
    """(args, image shape) as train_resnet.py fills them."""
    args = train_resnet.build_parser().parse_args(argv)
    return args, fit.configure(args)


def parse(argv):
    return prepare(argv)[0]


def test_default_run_uses_bundled_data_and_fashion_mnist_preset():
    args = parse([])
    assert args.data_train == TRAIN_REC and args.data_val == VAL_REC
    assert args.preset == 'fashion-mnist'
    assert (args.image_shape, args.num_classes, args.num_layers) == ('1,28,28', 10, 20)
    assert (args.pad_size, args.random_crop, args.random_mirror) == (4, 1, 1)


def test_aug_levels_apply_and_explicit_flags_override():
    args = parse(['--data-train', TRAIN_REC, '--aug-level', '3'])
    assert (args.random_crop, args.random_mirror, args.max_random_h,
            args.max_random_rotate_angle, args.max_random_shear_ratio,
            args.max_random_aspect_ratio) == (1, 1, 36, 10, 0.1, 0.25)
    args = parse(['--data-train', TRAIN_REC, '--aug-level', '3', '--random-mirror', '0',
                  '--max-random-h', '0'])
    assert (args.random_crop, args.random_mirror, args.max_random_h) == (1, 0, 0)
    args = parse(['--data-train', TRAIN_REC])
    assert (args.random_crop, args.random_mirror, args.max_random_h) == (0, 0, 0)


@pytest.fixture(scope='module')
def unnamed_rec(tmp_path_factory):
    """The bundled training .rec in a folder without a synset file."""
    path = tmp_path_factory.mktemp('unnamed') / 'train.rec'
    os.symlink(TRAIN_REC, path)
    return str(path)


def test_synset_beside_the_data_sets_the_classes(unnamed_rec):
    assert parse(['--data-train', TRAIN_REC]).num_classes == 10
    assert parse(['--data-train', unnamed_rec]).num_classes == 1000  # the base default
    assert parse(['--data-train', TRAIN_REC, '--preset', 'imagenet']).num_classes == 10


def test_imagenet_preset_applies_its_augmentation_and_recipe(unnamed_rec):
    args = parse(['--data-train', unnamed_rec, '--preset', 'imagenet'])
    assert args.aug_level == 3
    assert (args.image_shape, args.num_classes, args.batch_size, args.lr) == \
        ('3,224,224', 1000, 256, 0.1)
    assert (args.min_random_scale, args.pca_noise, args.max_random_h) == (0.533, 0.1, 36)
    args = parse(['--data-train', TRAIN_REC, '--preset', 'imagenet', '--aug-level', '1',
                  '--batch-size', '64'])
    assert (args.max_random_h, args.random_crop, args.batch_size) == (0, 1, 64)


def test_cifar_preset_sets_the_paper_recipe():
    args = parse(['--data-train', TRAIN_REC, '--preset', 'cifar10'])
    assert (args.image_shape, args.pad_size, args.random_crop, args.random_mirror) == \
        ('3,32,32', 4, 1, 1)
    assert (args.network, args.lr, args.wd, args.mom, args.lr_step_epochs, args.num_epochs) == \
        ('resnet-v1', 0.1, 1e-4, 0.9, '82,123', 164)


def test_presets_reach_the_record_iterator(monkeypatch):
    captured = {}
    monkeypatch.setattr(mx.io, 'ImageRecordIter', lambda **kw: captured.update(kw))
    args = parse(['--data-train', TRAIN_REC, '--preset', 'imagenet', '--random-mirror', '0'])
    mean, std = flags.normalisation(args, 3)
    data_mod.record_iter(TRAIN_REC, '', (3, 224, 224), mean, std, args.batch_size // 2,
                         augment=args, num_parts=2, part_index=1, epoch=3)
    assert captured['rand_crop'] is True and captured['rand_mirror'] is False
    assert (captured['random_h'], captured['max_rotate_angle'], captured['pca_noise'],
            captured['min_random_scale']) == (36, 10, 0.1, 0.533)
    assert (captured['num_parts'], captured['part_index'], captured['batch_size']) == (2, 1, 128)
    assert captured['seed'] == captured['seed_aug'] == 3
    assert (captured['mean_r'], captured['std_b']) == (123.68, 57.375)


def test_fashion_mnist_preset_pads_with_the_black_background(tmp_path):
    """Random crops of padded white images show only white and black: no gray frame
    (MXNet's default fill, 127) that the black-bordered test images never have."""
    white = recordio.encode_image(np.full((28, 28), 255, np.uint8))
    with recordio.RecordWriter(str(tmp_path / 'white')) as writer:
        for i in range(64):
            writer.write(i, recordio.pack_record(0, i, white))
    rec = writer.rec_path
    args = parse(['--data-train', rec, '--preset', 'fashion-mnist', '--batch-size', '64',
                  '--data-nthreads', '1'])
    it = data_mod.record_iter(rec, '', (1, 28, 28), [float(args.rgb_mean)],
                              [float(args.rgb_std)], 64, 1, augment=args)
    pixels = next(iter(it)).data[0].asnumpy() * float(args.rgb_std) + float(args.rgb_mean)
    assert set(np.unique(np.round(pixels))) == {0.0, 255.0}


def test_random_erasing_fills_one_rectangle_per_chosen_image():
    images = np.zeros((64, 3, 28, 28), np.float32)
    mean, std = [100.0, 120.0, 140.0], [50.0, 60.0, 70.0]
    erased = augment.random_erasing(images.copy(), np.random.RandomState(0), 1.0, mean, std)
    for image in erased:
        rows, cols = np.nonzero(image.any(axis=0))
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert 0.02 * 784 * 0.8 <= height * width <= 0.4 * 784 * 1.2  # rounding of the sides
        assert image[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        for channel, (m, s) in enumerate(zip(mean, std)):
            values = image[channel, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            assert -m / s <= values.min() and values.max() <= (255 - m) / s
    kept = augment.random_erasing(images.copy(), np.random.RandomState(0), 0.0, mean, std)
    assert not kept.any()
    half = augment.random_erasing(images.copy(), np.random.RandomState(0), 0.5, mean, std)
    assert 16 < half.reshape(64, -1).any(axis=1).sum() < 48


def test_random_erasing_in_training_batches_is_seeded_per_batch():
    """Erasing depends on (seed, epoch, batch) only, so a resumed epoch sees the same data."""
    def first_batches(extra, skip=0):
        args, shape = prepare(['--data-nthreads', '1', '--random-mirror', '0',
                               '--random-crop', '0', '--pad-size', '0'] + extra)
        trainer = fit.Trainer(args, fit.build_symbol(args, shape), shape)
        batches = trainer.batches(2, skip)
        return [next(batches)[1].data[0].asnumpy() for _ in range(3 - skip)]
    plain = first_batches([])
    erased = first_batches(['--random-erasing', '1'])
    changed = (plain[0] != erased[0]).reshape(len(plain[0]), -1).any(axis=1)
    assert changed.all()
    assert all((a == b).all() for a, b in zip(first_batches(['--random-erasing', '1']), erased))
    assert (first_batches(['--random-erasing', '1'], skip=2)[0] == erased[2]).all()


def test_num_examples_is_counted_from_the_index():
    args, shape = prepare([])
    trainer = fit.Trainer(args, fit.build_symbol(args, shape), shape)
    assert args.num_examples == recordio.count_records(TRAIN_REC)
    assert trainer.epoch_size == args.num_examples // args.batch_size


def test_engine_is_chosen_before_any_checkpoint_is_read(monkeypatch, tmp_path, uninterrupted):
    """pick_engine acts when the Trainer is built, before run() reads a checkpoint to resume
    (MXNet fixes its engine at the first NDArray)."""
    events = []
    monkeypatch.setattr(runtime, 'use_naive_engine', lambda *a: events.append('engine'))
    load = checkpoint.load
    monkeypatch.setattr(checkpoint, 'load', lambda *a: events.append('load') or load(*a))
    prefix = str(tmp_path / 'model')
    for suffix in ('-symbol.json', '-model.json', '-0001.params', '-0001.states', '-0001.json'):
        with open(uninterrupted + suffix, 'rb') as src, open(prefix + suffix, 'wb') as dst:
            dst.write(src.read())
    train_resnet.run(SHORT + ['--num-epochs', '2', '--model-prefix', prefix, '--load-epoch', '1'],
                     pick_engine=True)
    assert events == ['engine', 'load']


def test_empty_prefix_writes_no_log():
    assert parse(['--model-prefix', '']).log_file == ''
    assert parse(['--model-prefix', 'runs/x/model']).log_file == 'runs/x/model-log.jsonl'


def test_float16_optimizer_is_multi_precision_with_loss_scale():
    args, shape = prepare(['--dtype', 'float16', '--loss-scale', '128',
                           '--label-smoothing', '0.1', '--test-io', '1'])
    sym = fit.build_symbol(args, shape)
    attrs = sym.attr_dict()['softmax']
    assert float(attrs['grad_scale']) == 128 and float(attrs['smooth_alpha']) == 0.1
    assert sym.infer_type(data=np.float32)[1] == [np.float32]
    trainer = fit.Trainer(args, sym, shape)
    module = trainer.build_module((args.batch_size,) + shape, None, None, 0)
    optimizer = module._optimizer
    assert optimizer.multi_precision
    assert optimizer.rescale_grad == pytest.approx(1.0 / (args.batch_size * 128))


def test_lr_schedules():
    args = argparse.Namespace(lr=0.1, lr_factor=0.1, lr_step_epochs='2,4', num_epochs=6,
                              warmup_epochs=0, lr_schedule='step')
    step = fit.lr_scheduler(args, epoch_size=10)
    assert [step(n) for n in (1, 20, 21, 41)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    args.lr_schedule = 'cosine'
    cosine = fit.lr_scheduler(args, epoch_size=10)
    assert cosine(30) == pytest.approx(0.05) and cosine(60) == pytest.approx(0.0)
    args.lr_schedule, args.warmup_epochs = 'poly', 1
    poly = fit.lr_scheduler(args, epoch_size=10)
    assert poly(5) == pytest.approx(0.05)
    assert poly(10) == pytest.approx(0.1)
    assert poly(35) == pytest.approx(0.1 * (1 - 25 / 50) ** 2)


def test_lr_schedule_step_branches():
    args = argparse.Namespace(lr=0.1, lr_factor=0.5, lr_step_epochs='2,4', num_epochs=6,
                              warmup_epochs=1, lr_schedule='step')
    steps = fit.lr_scheduler(args, epoch_size=10)  # warm-up, then the steps
    assert [steps(n) for n in (5, 10, 15, 21, 41)] == pytest.approx([0.05, 0.1, 0.1, 0.05,
                                                                     0.025])
    args.lr_step_epochs, args.warmup_epochs = '6,9', 0  # no step inside the run: constant
    assert fit.lr_scheduler(args, epoch_size=10) is None
    args.warmup_epochs = 2  # ... after a warm-up
    constant = fit.lr_scheduler(args, epoch_size=10)
    assert [constant(n) for n in (10, 20, 59)] == pytest.approx([0.05, 0.1, 0.1])
    args.lr_step_epochs = '30,sixty'
    with pytest.raises(UsageError, match="--lr-step-epochs '30,sixty'"):
        fit.lr_scheduler(args, epoch_size=10)


def test_gpus_are_parsed_against_the_devices_present(monkeypatch):
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 2)
    assert flags.gpu_list('0,1') == [0, 1]
    assert runtime.contexts([0, 1]) == [mx.gpu(0), mx.gpu(1)]
    assert runtime.contexts([]) == [mx.cpu()]
    with pytest.raises(UsageError, match='this machine has GPUs 0..1'):
        flags.gpu_list('0,2')
    with pytest.raises(UsageError, match="--gpus 'gpu0': expected comma-separated integers"):
        flags.gpu_list('gpu0')
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 0)
    with pytest.raises(UsageError, match='this machine has no GPU'):
        flags.gpu_list('0')


def test_kvstore_choice(monkeypatch):
    assert fit.create_kvstore('local') is None
    assert fit.create_kvstore('device') is None
    monkeypatch.delenv('DMLC_ROLE', raising=False)
    with pytest.raises(UsageError, match='tools/launch.py'):
        fit.create_kvstore('dist_sync')
    with pytest.raises(UsageError, match="choose one of local, device"):
        fit.create_kvstore('dist')


def test_checkpoint_files_are_replaced_atomically(tmp_path):
    target = tmp_path / 'file'
    target.write_text('old')

    def failing_write(tmp):
        with open(tmp, 'w') as f:
            f.write('half')
        raise OSError(28, 'No space left on device')
    with pytest.raises(UsageError, match='cannot write .*file: No space left on device'):
        checkpoint.atomic_write(str(target), failing_write)
    assert target.read_text() == 'old'
    assert os.listdir(tmp_path) == ['file']


def test_a_copied_checkpoint_is_complete_or_invisible(tmp_path, monkeypatch):
    """checkpoint.copy takes the optimizer state and the moving average along, byte for
    byte, the NNNN.json markers last: a copy that fails halfway is not a checkpoint."""
    prefix = str(tmp_path / 'run' / 'model')
    sym = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=2, name='fc')
    weights = {'fc_weight': mx.nd.ones((2, 3)), 'fc_bias': mx.nd.zeros(2)}
    average = {k: v * 0.5 for k, v in weights.items()}

    def write_states(path):
        with open(path, 'wb') as f:
            f.write(b'optimizer state')
    checkpoint.write(prefix, 3, sym, weights, {}, {'epoch': 3, 'batch': 7},
                     checkpoint.metadata('resnet', 20, {}, (1, 28, 28), [0], [1], 2),
                     write_states, ema=(average, {}, 0.9))
    target = str(tmp_path / 'parked' / 'model')
    copy_file = shutil.copyfile

    def full_disk(source, destination):
        if source.endswith('-ema-0003.params'):
            raise OSError(28, 'No space left on device')
        return copy_file(source, destination)
    monkeypatch.setattr(shutil, 'copyfile', full_disk)
    with pytest.raises(UsageError, match='cannot write .*-ema-0003.params: No space left'):
        checkpoint.copy(prefix, 3, target)
    assert checkpoint.available(target, complete=True) == []
    monkeypatch.setattr(shutil, 'copyfile', copy_file)
    written = checkpoint.copy(prefix, 3, target)
    assert [os.path.basename(p) for p in written[-2:]] == ['model-ema-0003.json',
                                                           'model-0003.json']
    for source in (prefix, checkpoint.ema_prefix(prefix)):
        for kind, path in checkpoint.paths(source, 3).items():
            copied = path.replace(prefix, target)
            assert os.path.isfile(copied) == os.path.isfile(path), kind
            if os.path.isfile(path):
                with open(path, 'rb') as a, open(copied, 'rb') as b:
                    assert a.read() == b.read(), kind
    arg_params, _, states, progress = checkpoint.load(target, 3)
    assert progress['batch'] == 7 and states == target + '-0003.states'
    assert checkpoint.load_ema(target, 3, progress)[0]['fc_weight'].asnumpy().max() == 0.5
    with pytest.raises(UsageError, match='no checkpoint .*-0004.params'):
        checkpoint.copy(prefix, 4, target)


@pytest.fixture(scope='module')
def truncated_rec(tmp_path_factory):
    path = tmp_path_factory.mktemp('bad') / 'truncated.rec'
    with open(VAL_REC, 'rb') as f:
        path.write_bytes(f.read()[:5000])
    return str(path)


@pytest.mark.parametrize('args,expected', [
    (['--network', 'resnet-9000'], "--network 'resnet-9000': choose one of"),
    (['--num-layers', '21'], 'num_layers=21 is not a depth resnet builds for image_shape 1,28,28'),
    (['--image-shape', '3x28x28'], "--image-shape '3x28x28': expected three positive integers"),
    (['--save-period', '0'], '--save-period 0: expected a number from 1'),
    (['--num-epochs', '0'], '--num-epochs 0: expected a number from 1'),
    (['--disp-batches', '0'], '--disp-batches 0: expected a number from 1'),
    (['--lr', '-1'], '--lr -1.0: expected a number above 0'),
    (['--lr', 'nan'], '--lr nan: expected a number above 0'),
    (['--wd', 'inf'], '--wd inf: expected a number from 0'),
    (['--mom', '1.5'], '--mom 1.5: expected a number from 0 to 1'),
    (['--num-classes', '12'], 'synset.txt names 10 classes but --num-classes is 12'),
    (['--model', 'resnet9'], "argument --model: invalid choice: 'resnet9'"),
    (['--model', 'resnet50'], '--model resnet50 is built for 3x224x224 inputs; at 1,28,28 the '
     'resnet network takes another layout of stages: use network resnet with num_layers 50'),
    (['--data-train', '/nonexistent/train.rec'], '--data-train /nonexistent/train.rec: no such'),
    (['--data-train', 'TRUNCATED'], 'is truncated'),
    (['--gpus', '99'], '--gpus 99: this machine has'),
    (['--batch-size', '0'], '--batch-size 0: expected a number from 1'),
    (['--kv-store', 'bogus'], "--kv-store 'bogus': choose one of local"),
    (['--load-epoch', '7', '--model-prefix', 'MISSING'], '--load-epoch 7: no checkpoint'),
    (['--dtype', 'float16'], '--dtype float16 trains on GPUs only'),
    (['--random-erasing', '1.5'], '--random-erasing 1.5: expected a number from 0 to 1'),
    (['--network', 'resnext', '--shortcut', 'A'], "network 'resnext' has no option shortcut"),
    (['--network', 'resnet', '--bn-position', 'after_add'],
     "network 'resnet' has no option bn_position"),
    (['--lr-schedule', 'cosine', '--lr-step-epochs', 'a,b'], "--lr-step-epochs 'a,b': expected"),
    (['--resize', '-1'], '--resize -1: expected a number from 0'),
    (['--data-check', '-2'], '--data-check -2: expected a number from 0'),
    (['--model-prefix', 'UNDER_A_FILE'], 'is a file, not a folder'),
    (['--batch-size', '20000'], 'has 10000 records, fewer than a batch of 20000'),
    (['--data-train-idx', 'SHORT_IDX'], 'lists 10 of the 10000 records of'),
])
def test_bad_input_is_one_clear_line(args, expected, truncated_rec, tmp_path):
    (tmp_path / 'file').write_text('')
    with open(TRAIN_REC[:-4] + '.idx') as f:
        (tmp_path / 'short.idx').write_text(''.join(f.readlines()[:10]))
    tokens = {'TRUNCATED': truncated_rec, 'MISSING': str(tmp_path / 'm'),
              'UNDER_A_FILE': str(tmp_path / 'file' / 'm'),
              'SHORT_IDX': str(tmp_path / 'short.idx')}
    args = [tokens.get(a, a) for a in args]
    result = run_cli(['--num-epochs', '1'] + args)  # the case's own flags win
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert lines[0].startswith('train_resnet.py: error: ')


def test_plot_curves_draws_runs_from_logs(tmp_path, uninterrupted):
    from tools import plot_curves
    broken = tmp_path / 'broken.jsonl'
    broken.write_text('{"event": "batch"}\n')
    output = str(tmp_path / 'curves.png')
    assert plot_curves.main([uninterrupted + '-log.jsonl', uninterrupted + '-log.jsonl',
                             '--labels', 'a', 'b', '-o', output]) == 0
    with open(output, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert plot_curves.main([str(broken), '-o', output]) == 2
    assert log.read_epochs(uninterrupted + '-log.jsonl')[-1]['epoch'] == 2


def test_curves_draw_the_moving_average_where_the_log_has_it(tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mxresnet import curves
    logs = []
    for name, ema in (('plain', False), ('ema', True)):
        path = tmp_path / (name + '.jsonl')
        records = [dict({'event': 'epoch', 'epoch': e, 'train_top1': 0.5, 'val_top1': 0.6},
                        **({'val_ema_top1': 0.7} if ema else {})) for e in (1, 2)]
        path.write_text(''.join(json.dumps(r) + '\n' for r in records))
        logs.append(str(path))
    fig, ax = plt.subplots()
    curves.draw(ax, logs, ['a', 'b'])
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert sorted(lines) == ['a train', 'a val', 'b train', 'b val',
                             'b val, moving average']
    assert list(lines['b val, moving average'].get_ydata()) == pytest.approx([30.0, 30.0])
    plt.close(fig)


def test_checkpoint_records_what_is_needed_to_use_it(uninterrupted):
    meta = checkpoint.read_metadata(uninterrupted)
    with open(os.path.join(ROOT, 'data', 'synset.txt')) as f:
        names = [line.strip() for line in f if line.strip()]
    assert (meta['network'], meta['num_layers'], meta['image_shape'], meta['num_classes']) == \
        ('resnet', 20, [1, 28, 28], 10)
    assert (meta['mean'], meta['std'], meta['preset']) == ([72.94], [90.02], 'fashion-mnist')
    assert meta['synset'] == names and meta['options'] == {'dtype': 'float32'}
    model = checkpoint.load_model(uninterrupted, 2)
    assert model.metadata['image_shape'] == [1, 28, 28]
    assert model.symbol.list_arguments()[-1] != 'softmax_label'


def test_a_fresh_run_into_a_used_folder_starts_a_new_run_in_the_log(tmp_path, caplog):
    prefix = str(tmp_path / 'model')
    short = SHORT + ['--num-epochs', '1', '--model-prefix', prefix]
    train_resnet.run(short)
    with caplog.at_level('WARNING'):
        train_resnet.run(short + ['--seed', '1'])
    assert 'already holds checkpoints 1 and 1 earlier run in its log' in caplog.text
    assert 'this fresh run is run 2' in caplog.text
    train_resnet.run(SHORT + ['--num-epochs', '2', '--model-prefix', prefix, '--load-epoch', '1',
                              '--seed', '1'])
    records = log.read_records(prefix + '-log.jsonl')
    starts = [(r['run'], r['resumed'], r['begin_epoch']) for r in records if r['event'] == 'run']
    assert starts == [(1, False, 0), (2, False, 0), (2, True, 1)]
    runs = log.runs(records)
    assert len(runs) == 2 and [r['epoch'] for r in runs[0] if r['event'] == 'epoch'] == [1]
    second = log.read_epochs(prefix + '-log.jsonl')
    assert [r['epoch'] for r in second] == [1, 2]
    first_of_run_2 = [r for r in runs[1] if r['event'] == 'epoch'][0]
    assert second[0]['train_loss'] == first_of_run_2['train_loss']
    run_1 = log.read_epochs(prefix + '-log.jsonl', run=0)
    assert second[0]['train_loss'] != run_1[0]['train_loss']  # another seed


def test_explicit_zeros_reach_the_network():
    args, shape = prepare(['--bn-mom', '0', '--workspace', '0', '--memonger', '0'])
    assert flags.network_options(args) == {'dtype': 'float32', 'bn_mom': 0.0,
                                           'conv_workspace': 0, 'memonger': False}
    attrs = fit.build_symbol(args, shape).attr_dict()
    assert attrs['bn_data']['momentum'] == '0.0' and attrs['conv0']['workspace'] == '0'


def test_unit_bn_flags_reach_resnet_v1():
    args, shape = prepare(['--network', 'resnet-v1', '--shortcut', 'B', '--bn-position',
                           'after_add', '--shortcut-bn', '0'])
    assert flags.network_options(args) == {'dtype': 'float32', 'shortcut': 'B',
                                           'bn_position': 'after_add', 'shortcut_bn': False}
    attrs = fit.build_symbol(args, shape).attr_dict()
    assert 'stage1_unit1_bn_add' in attrs and 'stage2_unit1_sc' in attrs
    assert 'stage2_unit1_sc_bn' not in attrs and 'stage1_unit1_bn2' not in attrs


def test_named_model_sets_network_depth_options_and_input(unnamed_rec):
    args = parse(['--model', 'resnet56'])  # the bundled data's preset keeps its input
    assert (args.network, args.num_layers, args.image_shape) == ('resnet', 56, '1,28,28')
    assert args.model_prefix == os.path.join('runs', 'resnet56', 'model')
    args = parse(['--model', 'resnext50_32x4d', '--data-train', unnamed_rec])
    assert (args.network, args.num_layers, args.num_group, args.bottleneck_width) == \
        ('resnext', 50, 32, 4)
    assert (args.image_shape, args.num_classes) == ('3,224,224', 1000)
    args = parse(['--model', 'resnext50_32x4d', '--data-train', TRAIN_REC, '--num-group', '8',
                  '--num-layers', '101', '--image-shape', '3,64,64'])
    assert (args.num_layers, args.num_group, args.image_shape) == (101, 8, '3,64,64')
    args = parse(['--model', 'resnet20_v1', '--data-train', TRAIN_REC, '--preset', 'cifar10'])
    assert (args.network, args.shortcut, args.lr_step_epochs) == ('resnet-v1', 'A', '82,123')


def test_help_shows_the_real_defaults():
    result = run_cli(['--help'])
    assert result.returncode == 0
    text = ' '.join(result.stdout.split())
    assert '(default: None)' not in text
    assert '--lr LR initial learning rate for --batch-size (scale it linearly with the batch ' \
        'size) (default: 0.1; --preset cifar10 0.1, fashion-mnist 0.2, imagenet 0.1)' in text
    assert '(default: 50; --preset cifar10 20, fashion-mnist 20, imagenet 50)' in text
    assert '(default: 0; --aug-level 1: 1, 2: 1, 3: 1)' in text  # --random-crop
    options = [line.split()[0] for line in result.stdout.splitlines()
               if line.startswith('  --')]
    assert len(options) == len(set(options))


def copy_checkpoint(source, target, epochs, suffixes=('-symbol.json', '-model.json')):
    for suffix in list(suffixes) + ['-%04d%s' % (e, ext) for e in epochs
                                    for ext in ('.params', '.states', '.json')]:
        with open(source + suffix, 'rb') as src, open(target + suffix, 'wb') as dst:
            dst.write(src.read())


def test_an_incomplete_checkpoint_is_never_resumed(tmp_path, uninterrupted):
    """A kill between a checkpoint's .params and its .json (written last) leaves it
    incomplete: resuming it is refused, naming the complete ones."""
    prefix = str(tmp_path / 'model')
    copy_checkpoint(uninterrupted, prefix, (1, 2))
    os.remove(prefix + '-0002.json')
    result = run_cli(SHORT + ['--num-epochs', '3', '--model-prefix', prefix, '--load-epoch', '2'])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'train_resnet.py: error: --load-epoch 2: checkpoint 2 of %s is incomplete (no %s-0002.json:'
        ' its writing was interrupted) (complete checkpoints of %s: 1)' % (prefix, prefix, prefix)]
    assert sorted(checkpoint.available(prefix)) == [1, 2]
    assert checkpoint.available(prefix, complete=True) == [1]
    os.remove(prefix + '-0001.states')
    with pytest.raises(UsageError, match='0001.states, the optimizer state of the checkpoint, '
                                         'is missing'):
        checkpoint.load(prefix, 1)


def test_a_checkpoint_of_mxnet_s_own_format_resumes_with_a_fresh_optimizer(tmp_path,
                                                                          uninterrupted,
                                                                          caplog):
    prefix = str(tmp_path / 'mxnet')
    sym, arg_params, aux_params = mx.model.load_checkpoint(uninterrupted, 1)
    mx.model.save_checkpoint(prefix, 1, sym, arg_params, aux_params)
    with caplog.at_level('WARNING'):
        record = train_resnet.run(SHORT + ['--num-epochs', '2', '--model-prefix', prefix,
                                           '--load-epoch', '1'])
    assert 'it was not written by train_resnet.py' in caplog.text
    assert record['epoch'] == 2 and os.path.isfile(prefix + '-0002.json')


def test_saving_removes_the_temporaries_of_dead_processes(tmp_path):
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True).stdout.strip()
    prefix = str(tmp_path / 'model')
    stale = ['%s-0001.params.tmp-%s' % (prefix, dead), '%s-symbol.json.tmp-%s' % (prefix, dead)]
    mine = '%s-0002.params.tmp-%d' % (prefix, os.getpid())
    for path in stale + [mine]:
        open(path, 'w').close()
    train_resnet.run(SHORT + ['--num-epochs', '1', '--model-prefix', prefix])
    assert not any(os.path.exists(path) for path in stale)
    assert os.path.exists(mine)  # this process's own are not stale


def test_the_log_holds_each_epoch_once_after_a_kill_and_a_resume(tmp_path, uninterrupted):
    """Killed after epoch 2's record was logged but before its checkpoint was written: the
    resume from checkpoint 1 drops that record and writes epoch 2 again, once."""
    prefix = str(tmp_path / 'model')
    copy_checkpoint(uninterrupted, prefix, (1,), suffixes=('-symbol.json', '-model.json',
                                                           '-log.jsonl'))
    logged = [r['epoch'] for r in read_log(prefix + '-log.jsonl') if r['event'] == 'epoch']
    assert logged == [1, 2]
    train_resnet.run(SHORT + ['--num-epochs', '2', '--model-prefix', prefix, '--load-epoch', '1'])
    records = read_log(prefix + '-log.jsonl')
    assert [r['epoch'] for r in records if r['event'] == 'epoch'] == [1, 2]
    batches = [(r['epoch'], r['batch']) for r in records if r['event'] == 'batch']
    assert len(batches) == len(set(batches)) == 10
    assert max_difference(load_params(prefix, 2), load_params(uninterrupted, 2)) < 1e-6


@pytest.mark.parametrize('bad, where', [(12, 'data_train'), (-1, 'data_train'),
                                        (2.5, 'data_train'), (12, 'data_val')])
def test_a_label_that_is_no_class_stops_before_any_update(tmp_path, bad, where):
    """A label outside [0, num_classes) or not an integer: one line naming the batch and the
    value, before the batch reaches an update (no checkpoint is written)."""
    image = recordio.encode_image(np.full((28, 28), 128, np.uint8))
    paths = {}
    for name in ('data_train', 'data_val'):
        with recordio.RecordWriter(str(tmp_path / name)) as writer:
            for i in range(64):
                label = bad if (name == where and i == 37) else i % 10
                writer.write(i, recordio.pack_record(label, i, image))
        paths[name] = writer.rec_path
    prefix = str(tmp_path / 'model')
    result = run_cli(['--data-train', paths['data_train'], '--data-val', paths['data_val'],
                      '--preset', 'fashion-mnist', '--batch-size', '32', '--num-epochs', '1',
                      '--num-classes', '10', '--data-nthreads', '1', '--random-mirror', '0',
                      '--model-prefix', prefix])
    assert result.returncode == 2, result.stderr
    # MXNet's own info lines ("[12:00:00] ../src/...") may come first: training had begun
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith('[')]
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr
    flag = '--data-train' if where == 'data_train' else '--data-val'
    assert ('of %s %s: label %g is not a class number (expected an integer from 0 to 9'
            % (flag, paths[where], bad)) in lines[0]
    assert not os.path.exists(prefix + '-0001.params')
