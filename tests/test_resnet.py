"""symbols/resnet.py: the reference graph exactly, and the behaviour of the built networks."""
import json

import mxnet as mx
import numpy as np
import pytest

from conftest import (assert_gradients_reach_every_argument, assert_same_graph, bind, count_params,
                      golden_index, load_golden)
from symbols import resnet

RESNET_GOLDEN = [e for e in golden_index() if e['network'] == 'resnet']


def build(num_classes, num_layers, image_shape, **kwargs):
    with mx.name.NameManager():
        return resnet.get_symbol(num_classes, num_layers, image_shape, **kwargs)


def shape_of(image_shape, batch=2):
    return (batch,) + tuple(int(v) for v in image_shape.split(','))


@pytest.mark.parametrize('entry', RESNET_GOLDEN, ids=[e['file'] for e in RESNET_GOLDEN])
def test_golden_graph(entry):
    sym = build(entry['num_classes'], entry['num_layers'], entry['image_shape'],
                dtype=entry['dtype'])
    assert_same_graph(sym, load_golden(entry['file']))


@pytest.mark.parametrize('entry', RESNET_GOLDEN, ids=[e['file'] for e in RESNET_GOLDEN])
def test_param_count_and_output_shape(entry):
    sym = build(entry['num_classes'], entry['num_layers'], entry['image_shape'],
                dtype=entry['dtype'])
    data_shape = shape_of(entry['image_shape'])
    assert count_params(sym, data_shape) == entry['num_params']
    assert len(sym.list_auxiliary_states()) == entry['num_aux']
    _, out_shapes, _ = sym.infer_shape(data=data_shape)
    assert list(out_shapes[0]) == entry['output_shape']


def test_published_param_counts():
    assert count_params(build(10, 20, '3,28,28'), (1, 3, 28, 28)) == 272544
    assert count_params(build(1000, 50, '3,224,224'), (1, 3, 224, 224)) == 25549486


# The reference looks only at the height, through two thresholds (28 px for the depth
# rule, 32 px for the stem): other shapes in the same band build the golden graph.
@pytest.mark.parametrize('num_layers,image_shape,golden_file', [
    (20, '3,8,8', 'resnet-20-3x28x28-float32.json.gz'),
    (20, '3,28,40', 'resnet-20-3x28x28-float32.json.gz'),
    (56, '3,24,24', 'resnet-56-3x28x28-float32.json.gz'),
    (18, '3,29,29', 'resnet-18-3x32x32-float32.json.gz'),
    (50, '3,33,33', 'resnet-50-3x224x224-float32.json.gz'),
    (50, '3,160,128', 'resnet-50-3x224x224-float32.json.gz'),
])
def test_same_graph_within_a_height_band(num_layers, image_shape, golden_file):
    golden = load_golden(golden_file)
    num_classes = 10 if '224' not in golden_file else 1000
    assert_same_graph(build(num_classes, num_layers, image_shape), golden)


def test_accepts_shape_as_sequence():
    with mx.name.NameManager():
        from_tuple = resnet.get_symbol(10, 20, (3, 28, 28)).tojson()
    assert from_tuple == build(10, 20, '3,28,28').tojson()


@pytest.mark.parametrize('num_classes', [2, 10, 100, 1000])
@pytest.mark.parametrize('num_layers,image_shape', [(20, '3,28,28'), (18, '3,32,32'),
                                                    (50, '3,64,64')])
def test_output_shape_follows_num_classes(num_classes, num_layers, image_shape):
    sym = build(num_classes, num_layers, image_shape)
    _, out_shapes, _ = sym.infer_shape(data=shape_of(image_shape, batch=3))
    assert out_shapes == [(3, num_classes)]


@pytest.mark.parametrize('num_layers,image_shape', [(20, '3,28,28'), (164, '3,28,28'),
                                                    (18, '3,32,32'), (50, '3,224,224')])
def test_forward_gives_probabilities(num_layers, image_shape):
    sym = build(10, num_layers, image_shape)
    exe = bind(sym, shape_of(image_shape), grad_req='null')
    probs = exe.forward(is_train=False)[0].asnumpy()
    assert np.all(np.isfinite(probs))
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize('num_layers,image_shape', [(20, '3,28,28'), (50, '3,64,64')])
def test_backward_reaches_every_argument(num_layers, image_shape):
    sym = build(10, num_layers, image_shape)
    exe = bind(sym, shape_of(image_shape, batch=4))
    exe.forward(is_train=True)
    exe.backward()
    assert_gradients_reach_every_argument(sym, exe)


