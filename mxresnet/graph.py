"""Graph rewrites: each returns a graph that computes the same function (up to float
rounding) under the same node names, so saved weights load into it unchanged.

- `training_graph`: the graph the executor trains (faster CPU kernels);
- `soft_target_loss`: the training head for probability-vector targets (mixup, CutMix,
  distillation), the same logits and parameters;
- `inference_symbol`: the softmax head without a label, for inference and export;
- `shortcuts_as_convolutions`, `batchnorms_as_convolutions`: ops that MKLDNN fuses and
  quantizes (tools/quantize.py).
Checkpoints keep the graph as built, so saved graphs stay the reference ones.
`no_decay_names` and `residual_branch_ends` name the parameters of --no-wd and
--last-gamma.
"""
import collections
import json

import mxnet as mx
import numpy as np

from .errors import UsageError


def training_graph(symbol, residual_sum='add_n', global_pool='mean', group_channels=0,
                   data_shape=None):
    """The graph the executor trains: `symbol` with up to three rewrites, each computing the
    same function under the same node names, parameters and user attributes; only the
    operators' CPU kernels differ (measured in docs/training.md, "Training speed on the CPU"):

    - residual_sum='add_n': each `elemwise_add` (the residual sums) is computed by `add_n`,
      which hands its output gradient to both inputs as is, where elemwise_add's backward
      copies it into two new arrays, a reorder each with MKLDNN layouts.
    - global_pool='mean': each global average `Pooling` is computed by `mean` over the
      spatial axes (kept as 1x1). MXNet 1.9.1's CPU backward of that pooling is slow, and the
      gradient it returns sends the BatchNorm below onto a slow path too (in the
      pre-activation graph; the post-activation resnet-v1 does not hit it).
    - group_channels=N: each grouped `Convolution` whose groups have fewer than N output
      channels (ResNeXt's first stage: 4 of 32x4d) runs with k times fewer groups of k times
      the channels, its weight the block-diagonal matrix of the k groups it merges
      (`merged_group_weight`). MKLDNN's fast kernels take groups of whole SIMD blocks (8
      channels with AVX2); smaller ones run on a slow im2col path. Needs `data_shape`
      (N, C, H, W): the merged weights' shapes are no longer inferable from the data.

    'elemwise_add', 'pooling' and 0 keep the graph as built. Checkpoints keep `symbol`, so
    saved graphs stay the reference ones.
    """
    graph = json.loads(symbol.tojson())
    changed = False
    merged = []
    for node_id, node in enumerate(graph['nodes']):
        attrs = node.get('attrs', {})
        if residual_sum == 'add_n' and node['op'] == 'elemwise_add':
            node['op'] = 'add_n'
            node['attrs'] = dict(attrs, num_args='2')
            changed = True
        elif global_pool == 'mean' and node['op'] == 'Pooling' \
                and attrs.get('global_pool') == 'True' and attrs.get('pool_type') == 'avg':
            node['op'] = 'mean'
            user = {k: v for k, v in attrs.items() if k.startswith('__')}
            node['attrs'] = dict(user, axis='(2, 3)', keepdims='True')
            changed = True
        elif group_channels and node['op'] == 'Convolution':
            groups = int(attrs.get('num_group', '1'))
            factor = group_merge_factor(groups, int(attrs['num_filter']) // groups,
                                        group_channels)
            if factor > 1:
                merged.append((node_id, groups, factor))
    if merged:
        if data_shape is None:
            raise ValueError('training_graph: group_channels=%d merges groups of %s and needs '
                             'data_shape' % (group_channels, graph['nodes'][merged[0][0]]['name']))
        shapes = dict(zip(symbol.list_arguments(),
                          symbol.infer_shape(data=tuple(data_shape))[0]))
        graph = _with_merged_groups(graph, merged, shapes)
    return mx.sym.load_json(json.dumps(graph)) if changed or merged else symbol


def group_merge_factor(groups, channels, group_channels):
    """The smallest k dividing `groups` for which k groups of `channels` make a whole number
    of blocks of `group_channels` channels; 1 when they already do or no k does."""
    if channels % group_channels == 0:
        return 1
    for factor in range(2, groups + 1):
        if groups % factor == 0 and (factor * channels) % group_channels == 0:
            return factor
    return 1


