"""Loading a checkpoint for inference and feeding it as training fed it.

Shared by the tools (`score`, `predict`, `quantize`, `export`): the inference graph of a
checkpoint, its input channels and classes, the preprocessing flags with train_resnet's
defaults, validation iterators, and forward passes that drop the last batch's padding.
"""
import argparse
import collections
import contextlib
import json
import os

import mxnet as mx
import numpy as np

from . import UsageError, checkpoint
from .data import (BASE_DEFAULTS, DATASET_PRESETS, count_records, default_idx, normalisation,
                   record_iter)


def add_model_args(parser):
    model = parser.add_argument_group('Model', 'a checkpoint written by train_resnet.py')
    model.add_argument('--model', required=True,
                       help='checkpoint prefix (PREFIX-symbol.json, PREFIX-NNNN.params)')
    model.add_argument('--epoch', type=int, required=True, help='checkpoint number N')
    return model


def add_preprocess_args(parser):
    pre = parser.add_argument_group(
        'Preprocessing', 'as in training; explicit flags, then --preset, then the defaults '
        'of train_resnet.py')
    pre.add_argument('--preset', choices=sorted(DATASET_PRESETS),
                     help='dataset preset the model was trained with (default: fashion-mnist '
                          'for a 1-channel model, none otherwise)')
    pre.add_argument('--rgb-mean', type=str, help='per-channel mean subtracted in training')
    pre.add_argument('--rgb-std', type=str, help='per-channel std divided by in training')
    pre.add_argument('--image-shape', type=str, help='network input shape, "C,H,W"')
    return pre


def load_model(prefix, epoch):
    """(inference symbol, arg_params, aux_params) of checkpoint `epoch` of `prefix`.

    The inference symbol ends in `softmax` over the logits instead of `SoftmaxOutput`:
    the same forward output, without the label argument.
    """
    symbol_file = '%s-symbol.json' % prefix
    params_file = '%s-%04d.params' % (prefix, epoch)
    if not os.path.isfile(symbol_file):
        raise UsageError('--model %s: no symbol file %s' % (prefix, symbol_file))
    if not os.path.isfile(params_file):
        found = sorted(checkpoint.available(prefix))
        raise UsageError('--epoch %d: no checkpoint %s%s' % (
            epoch, params_file, ' (checkpoints of %s: %s)' % (prefix, ', '.join(map(str, found)))
            if found else ''))
    try:
        sym = mx.sym.load(symbol_file)
    except mx.base.MXNetError:
        raise UsageError('%s cannot be read: not an MXNet symbol file' % symbol_file)
    try:
        saved = mx.nd.load(params_file)
    except mx.base.MXNetError:
        raise UsageError('checkpoint %s cannot be read: the file is damaged' % params_file)
    arg_params = {k[4:]: v for k, v in saved.items() if k.startswith('arg:')}
    aux_params = {k[4:]: v for k, v in saved.items() if k.startswith('aux:')}
    return inference_symbol(sym), arg_params, aux_params


def inference_symbol(sym):
    """`sym` with a SoftmaxOutput head replaced by softmax over the same logits."""
    head = json.loads(sym.tojson())['nodes'][-1]
    if head['op'] == 'SoftmaxOutput':
        return mx.sym.softmax(sym.get_children()[0], axis=1, name=head['name'])
    return sym


def input_channels(arg_params):
    """Input channels of the first convolution (the stem), from its weight's shape."""
    weights = [(k, v) for k, v in arg_params.items()
               if k.endswith('_weight') and len(v.shape) == 4]
    if not weights:
        raise UsageError('the checkpoint has no convolution weights: not an image classifier')
    stem = 'conv0_weight' if 'conv0_weight' in arg_params else sorted(weights)[0][0]
    return int(arg_params[stem].shape[1])


def num_classes(sym, image_shape):
    _, out_shapes, _ = sym.infer_shape(data=(1,) + tuple(image_shape))
    return int(out_shapes[0][1])


