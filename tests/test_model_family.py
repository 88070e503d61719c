"""The model family through the registry: every network, a spread of depths, the papers' figures."""
import json

import mxnet as mx
import numpy as np
import pytest

import symbols
from conftest import (assert_gradients_reach_every_argument, assert_same_graph, bind, count_params,
                      golden_index, load_golden)
from symbols.blocks import ACT_TYPES
from symbols.resnet_v1 import SHORTCUTS
from mxresnet.stats import model_stats

# network -> (num_layers, image_shape, options) cases; `small` ones also run forward/backward.
SMALL = {
    'resnet': [(20, '3,28,28', {}), (8, '1,28,28', {'act_type': 'prelu'})],
    'resnet-v1': [(20, '3,32,32', {}), (8, '1,28,28', {'shortcut': 'C'}),
                  (8, '3,16,16', {'shortcut': 'B', 'act_type': 'prelu'}),
                  (8, '1,28,28', {'shortcut': 'B', 'bn_position': 'after_add',
                                  'shortcut_bn': False})],
    'plain': [(20, '3,32,32', {}), (14, '3,28,28', {'act_type': 'elu'})],
    'resnext': [(20, '3,32,32', {}), (50, '3,64,64', {'num_group': 4, 'bottleneck_width': 4,
                                                      'act_type': 'leaky'})],
}
LARGE = {
    'resnet': [(164, '3,28,28', {}), (50, '3,224,224', {})],
    'resnet-v1': [(1202, '3,32,32', {}), (18, '3,224,224', {}), (50, '3,224,224', {'shortcut': 'A'}),
                  (152, '3,224,224', {}), (50, '3,224,224', {'bn_position': 'after_add'})],
    'plain': [(56, '3,32,32', {}), (34, '3,224,224', {}), (50, '3,160,160', {})],
    'resnext': [(164, '3,32,32', {}), (50, '3,224,224', {}), (101, '3,224,224', {'num_group': 64})],
}
CASES = [(net, *case) for table in (SMALL, LARGE) for net in sorted(table) for case in table[net]]
SMALL_CASES = [(net, *case) for net in sorted(SMALL) for case in SMALL[net]]


def case_id(case):
    net, num_layers, image_shape, options = case
    return '%s-%d-%s%s' % (net, num_layers, image_shape.replace(',', 'x'),
                           ''.join('-%s=%s' % kv for kv in sorted(options.items())))


def build(network, num_layers, image_shape, num_classes=10, **options):
    with mx.name.NameManager():
        return symbols.get_symbol(network, num_classes=num_classes, num_layers=num_layers,
                                  image_shape=image_shape, **options)


def shape_of(image_shape, batch=2):
    return (batch,) + tuple(int(v) for v in image_shape.split(','))


def ops(sym):
    return [node['op'] for node in json.loads(sym.tojson())['nodes']]


def total_macs(sym, image_shape):
    return sum(s.macs for s in model_stats(sym, shape_of(image_shape, 1)))


def test_every_registered_network_is_tested():
    assert {'resnet', 'resnet-v1', 'resnext', 'plain'} <= set(symbols.list_networks())
    assert set(SMALL) == set(LARGE) == set(symbols.list_networks())


# --- golden graph -------------------------------------------------------------------------

RESNEXT_GOLDEN = [e for e in golden_index() if e['network'] == 'resnext']


@pytest.mark.parametrize('entry', RESNEXT_GOLDEN, ids=[e['file'] for e in RESNEXT_GOLDEN])
def test_resnext_defaults_are_the_reference_graph(entry):
    sym = build('resnext', entry['num_layers'], entry['image_shape'], entry['num_classes'],
                num_group=entry['num_group'])
    assert_same_graph(sym, load_golden(entry['file']))
    assert count_params(sym, shape_of(entry['image_shape'])) == entry['num_params']


def test_resnext_32x4d_is_the_default_graph():
    default = build('resnext', 50, '3,224,224', 1000)
    assert build('resnext', 50, '3,224,224', 1000, num_group=32,
                 bottleneck_width=4).tojson() == default.tojson()


# --- the papers' figures ------------------------------------------------------------------

# "Deep Residual Learning", Table 6 (CIFAR-10, option A): millions of parameters.
@pytest.mark.parametrize('num_layers,published', [(20, 0.27), (32, 0.46), (44, 0.66),
                                                  (56, 0.85), (110, 1.7), (1202, 19.4)])
