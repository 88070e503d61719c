"""tools/score.py, tools/predict.py and tools/quantize.py on a briefly trained ResNet-20."""
import json
import os
import stat

import cv2
import mxnet as mx
import numpy as np
import pytest

import symbols
from conftest import ROOT, bind
from mxresnet import checkpoint, graph, inference, quantization
from mxresnet.errors import UsageError
from mxresnet.recordio import count_records
from mxresnet.teacher import Teacher
from recio_helpers import assert_clean_error, run_script
from tools import predict, quantize, score

VAL_REC = os.path.join(ROOT, 'data', 'fashion-mnist-val.rec')
VAL_IDX = os.path.join(ROOT, 'data', 'fashion-mnist-val.idx')
# INT8 top-1 against float32 on the validation set: the trained checkpoints of
# docs/inference.md stay within 0.5 points; the tests' briefly trained one within this.
INT8_TOLERANCE = 0.02


def module_outputs(prefix, epoch, batch_size=50):
    """(probabilities, labels) of the checkpoint's own training graph (SoftmaxOutput) run by
    Module over a fresh validation iterator with the fashion-mnist preset."""
    sym, arg_params, aux_params = mx.model.load_checkpoint(prefix, epoch)
    it = mx.io.ImageRecordIter(path_imgrec=VAL_REC, path_imgidx=VAL_IDX, data_shape=(1, 28, 28),
                               batch_size=batch_size, mean_r=72.94, std_r=90.02,
                               round_batch=True, preprocess_threads=1)
    mod = mx.mod.Module(sym, context=mx.cpu())
    mod.bind(it.provide_data, it.provide_label, for_training=False)
    mod.set_params(arg_params, aux_params)
    probs, labels = [], []
    for batch in it:
        mod.forward(batch, is_train=False)
        keep = batch_size - batch.pad
        probs.append(mod.get_outputs()[0].asnumpy()[:keep])
        labels.append(batch.label[0].asnumpy()[:keep].astype(int))
    return np.concatenate(probs), np.concatenate(labels)


@pytest.fixture(scope='module')
def scored(tiny_checkpoint, tmp_path_factory):
    prefix, epoch = tiny_checkpoint
    out = tmp_path_factory.mktemp('score')
    # batch 64 does not divide the 2,000 validation images: the last batch is padded
    args = score.build_parser().parse_args([
        '--model', prefix, '--epoch', str(epoch), '--data-val', VAL_REC, '--batch-size', '64',
        '--confusion', str(out / 'confusion.png'), '--data-nthreads', '1'])
    return score.run(args), module_outputs(prefix, epoch)


def test_score_top1_matches_module(scored):
    result, (probs, labels) = scored
    assert result['images'] == len(labels)
    assert result['top1'] == pytest.approx(float((probs.argmax(1) == labels).mean()), abs=1e-9)
    top5 = (np.argsort(-probs, axis=1)[:, :5] == labels[:, None]).any(axis=1).mean()
    assert result['k'] == 5 and result['topk'] == pytest.approx(float(top5), abs=1e-9)
    assert result['topk'] >= result['top1']


def test_score_flip_averages_each_image_with_its_mirror(tiny_checkpoint, tmp_path):
    prefix, epoch = tiny_checkpoint
    model = checkpoint.load_model(prefix, epoch)
    it = mx.io.ImageRecordIter(path_imgrec=VAL_REC, data_shape=(1, 28, 28), batch_size=100,
                               mean_r=72.94, std_r=90.02)
    images = np.concatenate([batch.data[0].asnumpy() for batch in it])
    labels = np.zeros(len(images))
    mod = inference.bind_module(model.symbol, model.arg_params, model.aux_params,
                                (100, 1, 28, 28))

    def probabilities(data, flip=False):
        return inference.predict_iter(mod, mx.io.NDArrayIter(data, labels, 100), flip)[0]
    expected = (probabilities(images) + probabilities(images[:, :, :, ::-1].copy())) / 2
    assert not np.allclose(expected, probabilities(images), atol=1e-3)
    assert np.allclose(probabilities(images, flip=True), expected, atol=1e-6)
    args = score.build_parser().parse_args([
        '--model', prefix, '--epoch', str(epoch), '--data-val', VAL_REC, '--flip', '1',
        '--data-nthreads', '1', '--confusion', str(tmp_path / 'c.png')])
    _, true_labels = module_outputs(prefix, epoch)
    assert score.run(args)['top1'] == pytest.approx(
        float((expected.argmax(1) == true_labels).mean()), abs=1e-9)


