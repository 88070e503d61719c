"""Shared helpers for the test suite: golden reference graphs and graph statistics."""
import gzip
import json
import os
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mxresnet.runtime import use_all_cores  # noqa: E402
use_all_cores()  # as the commands' main() does, so in-process and CLI runs compute alike

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

GOLDEN_DIR = os.path.join(ROOT, 'tests', 'golden')


def golden_index():
    """Entries of tests/golden/INDEX.json (copied from the reference graphs)."""
    with open(os.path.join(GOLDEN_DIR, 'INDEX.json')) as f:
        return json.load(f)


def load_golden(filename):
    with gzip.open(os.path.join(GOLDEN_DIR, filename), 'rt') as f:
        return json.load(f)


def graph_of(sym):
    """The parts of a tojson() graph that define it: nodes, arg_nodes and heads."""
    graph = json.loads(sym.tojson())
    return {key: graph[key] for key in ('nodes', 'arg_nodes', 'heads')}


def assert_same_graph(sym, golden):
    """Node-by-node equality with a parsed reference graph, with a readable first difference."""
    ours = graph_of(sym)
    theirs = {key: golden[key] for key in ('nodes', 'arg_nodes', 'heads')}
    for i, (a, b) in enumerate(zip(ours['nodes'], theirs['nodes'])):
        assert a == b, 'node %d differs:\n ours:      %s\n reference: %s' % (i, a, b)
    assert len(ours['nodes']) == len(theirs['nodes'])
    assert ours == theirs


def count_params(sym, data_shape):
    """Learnable parameters: every argument except data and softmax_label."""
    arg_shapes, _, _ = sym.infer_shape(data=data_shape)
    total = 0
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name not in ('data', 'softmax_label'):
            size = 1
            for dim in shape:
                size *= dim
            total += size
    return total


def bind(sym, data_shape, grad_req='write'):
    """An executor with He-initialised weights, random data and random labels."""
    exe = sym.simple_bind(ctx=mx.cpu(), data=data_shape, grad_req=grad_req)
    init = mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)
    mx.random.seed(0)
    rng = np.random.RandomState(0)
    attrs = sym.attr_dict()
    for name, arr in list(exe.arg_dict.items()) + list(exe.aux_dict.items()):
        if name == 'softmax_label':
            arr[:] = rng.randint(0, exe.outputs[0].shape[1], size=arr.shape)
        elif name == 'data':
            arr[:] = rng.uniform(-1, 1, size=arr.shape)
        else:
            init(mx.init.InitDesc(name, attrs.get(name)), arr)
    return exe


def assert_gradients_reach_every_argument(sym, exe):
    """After exe.backward(): a finite, non-zero gradient for every argument but the label."""
    for name in sym.list_arguments():
        if name == 'softmax_label':
            continue
        grad = exe.grad_dict[name].asnumpy()
        assert np.all(np.isfinite(grad)), name
        if name == 'bn_data_gamma':
            # fix_gamma=True: gamma is held at 1 and MXNet gives it a zero gradient by design.
            assert not np.any(grad), name
        else:
            assert np.any(grad != 0), 'no gradient reaches %s' % name


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """(prefix, epoch) of a ResNet-20 trained for 4 batches of 64 on the bundled data."""
    import train_resnet
    prefix = str(tmp_path_factory.mktemp('tiny') / 'model')
    train_resnet.run(['--num-examples', '256', '--batch-size', '64', '--num-epochs', '1',
                      '--lr', '0.1', '--data-nthreads', '1', '--disp-batches', '100',
                      '--model-prefix', prefix])
    return prefix, 1


@pytest.fixture
def job_factory(tmp_path):
    """start(launch_args, command, env=None, program=None): a `jobs.Job`, killed with what
    it left behind at the end of the test."""
    from jobs import Job, marked_pids
    jobs = []

    def start(launch_args, command, env=None, program=None):
        name = 'launch' if not jobs else 'launch-%d' % (len(jobs) + 1)
        jobs.append(Job(launch_args, command, tmp_path, env, program, name))
        return jobs[-1]
    yield start
    for job in jobs:
        if job.proc.poll() is None or marked_pids(job.marker):
            job.kill()