def test_cifar_option_a_parameter_counts(num_layers, published):
    params = count_params(build('resnet-v1', num_layers, '3,32,32', shortcut='A'), (1, 3, 32, 32))
    digits = 2 if published < 1 else 1
    assert round(params / 1e6, digits) == published


@pytest.mark.parametrize('network,num_layers,options,params_m,gflops', [
    ('resnext', 50, {}, 25.0, 4.2),              # ResNeXt paper, Table 1 (32x4d)
    ('resnext', 50, {'num_group': 32, 'bottleneck_width': 4}, 25.0, 4.2),
    ('resnet', 50, {}, 25.5, 4.1),               # ResNeXt paper, Table 1 (ResNet-50)
    ('resnext', 101, {}, 44.2, 7.8),             # ResNeXt paper, Table 3 (~7.8 GFLOPs)
    ('resnet-v1', 18, {}, None, 1.8),            # ResNet paper, Table 1
    ('resnet-v1', 34, {}, None, 3.6),
    ('resnet-v1', 50, {}, None, 3.8),
    ('resnet-v1', 101, {}, None, 7.6),
    ('resnet-v1', 152, {}, None, 11.3),
])
def test_imagenet_figures(network, num_layers, options, params_m, gflops):
    sym = build(network, num_layers, '3,224,224', 1000, **options)
    if params_m is not None:
        assert round(count_params(sym, (1, 3, 224, 224)) / 1e6, 1) == params_m
    assert total_macs(sym, '3,224,224') == pytest.approx(gflops * 1e9, rel=0.05)


# ResNeXt paper, Table 7 (CIFAR-10): ResNeXt-29 8x64d 34.4M, 16x64d 68.1M parameters.
@pytest.mark.parametrize('num_group,bottleneck_width,params_m', [(8, 64, 34.4), (16, 64, 68.1)])
def test_cifar_resnext29_is_the_papers(num_group, bottleneck_width, params_m):
    sym = build('resnext', 29, '3,32,32', 10, num_group=num_group,
                bottleneck_width=bottleneck_width)
    graph = json.loads(sym.tojson())['nodes']
    nodes = {n['name']: n for n in graph if n['op'] != 'null'}
    assert (nodes['conv0']['attrs']['kernel'], nodes['conv0']['attrs']['num_filter']) == \
        ('(3, 3)', '64')
    # the paper's stem: conv0, bn0, relu0 (the reference's CIFAR stem is a bare conv0)
    assert graph[nodes['relu0']['inputs'][0][0]]['name'] == 'bn0'
    assert graph[nodes['bn0']['inputs'][0][0]]['name'] == 'conv0'
    assert 'pool0' not in nodes and 'stage4_unit1_conv1' not in nodes
    for stage in range(3):
        units = [n for n in nodes if n.startswith('stage%d_' % (stage + 1)) and
                 n.endswith('_conv2')]
        assert len(units) == 3
        conv2 = nodes['stage%d_unit1_conv2' % (stage + 1)]['attrs']
        assert (conv2['num_filter'], conv2['num_group']) == (
            str(num_group * bottleneck_width * 2 ** stage), str(num_group))
        assert nodes['stage%d_unit1_conv3' % (stage + 1)]['attrs']['num_filter'] == \
            str(256 * 2 ** stage)
    # within 0.1%: the paper rounds, and ours counts bn_data and the BatchNorms' betas
    assert count_params(sym, (1, 3, 32, 32)) == pytest.approx(params_m * 1e6, rel=1e-3)


def test_reference_cifar_depths_keep_precedence_over_the_resnext29_template():
    # 20 is both 6n+2 and 9n+2: the reference's basic units, no groups
    nodes = json.loads(build('resnext', 20, '3,32,32', 10).tojson())['nodes']
    assert not [n for n in nodes if n.get('attrs', {}).get('num_group', '1') != '1']
    assert 'stage1_unit3_conv2' in {n['name'] for n in nodes}
    with pytest.raises(ValueError, match=r"or the ResNeXt paper's 9n\+2 below 164 \(11, 29"):
        build('resnext', 30, '3,32,32', 10)


# ResNeXt paper, Table 3 (top): ResNet-50 with preserved complexity, ~4.1 GFLOPs, ~25M params.
@pytest.mark.parametrize('num_group,bottleneck_width', [(1, 64), (2, 40), (4, 24), (8, 14),
                                                        (32, 4)])