def merged_group_weight(weight, groups, factor):
    """The weight of a `groups`-group convolution as the weight of one with groups/factor
    groups: each merged group's (factor*out, factor*in) matrix holds its factor groups on
    the diagonal and zeros elsewhere, so the convolution computes the same function and the
    gradient reaches `weight` through the diagonal blocks only."""
    # (groups*out, in, kh, kw) -> (groups, out, 1, in, kh, kw)
    blocks = mx.sym.expand_dims(mx.sym.reshape(weight, shape=(-4, groups, -1, -2)), axis=2)
    # mask[g, 0, j, 0, 0, 0] = 1 where input block j of g's merged group is g's own
    mask = mx.sym.reshape(mx.sym.one_hot(mx.sym.arange(0, groups) % factor, depth=factor),
                          shape=(groups, 1, factor, 1, 1, 1))
    # (groups, out, factor, in, kh, kw) -> (groups*out, factor*in, kh, kw)
    return mx.sym.reshape(mx.sym.broadcast_mul(blocks, mask), shape=(-3, -3, -2))


def _with_merged_groups(graph, merged, shapes):
    """`graph` (tojson() form) with each (node id, groups, factor) of `merged` a convolution
    of groups/factor groups over `merged_group_weight` of its weight; the weights' variables
    carry their shapes from `shapes` ({argument: shape})."""
    nodes = graph['nodes']
    factors = {node_id: (groups, factor) for node_id, groups, factor in merged}
    new_id, kept = {}, []
    for node_id, node in enumerate(nodes):
        node = dict(node, inputs=[[new_id[i], k, v] for i, k, v in node['inputs']])
        if node_id in factors:
            groups, factor = factors[node_id]
            weight_id, _, _ = nodes[node_id]['inputs'][1]
            weight_node = kept[new_id[weight_id]]
            weight_node['attrs'] = dict(weight_node.get('attrs', {}),
                                        __shape__=str(tuple(shapes[weight_node['name']])))
            weight = mx.sym.Variable(weight_node['name'])
            built = json.loads(merged_group_weight(weight, groups, factor).tojson())
            # the built nodes but the weight variable go before this convolution
            offset = {}
            for i, extra in enumerate(built['nodes']):
                if extra['op'] == 'null':
                    offset[i] = new_id[weight_id]
                    continue
                offset[i] = len(kept)
                kept.append(dict(extra, name='%s_merged_weight%d' % (node['name'], i),
                                 inputs=[[offset[j], k, v] for j, k, v in extra['inputs']]))
            node['inputs'][1] = [offset[built['heads'][0][0]], 0, 0]
            node['attrs'] = dict(node['attrs'], num_group=str(groups // factor))
        new_id[node_id] = len(kept)
        kept.append(node)
    return {'nodes': kept,
            'arg_nodes': [i for i, node in enumerate(kept) if node['op'] == 'null'],
            'heads': [[new_id[i], k, v] for i, k, v in graph['heads']],
            'attrs': graph.get('attrs', {})}


def with_loss_head(sym, grad_scale=1.0, smooth_alpha=0.0):
    """`sym` whose SoftmaxOutput head scales the gradient (static loss scaling) and smooths
    the labels; the same head, same name, when both are at their defaults."""
    if grad_scale == 1.0 and smooth_alpha == 0.0:
        return sym
    logits = sym.get_children()[0]
    return mx.sym.SoftmaxOutput(data=logits, name='softmax', grad_scale=grad_scale,
                                smooth_alpha=smooth_alpha)


def logits(sym):
    """The logits under the softmax head (SoftmaxOutput or softmax) of `sym`."""
    head = json.loads(sym.tojson())['nodes'][-1]
    if head['op'] not in ('SoftmaxOutput', 'softmax'):
        raise UsageError('the graph ends in %s %s, not a softmax' % (head['op'], head['name']))
    return sym.get_children()[0]


def inference_symbol(sym):
    """`sym` with a SoftmaxOutput head replaced by softmax over the same logits."""
    head = json.loads(sym.tojson())['nodes'][-1]
    if head['op'] == 'SoftmaxOutput':
        return mx.sym.softmax(sym.get_children()[0], axis=1, name=head['name'])
    return sym


def soft_target_loss(sym, grad_scale=1.0, temperature=None, hard_weight=1.0):
    """The training graph of `sym` (SoftmaxOutput head) for targets that are probability
    vectors: outputs [the softmax probabilities (no gradient), the loss of each image].

    Its labels, each (batch, classes): `softmax_label`, the targets t (one-hot, smoothed or
    mixed); with a `temperature` T, also `teacher_label`, a teacher's probabilities q at T.
    The loss of an image with logits z is -sum(t log softmax(z)), and with a teacher
    hard_weight * that + (1 - hard_weight) * T^2 * -sum(q log softmax(z / T)), gluon-cv's
    DistillationSoftmaxCrossEntropyLoss; gradients are summed over the batch and scaled by
    `grad_scale` (the loss scale), as SoftmaxOutput's. The same parameters as `sym`, whose
    checkpoints keep their SoftmaxOutput graph."""
    z = logits(sym)

    def cross_entropy(label, log_p, name):
        product = mx.sym.elemwise_mul(label, log_p, name=name + '_product')
        return mx.sym.negative(mx.sym.sum(product, axis=1, name=name + '_sum'), name=name)

    target = mx.sym.Variable('softmax_label')
    loss = cross_entropy(target, mx.sym.log_softmax(z, axis=1, name='loss_log_softmax'),
                         'loss_target')
    if temperature is not None:
        teacher = mx.sym.Variable('teacher_label')
        tempered = mx.sym.log_softmax(z, axis=1, temperature=temperature,
                                      name='loss_tempered_log_softmax')
        soft = cross_entropy(teacher, tempered, 'loss_teacher')
        with mx.name.NameManager():  # the scalar products' names, counted from 0
            loss = mx.sym.elemwise_add(hard_weight * loss,
                                       (1 - hard_weight) * temperature ** 2 * soft,
                                       name='loss_distillation')
    probabilities = mx.sym.BlockGrad(mx.sym.softmax(z, axis=1, name='softmax'),
                                     name='softmax_probabilities')
    return mx.sym.Group([probabilities, mx.sym.MakeLoss(loss, grad_scale=grad_scale,
                                                        name='loss')])


def no_decay_names(sym):
    """The parameters --no-wd exempts from weight decay: every BatchNorm's gamma and beta and
    every bias (gluon-cv's '.*gamma|.*beta|.*bias', found by operator, not by name)."""
    graph = json.loads(sym.tojson())
    nodes = graph['nodes']
    names = []
    for node in nodes:
        inputs = [nodes[i]['name'] for i, _, _ in node['inputs']]
        if node['op'] == 'BatchNorm':
            names += inputs[1:3]
        elif node['op'] in ('Convolution', 'FullyConnected') and len(inputs) == 3:
            names.append(inputs[2])
    return sorted(set(names))


def residual_branch_ends(sym):
    """The parameters --last-gamma starts at zero, so that each residual unit starts as its
    shortcut: of each residual sum (elemwise_add or add_n, the branch its first input), the
    gamma of the branch's last BatchNorm (post-activation units: resnet-v1, resnext), or the
    weight of its last convolution where the branch ends in one (pre-activation units:
    resnet). Deliberate deviation: the pre-activation branch has no BatchNorm after its last
    convolution, and zeroing the one before would leave the branch dead (its ReLU passes no
    gradient at 0); zeroing that convolution is timm's ResNetV2 zero_init_last. Empty for a
    graph without residual sums (plain)."""
    nodes = json.loads(sym.tojson())['nodes']
    names = []
    for node in nodes:
        if node['op'] in ('elemwise_add', 'add_n') and len(node['inputs']) == 2:
            branch = nodes[node['inputs'][0][0]]
            if branch['op'] not in ('BatchNorm', 'Convolution'):
                raise ValueError('residual sum %s: its branch ends in %s %s, neither a '
                                 'BatchNorm nor a convolution' % (node['name'], branch['op'],
                                                                 branch['name']))
            names.append(nodes[branch['inputs'][1][0]]['name'])
    return names


def shortcuts_as_convolutions(sym, arg_params, image_shape):
    """`sym` with every option-A shortcut (resnet-v1: max-pool 1x1 with stride, zeros_like,
    concat, slice_like) computed by one 1x1 convolution whose fixed weights copy the input
    channels and add zero ones; (symbol, arg_params with those weights).

    The same function, as ops that MKLDNN can fuse and quantize: in an INT8 graph the four
    float32 ops cost a dequantize and a quantize each side. Where the copied input cannot be
    negative (a ReLU's output, or max-pooled from one) a ReLU follows the convolution: no
    change in float32, but INT8 then stores the shortcut as uint8 rather than int8, twice
    the resolution (docs/inference.md has the accuracy it recovers). Graphs without such
    shortcuts are returned unchanged."""
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
