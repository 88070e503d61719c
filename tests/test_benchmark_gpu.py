"""benchmarks/gpu.py on the CPU: everything but the GPU runs themselves, which are
replaced at the child-process boundary (run_child) or by CPU runs of the same path."""
import json
import math
import os
import re
import subprocess
import sys
import types

import mxnet as mx
import pytest

from conftest import ROOT
import train_resnet
from benchmarks import gpu as bench
from mxresnet import fit, runtime


def test_numpy_aliases_are_restored_only_where_missing():
    fake = types.SimpleNamespace(bool='kept')
    assert runtime.restore_numpy_aliases(fake) == ['int', 'float', 'complex', 'object', 'str']
    assert fake.bool == 'kept' and fake.int is int and fake.object is object
    assert runtime.restore_numpy_aliases(fake) == []


def test_list_arguments(monkeypatch, capsys):
    runs = []
    monkeypatch.setattr(bench, 'gpu_description', lambda: runs.append(1) or 'GPU')
    monkeypatch.setattr(bench, 'run_ours', lambda args, bs, dt: runs.append((bs, dt)) or
                        {'side': 'ours', 'batch_size': bs, 'dtype': dt, 'images_per_sec': 1.0})
    assert bench.main(['--batch-sizes', '64,32', '--dtypes', 'float16', '--only', 'ours']) == 0
    assert runs == [1, (64, 'float16'), (32, 'float16')]
    for bad in (['--batch-sizes', '0'], ['--batch-sizes', 'a,b'], ['--batch-sizes', ''],
                ['--dtypes', 'float32,bfloat16'], ['--iters', '0']):
        assert bench.main(bad) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and bad[0] in err, err
    assert runs == [1, (64, 'float16'), (32, 'float16')]


def test_our_flags_give_train_resnet_a_gpu_float16_resnet50(monkeypatch):
    argv = bench.ours_train_args(128, 'float16', 10, 40, 0, 128.0, '/tmp/x/model')
    args = train_resnet.build_parser().parse_args(argv)
    image_shape = fit.configure(args)
    assert (args.network, args.num_layers, image_shape) == ('resnet', 50, (3, 224, 224))
    assert (args.dtype, args.loss_scale, args.benchmark, args.gpus) == ('float16', 128.0, 1, '0')
    assert args.log_file == '/tmp/x/model-log.jsonl'
    # One display at the end of the warm-up, one at the end of the timed batches.
    assert args.disp_batches == 10 and args.num_examples == 128 * 50
    # The GPU is mocked at the boundary: the trainer sees one device and the local store.
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 1)
    trainer = fit.Trainer(args, fit.build_symbol(args, image_shape), image_shape)
    assert trainer.contexts == [mx.gpu(0)] and trainer.kv is None
    assert trainer.epoch_size == 50
    assert '--loss-scale' not in bench.ours_train_args(128, 'float32', 10, 40, 0, 128.0, 'p')


def records_for(batch_size, times, disp):
    """train_resnet's 'batch' records for batches that end at `times` (seconds)."""
    out = [{'event': 'start'}]
    for b, t in enumerate(times, 1):
        if b % disp == 0 or b == len(times):
            out.append({'event': 'batch', 'epoch': 1, 'batch': b,
                        'images_per_sec': b * batch_size / t})
    return out


def test_timed_speed_leaves_the_warm_up_out():
    # 10 slow warm-up batches (5 s in all), then 40 batches of 0.1 s: 128 / 0.1 images/s.
    times = [0.5 * b for b in range(1, 11)] + [5 + 0.1 * b for b in range(1, 41)]
    records = records_for(128, times, 10)
    assert bench.timed_speed(records, 128, 10) == pytest.approx(1280.0)
    with pytest.raises(ValueError, match='warm-up'):
        bench.timed_speed(records_for(128, times[:10], 10), 128, 10)
    with pytest.raises(ValueError, match='warm-up'):
        bench.timed_speed(records, 128, 7)