def test_cardinality_table_keeps_complexity(num_group, bottleneck_width):
    sym = build('resnext', 50, '3,224,224', 1000, num_group=num_group,
                bottleneck_width=bottleneck_width)
    nodes = {n['name']: n['attrs'] for n in json.loads(sym.tojson())['nodes'] if 'attrs' in n}
    for stage in range(4):
        conv2 = nodes['stage%d_unit1_conv2' % (stage + 1)]
        assert conv2['num_filter'] == str(num_group * bottleneck_width * 2 ** stage)
        assert conv2['num_group'] == str(num_group)
    assert count_params(sym, (1, 3, 224, 224)) == pytest.approx(25.0e6, rel=0.03)
    assert total_macs(sym, '3,224,224') == pytest.approx(4.1e9, rel=0.05)


# --- every network: shapes, forward, backward, float16, memonger --------------------------

@pytest.mark.parametrize('case', CASES, ids=[case_id(c) for c in CASES])
def test_output_shape(case):
    network, num_layers, image_shape, options = case
    sym = build(network, num_layers, image_shape, 7, **options)
    _, out_shapes, _ = sym.infer_shape(data=shape_of(image_shape, batch=3))
    assert out_shapes == [(3, 7)]


@pytest.mark.parametrize('case', SMALL_CASES, ids=[case_id(c) for c in SMALL_CASES])
def test_forward_finite_and_backward_reaches_every_argument(case):
    network, num_layers, image_shape, options = case
    sym = build(network, num_layers, image_shape, **options)
    exe = bind(sym, shape_of(image_shape, batch=4))
    probs = exe.forward(is_train=True)[0].asnumpy()
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    exe.backward()
    assert_gradients_reach_every_argument(sym, exe)


@pytest.mark.parametrize('network', symbols.list_networks())
def test_float16_inside_float32_out(network):
    num_layers, image_shape, options = SMALL[network][0]
    sym = build(network, num_layers, image_shape, dtype='float16', **options)
    arg_types, out_types, _ = sym.infer_type(data=np.float32)
    assert out_types == [np.float32]
    types = dict(zip(sym.list_arguments(), arg_types))
    assert types['conv0_weight'] == types['fc1_weight'] == np.float16
    assert ops(sym).count('Cast') == 2


@pytest.mark.parametrize('case', CASES, ids=[case_id(c) for c in CASES])
def test_memonger_tags_one_node_per_unit(case):
    network, num_layers, image_shape, options = case
    sym = build(network, num_layers, image_shape, memonger=True, **options)
    tagged = [name for name, attrs in sym.attr_dict().items()
              if attrs.get('mirror_stage') == 'True']
    units = [n for n in json.loads(sym.tojson())['nodes'] if n['name'].endswith('_conv1')]
    assert len(tagged) == len(units)
    assert not any(attrs.get('mirror_stage') for attrs in
                   build(network, num_layers, image_shape, **options).attr_dict().values())


# --- shortcuts, plain nets, activations, layout --------------------------------------------

def arg_names(sym):
    return set(sym.list_arguments())


@pytest.mark.parametrize('num_layers,image_shape', [(20, '3,32,32'), (56, '3,28,28'),
                                                    (18, '3,224,224'), (50, '3,224,224')])
def test_option_a_adds_no_parameters(num_layers, image_shape):
    option_a = build('resnet-v1', num_layers, image_shape, shortcut='A')
    plain = build('plain', num_layers, image_shape)
    assert arg_names(option_a) == arg_names(plain)
    assert count_params(option_a, shape_of(image_shape)) == count_params(plain, shape_of(image_shape))
    units = [n for n in arg_names(plain) if n.endswith('_conv1_weight')]
    assert ops(option_a).count('elemwise_add') == len(units)


@pytest.mark.parametrize('num_layers,image_shape,projections', [
    (20, '3,32,32', {'A': 0, 'B': 2, 'C': 9}),
    (34, '3,224,224', {'A': 0, 'B': 3, 'C': 16}),
    (50, '3,224,224', {'A': 0, 'B': 4, 'C': 16}),
])
def test_shortcut_options_project_where_the_paper_says(num_layers, image_shape, projections):
    for shortcut in SHORTCUTS:
        sym = build('resnet-v1', num_layers, image_shape, shortcut=shortcut)
        sc = [n for n in arg_names(sym) if n.endswith('_sc_weight')]
        assert len(sc) == projections[shortcut], shortcut


def test_paper_default_shortcut_is_a_on_cifar_and_b_on_imagenet():
    assert build('resnet-v1', 20, '3,32,32').tojson() == \
        build('resnet-v1', 20, '3,32,32', shortcut='A').tojson()
    assert build('resnet-v1', 50, '3,224,224').tojson() == \
        build('resnet-v1', 50, '3,224,224', shortcut='B').tojson()


