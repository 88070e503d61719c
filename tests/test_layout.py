"""The project's layout as its users meet it: imports that change nothing, the symbols
package as MXNet's example scripts load it, and the named models."""
import importlib
import os
import subprocess
import sys

import mxnet as mx
import pytest

import symbols
from conftest import ROOT, count_params

LIBRARY = sorted('mxresnet.' + name[:-3] for name in os.listdir(os.path.join(ROOT, 'mxresnet'))
                 if name.endswith('.py') and name != '__init__.py')
TOOLS = sorted('tools.' + name[:-3] for name in os.listdir(os.path.join(ROOT, 'tools'))
               if name.endswith('.py') and name != '__init__.py')
BENCHMARKS = sorted('benchmarks.' + name[:-3]
                    for name in os.listdir(os.path.join(ROOT, 'benchmarks'))
                    if name.endswith('.py'))
# The commands that compute with MXNet set its thread count from main(), before it loads.
LOADS_MXNET_IN_MAIN = ['train_resnet', 'tools.score', 'tools.predict', 'tools.export',
                       'tools.quantize', 'tools.benchmark']

IMPORT_ALL = """
import importlib, os, sys
import mxnet
before = dict(os.environ)
for name in sys.argv[1:]:
    importlib.import_module(name)
    changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}
    assert not changed, '%s changed %s' % (name, sorted(changed))
print('ok')
"""


def python(code, *args):
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS',
                                                            'MXNET_ENGINE_TYPE')}
    return subprocess.run([sys.executable, '-c', code] + list(args), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_importing_any_module_leaves_the_environment_alone():
    modules = ['symbols', 'symbols.resnet-v1', 'train_resnet', 'experiments.fashion_mnist'] + \
        LIBRARY + TOOLS + BENCHMARKS
    result = python(IMPORT_ALL, *modules)
    assert result.returncode == 0 and result.stdout.strip() == 'ok', result.stderr[-2000:]


@pytest.mark.parametrize('module', LOADS_MXNET_IN_MAIN)
def test_commands_load_mxnet_only_from_main(module):
    code = 'import importlib, sys; importlib.import_module(%r); print("mxnet" in sys.modules)'
    result = python(code % module)
    assert result.stdout.strip() == 'False', result.stderr[-2000:]


def test_use_all_cores_sets_the_threads_only_while_mxnet_loads():
    code = ('import os, ctypes; from mxresnet import runtime; runtime.use_all_cores(); '
            'import mxnet; print("OMP_NUM_THREADS" in os.environ)')
    result = python(code)
    assert result.returncode == 0 and result.stdout.strip() == 'False', result.stderr


@pytest.mark.parametrize('network', ['resnet', 'resnet-v1', 'resnext'])
def test_symbols_load_as_mxnet_example_scripts_load_them(network):
    """MXNet's example fit scripts do import_module('symbols.' + args.network).get_symbol."""
    module = importlib.import_module('symbols.' + network)
    shape = '3,28,28' if network == 'resnet' else '3,32,32'
    with mx.name.NameManager():
        sym = module.get_symbol(num_classes=10, num_layers=20 if network != 'resnext' else 164,
                                image_shape=shape)
    with mx.name.NameManager():
        registry = symbols.get_symbol(network, num_classes=10,
                                      num_layers=20 if network != 'resnext' else 164,
                                      image_shape=shape)
    assert sym.tojson() == registry.tojson()


def test_python_m_symbols_lists_every_named_model():
    result = python('import runpy; runpy.run_module("symbols", run_name="__main__")')
    assert result.returncode == 0
    result = subprocess.run([sys.executable, '-m', 'symbols', '--list'], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == symbols.list_models()
    assert ['resnext50_32x4d', 'resnext', '50', '3x224x224'] == \
        [row[:4] for row in rows if row[0] == 'resnext50_32x4d'][0]


# Parameter counts with published references: torchvision's ImageNet models (ours add the
# 6 learned values of bn_data over 3 channels, which they do not have), and the papers'
# CIFAR tables (He et al. 2015, Table 6; He et al. 2016, Table 2), in millions to their
# precision. (ResNet-1001, 10.2M in He et al. 2016, has 10.33M as the MXNet reference
# builds it, golden-tested: left out.)
TORCHVISION_PARAMS = {
    'resnet18_v1': 11689512, 'resnet34_v1': 21797672, 'resnet50_v1': 25557032,
    'resnet101_v1': 44549160, 'resnet152_v1': 60192808, 'resnext50_32x4d': 25028904,
    'resnext101_64x4d': 83455272,
}
PAPER_MILLIONS = {'resnet20_v1': 0.27, 'resnet32_v1': 0.46, 'resnet44_v1': 0.66,
                  'resnet56_v1': 0.85, 'resnet110_v1': 1.7, 'resnet164': 1.7,
                  'resnet1202_v1': 19.4, 'resnext29_8x64d': 34.4}
BN_DATA = 6


@pytest.mark.parametrize('name', symbols.list_models())
def test_named_model(name):
    """Every named model builds at its input, classifies into its classes, and has the
    parameters of its reference where one is published."""
    config = symbols.model_config(name)
    with mx.name.NameManager():
        sym = symbols.get_model(name)
    data = (1,) + config.image_shape
    _, out_shapes, _ = sym.infer_shape(data=data)
    assert out_shapes == [(1, config.num_classes)]
    if name in TORCHVISION_PARAMS:
        assert count_params(sym, data) == TORCHVISION_PARAMS[name] + BN_DATA
    if name in PAPER_MILLIONS:
        digits = 1 if PAPER_MILLIONS[name] >= 1 else 2
        assert round(count_params(sym, data) / 1e6, digits) == PAPER_MILLIONS[name]


def test_named_model_refuses_an_input_that_changes_its_layers():
    with pytest.raises(ValueError, match='model resnet50 is built for 3x224x224 inputs'):
        symbols.get_model('resnet50', image_shape='3,28,28')
    sym = symbols.get_model('resnet56', num_classes=4, image_shape='1,28,28')
    assert sym.infer_shape(data=(1, 1, 28, 28))[1] == [(1, 4)]
    with pytest.raises(ValueError, match="unknown model 'resnet9'"):
        symbols.model_config('resnet9')