def test_timed_speed_reads_a_real_train_resnet_log(tmp_path, monkeypatch):
    """The log contract on the CPU: the same --benchmark path, a small network."""
    prefix = str(tmp_path / 'm')
    argv = ['--benchmark', '1', '--network', 'resnet', '--num-layers', '20',
            '--image-shape', '3,28,28', '--num-classes', '10', '--batch-size', '16',
            '--num-epochs', '1', '--num-examples', str(16 * 5), '--disp-batches', '2',
            '--model-prefix', prefix]
    assert train_resnet.main(argv) == 0
    speed = bench.timed_speed(bench.read_records(prefix + '-log.jsonl'), 16, 2)
    assert math.isfinite(speed) and speed > 0


def test_the_torch_child_gets_no_pythonpath():
    env = bench.torch_env({'PYTHONPATH': '/tmp/site', 'PATH': '/bin', 'CUDA_VISIBLE_DEVICES': '0'})
    assert env == {'PATH': '/bin', 'CUDA_VISIBLE_DEVICES': '0'}


def test_failed_children_report_their_error(monkeypatch, tmp_path):
    args = bench.build_parser().parse_args(['--workdir', str(tmp_path)])
    seen = []

    def fake_run_child(cmd, env, timeout):
        seen.append((cmd, env))
        return 1, ('Traceback (most recent call last):\n  File "x.py", line 1\n'
                   'OSError: libcudnn.so.8: cannot open shared object file\n')
    monkeypatch.setattr(bench, 'run_child', fake_run_child)
    monkeypatch.setenv('PYTHONPATH', '/tmp/site')
    result = bench.run_ours(args, 128, 'float16')
    assert result['error'] == 'OSError: libcudnn.so.8: cannot open shared object file'
    assert seen[-1][0][2] == '--child-ours' and seen[-1][1]['PYTHONPATH'] == '/tmp/site'
    result = bench.run_torch(args, 128, 'float16')
    assert 'libcudnn' in result['error'] and 'PYTHONPATH' not in seen[-1][1]
    assert seen[-1][0][2:] == ['--child-torch', '128', 'float16', '10', '40', '0']
    assert bench.last_error_line('') == 'no output'
    assert bench.last_error_line('a\nb: error: --gpus 0: no GPU\nc') == 'b: error: --gpus 0: no GPU'


def test_torch_result_line_is_parsed(monkeypatch):
    args = bench.build_parser().parse_args([])
    monkeypatch.setattr(bench, 'run_child', lambda cmd, env, timeout: (
        0, 'warming up\nRESULT {"images_per_sec": 4660.2, "gpu_name": "H"}\n'))
    assert bench.run_torch(args, 256, 'float16')['images_per_sec'] == 4660.2
    monkeypatch.setattr(bench, 'run_child', lambda cmd, env, timeout: (0, 'nothing'))
    assert 'no RESULT' in bench.run_torch(args, 256, 'float16')['error']


def result(side, bs, dtype, speed=None, error=None):
    r = {'side': side, 'batch_size': bs, 'dtype': dtype}
    if error:
        r['error'] = error
    else:
        r['images_per_sec'] = speed
    return r


def test_table_ratios_and_target():
    results = [result('ours', 128, 'float32', 1000.0), result('torch', 128, 'float32', 2000.0),
               result('ours', 128, 'float16', 3600.0), result('torch', 128, 'float16', 4000.0),
               result('ours', 256, 'float16', 2000.0), result('torch', 256, 'float16', 4000.0)]
    table = bench.format_table(results, [128, 256], ['float32', 'float16'])
    lines = table.splitlines()
    assert lines[0].split('|')[1:-1] == [' batch ', ' dtype         ', ' ours img/s ',
                                         ' PyTorch img/s ', ' ours/PyTorch ']
    assert '| 128   | float32       | 1000       | 2000          | 0.50x        |' in lines
    assert '| 256   | float32       | -          | -             | -            |' in lines
    assert 'batch 128, ours float16 / PyTorch AMP: 0.90x: target 0.8x met' in lines
    assert 'batch 256, ours float16 / PyTorch AMP: 0.50x: target 0.8x NOT met' in lines


