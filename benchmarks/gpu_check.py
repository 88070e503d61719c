#!/usr/bin/env python
"""Does the MXNet build on this machine work on its GPU? One line OK/FAIL per step.

    python benchmarks/gpu_check.py                 # import only
    python benchmarks/gpu_check.py conv bn         # import, then the named steps
    python benchmarks/gpu_check.py all             # every step, in one process

Steps: import, alloc (zeros on gpu(0)), elementwise, conv (Convolution, cuDNN, against
the CPU), bn (BatchNorm, cuDNN, against the CPU), train32 / train16 (two ResNet-50 steps
at batch 32 through train_resnet.py's --benchmark path). An MXNet CUDA error can leave
the process unusable, so run one step per process to see each step's own result:
    for s in alloc elementwise conv bn train32 train16; do python benchmarks/gpu_check.py $s; done
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy  # noqa: E402

from mxresnet.runtime import hide_broken_scipy, restore_numpy_aliases  # noqa: E402

mx = None


def step(name, fn):
    """Run fn; print OK with its result or FAIL with the error's first lines."""
    start = time.time()
    try:
        out = fn()
    except Exception as err:  # pylint: disable=broad-except
        msg = ' | '.join(str(err).strip().split('\n')[:3])[:600]
        print('FAIL %-24s %s: %s' % (name, type(err).__name__, msg), flush=True)
        return False
    print('OK   %-24s %s (%.1f s)' % (name, out, time.time() - start), flush=True)
    return True


def check_import():
    global mx  # pylint: disable=global-statement
    import mxnet
    mx = mxnet
    feats = mx.runtime.Features()
    return '%s, num_gpus=%d, CUDA=%s CUDNN=%s NCCL=%s' % (
        mx.__version__, mx.context.num_gpus(), feats.is_enabled('CUDA'),
        feats.is_enabled('CUDNN'), feats.is_enabled('NCCL'))


def check_alloc():
    a = mx.nd.zeros((4, 4), ctx=mx.gpu(0))
    a.wait_to_read()
    return a.asnumpy().sum()


def check_elementwise():
    a = mx.nd.array(numpy.arange(6.0), ctx=mx.gpu(0))
    return (a * 2 + 1).asnumpy().tolist()


def check_conv():
    x = numpy.random.randn(2, 3, 16, 16).astype('float32')
    w = numpy.random.randn(8, 3, 3, 3).astype('float32')
    outs = [mx.nd.Convolution(mx.nd.array(x, ctx=c), mx.nd.array(w, ctx=c), kernel=(3, 3),
                              num_filter=8, no_bias=True).asnumpy()
            for c in (mx.cpu(), mx.gpu(0))]
    return 'max |gpu-cpu| = %.2e' % abs(outs[0] - outs[1]).max()


def check_bn():
    x = numpy.random.randn(4, 8, 8, 8).astype('float32')
    params = [numpy.ones(8, 'float32'), numpy.zeros(8, 'float32'),
              numpy.zeros(8, 'float32'), numpy.ones(8, 'float32')]
    outs = []
    for c in (mx.cpu(), mx.gpu(0)):
        with mx.autograd.train_mode():
            outs.append(mx.nd.BatchNorm(mx.nd.array(x, ctx=c),
                                        *[mx.nd.array(p, ctx=c) for p in params],
                                        fix_gamma=False, cudnn_off=False).asnumpy())
    return 'max |gpu-cpu| = %.2e' % abs(outs[0] - outs[1]).max()


def check_train(dtype):
    def run():
        import train_resnet
        argv = ['--benchmark', '1', '--gpus', '0', '--network', 'resnet', '--num-layers', '50',
                '--image-shape', '3,224,224', '--num-classes', '1000', '--batch-size', '32',
                '--dtype', dtype, '--num-epochs', '1', '--num-examples', '64',
                '--disp-batches', '1', '--model-prefix', '/tmp/gpu_check/%s/m' % dtype]
        if dtype == 'float16':
            argv += ['--loss-scale', '128']
        return 'run record %s' % train_resnet.run(argv)
    return run


STEPS = {'alloc': ('allocate on gpu(0)', check_alloc),
         'elementwise': ('elementwise kernel', check_elementwise),
         'conv': ('Convolution (cuDNN)', check_conv),
         'bn': ('BatchNorm (cuDNN)', check_bn),
         'train32': ('ResNet-50 step float32', check_train('float32')),
         'train16': ('ResNet-50 step float16', check_train('float16'))}


def main(argv=None):
    names = sys.argv[1:] if argv is None else argv
    if names == ['all']:
        names = list(STEPS)
    unknown = [n for n in names if n not in STEPS and n != 'import']
    if unknown:
        print('unknown step(s) %s: choose from import, all, %s'
              % (', '.join(unknown), ', '.join(STEPS)), file=sys.stderr)
        return 2
    print('numpy %s; aliases restored: %s; scipy hidden: %s' % (
        numpy.__version__, restore_numpy_aliases(numpy), hide_broken_scipy()), flush=True)
    if not step('import mxnet', check_import):
        return 1
    ok = True
    for name in names:
        if name != 'import':
            ok = step(*STEPS[name]) and ok
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
