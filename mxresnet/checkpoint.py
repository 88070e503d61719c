"""Checkpoints: written so that they survive a kill at any moment, and describing themselves.

A checkpoint N of PREFIX is
- `PREFIX-symbol.json`: the graph (the reference graph as built, SoftmaxOutput head);
- `PREFIX-NNNN.params`: the weights, MXNet's `arg:`/`aux:` format (`mx.model.load_checkpoint`
  reads it);
- `PREFIX-NNNN.states`: the optimizer state;
- `PREFIX-NNNN.json`: where training stands (epoch, batch, update count);
- `PREFIX-model.json`: what is needed to use the model: network, depth, options, input
  shape, the preprocessing (per-channel mean and std subtracted from and divided into 0-255
  RGB or gray pixels), dataset preset, number of classes and their names;
- with --model-ema, the moving average of the weights as checkpoint N of `PREFIX-ema`
  (symbol, model.json with `ema_decay`, .params, its own NNNN.json, no optimizer state),
  which the tools load as any checkpoint and a resumed run continues from.
Each file is written to a temporary name and renamed into place, and the `NNNN.json` is
written last, after the moving average's checkpoint (and an overwritten checkpoint's is
removed first): a checkpoint whose `NNNN.json` exists is complete. Resuming refuses an
incomplete one (and lists the complete ones); a `.params` without `PREFIX-model.json` beside
it was not written here (MXNet's `mx.model.save_checkpoint`, say) and resumes with a warning,
from its weights with a fresh optimizer state. Each save removes the temporary files that
dead processes left.
"""
import collections
import functools
import glob
import json
import logging
import os
import shutil
import tempfile

import mxnet as mx

from . import flags, graph
from .errors import UsageError, error_line

METADATA_FORMAT = 1


def check_writable(path, flag):
    """UsageError unless a file can be written at `path`, its folder made if missing: a
    probe file is written and removed, so that a read-only, full or misnamed output folder
    fails before any work."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix='.write-test-', dir=directory)
        try:
            os.write(handle, b'\0' * 65536)
            os.fsync(handle)
        finally:
            os.close(handle)
            os.remove(probe)
    except OSError as err:
        parent = directory
        while parent != os.path.dirname(parent) and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        reason = '%s is a file, not a folder' % parent if os.path.isfile(parent) else \
            err.strerror or str(err)
        raise UsageError('%s %s: cannot write in %s: %s' % (flag, path, directory, reason))


def atomic_write(path, write):
    """Call write(tmp_path), flush it to disk, then rename it to `path`; UsageError naming
    the file and the reason when that fails (a full disk, say), `path` as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = '%s.tmp-%d' % (path, os.getpid())
    try:
        os.makedirs(directory, exist_ok=True)
        write(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise UsageError('cannot write %s: %s' % (path, err.strerror or err))
    except mx.base.MXNetError as err:
        # MXNet's own writers say only 'FileStream.Write incomplete': a probe says why.
        try:
            check_writable(tmp, 'output')
            reason = error_line(err)
        except UsageError as probe:
            reason = str(probe).rsplit(': ', 1)[-1]
        raise UsageError('cannot write %s: %s' % (path, reason))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, value):
    """`value` as JSON at `path`, atomically."""
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(value, f, indent=1, sort_keys=True)
            f.write('\n')
    atomic_write(path, write)


def ema_prefix(prefix):
    """The prefix of the checkpoints of the moving average of PREFIX's weights."""
    return prefix + '-ema'


def paths(prefix, epoch):
    return {
        'symbol': '%s-symbol.json' % prefix,
        'metadata': '%s-model.json' % prefix,
        'params': '%s-%04d.params' % (prefix, epoch),
        'states': '%s-%04d.states' % (prefix, epoch),
        'progress': '%s-%04d.json' % (prefix, epoch),
    }


def metadata(network, num_layers, options, image_shape, mean, std, num_classes, preset=None,
             model=None, synset=None, resize=0, pretrained=None):
    """The content of PREFIX-model.json; `pretrained`: where its weights started from (a
    checkpoint 'PREFIX:EPOCH' for a fine-tuned model, 'gluoncv:NAME' for imported ones)."""
    return {'format': METADATA_FORMAT, 'network': network, 'num_layers': int(num_layers),
            'model': model, 'options': dict(options), 'image_shape': list(image_shape),
            'mean': [float(v) for v in mean], 'std': [float(v) for v in std],
            'preset': preset, 'num_classes': int(num_classes),
            'synset': list(synset) if synset else None, 'resize': int(resize),
            'pretrained': pretrained}


