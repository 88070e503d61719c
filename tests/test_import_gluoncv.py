"""tools/import_gluoncv.py: gluon-cv model-zoo parameter files as checkpoints of our networks.

Each supported network is built by gluon-cv itself (no weights downloaded), given random
weights and random BatchNorm statistics, saved with `save_parameters` as the model zoo's
files are, converted, and loaded back with `checkpoint.load_model`: our softmax must be
gluon-cv's on the same input.
"""
import collections
import json
import os
import re

import cv2
import mxnet as mx
import numpy as np
import pytest

import symbols
from mxresnet import checkpoint, graph, inference
from mxresnet.gluoncv_import import DATASETS, ZOO, supported
from recio_helpers import assert_clean_error, run_cli
from tools import import_gluoncv, predict, score

gluoncv_zoo = pytest.importorskip('gluoncv.model_zoo')

COMPARED = ('resnet18_v1', 'resnet50_v1', 'resnet50_v1b', 'resnet50_v2', 'resnet101_v2',
            'resnext50_32x4d', 'cifar_resnet20_v1', 'cifar_resnet56_v2')
TOLERANCE = 1e-4   # max abs difference of the softmax outputs
# Running variances around VAR_SCALE (gammas scaled by its root, so that activations keep
# their size): there the BatchNorm epsilon moves the outputs far more than the tolerance.
VAR_SCALE = 1e-3


def randomise(net, image_shape, rng):
    """Random weights and BatchNorm statistics for a gluon-cv network (running_var in
    VAR_SCALE x [0.5, 2])."""
    net.initialize(mx.init.Zero())
    net(mx.nd.zeros((1, image_shape[0], 64, 64) if image_shape[1] > 32 else
                    (1,) + tuple(image_shape)))  # the parameters' shapes
    for name, param in net.collect_params().items():
        shape = param.shape
        if name.endswith('running_var'):
            value = rng.uniform(0.5, 2, shape) * VAR_SCALE
        elif name.endswith('gamma'):
            value = rng.uniform(0.5, 1.5, shape) * np.sqrt(VAR_SCALE)
        elif name.endswith(('running_mean', 'beta', 'bias')):
            value = rng.normal(0, 0.2, shape) * (np.sqrt(VAR_SCALE)
                                                 if name.endswith('running_mean') else 1)
        else:
            value = rng.normal(0, np.sqrt(1.0 / np.prod(shape[1:])), shape)
        param.set_data(mx.nd.array(value))


def gluon_case(name, folder, seed=0):
    """(params path, input batch of 2, gluon-cv's softmax) of zoo network `name`, its
    classifier scaled so that the logits have a standard deviation of 3 (probabilities
    neither uniform nor one-hot)."""
    rng = np.random.RandomState(seed)
    image_shape = DATASETS[ZOO[name].dataset].image_shape
    net = gluoncv_zoo.get_model(name, pretrained=False)
    randomise(net, image_shape, rng)
    data = rng.uniform(-2, 2, (2,) + tuple(image_shape)).astype(np.float32)
    logits = net(mx.nd.array(data))
    scale = 3 / float(logits.asnumpy().std())
    for pname, param in net.collect_params().items():
        if re.search(r'dense0_(weight|bias)$', pname):
            param.set_data(param.data() * scale)
    logits = net(mx.nd.array(data)) if image_shape[1] <= 32 else logits * scale
    path = os.path.join(str(folder), '%s-0000abcd.params' % name)
    net.save_parameters(path)
    return path, data, mx.nd.softmax(logits).asnumpy()


def our_softmax(prefix, data, sym=None):
    """The softmax of checkpoint 0 of PREFIX (or of `sym` with its weights), bound as the
    tools bind it (MXNet's default CPU backend, MKLDNN)."""
    model = checkpoint.load_model(prefix, 0)
    mod = inference.bind_module(model.symbol if sym is None else sym, model.arg_params,
                                model.aux_params, data.shape)
    mod.forward(mx.io.DataBatch([mx.nd.array(data)]), is_train=False)
    return mod.get_outputs()[0].asnumpy()


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """{zoo name: (params path, data, gluon-cv's softmax)}, made on first use."""
    folder = tmp_path_factory.mktemp('gluoncv')
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = gluon_case(name, folder)
        return cache[name]
    return get


def convert(name, params, prefix, capsys):
    rc, out, err = run_cli(import_gluoncv.main, ['--model', name, '--params', params,
                                                 '--prefix', prefix], capsys)
    assert rc == 0, err
    return out


