"""tools/benchmark.py (its pure parts, the GPU branch with num_gpus mocked, one real CPU
cell) and tools/export.py (Gluon SymbolBlock and ONNX, checked against Module, with their
preprocessing), and the README's Gluon example."""
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import warnings

import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT
from mxresnet import benchmark, checkpoint, export, runtime
from tools import benchmark as benchmark_tool
from tools import export as export_tool
from tools import predict


def bench_args(*argv):
    return benchmark_tool.build_parser().parse_args(list(argv))


def test_benchmark_plan_on_cpu(monkeypatch):
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 0)
    rows = benchmark.plan(bench_args('--num-layers', '20,56', '--image-shape', '1,28,28',
                                     '--batch-sizes', '1,64', '--dtypes', 'float32,float16'))
    assert len(rows) == 2 * 2 * 2
    assert {r['device'] for r in rows} == {('cpu', 0)}
    assert rows[0]['modes'] == ('train', 'inference')


def test_benchmark_gpu_branch(monkeypatch):
    """With GPUs present, 'auto' adds GPU 0 after the CPU and cells run on it."""
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 2)
    assert benchmark.devices('auto') == [('cpu', 0), ('gpu', 0)]
    assert benchmark.devices('0,1', no_cpu=True) == [('gpu', 0), ('gpu', 1)]
    assert benchmark.devices('none') == [('cpu', 0)]
    with pytest.raises(benchmark.UsageError, match='GPUs 0..1'):
        benchmark.devices('2')
    seen = []

    def fake_measure(row, mode, warmup, iters, repeats):
        seen.append((row['device'], row['dtype'], mode))
        return 123.0
    out = io.StringIO()
    rows = benchmark.run(bench_args('--num-layers', '20', '--image-shape', '3,28,28',
                                    '--dtypes', 'float16', '--mode', 'train'),
                         out, measure_fn=fake_measure)
    assert seen == [(('cpu', 0), 'float16', 'train'), (('gpu', 0), 'float16', 'train')]
    table = out.getvalue()
    assert '| gpu(0) | resnet | 20 | float16 | 32 | 123.0 |' in table
    assert len(rows) == 2
    assert benchmark._context(('gpu', 1)) == mx.gpu(1)


def test_benchmark_without_gpu(monkeypatch, capsys):
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 0)
    assert benchmark.devices('auto') == [('cpu', 0)]
    assert benchmark_tool.main(['--gpus', '0']) == 2
    assert 'this machine has no GPU' in capsys.readouterr().err
    assert benchmark_tool.main(['--gpus', 'none', '--no-cpu']) == 2
    assert benchmark_tool.main(['--num-layers', '21', '--image-shape', '3,28,28']) == 2
    assert benchmark_tool.main(['--dtypes', 'int8']) == 2
    assert benchmark_tool.main(['--batch-sizes', '0']) == 2


@pytest.mark.parametrize('gpus, chosen', [('none', True), ('auto', False)])
def test_benchmark_command_line_engine(monkeypatch, gpus, chosen):
    """From the command line, CPU-only runs use MXNet's synchronous engine (the threaded
    one's OpenMP teams contend on a few cores); runs with a GPU keep the threaded one."""
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 1)
    calls = []
    monkeypatch.setattr(benchmark, 'use_naive_engine', lambda: calls.append('engine'))
    benchmark.run(bench_args('--num-layers', '20', '--image-shape', '3,28,28', '--gpus', gpus),
                  io.StringIO(), measure_fn=lambda *a: 1.0, pick_engine=True)
    assert calls == (['engine'] if chosen else [])


def test_use_naive_engine_only_for_one_cpu_process(monkeypatch):
    monkeypatch.delenv('MXNET_ENGINE_TYPE', raising=False)
    for gpus, kv_store, chosen in [('', 'local', True), ('0', 'local', False),
                                   ('', 'dist_sync', False)]:
        assert runtime.use_naive_engine(gpus, kv_store) is chosen
        assert 'MXNET_ENGINE_TYPE' not in os.environ  # set only while the engine starts
    monkeypatch.setenv('MXNET_ENGINE_TYPE', 'ThreadedEngine')
    assert runtime.use_naive_engine() is False
    assert os.environ['MXNET_ENGINE_TYPE'] == 'ThreadedEngine'