def test_table_with_failed_runs():
    results = [result('ours', 128, 'float16', error='OSError: libcudnn.so.8'),
               result('torch', 128, 'float16', 3817.7)]
    table = bench.format_table(results, [128], ['float16'])
    assert '| 128   | float16 (AMP) | failed     | 3818          | -            |' in table
    assert 'batch 128, ours float16 / PyTorch AMP: not measured' in table
    assert 'ours float16 batch 128 failed: OSError: libcudnn.so.8' in table


def test_main_runs_each_side_and_writes_json(monkeypatch, tmp_path, capsys):
    calls = []

    def fake(side, speed):
        def run(args, bs, dtype):
            calls.append((side, bs, dtype))
            return result(side, bs, dtype, speed)
        return run
    monkeypatch.setattr(bench, 'run_ours', fake('ours', 900.0))
    monkeypatch.setattr(bench, 'run_torch', fake('torch', 1000.0))
    monkeypatch.setattr(bench, 'gpu_description', lambda: 'NVIDIA Test GPU, 1.0, 1 MiB')
    out = str(tmp_path / 'r.json')
    assert bench.main(['--batch-sizes', '64', '--dtypes', 'float16', '--json', out]) == 0
    assert calls == [('ours', 64, 'float16'), ('torch', 64, 'float16')]
    printed = capsys.readouterr().out
    assert 'on NVIDIA Test GPU' in printed and '0.90x: target 0.8x met' in printed
    with open(out) as f:
        assert json.load(f)['results'][0]['images_per_sec'] == 900.0
    calls.clear()
    bench.main(['--batch-sizes', '64', '--dtypes', 'float16', '--only', 'torch'])
    assert calls == [('torch', 64, 'float16')]
    assert bench.main(['--iters', '0']) == 2


def test_a_broken_scipy_is_hidden_from_mxnet(tmp_path):
    """The GPU machine's scipy (built for numpy 2) fails under numpy 1.x with an
    AttributeError, which mxnet's `import scipy.sparse` guard does not catch."""
    broken = tmp_path / 'scipy'
    broken.mkdir()
    (broken / '__init__.py').write_text("raise AttributeError(\"module 'numpy' has no "
                                        "attribute 'long'\")\n")
    code = ('import sys\n'
            'from mxresnet import runtime as b\n'
            'assert b.hide_broken_scipy() is True and b.hide_broken_scipy() is True\n'
            'try:\n    import scipy.sparse\nexcept ImportError:\n    pass\n'
            'else:\n    raise SystemExit("scipy still importable")\n'
            'import mxnet\nprint("mxnet", mxnet.__version__)\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    proc = subprocess.run([sys.executable, '-c', code], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'mxnet 1.9.1' in proc.stdout


def test_a_working_or_absent_scipy_is_left_alone():
    assert runtime.hide_broken_scipy() is False
    assert 'scipy' not in sys.modules or sys.modules['scipy'] is not None


def test_gpu_check_reports_each_step(capsys):
    from benchmarks import gpu_check
    assert gpu_check.main(['import']) == 0
    out = capsys.readouterr().out
    gpus = mx.context.num_gpus()
    assert 'OK   import mxnet' in out and 'num_gpus=%d' % gpus in out
    # Each GPU step is reported, none raising: OK where MXNet has a GPU, else FAIL.
    status = gpu_check.main(['alloc', 'conv'])
    out = capsys.readouterr().out
    if gpus:
        assert status == 0 and 'OK   allocate on gpu(0)' in out, out
    else:
        assert status == 1
        assert re.search(r'FAIL allocate on gpu\(0\) +MXNetError', out)
        assert 'FAIL Convolution (cuDNN)' in out
    assert gpu_check.main(['bogus']) == 2
