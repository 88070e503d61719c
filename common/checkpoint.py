"""Checkpoints that survive a kill at any moment.

A checkpoint N is `prefix-symbol.json`, `prefix-%04d.params` (MXNet's `arg:`/`aux:`
format, loadable by `mx.model.load_checkpoint`), `prefix-%04d.states` (the optimizer
state) and `prefix-%04d.json` (where training stands: epoch, batch, update count).
Each file is written to a temporary name and renamed into place, and the `.json` is
written last: a checkpoint whose `.json` exists is complete.
"""
import json
import os

import mxnet as mx

from . import UsageError


def atomic_write(path, write):
    """Call write(tmp_path), flush it to disk, then rename it to `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = '%s.tmp-%d' % (path, os.getpid())
    try:
        write(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def paths(prefix, epoch):
    return {
        'symbol': '%s-symbol.json' % prefix,
        'params': '%s-%04d.params' % (prefix, epoch),
        'states': '%s-%04d.states' % (prefix, epoch),
        'progress': '%s-%04d.json' % (prefix, epoch),
    }


def save(prefix, epoch, symbol, module, progress, save_states=True):
    """Write checkpoint `epoch` of `module`; `progress` says where training stands."""
    files = paths(prefix, epoch)
    # Wait for queued operators first: in MXNet 1.9.1 on CPU, a BatchNorm's update of its
    # moving statistics is not ordered before get_params' copy (they would lag a batch).
    mx.nd.waitall()
    arg_params, aux_params = module.get_params()
    params = {'arg:%s' % k: v for k, v in arg_params.items()}
    params.update({'aux:%s' % k: v for k, v in aux_params.items()})
    atomic_write(files['symbol'], symbol.save)
    atomic_write(files['params'], lambda tmp: mx.nd.save(tmp, params))
    if save_states:
        atomic_write(files['states'], module.save_optimizer_states)
    progress = dict(progress, has_states=bool(save_states))

    def write_progress(tmp):
        with open(tmp, 'w') as f:
            json.dump(progress, f)
    atomic_write(files['progress'], write_progress)
    return files


def load(prefix, epoch):
    """(arg_params, aux_params, states_path or None, progress) of checkpoint `epoch`."""
    files = paths(prefix, epoch)
    if not os.path.isfile(files['params']):
        found = sorted(available(prefix))
        raise UsageError('--load-epoch %d: no checkpoint %s%s' % (
            epoch, files['params'],
            ' (checkpoints of %s: %s)' % (prefix, ', '.join(map(str, found))) if found
            else ' (no checkpoint with prefix %s)' % prefix))
    try:
        saved = mx.nd.load(files['params'])
    except mx.base.MXNetError:
        raise UsageError('checkpoint %s cannot be read: the file is damaged' % files['params'])
    arg_params = {k[4:]: v for k, v in saved.items() if k.startswith('arg:')}
    aux_params = {k[4:]: v for k, v in saved.items() if k.startswith('aux:')}
    progress = {'epoch': epoch, 'batch': 0}
    if os.path.isfile(files['progress']):
        with open(files['progress']) as f:
            progress = json.load(f)
    has_states = progress.get('has_states', True) and os.path.isfile(files['states'])
    return arg_params, aux_params, files['states'] if has_states else None, progress


def available(prefix):
    """Checkpoint numbers present for `prefix`."""
    directory = os.path.dirname(os.path.abspath(prefix))
    base = os.path.basename(prefix) + '-'
    found = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            number = name[len(base):-len('.params')]
            if name.startswith(base) and name.endswith('.params') and number.isdigit():
                found.append(int(number))
    return found