def test_score_per_class_and_confusion(scored):
    result, (probs, labels) = scored
    counts = np.array(result['counts'])
    assert counts.tolist() == np.bincount(labels, minlength=10).tolist()
    weighted = np.nansum(np.array(result['per_class']) * counts) / counts.sum()
    assert weighted == pytest.approx(result['top1'], abs=1e-9)
    matrix = np.array(result['confusion'])
    assert matrix.sum() == result['images']
    assert np.trace(matrix) / matrix.sum() == pytest.approx(result['top1'], abs=1e-9)
    with open(result['confusion_png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_score_cli_report(tiny_checkpoint, tmp_path, capsys):
    prefix, epoch = tiny_checkpoint
    rc = score.main(['--model', prefix, '--epoch', str(epoch), '--data-val', VAL_REC,
                     '--top-k', '20', '--synset', str(write_synset(tmp_path)),
                     '--confusion', str(tmp_path / 'c.png'), '--json', str(tmp_path / 'r.json')])
    out = capsys.readouterr().out
    assert rc == 0
    assert 'top-10:' in out and 'Ankle boot' in out  # k capped at the classes; names shown
    with open(tmp_path / 'r.json') as f:
        assert json.load(f)['k'] == 10


def write_synset(tmp_path):
    path = tmp_path / 'synset.txt'
    path.write_text('\n'.join(['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                               'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']) + '\n')
    return path


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    lines = err.strip().split('\n')
    assert len(lines) == 1 and ': error: ' in lines[0], err
    return lines[0]


@pytest.mark.parametrize('change, expected', [
    ({'--epoch': '7'}, 'no checkpoint'),
    ({'--model': '/nonexistent/model'}, 'no symbol file'),
    ({'--data-val': '/nonexistent.rec'}, 'no such file'),
    ({'--image-shape': '3,28,28'}, '1-channel'),
    ({'--rgb-mean': 'a,b'}, 'comma-separated numbers'),
])
def test_score_errors(tiny_checkpoint, tmp_path, capsys, change, expected):
    prefix, epoch = tiny_checkpoint
    argv = {'--model': prefix, '--epoch': str(epoch), '--data-val': VAL_REC,
            '--confusion': str(tmp_path / 'c.png')}
    argv.update(change)
    assert score.main([x for kv in argv.items() for x in kv]) == 2
    assert expected in one_line_error(capsys)


def test_score_command_line_error_is_one_line(tiny_checkpoint):
    """From the command line score picks MXNet's engine, which MXNet announces on stderr:
    that line must not join the error."""
    prefix, _ = tiny_checkpoint
    result = run_script(os.path.join(ROOT, 'tools', 'score.py'),
                        ['--model', prefix, '--epoch', '99', '--data-val', VAL_REC])
    assert_clean_error(result.returncode, result.stderr, '--epoch 99', 'no checkpoint')


def test_score_truncated_rec(tiny_checkpoint, tmp_path, capsys):
    prefix, epoch = tiny_checkpoint
    rec = tmp_path / 'cut.rec'
    with open(VAL_REC, 'rb') as f:
        rec.write_bytes(f.read()[:5000])
    assert score.main(['--model', prefix, '--epoch', str(epoch), '--data-val', str(rec)]) == 2
    assert 'truncated' in one_line_error(capsys)


def write_pngs(directory, count):
    """The first `count` validation images as PNG files (decoded from the .rec)."""
    record = mx.recordio.MXIndexedRecordIO(VAL_IDX, VAL_REC, 'r')
    paths = []
    for i in range(count):
        _, img = mx.recordio.unpack_img(record.read_idx(record.keys[i]), cv2.IMREAD_UNCHANGED)
        path = str(directory / ('img%d.png' % i))
        cv2.imwrite(path, img)
        paths.append(path)
    record.close()
    return paths


def test_predict_matches_module(tiny_checkpoint, tmp_path, capsys):
    prefix, epoch = tiny_checkpoint
    paths = write_pngs(tmp_path, 8)
    rc = predict.main(paths + ['--model', prefix, '--epoch', str(epoch), '--json',
                               '--top-k', '3'])
    assert rc == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().split('\n')]
    probs, _ = module_outputs(prefix, epoch, batch_size=8)
    assert [line['image'] for line in lines] == paths
    for line, p in zip(lines, probs[:8]):
        assert line['top'][0]['class'] == int(p.argmax())
        assert [t['probability'] for t in line['top']] == pytest.approx(
            sorted(p, reverse=True)[:3], abs=1e-5)


def test_predict_preprocessing_is_training_s(tiny_checkpoint, tmp_path):
    """load_image gives exactly the iterator's array for a 28x28 image, and resizes/crops
    larger ones to the input size."""
    paths = write_pngs(tmp_path, 2)
    it = mx.io.ImageRecordIter(path_imgrec=VAL_REC, path_imgidx=VAL_IDX, data_shape=(1, 28, 28),
                               batch_size=2, mean_r=72.94, std_r=90.02, preprocess_threads=1)
    expected = it.next().data[0].asnumpy()
    meta = {'image_shape': [1, 28, 28], 'mean': [72.94], 'std': [90.02]}
    for path, want in zip(paths, expected):
        got = inference.load_image(path, meta)
        assert np.abs(got - want).max() < 1e-5
    big = str(tmp_path / 'big.png')
    cv2.imwrite(big, np.zeros((70, 56), np.uint8))
    assert inference.load_image(big, meta).shape == (1, 28, 28)
    small = str(tmp_path / 'small.png')
    cv2.imwrite(small, np.zeros((10, 12), np.uint8))
    assert inference.load_image(small, meta).shape == (1, 28, 28)


def test_predict_bad_file_among_good_ones(tiny_checkpoint, tmp_path, capsys):
    prefix, epoch = tiny_checkpoint
    good = write_pngs(tmp_path, 2)
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'\x89PNG but not really an image')
    rc = predict.main([good[0], str(bad), str(tmp_path / 'missing.png'), good[1],
                       '--model', prefix, '--epoch', str(epoch)])
    captured = capsys.readouterr()
    assert rc == 2
    assert 'Traceback' not in captured.err
    errors = captured.err.strip().split('\n')
    assert len(errors) == 2
    assert 'bad.png: cannot decode' in errors[0] and 'missing.png: no such file' in errors[1]
    out = captured.out.strip().split('\n')
    assert [line.split(':')[0] for line in out] == good


def test_predict_missing_model(tmp_path, capsys):
    path = write_pngs(tmp_path, 1)
    assert predict.main(path + ['--model', str(tmp_path / 'none'), '--epoch', '1']) == 2
    assert 'no symbol file' in one_line_error(capsys)


def test_predict_wrong_synset(tiny_checkpoint, tmp_path, capsys):
    prefix, epoch = tiny_checkpoint
    synset = tmp_path / 'three.txt'
    synset.write_text('a\nb\nc\n')
    path = write_pngs(tmp_path, 1)
    assert predict.main(path + ['--model', prefix, '--epoch', str(epoch),
                                '--synset', str(synset)]) == 2
    assert 'has 3 names but the model has 10 classes' in one_line_error(capsys)


@pytest.fixture(scope='module')
def learned_checkpoint(tmp_path_factory):
    """(prefix, epoch) of a ResNet-20 trained for 2 epochs of 30 batches on the bundled data:
    far enough above chance that a broken INT8 version cannot pass for it."""
    import train_resnet
    prefix = str(tmp_path_factory.mktemp('learned') / 'model')
    train_resnet.run(['--num-examples', '1920', '--batch-size', '64', '--num-epochs', '2',
                      '--lr', '0.1', '--data-nthreads', '1', '--disp-batches', '100',
                      '--model-prefix', prefix])
    return prefix, 2


def test_quantize_versions(learned_checkpoint, tmp_path):
    """The fused graph scores exactly as the plain one; INT8 is built, calibrated on the
    training .rec, timed, profiled, scored within INT8_TOLERANCE of float32 and saved
    loadable."""
    prefix, epoch = learned_checkpoint
    args = quantize.build_parser().parse_args([
        '--model', prefix, '--epoch', str(epoch), '--batch-sizes', '2', '--rounds', '1',
        '--min-time', '0.01', '--calib-batches', '1', '--profile', '2',
        '--save', str(tmp_path / 'int8')])
    result = quantization.run(args, open(os.devnull, 'w'))
    profile = result['profile']
    # MXNet replaces the file at its trace path: never a device (it once was /dev/null)
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert set(profile) == {'plain', 'fused', 'int8'}
    assert {'Convolution', 'BatchNorm'} <= set(profile['plain'])
    assert not {'Convolution', 'BatchNorm'} & set(profile['fused'])
    assert any('quantized' in op for op in profile['int8'])
    summary = result['profile_summary']
    for name in ('plain', 'fused', 'int8'):
        # every version's time is mostly convolutions, whose speed is counted from the
        # plain graph's multiply-adds
        assert 0 < summary[name]['multiply_add_ms'] <= summary[name]['total_ms']
        assert summary[name]['gflops'] > 0
    assert summary['plain']['bound'] == pytest.approx(
        sum(profile['plain'].values()) / (profile['plain']['Convolution']
                                          + profile['plain']['FullyConnected']))
    assert summary['reference_gflops'] > 0
    (size, rates), = result['rows']
    assert size == 2 and set(rates) == {'plain', 'fused', 'int8'}
    assert all(r > 0 for r in rates.values())
    accuracy = result['accuracy']
    assert accuracy['plain'][1] == count_records(VAL_REC)
    assert accuracy['fused'][0] == pytest.approx(accuracy['plain'][0], abs=0.005)
    assert accuracy['plain'][0] > 0.4  # chance is 0.1
    assert accuracy['int8'][0] == pytest.approx(accuracy['plain'][0], abs=INT8_TOLERANCE)
    # saved complete, with the source's preprocessing: it scores as the tool scored it
    saved = str(tmp_path / 'int8')
    assert checkpoint.available(saved, complete=True) == [0]
    model = checkpoint.load_model(saved, 0)
    assert any('quantize' in n['op'] for n in json.loads(model.symbol.tojson())['nodes'])
    source = checkpoint.load_model(prefix, epoch).metadata
    assert {k: model.metadata[k] for k in source} == source
    assert model.metadata['quantized']['source'] == '%s:%d' % (prefix, epoch)
    assert inference.score(model, VAL_REC)['top1'] == pytest.approx(accuracy['int8'][0],
                                                                    abs=0.002)


@pytest.fixture(scope='module')
def int8_checkpoint(learned_checkpoint, tmp_path_factory):
    """(prefix, epoch) of the INT8 model tools/quantize.py --save makes of the learned one."""
    prefix, epoch = learned_checkpoint
    saved = str(tmp_path_factory.mktemp('int8') / 'int8')
    assert quantize.main(['--model', prefix, '--epoch', str(epoch), '--batch-sizes', '2',
                          '--rounds', '1', '--min-time', '0.01', '--calib-batches', '2',
                          '--save', saved]) == 0
    return saved, 0


def test_an_int8_teacher_teaches_as_its_float32_source(learned_checkpoint, int8_checkpoint):
    """--teacher takes the INT8 checkpoint as any other: on a batch of validation images its
    probabilities are its float32 source's within INT8's rounding; on GPUs it is refused."""
    meta = checkpoint.read_metadata(learned_checkpoint[0])
    images = next(iter(inference.val_iter(VAL_REC, meta, 100))).data[0]
    probabilities = []
    for prefix, epoch in (learned_checkpoint, int8_checkpoint):
        teacher = Teacher('%s:%d' % (prefix, epoch), meta['image_shape'], meta['mean'],
                          meta['std'], 10, meta['synset'], temperature=1.0)
        teacher.bind(100, [mx.cpu()])
        probabilities.append(teacher.probabilities(images).asnumpy())
    source, int8 = probabilities
    assert source.std(axis=0).max() > 0.05  # the teacher tells the images apart
    assert np.abs(int8 - source).max() < 0.05
    assert (int8.argmax(axis=1) == source.argmax(axis=1)).mean() >= 0.95
    with pytest.raises(UsageError, match='is an INT8 model .* not for a teacher on GPUs'):
        Teacher('%s:0' % int8_checkpoint[0], meta['image_shape'], meta['mean'], meta['std'],
                10, gpus=[0])


@pytest.mark.parametrize('argv, expected', [
    ('tools/export.py --model INT8 --epoch 0 --format gluon', 'not for export'),
    ('tools/quantize.py --model INT8 --epoch 0', 'not for quantizing again'),
    ('train_resnet.py --pretrained INT8:0 --num-epochs 1 --model-prefix OUT',
     'not for fine-tuning'),
])
def test_an_int8_checkpoint_is_refused_where_it_cannot_run(int8_checkpoint, learned_checkpoint,
                                                           tmp_path, argv, expected):
    """One line naming the float32 checkpoint it was made from, before any work."""
    argv = argv.replace('INT8', int8_checkpoint[0]).replace(
        'OUT', str(tmp_path / 'out' / 'model')).split()
    result = run_script(argv[0], argv[1:])
    assert_clean_error(result.returncode, result.stderr, expected,
                       '(%s:%d)' % learned_checkpoint)
    assert not os.path.exists(str(tmp_path / 'out'))


def test_inference_symbol_drops_the_label(tiny_checkpoint):
    prefix, epoch = tiny_checkpoint
    sym = checkpoint.load_model(prefix, epoch).symbol
    assert 'softmax_label' not in sym.list_arguments()
    assert sym.list_outputs() == ['softmax_output']


@pytest.mark.parametrize('num_layers,image_shape,units', [
    (20, (1, 28, 28), 2), (18, (3, 64, 64), 3), (50, (3, 64, 64), 4)])
def test_shortcuts_as_convolutions_compute_the_same(num_layers, image_shape, units):
    """Option-A shortcuts rewritten as fixed 1x1 convolutions: same logits, no shortcut ops
    left, one convolution per shortcut that changes shape."""
    sym = graph.inference_symbol(symbols.get_symbol(
        'resnet-v1', num_classes=10, num_layers=num_layers, image_shape=image_shape,
        shortcut='A')).get_children()[0]
    exe = bind(sym, (2,) + image_shape, grad_req='null')
    arg_params = {k: v for k, v in exe.arg_dict.items() if k != 'data'}
    new_sym, new_args = graph.shortcuts_as_convolutions(sym, arg_params, image_shape)
    old_ops = [n['op'] for n in json.loads(sym.tojson())['nodes']]
    ops = [n['op'] for n in json.loads(new_sym.tojson())['nodes']]
    assert old_ops.count('slice_like') == units
    assert not {'zeros_like', 'slice_like', 'Concat'} & set(ops)
    assert ops.count('Convolution') == old_ops.count('Convolution') + units
    # each shortcut copies a ReLU's output (or its max-pooling): a ReLU marks it unsigned
    assert ops.count('Activation') == old_ops.count('Activation') + units
    new_exe = new_sym.simple_bind(mx.cpu(), data=(2,) + image_shape, grad_req='null')
    new_exe.copy_params_from(dict(new_args, data=exe.arg_dict['data']), exe.aux_dict)
    expected = exe.forward(is_train=False)[0].asnumpy()
    got = new_exe.forward(is_train=False)[0].asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_shortcuts_as_convolutions_on_the_deepest_net():
    """ResNet-1202: a graph deeper than Python's recursion limit is rewritten whole."""
    sym = symbols.get_symbol('resnet-v1', num_classes=10, num_layers=1202,
                             image_shape='1,28,28', shortcut='A')
    new_sym, new_args = graph.shortcuts_as_convolutions(sym, {}, (1, 28, 28))
    assert sorted(new_args) == ['stage2_unit1_sc_weight', 'stage3_unit1_sc_weight']
    assert 'slice_like' not in {n['op'] for n in json.loads(new_sym.tojson())['nodes']}
    assert set(new_sym.list_arguments()) == set(sym.list_arguments()) | set(new_args)


def test_shortcuts_as_convolutions_leaves_other_graphs_alone():
    sym = symbols.get_symbol('resnet', num_classes=10, num_layers=20, image_shape='1,28,28')
    new_sym, _ = graph.shortcuts_as_convolutions(sym, {}, (1, 28, 28))
    assert new_sym is sym


def random_batchnorm_statistics(exe, rng):
    """Trained-looking BatchNorm values: scales, shifts, means and variances away from the
    initial 1, 0, 0, 1, so that a wrong affine map shows in the output."""
    for name, arr in list(exe.arg_dict.items()) + list(exe.aux_dict.items()):
        if name.endswith(('_gamma', '_moving_var')):
            arr[:] = rng.uniform(0.5, 2.0, arr.shape)
        elif name.endswith(('_beta', '_moving_mean')):
            arr[:] = rng.normal(0, 0.5, arr.shape)


@pytest.mark.parametrize('network,num_layers,image_shape,left', [
    ('resnet', 20, (1, 28, 28), 10), ('resnet', 50, (3, 64, 64), 33),
    ('resnet-v1', 20, (1, 28, 28), 19), ('resnext', 50, (3, 64, 64), 53)])
def test_batchnorms_as_convolutions_compute_the_same(network, num_layers, image_shape, left):
    """BatchNorms that read no convolution of their own (pre-activation units, bn_data)
    become depthwise 1x1 convolutions: same outputs; those after a convolution stay."""
    sym = graph.inference_symbol(symbols.get_symbol(
        network, num_classes=10, num_layers=num_layers, image_shape=image_shape))
    exe = bind(sym, (2,) + image_shape, grad_req='null')
    random_batchnorm_statistics(exe, np.random.RandomState(1))
    arg_params = {k: v for k, v in exe.arg_dict.items() if k != 'data'}
    new_sym, new_args = graph.batchnorms_as_convolutions(sym, arg_params, exe.aux_dict)
    old_ops = [n['op'] for n in json.loads(sym.tojson())['nodes']]
    ops = [n['op'] for n in json.loads(new_sym.tojson())['nodes']]
    assert ops.count('BatchNorm') == left
    assert ops.count('Convolution') == old_ops.count('Convolution') + old_ops.count(
        'BatchNorm') - left
    new_exe = new_sym.simple_bind(mx.cpu(), data=(2,) + image_shape, grad_req='null')
    new_exe.copy_params_from(dict(new_args, data=exe.arg_dict['data']), exe.aux_dict,
                             allow_extra_params=True)
    expected = exe.forward(is_train=False)[0].asnumpy()
    got = new_exe.forward(is_train=False)[0].asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_batchnorms_as_convolutions_keep_read_statistics():
    """A BatchNorm whose batch mean is an output of the graph is not rewritten."""
    data = mx.sym.Variable('data')
    bn = mx.sym.BatchNorm(data, name='bn', output_mean_var=True)
    sym = mx.sym.Group([mx.sym.relu(bn[0]), bn[1]])
    new_sym, _ = graph.batchnorms_as_convolutions(sym, {}, {})
    assert new_sym is sym


def test_batchnorms_as_convolutions_need_the_statistics():
    sym = symbols.get_symbol('resnet', num_classes=10, num_layers=20, image_shape='1,28,28')
    with pytest.raises(UsageError, match='BatchNorm bn_data: no values for bn_data_gamma'):
        graph.batchnorms_as_convolutions(sym, {}, {})


def random_weight_versions(network):
    """quantize.py's plain, fused and INT8 versions of `network`-20 at 1x28x28 with random
    weights, calibrated on one batch of random data."""
    args = quantize.build_parser().parse_args([
        '--network', network, '--num-layers', '20', '--image-shape', '1,28,28',
        '--num-classes', '10', '--calib-batches', '1', '--calib-batch-size', '8'])
    sym, arg_params, aux_params, meta, _ = quantization.load(args)
    return quantization.build_versions(args, sym, arg_params, aux_params, meta, False)


def test_quantize_option_a_net_is_int8_throughout():
    """resnet-v1 (option A): the INT8 graph keeps no float32 shortcut ops, and every
    convolution, the shortcuts' too, ends in a ReLU, so that its INT8 output is uint8."""
    nodes = json.loads(random_weight_versions('resnet-v1')['int8'][0].tojson())['nodes']
    ops = [n['op'] for n in nodes]
    assert not {'zeros_like', 'slice_like', 'Concat', 'Pooling'} & set(ops)
    assert ops.count('_contrib_dequantize') <= 1
    convs = [n['attrs'] for n in nodes if n['op'] == '_sg_mkldnn_conv']
    assert len(convs) == 19 + 2 + 1  # and bn_data as a depthwise convolution
    # all but bn_data's, which feeds conv0 directly
    assert sum('true' not in (a.get('with_act'), a.get('with_postsum_act'))
               for a in convs) == 1, convs


def test_quantize_preactivation_net_is_int8_throughout():
    """resnet (pre-activation): the BatchNorm + ReLU that open each unit are quantized
    depthwise convolutions, so no float32 BatchNorm is left and nothing is dequantized
    before the classifier."""
    versions = random_weight_versions('resnet')
    for version in ('fused', 'int8'):
        ops = [n['op'] for n in json.loads(versions[version][0].tojson())['nodes']]
        assert not {'BatchNorm', 'Activation'} & set(ops), version
    assert ops.count('_contrib_dequantize') <= 1


def test_quantize_shape_int8_cannot_take_is_one_line(tiny_checkpoint, capsys):
    """INT8's pooling checks its kernel against the input even for global pooling: an image
    too small for it fails at bind, reported in one line (not simple_bind's traceback)."""
    prefix, epoch = tiny_checkpoint
    assert quantize.main(['--model', prefix, '--epoch', str(epoch), '--image-shape', '1,8,8',
                          '--batch-sizes', '1', '--calib-batches', '1']) == 1
    assert 'exceeds input' in one_line_error(capsys)


@pytest.fixture
def old_checkpoint(tiny_checkpoint, tmp_path):
    """The tiny checkpoint as written before checkpoints carried PREFIX-model.json."""
    prefix, epoch = tiny_checkpoint
    old = str(tmp_path / 'old')
    for suffix in ('-symbol.json', '-%04d.params' % epoch):
        with open(prefix + suffix, 'rb') as src, open(old + suffix, 'wb') as dst:
            dst.write(src.read())
    return old, epoch


def test_checkpoint_without_metadata_names_the_flags_to_pass(old_checkpoint, scored, tmp_path,
                                                             capsys):
    from tools import export
    prefix, epoch = old_checkpoint
    model = ['--model', prefix, '--epoch', str(epoch)]
    image = write_pngs(tmp_path, 1)
    for main, argv in ((score.main, ['--data-val', VAL_REC]), (predict.main, image),
                       (export.main, ['-o', str(tmp_path / 'x.onnx')]),
                       (quantize.main, ['--batch-sizes', '1'])):
        assert main(model + argv) == 2
        message = one_line_error(capsys)
        assert 'old-model.json: no such file' in message
        assert 'pass --preset NAME, or --image-shape, --rgb-mean, --rgb-std' in message
    assert score.main(model + ['--data-val', VAL_REC, '--image-shape', '1,28,28']) == 2
    assert 'pass --preset NAME, or --rgb-mean, --rgb-std' in one_line_error(capsys)
    assert score.main(model + ['--data-val', VAL_REC, '--preset', 'fashion-mnist',
                               '--confusion', str(tmp_path / 'c.png')]) == 0
    assert '%.2f%%' % (100 * scored[0]['top1']) in capsys.readouterr().out


def test_predict_names_the_checkpoints_classes(tiny_checkpoint, tmp_path, capsys):
    prefix, epoch = tiny_checkpoint
    assert predict.main(write_pngs(tmp_path, 1) + ['--model', prefix, '--epoch', str(epoch),
                                                   '--json', '--top-k', '10']) == 0
    labels = [t['label'] for t in json.loads(capsys.readouterr().out)['top']]
    assert sorted(labels) == sorted(checkpoint.read_metadata(prefix)['synset'])
    assert 'Ankle boot' in labels