@pytest.mark.parametrize('case', [c for c in CASES if c[0] == 'plain'],
                         ids=[case_id(c) for c in CASES if c[0] == 'plain'])
def test_plain_nets_have_no_adds_and_the_same_layers(case):
    _, num_layers, image_shape, options = case
    plain = build('plain', num_layers, image_shape, **options)
    assert 'elemwise_add' not in ops(plain)
    residual = build('resnet-v1', num_layers, image_shape, shortcut='B', **options)
    assert arg_names(plain) == {n for n in arg_names(residual) if '_sc' not in n}


def batchnorm_inputs(sym):
    """{BatchNorm node name: (op, name) of the node it normalises}."""
    nodes = json.loads(sym.tojson())['nodes']
    return {n['name']: (nodes[n['inputs'][0][0]]['op'], nodes[n['inputs'][0][0]]['name'])
            for n in nodes if n['op'] == 'BatchNorm'}


def add_inputs(sym):
    """[(op, name) of both inputs] of each elemwise_add."""
    nodes = json.loads(sym.tojson())['nodes']
    return [[(nodes[i]['op'], nodes[i]['name']) for i, _, _ in n['inputs']]
            for n in nodes if n['op'] == 'elemwise_add']


@pytest.mark.parametrize('num_layers,image_shape,last', [(20, '3,32,32', 'conv2'),
                                                         (50, '3,224,224', 'conv3')])
def test_bn_after_add_normalises_each_sum_and_nothing_else_moves(num_layers, image_shape, last):
    paper = build('resnet-v1', num_layers, image_shape, shortcut='A')
    moved = build('resnet-v1', num_layers, image_shape, shortcut='A', bn_position='after_add')
    units = [n[:-len('_conv1_weight')] for n in arg_names(paper) if n.endswith('_conv1_weight')]
    bns = batchnorm_inputs(moved)
    for unit in units:
        assert bns[unit + '_bn_add'][0] == 'elemwise_add'
        assert unit + '_bn' + last[-1] not in bns       # the branch ends with its conv
        assert bns[unit + '_bn1'] == ('Convolution', unit + '_conv1')
    for inputs in add_inputs(moved):
        assert ('Convolution', inputs[0][1]) == inputs[0] and inputs[0][1].endswith(last)
    for inputs in add_inputs(paper):
        assert inputs[0][0] == 'BatchNorm'
    # one BN per unit moved, same channels: the same parameter count
    assert len(bns) == len(batchnorm_inputs(paper))
    assert count_params(moved, shape_of(image_shape)) == count_params(paper, shape_of(image_shape))


def test_shortcut_bn_false_leaves_each_projection_without_its_bn():
    with_bn = build('resnet-v1', 20, '3,32,32', shortcut='B')
    without = build('resnet-v1', 20, '3,32,32', shortcut='B', shortcut_bn=False)
    projections = sorted(n[:-len('_weight')] for n in arg_names(with_bn)
                         if n.endswith('_sc_weight'))
    assert projections == ['stage2_unit1_sc', 'stage3_unit1_sc']
    assert {batchnorm_inputs(with_bn)[p + '_bn'] for p in projections} == \
        {('Convolution', p) for p in projections}
    assert not [n for n in batchnorm_inputs(without) if n.endswith('_sc_bn')]
    assert sorted(i[1] for i in sum(add_inputs(without), []) if i[1].endswith('_sc')) == \
        projections
    # gamma and beta of 32 + 64 channels
    assert count_params(with_bn, (1, 3, 32, 32)) - count_params(without, (1, 3, 32, 32)) == \
        2 * (32 + 64)


def test_cifar_layout_at_32_and_28_px():
    for size in (32, 28):
        sym = build('resnet-v1', 56, '3,%d,%d' % (size, size))
        internals = sym.get_internals()
        _, shapes, _ = internals.infer_shape(data=(1, 3, size, size))
        shapes = dict(zip(internals.list_outputs(), shapes))
        assert shapes['relu0_output'] == (1, 16, size, size)
        half, quarter = (size + 1) // 2, (size + 3) // 4
        assert shapes['stage1_unit9_relu_output'] == (1, 16, size, size)
        assert shapes['stage2_unit9_relu_output'] == (1, 32, half, half)
        assert shapes['stage3_unit9_relu_output'] == (1, 64, quarter, quarter)


