"""benchmarks/resnext.py: its MXNet contenders run, and the harness reads each contender's
process (the figures themselves: docs/training.md, "ResNeXt on the CPU")."""
import argparse
import json
import stat

import pytest

from benchmarks import resnext


@pytest.mark.parametrize('contender', ['mxnet-module', 'mxnet-module-unmerged'])
def test_mxnet_contenders_train_resnext50(contender):
    assert resnext.run_one(contender, batch_size=1, warmup=0, iters=1) > 0


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
    speed, reason = resnext.measure('torch-compile', options(python))
    assert (speed, reason) == (8 * 5 / 4.0, None)
    assert '--worker torch-compile --batch-size 8 --warmup 2 --iters 5' in log.read_text()


def test_a_failed_contender_reports_its_last_error_line(tmp_path):
    python = fake_python(tmp_path, 'echo "Traceback" >&2; echo "ModuleNotFoundError: torch" >&2;'
                                   ' exit 1')
    assert resnext.measure('torch-eager', options(python)) == \
        (None, 'ModuleNotFoundError: torch')
