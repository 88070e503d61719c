"""Fine-tuning: starting a network from the weights of a pretrained checkpoint, with its
classifier new when the class count changes, early stages frozen and the backbone at a
lower learning rate (train_resnet.py's --pretrained, --freeze-stages, --backbone-lr-mult;
MXNet's fine-tune.py names --pretrained-model, --pretrained-epoch, --layer-before-fullc).
"""
import json
import logging
import os
import re

from . import checkpoint
from .errors import UsageError

_STAGE = re.compile(r'^stage(\d+)_')


def parse_pretrained(args):
    """(prefix, epoch) of the pretrained checkpoint of the flags, or None: --pretrained
    PREFIX[:EPOCH], or --pretrained-model PREFIX with --pretrained-epoch N; the epoch
    defaults to the last complete checkpoint."""
    if args.pretrained and args.pretrained_model:
        raise UsageError('--pretrained and --pretrained-model name the same checkpoint: '
                         'give one of them')
    if args.pretrained_epoch is not None and not args.pretrained_model:
        raise UsageError('--pretrained-epoch %d needs --pretrained-model PREFIX'
                         % args.pretrained_epoch)
    if args.pretrained:
        return checkpoint.parse_reference(args.pretrained, '--pretrained')
    if args.pretrained_model:
        return checkpoint.reference(args.pretrained_model, args.pretrained_epoch,
                                    '--pretrained-model')
    return None


def pretrained_defaults(args):
    """What the checkpoint a run starts from says in its PREFIX-model.json for the flags it
    can fill, as (network layer, options, shape layer) for `flags.apply_presets`: the
    network layer (network, depth, normalisation) and the network options come under the
    explicit flags and the named model, the shape layer (input shape, classes) under the
    dataset preset. The checkpoint: the run's own when it resumes (--load-epoch with an
    explicit --model-prefix), else --pretrained's. Empty without either, or metadata."""
    if args.load_epoch is not None and args.model_prefix:
        meta = checkpoint.read_metadata(args.model_prefix)
    else:
        source, meta = parse_pretrained(args), None
        if source:
            meta = checkpoint.read_metadata(source[0])
            checkpoint.refuse_int8(meta, '--pretrained %s:%d' % source, 'fine-tuning')
    if meta is None:
        return {}, {}, {}
    network = {'network': meta['network'], 'num_layers': meta['num_layers'],
               'rgb_mean': ','.join(map(repr, meta['mean'])),
               'rgb_std': ','.join(map(repr, meta['std']))}
    shape = {'image_shape': ','.join(map(str, meta['image_shape'])),
             'num_classes': meta['num_classes']}
    return network, dict(meta.get('options') or {}), shape


def classifier_names(symbol, layer_before_fullc=None):
    """Names of the classifier's parameters: those of the nodes after `layer_before_fullc`
    (MXNet's fine-tune.py: the layer the new classifier is put on), else of the last
    FullyConnected layer."""
    nodes = json.loads(symbol.tojson())['nodes']
    params = (set(symbol.list_arguments()) | set(symbol.list_auxiliary_states())) - \
        {'data', 'softmax_label'}
    if layer_before_fullc:
        names = [node['name'] for node in nodes]
        if layer_before_fullc not in names:
            raise UsageError('--layer-before-fullc %s: no such layer in the network (its last '
                             'layers: %s)' % (layer_before_fullc, ', '.join(
                                 n for n in names[-8:] if n not in params)))
        after = nodes[names.index(layer_before_fullc) + 1:]
        return sorted(node['name'] for node in after if node['name'] in params)
    for i in range(len(nodes) - 1, -1, -1):
        if nodes[i]['op'] == 'FullyConnected':
            return sorted(nodes[j[0]]['name'] for j in nodes[i]['inputs']
                          if nodes[j[0]]['name'] in params)
    return []


def transfer(source, symbol, shapes, layer_before_fullc=None, synset=None):
    """(arg_params, aux_params, re-initialised names) to start `symbol` from the pretrained
    checkpoint `source` (prefix, epoch): every parameter and BatchNorm statistic whose name
    and shape match. The classifier is left out (fresh) when its shape differs, when
    `layer_before_fullc` is given, or when the class names `synset` of the new data and
    those the checkpoint records are both known and differ (as many classes, other ones).
    `shapes`: {name: shape} of the symbol's parameters. Logs one line of what was loaded,
    re-initialised and ignored; UsageError for a mismatch outside the classifier."""
    prefix, epoch = source
    arg_params, aux_params = checkpoint.load_weights(prefix, epoch, '--pretrained')
    loaded = dict(arg_params, **aux_params)
    head = set(classifier_names(symbol, layer_before_fullc))
    meta = checkpoint.read_metadata(prefix)
    other_classes = bool(synset and meta and meta.get('synset') and
                         list(synset) != list(meta['synset']))
    new_head = set(head) if layer_before_fullc or other_classes else set()
    own_head = set(classifier_names(checkpoint.load_symbol(prefix))) \
        if os.path.isfile(checkpoint.paths(prefix, 0)['symbol']) else set()
    extra = sorted(set(loaded) - set(shapes) - own_head)
    missing = sorted(name for name in shapes if name not in loaded and name not in head)
    if missing or extra:
        raise UsageError('--pretrained %s:%d %s: it is not a checkpoint of this network%s' % (
            prefix, epoch, 'has no %s' % missing[0] if missing else
            'has %d parameters this network lacks (%s ...)' % (len(extra), extra[0]),
            ' (it is --network %s --num-layers %d)' % (meta['network'], meta['num_layers'])
            if meta else ''))
    for name in sorted(shapes):
        if name not in loaded:
            new_head.add(name)
            continue
        if tuple(loaded[name].shape) != tuple(shapes[name]):
            if name in head:
                new_head.add(name)
                continue
            raise UsageError('--pretrained %s:%d: %s has shape %s there but %s in this '
                             'network' % (prefix, epoch, name, tuple(loaded[name].shape),
                                          tuple(shapes[name])))
    # Renewed for the class names alone: the classifier had the shape to be loaded.
    renamed = other_classes and not layer_before_fullc and all(
        name in loaded and tuple(loaded[name].shape) == tuple(shapes[name]) for name in head)
    ignored = sorted(set(loaded) - set(shapes))
    arg_params = {k: v for k, v in arg_params.items() if k in shapes and k not in new_head}
    aux_params = {k: v for k, v in aux_params.items() if k in shapes and k not in new_head}
    logging.info('Pretrained %s-%04d: loaded %d parameters and %d BatchNorm statistics; '
                 're-initialised %s%s; ignored %s', prefix, epoch, len(arg_params),
                 len(aux_params), ', '.join(sorted(new_head)) or 'nothing',
                 ' (other classes than the checkpoint\'s)' if renamed else '',
                 ', '.join(ignored) or 'nothing')
    return arg_params, aux_params, sorted(new_head)


def stage_count(symbol):
    return max([int(m.group(1)) for m in map(_STAGE.match, symbol.list_arguments()) if m] or
               [0])


def frozen_names(symbol, stages):
    """Parameters up to the end of stage `stages` (the stem included), in the graph's order;
    none for 0."""
    if stages == 0:
        return []
    count = stage_count(symbol)
    if stages > count:
        raise UsageError('--freeze-stages %d: the network has %d stages' % (stages, count))
    frozen, in_stages = [], False
    for name in symbol.list_arguments():   # in the graph's order: stem, stages, head
        match = _STAGE.match(name)
        if (match and int(match.group(1)) > stages) or (in_stages and not match):
            break
        in_stages = in_stages or bool(match)
        if name != 'data':
            frozen.append(name)
    return frozen