@pytest.mark.parametrize('network', ['resnet', 'resnet-v1', 'plain', 'resnext'])
@pytest.mark.parametrize('act_type', ACT_TYPES)
def test_activation_types(network, act_type):
    num_layers, image_shape, _ = SMALL[network][0]
    sym = build(network, num_layers, image_shape, act_type=act_type)
    relu = build(network, num_layers, image_shape)
    extra = arg_names(sym) - arg_names(relu)
    nodes = json.loads(sym.tojson())['nodes']
    acts = [n for n in nodes if n['op'] in ('Activation', 'LeakyReLU')]
    assert {n['op'] for n in acts} == {'Activation' if act_type == 'relu' else 'LeakyReLU'}
    if act_type == 'prelu':
        assert extra == {n['name'] + '_gamma' for n in acts}
        first = {'resnext': 'stage1_unit1_relu1', 'resnet': 'stage1_unit1_relu1'}
        assert sym.attr_dict()[first.get(network, 'relu0') + '_gamma']['__init__'] == \
            mx.init.Constant(0.25).dumps()
    else:
        assert not extra
        assert all(n.get('attrs', {}).get('act_type', 'relu') == act_type for n in acts)


def test_prelu_trains_its_slopes():
    sym = build('resnet-v1', 8, '3,16,16', act_type='prelu')
    exe = bind(sym, (4, 3, 16, 16))
    assert np.allclose(exe.arg_dict['stage1_unit1_relu_gamma'].asnumpy(), 0.25)
    exe.forward(is_train=True)
    exe.backward()
    assert np.any(exe.grad_dict['stage1_unit1_relu_gamma'].asnumpy() != 0)


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize('network,kwargs,expected', [
    ('resnet-v2', {}, r"unknown network 'resnet-v2': choose one of plain, resnet, resnet-v1, "
                      r"resnext$"),
    ('resnext', {'shortcut': 'A'}, r"network 'resnext' has no option shortcut: it takes .*"
                                   r"num_group, bottleneck_width, act_type"),
    ('resnet', {'shortcut': 'A'}, r"network 'resnet' has no option shortcut"),
    ('plain', {'shortcut': 'A'}, r"network 'plain' has no option shortcut"),
    ('resnet-v1', {'num_group': 2}, r"network 'resnet-v1' has no option num_group: it takes "
                                    r".*shortcut, act_type"),
    ('resnet-v1', {'shortcut': 'D'}, r"shortcut='D' is not valid: choose one of A, B, C$"),
    ('resnet-v1', {'bn_position': 'before_add'},
     r"bn_position='before_add' is not valid: choose one of branch, after_add$"),
    ('resnet-v1', {'shortcut_bn': 'no'}, r"shortcut_bn='no' is not valid: expected True or False"),
    ('plain', {'bn_position': 'after_add'}, r"network 'plain' has no option bn_position"),
    ('plain', {'act_type': 'gelu'}, r"act_type='gelu' is not valid: choose one of relu, prelu, "
                                    r"leaky, elu$"),
    ('resnext', {'act_type': 'tanh'}, r"act_type='tanh' is not valid"),
    ('resnext', {'num_layers': 18, 'bottleneck_width': 4},
     r"bottleneck_width=4 needs a bottleneck depth: num_layers=18 builds basic units"),
    ('resnext', {'num_group': 3}, r"num_group=3 does not divide the bottleneck widths "
                                  r"\[128, 256, 512, 1024\]"),
    ('resnext', {'bottleneck_width': 0}, r"bottleneck_width=0 is not valid: expected a positive"),
    ('resnet-v1', {'image_shape': '3,33,33', 'num_layers': 56},
     r"num_layers=56 is not a depth resnet-v1 builds for image_shape 3,33,33: .*56 is a CIFAR "
     r"depth: use a height of at most 32"),
    ('resnet-v1', {'image_shape': '3,32,32', 'num_layers': 18},
     r"num_layers=18 is not a depth resnet-v1 builds for image_shape 3,32,32: inputs up to 32 px "
     r"high use the CIFAR layout, which takes 6n\+2"),
    ('resnext', {'image_shape': '3,32,32', 'num_layers': 34}, r"num_layers=34 is not a depth "
                                                               r"resnext builds .* up to 32 px"),
])
def test_clear_errors(network, kwargs, expected):
    args = dict(num_classes=1000, num_layers=50, image_shape='3,224,224')
    args.update(kwargs)
    with pytest.raises(ValueError, match=expected):
        symbols.get_symbol(network, **args)