@pytest.mark.parametrize('num_layers,image_shape', [(20, '3,28,28'), (50, '3,224,224')])
def test_float16_inside_float32_out(num_layers, image_shape):
    sym = build(10, num_layers, image_shape, dtype='float16')
    arg_types, out_types, aux_types = sym.infer_type(data=np.float32)
    assert out_types == [np.float32]
    types = dict(zip(sym.list_arguments(), arg_types))
    assert types['data'] == np.float32
    assert types['conv0_weight'] == np.float16
    assert types['fc1_weight'] == np.float16
    internals = sym.get_internals()
    fc1 = internals['fc1_output']
    assert fc1.infer_type(data=np.float32)[1] == [np.float16]
    ops = [node['op'] for node in json.loads(sym.tojson())['nodes']]
    assert ops.count('Cast') == 2


def shortcut_attrs(sym):
    """name -> attributes of the node feeding each residual add as its shortcut input."""
    nodes = json.loads(sym.tojson())['nodes']
    attrs = sym.attr_dict()
    names = [nodes[node['inputs'][1][0]]['name'] for node in nodes if node['op'] == 'elemwise_add']
    return [(name, attrs.get(name, {})) for name in names]


@pytest.mark.parametrize('num_layers,image_shape', [(20, '3,28,28'), (164, '3,28,28'),
                                                    (34, '3,224,224'), (50, '3,224,224')])
def test_memonger_marks_every_shortcut(num_layers, image_shape):
    shortcuts = shortcut_attrs(build(10, num_layers, image_shape, memonger=True))
    assert len(shortcuts) == sum(resnet.depth_spec(num_layers, image_shape).units)
    for name, attrs in shortcuts:
        assert attrs.get('mirror_stage') == 'True', name
    plain = shortcut_attrs(build(10, num_layers, image_shape))
    assert all('mirror_stage' not in attrs for _, attrs in plain)


def test_bn_mom_is_passed_through():
    nodes = json.loads(build(10, 20, '3,28,28', bn_mom=0.95).tojson())['nodes']
    moms = {node['attrs']['momentum'] for node in nodes if node['op'] == 'BatchNorm'}
    assert moms == {'0.95'}


def test_bn_data_fixes_gamma():
    nodes = {n['name']: n for n in json.loads(build(10, 20, '3,28,28').tojson())['nodes']}
    assert nodes['bn_data']['attrs']['fix_gamma'] == 'True'
    assert nodes['stage1_unit1_bn1']['attrs']['fix_gamma'] == 'False'


def test_bottleneck_width_is_a_quarter():
    nodes = {n['name']: n for n in json.loads(build(1000, 50, '3,224,224').tojson())['nodes']}
    assert nodes['stage2_unit1_conv1']['attrs']['num_filter'] == '128'
    assert nodes['stage2_unit1_conv3']['attrs']['num_filter'] == '512'
    # the projection shortcut starts from the pre-activated input
    assert nodes['stage2_unit1_sc']['inputs'][0][0] == \
        [n['name'] for n in json.loads(build(1000, 50, '3,224,224').tojson())['nodes']].index(
            'stage2_unit1_relu1')


@pytest.mark.parametrize('num_layers,image_shape,expected', [
    (56, '3,32,32', r"num_layers=56 is not a depth resnet builds for image_shape 3,32,32.*"
                    r"18, 34, 50, 101, 152, 200, 269.*56 is a CIFAR depth.*3,28,28"),
    (34, '3,28,28', r"num_layers=34 is not a depth resnet builds for image_shape 3,28,28.*"
                    r"6n\+2 below 164.*9n\+2 from 164"),
    (21, '3,28,28', r"num_layers=21 .*6n\+2"),
    (2, '3,28,28', r"num_layers=2 "),
    (100, '3,224,224', r"num_layers=100 .*18, 34, 50, 101, 152, 200, 269$"),
    (173 + 1, '3,28,28', r"num_layers=174 "),
])
def test_unknown_depth_is_a_clear_error(num_layers, image_shape, expected):
    with pytest.raises(ValueError, match=expected):
        resnet.get_symbol(10, num_layers, image_shape)


@pytest.mark.parametrize('image_shape', ['3,28', '3,28,28,1', 'a,b,c', '3,0,28', '3,-28,28',
                                         '', '3x28x28'])
def test_malformed_image_shape_is_a_clear_error(image_shape):
    with pytest.raises(ValueError, match=r"image_shape .* is not valid: expected three positive"):
        resnet.get_symbol(10, 20, image_shape)


@pytest.mark.parametrize('kwargs,expected', [
    (dict(num_classes=0), r'num_classes=0 is not valid'),
    (dict(num_classes='10'), r"num_classes='10' is not valid"),
    (dict(dtype='float64'), r"dtype='float64' is not supported: choose one of float32, float16"),
    (dict(num_layers='20'), r"num_layers='20' is not valid"),
])
def test_bad_arguments_are_clear_errors(kwargs, expected):
    args = dict(num_classes=10, num_layers=20, image_shape='3,28,28')
    args.update(kwargs)
    with pytest.raises(ValueError, match=expected):
        resnet.get_symbol(**args)