def refuse_int8(meta, flag, use):
    """UsageError when `meta` is an INT8 model's (tools/quantize.py --save): MXNet 1.9.1 runs
    those for inference on the CPU alone, so not for `use`."""
    if meta and meta.get('quantized'):
        raise UsageError('%s is an INT8 model (tools/quantize.py --save), which runs on the CPU '
                         'alone and for inference only, not for %s: use the float32 checkpoint '
                         'it was made from (%s)' % (flag, use, meta['quantized']['source']))


def remove_stale_temporaries(prefix):
    """Remove the temporary files of PREFIX's checkpoints that processes no longer running
    left (a kill during a write); returns their paths."""
    removed = []
    for path in glob.glob(glob.escape(prefix) + '-*.tmp-*'):
        pid = path.rsplit('.tmp-', 1)[1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            os.remove(path)
            removed.append(path)
        except PermissionError:  # alive, another user's
            pass
    return removed


def save(prefix, epoch, symbol, module, progress, model_metadata, save_states=True,
         ema=None):
    """Write checkpoint `epoch` of `module`; `progress` says where training stands; `ema`:
    (arg_params, aux_params, decay) of the weights' moving average, or None."""
    # Wait for queued operators first: in MXNet 1.9.1 on CPU, a BatchNorm's update of its
    # moving statistics is not ordered before get_params' copy (they would lag a batch).
    mx.nd.waitall()
    arg_params, aux_params = module.get_params()
    return write(prefix, epoch, symbol, arg_params, aux_params, progress, model_metadata,
                 module.save_optimizer_states if save_states else None, ema)


def write(prefix, epoch, symbol, arg_params, aux_params, progress, model_metadata,
          write_states=None, ema=None):
    """Write checkpoint `epoch` from parameter dicts; `write_states(path)` writes the
    optimizer state (None: the checkpoint has none, and its progress says so); `ema`:
    (arg_params, aux_params, decay) of the moving average, written as checkpoint `epoch` of
    ema_prefix(prefix) before this one's NNNN.json (its progress says has_ema)."""
    files = paths(prefix, epoch)
    if os.path.exists(files['progress']):  # the commit marker: gone until the new one is whole
        os.remove(files['progress'])
    for path in remove_stale_temporaries(prefix):
        logging.warning('Removed %s, left by a process that was stopped while writing it', path)
    params = {'arg:%s' % k: v for k, v in arg_params.items()}
    params.update({'aux:%s' % k: v for k, v in aux_params.items()})
    try:
        atomic_write(files['symbol'], symbol.save)
        write_json(files['metadata'], model_metadata)
        atomic_write(files['params'], lambda tmp: mx.nd.save(tmp, params))
        if write_states is not None:
            atomic_write(files['states'], write_states)
        if ema is not None:
            ema_args, ema_aux, decay = ema
            write(ema_prefix(prefix), epoch, symbol, ema_args, ema_aux, progress,
                  dict(model_metadata, ema_decay=decay))
        write_json(files['progress'], dict(progress, has_states=write_states is not None,
                                           has_ema=ema is not None))
    except UsageError as err:
        raise UsageError('%s: checkpoint %d is not saved (the complete ones before it are '
                         'intact)' % (err, epoch))
    return files


def copy(prefix, epoch, target):
    """Copy complete checkpoint `epoch` of `prefix`, with its moving average, to prefix
    `target`; each file atomically and the NNNN.json markers last, so that the copy, too,
    is complete or invisible. Returns the paths written."""
    files = paths(prefix, epoch)
    if not os.path.isfile(files['progress']):
        raise _missing_checkpoint(prefix, epoch, 'checkpoint', complete=True)
    with open(files['progress']) as f:
        progress = json.load(f)
    pairs = [(prefix, target)] + [(ema_prefix(prefix), ema_prefix(target))] * bool(
        progress.get('has_ema'))
    written, markers = [], []
    for source, destination in pairs:
        source_files, destination_files = paths(source, epoch), paths(destination, epoch)
        if os.path.exists(destination_files['progress']):
            os.remove(destination_files['progress'])
        for kind in ('symbol', 'metadata', 'params', 'states'):  # the average has no states
            if os.path.isfile(source_files[kind]):
                atomic_write(destination_files[kind], functools.partial(
                    shutil.copyfile, source_files[kind]))
                written.append(destination_files[kind])
        markers.insert(0, (source_files['progress'], destination_files['progress']))
    for source, destination in markers:  # the moving average's first, as `write` does
        atomic_write(destination, functools.partial(shutil.copyfile, source))
        written.append(destination)
    return written


def _checkpoints_hint(prefix, complete):
    found = sorted(available(prefix, complete))
    if not found:
        return ' (no %scheckpoint with prefix %s)' % ('complete ' if complete else '', prefix)
    return ' (%scheckpoints of %s: %s)' % ('complete ' if complete else '', prefix,
                                           ', '.join(map(str, found)))


def _missing_checkpoint(prefix, epoch, flag, complete=False):
    return UsageError('%s %d: no checkpoint %s%s' % (
        flag, epoch, paths(prefix, epoch)['params'], _checkpoints_hint(prefix, complete)))


def _load_params(path):
    """(arg_params, aux_params) of a .params file."""
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError:
        raise UsageError('checkpoint %s cannot be read: the file is damaged' % path)
    arg_params = {k[4:]: v for k, v in saved.items() if k.startswith('arg:')}
    aux_params = {k[4:]: v for k, v in saved.items() if k.startswith('aux:')}
    return arg_params, aux_params


def load_symbol(prefix):
    """The graph of PREFIX-symbol.json; UsageError if it cannot be read."""
    path = paths(prefix, 0)['symbol']
    try:
        return mx.sym.load(path)
    except mx.base.MXNetError:
        raise UsageError('%s cannot be read: not an MXNet symbol file' % path)


def load_weights(prefix, epoch, flag):
    """(arg_params, aux_params) of checkpoint `epoch` of `prefix`, which `flag` names."""
    path = paths(prefix, epoch)['params']
    if not os.path.isfile(path):
        raise _missing_checkpoint(prefix, epoch, flag, complete=True)
    return _load_params(path)


def load(prefix, epoch):
    """(arg_params, aux_params, states_path or None, progress) of checkpoint `epoch`, to
    resume training."""
    files = paths(prefix, epoch)
    if not os.path.isfile(files['params']):
        raise _missing_checkpoint(prefix, epoch, '--load-epoch', complete=True)
    if os.path.isfile(files['progress']):
        with open(files['progress']) as f:
            progress = json.load(f)
    elif os.path.isfile(files['metadata']):
        raise UsageError('--load-epoch %d: checkpoint %d of %s is incomplete (no %s: its '
                         'writing was interrupted)%s' % (epoch, epoch, prefix,
                                                         files['progress'],
                                                         _checkpoints_hint(prefix, True)))
    else:
        logging.warning('%s has no %s: it was not written by train_resnet.py; resuming from '
                        'its weights at epoch %d with a fresh optimizer state',
                        files['params'], files['progress'], epoch)
        progress = {'epoch': epoch, 'batch': 0, 'has_states': False}
    if progress.get('has_states', True) and not os.path.isfile(files['states']):
        raise UsageError('--load-epoch %d: %s, the optimizer state of the checkpoint, is '
                         'missing (remove %s to resume from its weights with a fresh one)'
                         % (epoch, files['states'], files['progress']))
    arg_params, aux_params = _load_params(files['params'])
    has_states = progress.get('has_states', True)
    return arg_params, aux_params, files['states'] if has_states else None, progress


def load_ema(prefix, epoch, progress):
    """(arg_params, aux_params) of the moving average saved with checkpoint `epoch` of
    `prefix` (whose `progress` says has_ema), else None."""
    if not progress.get('has_ema'):
        return None
    files = paths(ema_prefix(prefix), epoch)
    if not os.path.isfile(files['progress']):
        raise UsageError('--load-epoch %d: %s, the moving average of the weights (--model-ema) '
                         'of the checkpoint, is missing or incomplete (no %s)'
                         % (epoch, files['params'], files['progress']))
    return _load_params(files['params'])


def reference(prefix, epoch, flag):
    """(prefix, epoch) of the checkpoint that `flag` names; `epoch` None: its last complete
    one."""
    if epoch is None:
        found = sorted(available(prefix, complete=True))
        if not found:
            raise UsageError('%s %s: no checkpoint with this prefix (expected %s-NNNN.params '
                             'and its NNNN.json)' % (flag, prefix, prefix))
        epoch = found[-1]
    return prefix, int(epoch)


def parse_reference(text, flag):
    """(prefix, epoch) of 'PREFIX[:EPOCH]', the value of `flag` (`reference`)."""
    prefix, _, epoch = text.rpartition(':')
    if not prefix or not epoch.isdigit():
        prefix, epoch = text, None
    return reference(prefix, epoch, flag)


def available(prefix, complete=False):
    """Checkpoint numbers with weights for `prefix`; `complete`: only those whose writing
    finished (and those not written here, which have no metadata to say)."""
    directory = os.path.dirname(os.path.abspath(prefix))
    base = os.path.basename(prefix) + '-'
    ours = os.path.isfile(paths(prefix, 0)['metadata'])
    found = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            number = name[len(base):-len('.params')]
            if name.startswith(base) and name.endswith('.params') and number.isdigit():
                if not (complete and ours and
                        not os.path.isfile(paths(prefix, int(number))['progress'])):
                    found.append(int(number))
    return found


def read_metadata(prefix):
    """PREFIX-model.json as a dict, or None for a checkpoint written without one."""
    path = paths(prefix, 0)['metadata']
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            meta = json.load(f)
    except ValueError:
        raise UsageError('%s is not JSON: the file is damaged' % path)
    missing = [key for key in ('image_shape', 'mean', 'std', 'num_classes') if key not in meta]
    if missing:
        raise UsageError('%s has no %s' % (path, ', '.join(missing)))
    return meta


# A checkpoint loaded for inference: the inference graph (softmax head, no label), its
# weights, and its metadata (PREFIX-model.json, or what the flags said for an older one).
Model = collections.namedtuple('Model', 'symbol arg_params aux_params metadata')


def load_model(prefix, epoch, preprocess=None):
    """Checkpoint `epoch` of `prefix` for inference, as a Model.

    `preprocess` (an argparse namespace of the `flags.add_preprocess_args` flags, or None)
    overrides the metadata's input shape, mean and std; a checkpoint without metadata needs
    them, from `--preset` or from `--image-shape`, `--rgb-mean` and `--rgb-std`.
    """
    files = paths(prefix, epoch)
    if not os.path.isfile(files['symbol']):
        raise UsageError('--model %s: no symbol file %s' % (prefix, files['symbol']))
    if not os.path.isfile(files['params']):
        raise _missing_checkpoint(prefix, epoch, '--epoch')
    sym = load_symbol(prefix)
    arg_params, aux_params = _load_params(files['params'])
    sym = graph.inference_symbol(sym)
    meta = _preprocessing(read_metadata(prefix), preprocess, files['metadata'],
                          input_channels(arg_params))
    _, out_shapes, _ = sym.infer_shape(data=(1,) + tuple(meta['image_shape']))
    classes = int(out_shapes[0][1])
    if meta.get('num_classes', classes) != classes:
        raise UsageError('%s says %d classes but the graph has %d'
                         % (files['metadata'], meta['num_classes'], classes))
    meta['num_classes'] = classes
    return Model(sym, arg_params, aux_params, meta)


def input_channels(arg_params):
    """Input channels of the first convolution (the stem), from its weight's shape."""
    weights = sorted(k for k, v in arg_params.items()
                     if k.endswith('_weight') and len(v.shape) == 4)
    if not weights:
        raise UsageError('the checkpoint has no convolution weights: not an image classifier')
    stem = 'conv0_weight' if 'conv0_weight' in arg_params else weights[0]
    return int(arg_params[stem].shape[1])


def _preprocessing(meta, overrides, metadata_path, model_channels):
    """The metadata with the preprocessing flags applied over it (see load_model)."""
    given = {key: getattr(overrides, key, None) for key in ('preset', 'image_shape', 'rgb_mean',
                                                           'rgb_std')}
    preset = flags.DATASET_PRESETS.get(given['preset'], {})
    for key in ('image_shape', 'rgb_mean', 'rgb_std'):
        if given[key] is None:
            given[key] = preset.get(key)
    if meta is None:
        missing = [key for key in ('image_shape', 'rgb_mean', 'rgb_std') if given[key] is None]
        if missing:
            raise UsageError(
                '%s: no such file (the checkpoint was written before checkpoints recorded '
                'their preprocessing): pass --preset NAME, or %s'
                % (metadata_path, ', '.join('--' + key.replace('_', '-') for key in missing)))
        meta = {'preset': given['preset'], 'synset': None}
    meta = dict(meta)
    if given['image_shape'] is not None:
        meta['image_shape'] = list(flags.image_shape(given['image_shape']))
    channels = meta['image_shape'][0]
    if channels != model_channels:
        raise UsageError('input shape %s: the model takes %d-channel images'
                         % (','.join(map(str, meta['image_shape'])), model_channels))
    for key, flag in (('mean', 'rgb_mean'), ('std', 'rgb_std')):
        if given[flag] is not None:
            meta[key] = flags.per_channel(given[flag], channels, '--' + flag.replace('_', '-'))
        elif len(meta[key]) != channels:
            raise UsageError('%s: %d %s values for %d-channel images; pass --%s'
                             % (metadata_path, len(meta[key]), key, channels,
                                flag.replace('_', '-')))
    return meta


def preprocessing(meta):
    """What a user of the exported model needs to feed it as training fed it
    (the content of an export's preprocess.json)."""
    channels = meta['image_shape'][0]
    return {'image_shape': list(meta['image_shape']), 'mean': list(meta['mean']),
            'std': list(meta['std']), 'synset': meta.get('synset'),
            'channel_order': 'gray' if channels == 1 else 'RGB', 'layout': 'NCHW',
            'pixel_range': [0, 255], 'resize': int(meta.get('resize') or 0),
            'formula': '(pixel - mean) / std per channel, after the shorter side is scaled '
                       'to resize (0: as stored) and a centre crop to image_shape'}