@pytest.mark.parametrize('name', COMPARED)
def test_converted_checkpoint_computes_gluoncvs_softmax(name, files, tmp_path, capsys):
    params, data, expected = files(name)
    prefix = str(tmp_path / name)
    out = convert(name, params, prefix, capsys)
    assert out.splitlines()[-1] == prefix + '-0000.json'
    got = our_softmax(prefix, data)
    diff = float(np.abs(got - expected).max())
    print('%s: max abs difference %.2e' % (name, diff))
    assert diff < TOLERANCE, (name, diff)

    entry = ZOO[name]
    meta = checkpoint.read_metadata(prefix)
    dataset = DATASETS[entry.dataset]
    assert meta['pretrained'] == 'gluoncv:' + name
    assert (meta['network'], meta['num_layers'], meta['options']) == \
        (entry.network, entry.num_layers, entry.options)
    assert meta['image_shape'] == list(dataset.image_shape)
    assert meta['num_classes'] == expected.shape[1]
    if entry.dataset == 'imagenet':
        assert meta['mean'] == pytest.approx([123.675, 116.28, 103.53])
        assert meta['std'] == pytest.approx([58.395, 57.12, 57.375])
        assert meta['resize'] == 256
        assert len(meta['synset']) == 1000 and meta['synset'][:2] == ['tench', 'goldfish']
    else:
        assert meta['mean'] == pytest.approx([125.307, 122.961, 113.8575])
        assert meta['std'] == pytest.approx([51.5865, 50.847, 51.255])
        assert meta['resize'] == 0 and meta['synset'] is None
    # resumable as --load-epoch 0: weights, no optimizer state
    arg_params, aux_params, states, progress = checkpoint.load(prefix, 0)
    assert states is None and progress['epoch'] == 0 and not progress['has_states']
    # the graph is what the named options build
    with mx.name.NameManager():
        rebuilt = symbols.get_symbol(entry.network, num_classes=meta['num_classes'],
                                     num_layers=entry.num_layers,
                                     image_shape=dataset.image_shape, **entry.options)
    assert rebuilt.tojson() == mx.sym.load(prefix + '-symbol.json').tojson()


def test_the_tolerance_sees_the_batchnorm_epsilon(files, tmp_path, capsys):
    """The same weights in the graph with our default epsilon (2e-5) are off by far more
    than the tolerance, so the comparisons above check the epsilon too."""
    name = 'cifar_resnet20_v1'
    params, data, expected = files(name)
    prefix = str(tmp_path / name)
    convert(name, params, prefix, capsys)
    entry = ZOO[name]
    options = {k: v for k, v in entry.options.items() if k != 'bn_eps'}
    sym = symbols.get_symbol(entry.network, num_classes=10, num_layers=entry.num_layers,
                             image_shape='3,32,32', **options)
    assert np.abs(our_softmax(prefix, data, graph.inference_symbol(sym)) - expected).max() \
        > 10 * TOLERANCE


def test_every_supported_name_is_gluoncvs_and_maps_every_parameter():
    """Each table entry names a gluon-cv network whose parameters all map, in their shapes,
    onto our network: the deep ones too, their shapes from gluon-cv's symbolic graph."""
    from mxresnet import gluoncv_import
    Shaped = collections.namedtuple('Shaped', 'shape')
    for name in supported():
        entry = ZOO[name]
        image_shape = DATASETS[entry.dataset].image_shape
        net = gluoncv_zoo.get_model(name, pretrained=False)
        out = net(mx.sym.var('data'))
        arg_shapes, _, aux_shapes = out.infer_shape(data=(1,) + tuple(image_shape))
        shapes = dict(zip(out.list_arguments() + out.list_auxiliary_states(),
                          arg_shapes + aux_shapes))
        loaded = {key: Shaped(shapes[param.name])
                  for key, param in net._collect_params_with_prefix().items()}
        num_classes = loaded[gluoncv_import.gluon_name(gluoncv_import.NAMINGS[entry.naming],
                                                       'fc1_weight')].shape[0]
        sym = symbols.get_symbol(entry.network, num_classes=num_classes,
                                 num_layers=entry.num_layers, image_shape=image_shape,
                                 **entry.options)
        arg_params, aux_params = gluoncv_import.match_params(name, entry, sym, loaded, name)
        assert len(arg_params) + len(aux_params) == len(loaded), name


def test_older_save_params_files_convert_too(files, tmp_path, capsys):
    """A file of the older `save_params` (names without the structure, such as
    `stage1_conv0_weight`) is translated through gluon-cv's network."""
    name = 'cifar_resnet20_v1'
    params, data, expected = files(name)
    net = gluoncv_zoo.get_model(name, pretrained=False)
    net.load_parameters(params)
    legacy = str(tmp_path / 'legacy.params')
    net.collect_params().save(legacy, strip_prefix=net.prefix)
    assert not any('.' in key for key in mx.nd.load(legacy))
    convert(name, legacy, str(tmp_path / 'legacy'), capsys)
    assert np.abs(our_softmax(str(tmp_path / 'legacy'), data) - expected).max() < TOLERANCE


