"""ResNet and ResNeXt image classifiers on Apache MXNet 1.9.1's symbolic API.

Installs `symbols` (the graphs; MXNet's example scripts import them by that name), the
library `mxresnet`, the command-line tools of tools/ as `mxresnet.tools`, and
`train_resnet`. The developer benchmarks in benchmarks/ are not installed.
"""
from setuptools import setup

# MXNet comes through an extra, so a GPU user never gets the CPU wheel forced on them.
# ONNX export (tools/export.py): MXNet 1.9.1's exporter imports onnx.mapping, removed in
# onnx 1.16; onnx 1.14.1 works with numpy 1.23. ONNX Runtime cannot be an extra: every wheel
# of it for Python 3.11 (1.15.0 and later) declares numpy>=1.24.2, which MXNet 1.9.1 cannot
# import beside, although 1.16.3 runs fine on numpy 1.23.5 (same C API). Install it with
#     pip install --no-deps onnxruntime==1.16.3
# after this package; its other dependencies are listed here.
ONNX = ['onnx==1.14.1', 'protobuf>=3.20.2,<5', 'coloredlogs', 'flatbuffers', 'packaging',
        'sympy']
# TensorBoard curves (train_resnet.py --tensorboard DIR): mxboard 0.1.0 imports only with
# protobuf 3.20.3 or older ("Descriptors cannot be created directly" with protobuf 4), which
# onnx 1.14.1 accepts too (>=3.20.2). tensorboard, to view the curves and for the tests'
# reader, reads mxboard's files; 2.20.0 declares numpy>=1.12, so numpy stays below 1.24
# (install_requires); the upper bound keeps a later release from asking for more.
TENSORBOARD = ['mxboard==0.1.0', 'protobuf>=3.20.2,<=3.20.3', 'tensorboard>=2.14,<2.21']

# Serving (tools/export.py --format mar writes the archive without it): Multi Model Server's
# Python side; its frontend needs Java (checked with OpenJDK 17; Debian: default-jre-headless).
SERVING = ['multi-model-server==1.1.11']

# --data-backend dali (mxresnet/dali.py): NVIDIA DALI's CPU pipeline.
# 1.34.0 is the last release whose wheel holds the library itself (later ones fetch it from
# NVIDIA's own index at install time); it runs CPU-only pipelines without CUDA. Its
# dependency dm-tree asks for numpy>=1.23.3 on Python 3.11, which numpy 1.23.5 meets.
DALI = ['nvidia-dali-cuda110==1.34.0']
# benchmarks/pipeline.py cuts its JPEGs from the photos inside this wheel (skimage.data);
# 0.24 is the last release that accepts numpy 1.23 (0.25 needs numpy>=1.24).
BENCHMARKS = ['scikit-image==0.24.0']

EXTRAS = {
    'cpu': ['mxnet==1.9.1'],
    'gpu': ['mxnet-cu112==1.9.1'],
    'onnx': ONNX,
    'tensorboard': TENSORBOARD,
    'serving': SERVING,
    'dali': DALI,
    'benchmarks': BENCHMARKS,
    'test': ['pytest>=7'] + ONNX + TENSORBOARD + SERVING + DALI + BENCHMARKS,
    # experiments/finetune_digits.py: the handwritten digits inside the wheel
    'experiments': ['scikit-learn>=1.3,<1.4'],
}

setup(
    name='mxnet-resnet',
    version='0.1.0',
    description=__doc__,
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=['symbols', 'mxresnet', 'mxresnet.tools'],
    package_dir={'mxresnet.tools': 'tools'},
    package_data={'mxresnet': ['worker_site/sitecustomize.py']},   # launch.WORKER_SITE
    py_modules=['train_resnet'],
    install_requires=[
        # mxnet 1.9.1 fails to import with numpy 1.24 and later
        'numpy>=1.21,<1.24',
        'opencv-python<4.9',
        'gluoncv==0.10.5.post0',
        'matplotlib',
    ],
    extras_require=EXTRAS,
    entry_points={'console_scripts': [
        'train-resnet=train_resnet:main',
    ] + ['resnet-%s=mxresnet.tools.%s:main' % (tool.replace('_', '-'), tool) for tool in (
        'model_stats', 'plot_curves', 'launch', 'im2rec', 'cifar2rec', 'mnist2rec', 'score',
        'predict', 'benchmark', 'quantize', 'export', 'import_gluoncv')]},
)
