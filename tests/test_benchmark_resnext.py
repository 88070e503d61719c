"""benchmarks/resnext.py: its MXNet contenders run, and the harness reads each contender's
process (the figures themselves: docs/training.md, "ResNeXt on the CPU")."""
import argparse
import json
import stat

import pytest

from benchmarks import resnext


@pytest.mark.parametrize('contender,model', [('mxnet-module', 'resnext50_32x4d'),
                                             ('mxnet-module-unmerged', 'resnext50_32x4d'),
                                             ('mxnet-module', 'resnext29_32x4d'),
                                             ('gluoncv', 'resnext29_32x4d')])
def test_mxnet_contenders_train(contender, model):
    spec = json.loads(json.dumps(resnext.model_spec(model)))  # as a worker receives it
    assert resnext.run_one(contender, spec, batch_size=1, warmup=0, iters=1) > 0


def test_model_specs_carry_the_layout():
    spec = resnext.model_spec('resnext50_32x4d')
    assert (spec['units'], spec['groups'], spec['width'], spec['imagenet']) == \
        ([3, 4, 6, 3], 32, 4, True)
    spec = resnext.model_spec('resnext29_8x64d')
    assert (spec['units'], spec['groups'], spec['width'], spec['image_shape']) == \
        ([3, 3, 3], 8, 64, [3, 32, 32])


def fake_python(tmp_path, body):
    path = tmp_path / 'python'
    path.write_text('#!/bin/sh\n' + body + '\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def options(torch_python):
    return argparse.Namespace(torch_python=torch_python, batch_size=8, warmup=2, iters=5,
                              timeout=60)


def test_torch_contenders_run_in_the_torch_python(tmp_path):
    log = tmp_path / 'argv'
    python = fake_python(tmp_path, 'echo "$@" > %s; echo \'%s\'' % (
        log, json.dumps({'seconds': 4.0})))
    speed, reason = resnext.measure('torch-compile', {'model': 'm'}, options(python))
    assert (speed, reason) == (8 * 5 / 4.0, None)
    assert '--worker torch-compile --spec {"model": "m"} --batch-size 8 --warmup 2 --iters 5' \
        in log.read_text()


def test_a_failed_contender_reports_its_last_error_line(tmp_path):
    python = fake_python(tmp_path, 'echo "Traceback" >&2; echo "ModuleNotFoundError: torch" >&2;'
                                   ' exit 1')
    assert resnext.measure('torch-eager', {'model': 'm'}, options(python)) == \
        (None, 'ModuleNotFoundError: torch')