def test_unknown_zoo_name_lists_the_supported_ones(tmp_path, capsys):
    rc, _, err = run_cli(import_gluoncv.main, ['--model', 'resnet50_v1d', '--params',
                                               tmp_path / 'x.params', '--prefix',
                                               tmp_path / 'out'], capsys)
    assert_clean_error(rc, err, 'resnet50_v1d', *COMPARED)


def test_a_file_of_another_model_names_a_parameter_and_both_shapes(files, tmp_path, capsys):
    params, _, _ = files('resnet18_v1')
    rc, _, err = run_cli(import_gluoncv.main, ['--model', 'resnet50_v1', '--params', params,
                                               '--prefix', tmp_path / 'out'], capsys)
    assert_clean_error(rc, err, params, 'features.4.0.body.0.weight', '(64, 64, 3, 3)',
                       '(64, 64, 1, 1)', 'resnet50_v1')
    assert not os.path.exists(str(tmp_path / 'out-0000.params'))


def test_missing_and_extra_parameters_are_named(files, tmp_path, capsys):
    params, _, _ = files('cifar_resnet20_v1')
    loaded = mx.nd.load(params)
    missing = dict(loaded)
    del missing['features.3.0.downsample.1.running_var']
    mx.nd.save(str(tmp_path / 'missing.params'), missing)
    extra = dict(loaded, **{'features.9.weight': mx.nd.zeros((1,))})
    mx.nd.save(str(tmp_path / 'extra.params'), extra)
    for path, needles in (('missing.params', ('features.3.0.downsample.1.running_var',
                                              'stage2_unit1_sc_bn_moving_var', '(32,)')),
                          ('extra.params', ('features.9.weight',))):
        rc, _, err = run_cli(import_gluoncv.main, [
            '--model', 'cifar_resnet20_v1', '--params', tmp_path / path, '--prefix',
            tmp_path / 'out'], capsys)
        assert_clean_error(rc, err, path, *needles)


def test_missing_or_unreadable_files_are_one_line(tmp_path, capsys):
    text = tmp_path / 'notes.params'
    text.write_text('not parameters\n')
    for path, needle in ((tmp_path / 'absent.params', 'no such file'),
                         (text, 'not an MXNet parameter file')):
        rc, _, err = run_cli(import_gluoncv.main, ['--model', 'cifar_resnet20_v1', '--params',
                                                   path, '--prefix', tmp_path / 'out'], capsys)
        assert_clean_error(rc, err, path, needle)


def test_predict_and_score_run_on_a_converted_cifar_checkpoint(files, tmp_path, capsys):
    name = 'cifar_resnet56_v2'
    params, _, _ = files(name)
    prefix = str(tmp_path / name)
    convert(name, params, prefix, capsys)
    rng = np.random.RandomState(1)
    images = rng.randint(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / ('%d.png' % i)))
        cv2.imwrite(paths[-1], image[:, :, ::-1])   # RGB, stored as OpenCV's BGR
    rc, out, err = run_cli(predict.main, paths + ['--model', prefix, '--epoch', '0',
                                                  '--top-k', '10', '--json'], capsys)
    assert rc == 0, err
    meta = checkpoint.read_metadata(prefix)
    data = (images.astype(np.float32) - meta['mean']) / meta['std']
    expected = our_softmax(prefix, data.transpose(0, 3, 1, 2).copy())
    for line, probs in zip(out.splitlines(), expected):
        top = {entry['class']: entry['probability'] for entry in json.loads(line)['top']}
        assert top == pytest.approx({c: float(p) for c, p in enumerate(probs)}, abs=1e-5)

    record = mx.recordio.MXIndexedRecordIO(str(tmp_path / 'val.idx'),
                                           str(tmp_path / 'val.rec'), 'w')
    for i, image in enumerate(images):
        record.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, i % 10, i, 0),
                                                 image[:, :, ::-1], img_fmt='.png'))
    record.close()
    rc, out, err = run_cli(score.main, ['--model', prefix, '--epoch', '0', '--data-val',
                                        tmp_path / 'val.rec', '--batch-size', '2',
                                        '--confusion', tmp_path / 'confusion.png',
                                        '--json', tmp_path / 'score.json',
                                        '--data-nthreads', '1'], capsys)
    assert rc == 0, err
    with open(str(tmp_path / 'score.json')) as f:
        result = json.load(f)
    assert result['images'] == 4
    assert result['top1'] == pytest.approx(float((expected.argmax(1) == np.arange(4)).mean()))


