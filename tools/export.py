"""Export a checkpoint for inference elsewhere: ONNX, or Gluon's SymbolBlock files.

    python tools/export.py --model runs/resnet-20/model --epoch 4 --format onnx \\
        --image-shape 1,28,28 -o resnet-20.onnx
    python tools/export.py --model runs/resnet-20/model --epoch 4 --format gluon -o gluon/r20

Both export the inference graph: the training head `SoftmaxOutput` (which takes a label) is
replaced by `softmax` over the same logits, the same forward output. MXNet 1.9.1's ONNX
exporter fails on a SoftmaxOutput whose label is a graph input (it drops the label node and
then looks its inputs up by position), so this also avoids that.
- onnx: `mx.onnx.export_model` (ONNX opset of the installed `onnx`, at most the exporter's),
  input `data` float32 of shape (batch, C, H, W) with a dynamic batch dimension unless
  `--static-batch`, output `softmax` (probabilities). Needs the `onnx` extra.
- gluon: OUT-symbol.json and OUT-0000.params, loadable with
  `mx.gluon.SymbolBlock.imports('OUT-symbol.json', ['data'], 'OUT-0000.params')`.
"""
import argparse
import os
import sys

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from common.cli import run_tool  # noqa: E402
from common import UsageError  # noqa: E402
from common import inference  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    inference.add_model_args(parser)
    parser.add_argument('--format', choices=('onnx', 'gluon'), default='onnx')
    parser.add_argument('-o', '--output', help='the .onnx file, or the Gluon prefix '
                        '(default: PREFIX-NNNN.onnx or PREFIX-NNNN-gluon)')
    parser.add_argument('--image-shape', help='input shape "C,H,W" (default: the preset\'s, '
                        'fashion-mnist for a 1-channel model, else 3,224,224)')
    parser.add_argument('--preset', help=argparse.SUPPRESS)
    parser.add_argument('--batch-size', type=int, default=1, help='batch size in the ONNX input')
    parser.add_argument('--static-batch', action='store_true',
                        help='ONNX: a fixed batch dimension instead of a dynamic one')
    return parser


def gluon_block(prefix, epoch, ctx=None):
    """The checkpoint as a Gluon SymbolBlock (input 'data', output the softmax)."""
    sym, _, _ = inference.load_model(prefix, epoch)
    block = mx.gluon.SymbolBlock(sym, mx.sym.var('data'))
    # ParameterDict.load strips the checkpoint's arg:/aux: prefixes
    block.collect_params().load('%s-%04d.params' % (prefix, epoch), ctx=ctx or mx.cpu())
    return block


def export_gluon(prefix, epoch, output):
    """Write OUT-symbol.json and OUT-0000.params; returns their paths."""
    sym, arg_params, aux_params = inference.load_model(prefix, epoch)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    mx.model.save_checkpoint(output, 0, sym, arg_params, aux_params, remove_amp_cast=False)
    return '%s-symbol.json' % output, '%s-0000.params' % output


def export_onnx(prefix, epoch, output, image_shape, batch_size=1, dynamic=True):
    """Write the ONNX model; returns its path."""
    try:
        import onnx
    except ImportError:
        raise UsageError('--format onnx needs the onnx package: pip install -e ".[onnx]"')
    sym, arg_params, aux_params = inference.load_model(prefix, epoch)
    params = dict(arg_params)
    params.update(aux_params)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    shape = (batch_size,) + tuple(image_shape)
    mx.onnx.export_model(sym, params, in_shapes=[shape], in_types=[np.float32],
                         onnx_file_path=output, dynamic=dynamic,
                         dynamic_input_shapes=[(None,) + tuple(image_shape)] if dynamic else None)
    # MXNet's exporter lists every initializer as a graph input too (the pre-IR-4 style);
    # keep only real inputs so runtimes may fold the weights as constants.
    # It also leaves initializers no node uses (the softmax's axis helpers).
    model = onnx.load(output)
    used = {name for node in model.graph.node for name in node.input}
    initializers = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    names = {i.name for i in initializers}
    inputs = [i for i in model.graph.input if i.name not in names and i.name in used]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.checker.check_model(model)
    onnx.save(model, output)
    return output


def main(argv=None):
    args = build_parser().parse_args(argv)

    def body():
        if args.batch_size <= 0:
            raise UsageError('--batch-size %d: must be positive' % args.batch_size)
        if args.format == 'gluon':
            output = args.output or '%s-%04d-gluon' % (args.model, args.epoch)
            files = export_gluon(args.model, args.epoch, output)
        else:
            _, arg_params, _ = inference.load_model(args.model, args.epoch)
            args.rgb_mean = args.rgb_std = None
            image_shape = inference.resolve_preprocess(args,
                                                       inference.input_channels(arg_params))
            output = args.output or '%s-%04d.onnx' % (args.model, args.epoch)
            files = [export_onnx(args.model, args.epoch, output, image_shape, args.batch_size,
                                 not args.static_batch)]
        for path in files:
            print(path)
    return run_tool(body)


if __name__ == '__main__':
    sys.exit(main())
