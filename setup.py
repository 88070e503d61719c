"""ResNet and ResNeXt image classifiers on Apache MXNet 1.9.1's symbolic API."""
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

EXTRAS = {
    'cpu': ['mxnet==1.9.1'],
    'gpu': ['mxnet-cu112==1.9.1'],
    'onnx': ONNX,
    'test': ['pytest>=7'] + ONNX,
}

setup(
    name='mxnet-resnet',
    version='0.1.0',
    description=__doc__,
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=['symbols', 'tools', 'common'],
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
        'resnet-model-stats=tools.model_stats:main',
        'resnet-plot-curves=tools.plot_curves:main',
        'resnet-launch=tools.launch:main',
        'resnet-im2rec=tools.im2rec:cli',
        'resnet-cifar2rec=tools.cifar2rec:cli',
        'resnet-mnist2rec=tools.mnist2rec:cli',
        'resnet-score=tools.score:main',
        'resnet-predict=tools.predict:main',
        'resnet-benchmark=tools.benchmark:main',
        'resnet-quantize=tools.quantize:main',
        'resnet-export=tools.export:main',
    ]},
)