@pytest.mark.parametrize('network,num_layers,image_shape,defaults', [
    ('resnet', 20, '3,28,28', {'bn_eps': 2e-5, 'exact_dim_match': False,
                               'preact_shortcut': True, 'cifar_max_height': 28}),
    ('resnet', 50, '3,224,224', {'bn_eps': 2e-5, 'exact_dim_match': False,
                                 'preact_shortcut': True, 'cifar_max_height': 28}),
    ('resnet-v1', 50, '3,224,224', {'stride_in_1x1': True, 'data_bn': True, 'bn_eps': 2e-5,
                                    'stem_act': True, 'bottleneck_bias': False}),
    ('plain', 20, '3,32,32', {'stride_in_1x1': True, 'data_bn': True, 'bn_eps': 2e-5,
                              'stem_act': True, 'bottleneck_bias': False}),
    ('resnext', 50, '3,224,224', {'data_bn': True, 'bn_eps': 2e-5}),
])
def test_the_variant_options_default_to_the_reference_graphs(network, num_layers, image_shape,
                                                             defaults):
    def build(**options):
        with mx.name.NameManager():
            return symbols.get_symbol(network, num_classes=10, num_layers=num_layers,
                                      image_shape=image_shape, **options).tojson()
    assert set(defaults) <= set(symbols.network_options(network))
    assert build(**defaults) == build()


@pytest.mark.parametrize('network,options,needle', [
    ('resnet', {'bn_eps': 1e-6}, 'bn_eps=1e-06'),
    ('resnext', {'bn_eps': 'small'}, 'bn_eps'),
    ('resnet', {'cifar_max_height': 30}, 'cifar_max_height=30'),
    ('resnet', {'exact_dim_match': 1}, 'exact_dim_match=1'),
    ('resnet-v1', {'data_bn': 'no'}, 'data_bn'),
    ('plain', {'stem_act': None}, 'stem_act'),
    ('resnet-v1', {'bottleneck_bias': 0}, 'bottleneck_bias'),
])
def test_bad_variant_options_are_named(network, options, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        symbols.get_symbol(network, num_classes=10,
                           num_layers=50 if network == 'resnext' else 20,
                           image_shape='3,224,224' if network == 'resnext' else '3,28,28',
                           **options)


def test_fine_tuning_a_converted_checkpoint_keeps_its_variant(files, tmp_path, capsys):
    """--pretrained on an imported checkpoint builds gluon-cv's variant (the options no flag
    sets come from its metadata), loads everything but the classifier, and records it."""
    import train_resnet
    name = 'cifar_resnet20_v1'
    params, _, _ = files(name)
    prefix = str(tmp_path / name)
    convert(name, params, prefix, capsys)
    rng = np.random.RandomState(2)
    record = mx.recordio.MXIndexedRecordIO(str(tmp_path / 'five.idx'),
                                           str(tmp_path / 'five.rec'), 'w')
    for i in range(32):
        image = rng.randint(0, 256, (32, 32, 3)).astype(np.uint8)
        record.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, i % 5, i, 0), image,
                                                 img_fmt='.png'))
    record.close()
    tuned = str(tmp_path / 'tuned')
    train_resnet.run(['--pretrained', prefix + ':0', '--data-train', str(tmp_path / 'five.rec'),
                      '--num-classes', '5', '--num-epochs', '1', '--batch-size', '16',
                      '--backbone-lr-mult', '0', '--data-nthreads', '1',
                      '--model-prefix', tuned])
    source, meta = checkpoint.read_metadata(prefix), checkpoint.read_metadata(tuned)
    assert meta['pretrained'] == prefix + ':0'
    assert (meta['network'], meta['num_layers'], meta['mean'], meta['std']) == \
        (source['network'], source['num_layers'], source['mean'], source['std'])
    assert dict(meta['options'], dtype=None) == dict(source['options'], dtype=None)
    epsilons = {node['attrs']['eps'] for node in json.loads(
        mx.sym.load(tuned + '-symbol.json').tojson())['nodes'] if node['op'] == 'BatchNorm'}
    assert epsilons == {str(source['options']['bn_eps'])}
    before, after = mx.nd.load(prefix + '-0000.params'), mx.nd.load(tuned + '-0001.params')
    for key, value in before.items():
        if key.startswith('arg:') and not key.startswith('arg:fc1'):
            assert np.array_equal(after[key].asnumpy(), value.asnumpy()), key
    assert after['arg:fc1_weight'].shape[0] == 5
    # Resuming needs no --pretrained: the run's own metadata brings the variant back.
    train_resnet.run(['--data-train', str(tmp_path / 'five.rec'), '--num-epochs', '2',
                      '--batch-size', '16', '--data-nthreads', '1', '--model-prefix', tuned,
                      '--load-epoch', '1'])
    assert checkpoint.read_metadata(tuned)['options'] == meta['options']
    assert os.path.isfile(tuned + '-0002.json')
