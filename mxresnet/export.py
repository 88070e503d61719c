"""Export a checkpoint for inference elsewhere: ONNX, or Gluon's SymbolBlock files, each with
the preprocessing it needs (`-preprocess.json`: input shape, mean, std, class names).

Both export the inference graph: the training head `SoftmaxOutput` (which takes a label) is
replaced by `softmax` over the same logits, the same forward output. MXNet 1.9.1's ONNX
exporter fails on a SoftmaxOutput whose label is a graph input (it drops the label node and
then looks its inputs up by position), so this also avoids that.
- onnx: `mx.onnx.export_model` (ONNX opset of the installed `onnx`, at most the exporter's),
  input `data` float32 of shape (batch, C, H, W) with a dynamic batch dimension unless
  `--static-batch`, output `softmax` (probabilities). Needs the `onnx` extra.
- gluon: OUT-symbol.json and OUT-0000.params, loadable with
  `mx.gluon.SymbolBlock.imports('OUT-symbol.json', ['data'], 'OUT-0000.params')`.
- mar: a Multi Model Server archive NAME.mar (the gluon files as model-*, serving.json and
  the handler package of `serving`), served as NAME.
"""
import json
import os
import re
import tempfile
import zipfile

import mxnet as mx
import numpy as np

from . import checkpoint
from .errors import UsageError


def gluon_block(prefix, epoch, ctx=None):
    """Checkpoint `epoch` of `prefix` as a Gluon SymbolBlock (input 'data', output the
    softmax)."""
    model = checkpoint.load_model(prefix, epoch)
    block = mx.gluon.SymbolBlock(model.symbol, mx.sym.var('data'))
    # ParameterDict.load strips the checkpoint's arg:/aux: prefixes
    block.collect_params().load(checkpoint.paths(prefix, epoch)['params'], ctx=ctx or mx.cpu())
    return block


def write_preprocess(path, model):
    """The model's preprocessing as JSON (`checkpoint.preprocessing`); returns the path."""
    checkpoint.write_json(path, checkpoint.preprocessing(model.metadata))
    return path


def export_gluon(model, output):
    """Write OUT-symbol.json, OUT-0000.params and OUT-preprocess.json; returns their paths."""
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    mx.model.save_checkpoint(output, 0, model.symbol, model.arg_params, model.aux_params,
                             remove_amp_cast=False)
    return ('%s-symbol.json' % output, '%s-0000.params' % output,
            write_preprocess('%s-preprocess.json' % output, model))


def export_onnx(model, output, batch_size=1, dynamic=True):
    """Write the ONNX model, its preprocessing in its metadata (key `preprocess`) and beside
    it (X-preprocess.json for X.onnx); returns their paths."""
    try:
        import onnx
    except ImportError:
        raise UsageError('--format onnx needs the onnx package: pip install -e ".[onnx]"')
    sym = model.symbol
    image_shape = tuple(model.metadata['image_shape'])
    params = dict(model.arg_params)
    params.update(model.aux_params)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    shape = (batch_size,) + tuple(image_shape)
    mx.onnx.export_model(sym, params, in_shapes=[shape], in_types=[np.float32],
                         onnx_file_path=output, dynamic=dynamic,
                         dynamic_input_shapes=[(None,) + tuple(image_shape)] if dynamic else None)
    # MXNet's exporter lists every initializer as a graph input too (the pre-IR-4 style);
    # keep only real inputs so runtimes may fold the weights as constants.
    # It also leaves initializers no node uses (the softmax's axis helpers).
    onnx_model = onnx.load(output)
    graph = onnx_model.graph
    used = {name for node in graph.node for name in node.input}
    initializers = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    names = {i.name for i in initializers}
    inputs = [i for i in graph.input if i.name not in names and i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    preprocess = onnx_model.metadata_props.add()
    preprocess.key = 'preprocess'
    preprocess.value = json.dumps(checkpoint.preprocessing(model.metadata), sort_keys=True)
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, output)
    return output, write_preprocess(os.path.splitext(output)[0] + '-preprocess.json', model)




MAR_HANDLER = 'mxresnet_serving.handler:handle'
_MAR_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_\-.]*$')   # model-archiver's rule


def mar_manifest(name):
    """MAR-INF/MANIFEST.json of an archive of model `name`, as model-archiver writes it."""
    return {'runtime': 'python', 'model': {'modelName': name, 'handler': MAR_HANDLER},
            'engine': {'engineName': 'MXNet'}, 'modelServerVersion': '1.0',
            'implementationVersion': '1.0', 'specificationVersion': '1.0'}


def mar_name(output, top_k):
    """The model name of archive `output` (NAME.mar); UsageError if it or `top_k` cannot
    be used."""
    name = os.path.basename(output)[:-len('.mar')] if output.endswith('.mar') else ''
    if not _MAR_NAME.match(name):
        raise UsageError('--output %s: a .mar archive is NAME.mar, NAME a letter or digit and '
                         'then letters, digits, "_", "-" or "."' % output)
    if top_k <= 0:
        raise UsageError('--top-k %d: must be positive' % top_k)
    return name


def export_mar(model, output, top_k=5):
    """Write the Multi Model Server archive `output` (NAME.mar, model NAME) whose handler
    (`serving`) answers the `top_k` classes of an image; returns its path."""
    name = mar_name(output, top_k)
    here = os.path.dirname(os.path.abspath(__file__))
    package = {'__init__.py': '"""The handler of an mxnet-resnet model archive."""\n'}
    for module, archived in (('serving.py', 'handler.py'), ('images.py', 'images.py')):
        with open(os.path.join(here, module)) as f:
            package[archived] = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        files = export_gluon(model, os.path.join(tmp, 'model'))

        def write(path):
            with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
                for member in files:
                    archive.write(member, os.path.basename(member))
                archive.writestr('serving.json', json.dumps({'top_k': top_k}))
                for module, text in sorted(package.items()):
                    archive.writestr('mxresnet_serving/' + module, text)
                archive.writestr('MAR-INF/MANIFEST.json',
                                 json.dumps(mar_manifest(name), indent=2))
        checkpoint.atomic_write(output, write)
    return output