ENGINE_THREADS = """
import os, sys
from mxnet import nd
from mxresnet import runtime
before = len(os.listdir('/proc/self/task'))
if sys.argv[1] == 'naive':
    runtime.use_naive_engine()
(nd.ones((64, 64)) * 2).wait_to_read()
print(len(os.listdir('/proc/self/task')) - before, 'MXNET_ENGINE_TYPE' in os.environ)
"""


@pytest.mark.skipif(not os.path.isdir('/proc/self/task'), reason='needs /proc')
def test_naive_engine_is_the_one_mxnet_runs():
    """MXNet's threaded engines start worker threads with their first operator; the
    synchronous engine that use_naive_engine starts runs every operator on the caller's."""
    env = {k: v for k, v in os.environ.items() if k != 'MXNET_ENGINE_TYPE'}

    def new_threads(mode):
        out = subprocess.run([sys.executable, '-c', ENGINE_THREADS, mode], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=True).stdout
        threads, variable_left = out.split()
        assert variable_left == 'False'
        return int(threads)
    assert new_threads('naive') == 0
    assert new_threads('threaded') > 0


def test_format_table():
    rows = [dict(device=('cpu', 0), network='resnet', layers=20, dtype='float32', batch=8,
                 train=10.0, inference=20.25),
            dict(device=('cpu', 0), network='resnet', layers=20, dtype='float16', batch=8,
                 train=benchmark.CPU_FLOAT16, inference=benchmark.CPU_FLOAT16)]
    lines = benchmark.format_table(rows).split('\n')
    assert lines[0] == '| device | network | layers | dtype | batch | train img/s | ' \
                       'inference img/s |'
    assert lines[2] == '| cpu(0) | resnet | 20 | float32 | 8 | 10.0 | 20.2 |'
    assert 'no float16 GEMM on CPU' in lines[3]


def test_benchmark_measures_on_cpu(monkeypatch, capsys):
    """A real run: numbers for float32, the float16 cells say why there are none."""
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 0)
    rc = benchmark_tool.main(['--num-layers', '8', '--network', 'resnet-v1',
                         '--image-shape', '1,28,28', '--num-classes', '10',
                         '--batch-sizes', '2', '--dtypes', 'float32,float16',
                         '--warmup', '1', '--iters', '1', '--repeats', '1'])
    out = capsys.readouterr().out
    assert rc == 0
    float32, float16 = out.strip().split('\n')[2:]
    train, infer = [float(c) for c in float32.strip('| ').split(' | ')[5:]]
    assert train > 0 and infer > 0
    assert float16.count(benchmark.CPU_FLOAT16) == 2


def module_forward(prefix, epoch, x):
    """The checkpoint's training graph (SoftmaxOutput) run by Module on x."""
    sym, arg_params, aux_params = mx.model.load_checkpoint(prefix, epoch)
    mod = mx.mod.Module(sym, context=mx.cpu())
    mod.bind([('data', x.shape)], [('softmax_label', (x.shape[0],))], for_training=False)
    mod.set_params(arg_params, aux_params)
    mod.forward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.zeros((x.shape[0],))]),
                is_train=False)
    return mod.get_outputs()[0].asnumpy()


@pytest.fixture(scope='module')
def images():
    return np.random.RandomState(0).uniform(-2, 2, (5, 1, 28, 28)).astype(np.float32)


def test_symbolblock_matches_module(tiny_checkpoint, images):
    prefix, epoch = tiny_checkpoint
    block = export.gluon_block(prefix, epoch)
    assert isinstance(block, mx.gluon.SymbolBlock)
    expected = module_forward(prefix, epoch, images)
    np.testing.assert_allclose(block(mx.nd.array(images)).asnumpy(), expected, atol=1e-6)


def test_gluon_export_imports(tiny_checkpoint, images, tmp_path, capsys):
    prefix, epoch = tiny_checkpoint
    out = str(tmp_path / 'gluon' / 'r20')
    assert export_tool.main(['--model', prefix, '--epoch', str(epoch), '--format', 'gluon',
                             '-o', out]) == 0
    block = mx.gluon.SymbolBlock.imports(out + '-symbol.json', ['data'], out + '-0000.params')
    np.testing.assert_allclose(block(mx.nd.array(images)).asnumpy(),
                               module_forward(prefix, epoch, images), atol=1e-6)
    assert_preprocess_of(out + '-preprocess.json', prefix)


