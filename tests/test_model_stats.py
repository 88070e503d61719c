"""tools/model_stats.py: the statistics it computes and its command line."""
import os
import subprocess
import sys

import mxnet as mx
import pytest

import symbols
from conftest import ROOT, count_params
from mxresnet.stats import model_stats
from tools.model_stats import main

SCRIPT = os.path.join(ROOT, 'tools', 'model_stats.py')


def build(network, num_layers, image_shape, num_classes, **options):
    with mx.name.NameManager():
        return symbols.get_symbol(network, num_classes=num_classes, num_layers=num_layers,
                                  image_shape=image_shape, **options)


def test_sections_and_totals_of_resnext50():
    sym = build('resnext', 50, '3,224,224', 1000)
    sections = model_stats(sym, (3, 224, 224))
    assert [s.name for s in sections] == ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'head']
    assert [s.output_shape for s in sections] == [(64, 56, 56), (256, 56, 56), (512, 28, 28),
                                                  (1024, 14, 14), (2048, 7, 7), (1000,)]
    assert sum(s.params for s in sections) == count_params(sym, (1, 3, 224, 224)) == 25028910
    assert sections[-1].macs == 2048 * 1000
    # conv0: 64 x 112 x 112 outputs, 3 x 7 x 7 multiply-adds each
    assert sections[0].macs == 64 * 112 * 112 * 3 * 7 * 7
    assert all(s.activation_bytes > 0 for s in sections)


def test_float16_halves_activation_memory_inside():
    f32 = model_stats(build('resnet-v1', 20, '3,32,32', 10), (3, 32, 32))
    f16 = model_stats(build('resnet-v1', 20, '3,32,32', 10, dtype='float16'), (3, 32, 32))
    assert f16[1].activation_bytes * 2 == f32[1].activation_bytes
    assert [s.macs for s in f16] == [s.macs for s in f32]


def test_main_prints_the_table(capsys):
    assert main(['--network', 'resnext', '--num-layers', '50', '--image-shape', '3,224,224',
                 '--num-group', '8', '--bottleneck-width', '14']) == 0
    out = capsys.readouterr().out
    assert 'num_group=8' in out and 'stage4' in out
    assert 'total: 25.60M parameters, 4.27 GMACs' in out


def run_script(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True, text=True,
                          cwd=ROOT)


def test_runs_as_a_script_with_cifar_defaults():
    result = run_script('--network', 'resnet-v1', '--num-layers', '20', '--image-shape', '3,32,32')
    assert result.returncode == 0, result.stderr
    assert '10 classes' in result.stdout
    assert 'total: 0.27M parameters' in result.stdout


@pytest.mark.parametrize('args,expected', [
    (['--network', 'resnet-v1', '--num-layers', '56', '--image-shape', '3,32,32',
      '--shortcut', 'D'], "shortcut='D' is not valid: choose one of A, B, C"),
    (['--network', 'resnext', '--num-layers', '50', '--image-shape', '3,224,224',
      '--shortcut', 'A'], "network 'resnext' has no option shortcut"),
    (['--network', 'vgg', '--num-layers', '16', '--image-shape', '3,224,224'],
     "invalid choice: 'vgg'"),
    (['--network', 'resnet', '--num-layers', '56', '--image-shape', '3,32,32'],
     "num_layers=56 is not a depth resnet builds for image_shape 3,32,32"),
    (['--network', 'resnet', '--num-layers', '20', '--image-shape', '3x28x28'],
     "--image-shape '3x28x28': expected three positive integers"),
    (['--network', 'resnet', '--num-layers', 'twenty', '--image-shape', '3,28,28'],
     "argument --num-layers: invalid int value"),
])
def test_bad_input_is_one_line_and_exit_2(args, expected):
    result = run_script(*args)
    assert result.returncode == 2
    assert result.stdout == ''
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert lines[0].startswith('model_stats.py: error: ')