def resolve_preprocess(args, channels):
    """Fill --preset/--rgb-mean/--rgb-std/--image-shape; returns image_shape (C, H, W)."""
    if args.preset is None and channels == 1:
        args.preset = 'fashion-mnist'
    preset = DATASET_PRESETS.get(args.preset, {})
    for key in ('rgb_mean', 'rgb_std', 'image_shape'):
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key, BASE_DEFAULTS[key]))
    try:
        image_shape = tuple(int(v) for v in args.image_shape.split(','))
    except ValueError:
        raise UsageError('--image-shape %r: expected "C,H,W"' % args.image_shape)
    if len(image_shape) != 3 or min(image_shape) <= 0:
        raise UsageError('--image-shape %r: expected three positive numbers "C,H,W"'
                         % args.image_shape)
    if image_shape[0] != channels:
        raise UsageError('--image-shape %s: the model takes %d-channel images'
                         % (args.image_shape, channels))
    args.mean, args.std = (np.array(v, np.float32) for v in normalisation(args, channels))
    return image_shape


def val_iter(args, image_shape, path, idx_path='', batch_size=None):
    """A fresh, unshuffled, unaugmented ImageRecordIter over `path` (one per pass: after a
    reset its round-robin padding shifts the data)."""
    idx = default_idx(path, idx_path)
    count_records(path, idx, flag='--data-val')
    it_args = argparse.Namespace(rgb_mean=args.rgb_mean, rgb_std=args.rgb_std,
                                 batch_size=batch_size or args.batch_size,
                                 data_nthreads=getattr(args, 'data_nthreads', 2))
    return record_iter(it_args, image_shape, path, idx, train=False)


@contextlib.contextmanager
def environment(**variables):
    """Set environment variables for a block (MXNet reads many of them when binding)."""
    old = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def bind_module(sym, arg_params, aux_params, data_shape, ctx=None, backend=None,
                dtype='float32'):
    """An inference Module over `sym` with the given parameters; `backend` sets
    MXNET_SUBGRAPH_BACKEND for the bind (None: MXNet's default; MXNet 1.9.1's CPU build
    applies the MKLDNN subgraph backend to every inference bind unless it is NONE)."""
    mod = mx.mod.Module(sym, data_names=('data',), label_names=None,
                        context=ctx or mx.cpu())
    binding = environment(MXNET_SUBGRAPH_BACKEND=backend) if backend \
        else contextlib.nullcontext()
    with binding:
        mod.bind([mx.io.DataDesc('data', data_shape, dtype)], for_training=False)
    mod.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
    return mod


def predict_iter(mod, data_iter, flip=False):
    """(probabilities, labels) over a whole iterator, without the last batch's padding;
    `flip`: the mean of the probabilities of each image and of its horizontal mirror."""
    probs, labels = [], []
    for batch in data_iter:
        mod.forward(batch, is_train=False)
        keep = batch.data[0].shape[0] - (batch.pad or 0)
        prob = mod.get_outputs()[0].asnumpy()[:keep]
        if flip:
            mod.forward(mx.io.DataBatch([mx.nd.flip(batch.data[0], axis=3)]), is_train=False)
            prob = (prob + mod.get_outputs()[0].asnumpy()[:keep]) / 2
        probs.append(prob)
        labels.append(batch.label[0].asnumpy()[:keep])
    return np.concatenate(probs), np.concatenate(labels).astype(np.int64)