def assert_preprocess_of(path, prefix):
    with open(path) as f:
        pre = json.load(f)
    meta = checkpoint.read_metadata(prefix)
    assert (pre['image_shape'], pre['mean'], pre['std'], pre['synset']) == \
        (meta['image_shape'], meta['mean'], meta['std'], meta['synset'])
    assert pre['channel_order'] == 'gray' and pre['layout'] == 'NCHW'
    return pre


@pytest.fixture(scope='module')
def onnx_file(tiny_checkpoint, tmp_path_factory):
    pytest.importorskip('onnx', reason='the onnx extra is not installed: '
                                       'pip install -e ".[onnx]"')
    prefix, epoch = tiny_checkpoint
    path = str(tmp_path_factory.mktemp('onnx') / 'r20.onnx')
    assert export_tool.main(['--model', prefix, '--epoch', str(epoch), '-o', path]) == 0
    return path


def test_onnx_graph(onnx_file):
    import onnx
    model = onnx.load(onnx_file)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ['data']
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [1, 28, 28] and not dims[0].dim_value
    assert [o.name for o in model.graph.output] == ['softmax']


def test_onnx_export_carries_its_preprocessing(tiny_checkpoint, onnx_file):
    import onnx
    pre = assert_preprocess_of(onnx_file[:-len('.onnx')] + '-preprocess.json',
                               tiny_checkpoint[0])
    props = {p.key: p.value for p in onnx.load(onnx_file).metadata_props}
    assert json.loads(props['preprocess']) == pre


def test_onnxruntime_matches_mxnet(tiny_checkpoint, onnx_file, images):
    """ONNX Runtime's output equals Module's within 1e-4. Without ONNX Runtime (its wheels
    declare numpy>=1.24: it needs pip install --no-deps onnxruntime==1.16.3), onnx's own
    reference evaluator is checked instead, on one image (it takes ~20 s), with a warning."""
    prefix, epoch = tiny_checkpoint
    try:
        import onnxruntime
    except ImportError:
        from onnx.reference import ReferenceEvaluator
        warnings.warn('ONNX Runtime is not installed (pip install --no-deps '
                      'onnxruntime==1.16.3): checked onnx.reference.ReferenceEvaluator instead')
        got = ReferenceEvaluator(onnx_file).run(None, {'data': images[:1]})[0]
        np.testing.assert_allclose(got, module_forward(prefix, epoch, images[:1]), atol=1e-4)
        return
    session = onnxruntime.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    for batch in (1, 5):  # the batch dimension is dynamic
        got = session.run(None, {'data': images[:batch]})[0]
        np.testing.assert_allclose(got, module_forward(prefix, epoch, images[:batch]),
                                   atol=1e-4)


def test_export_errors(tmp_path, capsys):
    assert export_tool.main(['--model', str(tmp_path / 'none'), '--epoch', '1']) == 2
    err = capsys.readouterr().err
    assert 'no symbol file' in err and 'Traceback' not in err


def readme_gluon_example():
    """The README's Gluon example: its python block that imports a SymbolBlock."""
    with open(os.path.join(ROOT, 'README.md')) as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
    found = [b for b in blocks if 'SymbolBlock.imports' in b]
    assert len(found) == 1, 'the README has no single Gluon example'
    return found[0]


def test_readme_gluon_example_predicts_as_predict_does(tiny_checkpoint, tmp_path, monkeypatch,
                                                       capsys):
    """Run as written in a folder laid out like the README's (the exported checkpoint in
    runs/resnet-20/, the samples in data/): the same class and probability as predict.py."""
    prefix, epoch = tiny_checkpoint
    code = readme_gluon_example()
    exported = re.search(r"prefix = '([^']+)'", code).group(1)
    image = re.search(r"imread\('([^']+)'", code).group(1)
    assert export_tool.main(['--model', prefix, '--epoch', str(epoch), '--format', 'gluon',
                             '-o', str(tmp_path / exported)]) == 0
    capsys.readouterr()  # the paths export printed
    os.makedirs(tmp_path / 'data')
    os.symlink(os.path.join(ROOT, 'data', 'samples'), tmp_path / 'data' / 'samples')
    assert predict.main([os.path.join(ROOT, image), '--model', prefix, '--epoch', str(epoch),
                         '--json', '--top-k', '1']) == 0
    expected = json.loads(capsys.readouterr().out)['top'][0]
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, 'README.md', 'exec'), {})  # pylint: disable=exec-used
    name, probability = out.getvalue().strip().rsplit(' ', 1)
    assert name == expected['label']
    assert float(probability) == pytest.approx(expected['probability'], abs=1e-5)