def read_synset(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def default_synset(synset, rec_path=None):
    """Names from --synset, else from synset.txt beside the .rec, else None."""
    if synset:
        if not os.path.isfile(synset):
            raise UsageError('--synset %s: no such file' % synset)
        return read_synset(synset)
    if rec_path:
        beside = os.path.join(os.path.dirname(os.path.abspath(rec_path)), 'synset.txt')
        if os.path.isfile(beside):
            return read_synset(beside)
    return None


def shortcuts_as_convolutions(sym, arg_params, image_shape):
    """`sym` with every option-A shortcut (resnet-v1: max-pool 1x1 with stride, zeros_like,
    concat, slice_like) computed by one 1x1 convolution whose fixed weights copy the input
    channels and add zero ones; (symbol, arg_params with those weights).

    The same function, as ops that MKLDNN can fuse and quantize: in an INT8 graph the four
    float32 ops cost a dequantize and a quantize each side. Where the copied input cannot be
    negative (a ReLU's output, or max-pooled from one) a ReLU follows the convolution: no
    change in float32, but INT8 then stores the shortcut as uint8 rather than int8, twice
    the resolution (ResNet-56 on Fashion-MNIST: INT8 top-1 86.75% with int8 shortcuts,
    within 0.1 point of float32 with uint8 ones). Graphs without such shortcuts are returned
    unchanged."""
    graph = json.loads(sym.tojson())
    nodes = graph['nodes']
    internals = sym.get_internals()
    _, shapes, _ = internals.infer_shape(data=(1,) + tuple(image_shape))
    channels = {name[:-len('_output')]: shape[1]
                for name, shape in zip(internals.list_outputs(), shapes) if len(shape) == 4}
    arg_params = dict(arg_params)
    consumers = collections.Counter(i for node in nodes for i, _, _ in node['inputs'])
    changed = False
    for node in list(nodes):
        if node['op'] != 'slice_like':
            continue
        (concat_id, _, _), (body_id, _, _) = node['inputs'][:2]
        concat = nodes[concat_id]
        if concat['op'] != 'Concat' or len(concat['inputs']) != 2:
            continue
        (source_id, _, _), (zeros_id, _, _) = concat['inputs']
        if nodes[zeros_id]['op'] != 'zeros_like' or nodes[zeros_id]['inputs'][0][0] != body_id \
                or consumers[concat_id] != 1:
            continue
        stride = '(1, 1)'
        pool = nodes[source_id]
        if pool['op'] == 'Pooling' and pool['attrs'].get('kernel') == '(1, 1)' \
                and pool['attrs'].get('pool_type') == 'max':
            stride = pool['attrs'].get('stride', stride)
            source_id = pool['inputs'][0][0]
        in_channels = channels[nodes[source_id]['name']]
        out_channels = channels[nodes[body_id]['name']]
        weight_name = node['name'] + '_weight'
        weight = np.zeros((out_channels, in_channels, 1, 1), np.float32)
        keep = min(in_channels, out_channels)
        weight[np.arange(keep), np.arange(keep)] = 1
        arg_params[weight_name] = mx.nd.array(weight)
        # The zeros_like node becomes the weight and the Concat the convolution: they precede
        # this node, so every node still follows its inputs.
        nodes[zeros_id] = {'op': 'null', 'name': weight_name, 'inputs': []}
        conv = {'op': 'Convolution', 'inputs': [[source_id, 0, 0], [zeros_id, 0, 0]],
                'attrs': {'kernel': '(1, 1)', 'stride': stride, 'pad': '(0, 0)',
                          'num_filter': str(out_channels), 'no_bias': 'True'}}
        if _non_negative(nodes, source_id):
            nodes[concat_id] = dict(conv, name=node['name'] + '_conv')
            node.update(op='Activation', inputs=[[concat_id, 0, 0]], attrs={'act_type': 'relu'})
        else:
            node.update(conv)
        changed = True
    if not changed:
        return sym, arg_params
    return mx.sym.load_json(json.dumps(_without_unused_nodes(graph))), arg_params


def batchnorms_as_convolutions(sym, arg_params, aux_params):
    """`sym` with every BatchNorm that MKLDNN cannot fold into a convolution before it
    computed by a depthwise 1x1 convolution with bias (the same per-channel affine map of
    inference); (symbol, arg_params with the new weights and biases).

    In the pre-activation ResNet the BatchNorm that starts each unit (and `bn_data`, and the
    last `bn1`) reads a sum, not a convolution, so the fused graph keeps it and the ReLU
    after it as two float32 ops, and INT8 dequantizes and quantizes around them. As a
    convolution it fuses with that ReLU and quantizes. The convolution keeps the BatchNorm's
    name; its weight and bias are `<name>_weight` and `<name>_bias`. BatchNorms that follow a
    convolution they alone read are left for MKLDNN to fold."""
    graph = json.loads(sym.tojson())
    nodes = graph['nodes']
    consumers = collections.Counter(i for node in nodes for i, _, _ in node['inputs'])
    # a BatchNorm whose batch mean or variance (outputs 1, 2) is read stays as it is
    statistics_read = {i for node in nodes for i, k, _ in node['inputs'] if k} | {
        i for i, k, _ in graph['heads'] if k}
    values = dict(arg_params, **aux_params)
    arg_params = dict(arg_params)
    changed = False
    for node_id, node in enumerate(nodes):
        attrs = node.get('attrs', {})
        if node['op'] != 'BatchNorm' or node_id in statistics_read \
                or int(attrs.get('axis', '1')) != 1:
            continue
        (source_id, _, _), (gamma_id, _, _), (beta_id, _, _), (mean_id, _, _), \
            (var_id, _, _) = node['inputs']
        if nodes[source_id]['op'] == 'Convolution' and consumers[source_id] == 1:
            continue
        names = [nodes[i]['name'] for i in (gamma_id, beta_id, mean_id, var_id)]
        if not all(n in values for n in names):
            raise UsageError('BatchNorm %s: no values for %s' % (
                node['name'], ', '.join(n for n in names if n not in values)))
        gamma, beta, mean, var = (values[n].asnumpy().astype(np.float64) for n in names)
        if attrs.get('fix_gamma', 'True') in ('True', 'true', '1'):
            gamma = np.ones_like(gamma)
        scale = gamma / np.sqrt(var + float(attrs.get('eps', '0.001')))
        weight_name, bias_name = node['name'] + '_weight', node['name'] + '_bias'
        arg_params[weight_name] = mx.nd.array(scale.reshape(-1, 1, 1, 1), dtype=np.float32)
        arg_params[bias_name] = mx.nd.array(beta - mean * scale, dtype=np.float32)
        # gamma's and beta's nodes become the weight and the bias (they precede this node)
        nodes[gamma_id] = {'op': 'null', 'name': weight_name, 'inputs': []}
        nodes[beta_id] = {'op': 'null', 'name': bias_name, 'inputs': []}
        channels = str(len(scale))
        node.update(op='Convolution', inputs=[[source_id, 0, 0], [gamma_id, 0, 0],
                                              [beta_id, 0, 0]],
                    attrs={'kernel': '(1, 1)', 'stride': '(1, 1)', 'pad': '(0, 0)',
                           'num_filter': channels, 'num_group': channels, 'no_bias': 'False'})
        changed = True
    if not changed:
        return sym, arg_params
    return mx.sym.load_json(json.dumps(_without_unused_nodes(graph))), arg_params


def _non_negative(nodes, i):
    """Whether node `i` (tojson() form) outputs a ReLU's values, possibly max-pooled."""
    node = nodes[i]
    attrs = node.get('attrs', {})
    if node['op'] == 'Activation':
        return attrs.get('act_type') == 'relu'
    if node['op'] == 'Pooling' and attrs.get('pool_type', 'max') == 'max':
        return _non_negative(nodes, node['inputs'][0][0])
    return False


def _without_unused_nodes(graph):
    """`graph` (tojson() form, every node after its inputs) without the nodes its heads do
    not use."""
    nodes = graph['nodes']
    used = [False] * len(nodes)
    for i, _, _ in graph['heads']:
        used[i] = True
    for i in reversed(range(len(nodes))):
        if used[i]:
            for j, _, _ in nodes[i]['inputs']:
                used[j] = True
    new_id = {}
    for i in range(len(nodes)):
        if used[i]:
            new_id[i] = len(new_id)
    kept = [dict(nodes[i], inputs=[[new_id[j], k, v] for j, k, v in nodes[i]['inputs']])
            for i in new_id]
    return {'nodes': kept,
            'arg_nodes': [new_id[i] for i in new_id if nodes[i]['op'] == 'null'],
            'heads': [[new_id[i], k, v] for i, k, v in graph['heads']],
            'attrs': graph.get('attrs', {})}
