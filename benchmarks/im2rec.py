#!/usr/bin/env python3
"""Packing speed of ``tools/im2rec.py`` against the ``im2rec.py`` shipped in the mxnet wheel.

Generates ``--num-images`` photo-like JPEGs (``--size``, five class folders), lists them once,
then packs the same ``.lst`` with each tool at 1 and ``--threads`` threads and the same
options, and prints a table of images/s. Every run is a fresh process timed end to end
(interpreter and mxnet start-up included, the same for both tools); the best of ``--repeat``
runs is reported, with the rate also computed net of the interpreter + ``import cv2, mxnet``
start-up time. Not a test: run it by hand, e.g.

    python benchmarks/im2rec.py --num-images 3000 --resize 256
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet.errors import UsageError, run_tool

HERE = os.path.dirname(os.path.abspath(__file__))


def wheel_im2rec():
    import mxnet
    path = os.path.join(os.path.dirname(mxnet.__file__), 'tools', 'im2rec.py')
    if not os.path.isfile(path):
        raise UsageError('the mxnet wheel has no tools/im2rec.py at %s' % path)
    return path


def make_images(root, n, width, height, seed=0):
    """Smooth random colour fields (JPEG-friendly, unlike white noise) in five folders."""
    import cv2
    import numpy as np
    rng = np.random.RandomState(seed)
    for i in range(n):
        folder = os.path.join(root, 'class%d' % (i % 5))
        os.makedirs(folder, exist_ok=True)
        small = rng.randint(0, 256, (height // 16 + 1, width // 16 + 1, 3)).astype(np.uint8)
        img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.randint(0, 24, img.shape).astype(np.uint8))
        cv2.imwrite(os.path.join(folder, '%05d.jpg' % i), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def timed(cmd, cwd):
    start = time.time()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          universal_newlines=True)
    elapsed = time.time() - start
    if proc.returncode != 0:
        raise UsageError('%s failed (%d): %s' % (' '.join(cmd), proc.returncode,
                                                proc.stderr.strip()[-500:]))
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--num-images', type=int, default=3000)
    parser.add_argument('--size', default='500x375', help='WIDTHxHEIGHT of generated images')
    parser.add_argument('--threads', type=int, default=2, help='the multi-thread setting')
    parser.add_argument('--repeat', type=int, default=2, help='runs per setting (best kept)')
    parser.add_argument('--workdir', default=None, help='folder to work in (default: a temp '
                        'folder, removed afterwards)')
    parser.add_argument('pack_options', nargs=argparse.REMAINDER,
                        help='options passed to both tools, e.g. --resize 256 --quality 90')
    args, unknown = parser.parse_known_args(argv)
    pack_options = unknown + [x for x in args.pack_options if x != '--']
    try:
        width, height = (int(x) for x in args.size.lower().split('x'))
    except ValueError:
        raise UsageError('--size must look like 500x375, got %r' % args.size)

    workdir = args.workdir or tempfile.mkdtemp(prefix='im2rec-bench-')
    os.makedirs(workdir, exist_ok=True)
    try:
        root = os.path.join(workdir, 'images')
        if not os.path.isdir(root):
            print('generating %d %dx%d JPEGs in %s ...' % (args.num_images, width, height, root))
            make_images(root, args.num_images, width, height)
        ours = [sys.executable, os.path.join(HERE, 'im2rec.py')]
        wheel = [sys.executable, wheel_im2rec()]
        subprocess.run(ours + [os.path.join(workdir, 'bench'), root, '--list', '--recursive'],
                       check=True, stdout=subprocess.DEVNULL)
        lst = os.path.join(workdir, 'bench.lst')
        settings = [('ours (tools/im2rec.py)', ours, 1), ('ours (tools/im2rec.py)', ours,
                                                          args.threads),
                    ('mxnet wheel im2rec.py', wheel, 1),
                    ('mxnet wheel im2rec.py', wheel, args.threads)]
        # Rounds interleave the settings, so drift in machine speed hits all of them alike.
        best = [None] * len(settings)
        startup = None
        run_dir = os.path.join(workdir, 'run')
        for _ in range(args.repeat):
            for _ in range(2):  # the first may be a cold start
                elapsed = timed([sys.executable, '-c', 'import cv2, mxnet'], workdir)
                startup = elapsed if startup is None else min(startup, elapsed)
            for k, (name, cmd, threads) in enumerate(settings):
                shutil.rmtree(run_dir, ignore_errors=True)
                os.makedirs(run_dir)
                shutil.copy(lst, os.path.join(run_dir, 'bench.lst'))
                elapsed = timed(cmd + [os.path.join(run_dir, 'bench'), root, '--num-thread',
                                       str(threads)] + pack_options, workdir)
                print('  %s, %d thread(s): %.2fs' % (name, threads, elapsed), file=sys.stderr)
                best[k] = elapsed if best[k] is None else min(best[k], elapsed)
        results = [(name, threads, t, args.num_images / t,
                    args.num_images / max(t - startup, 1e-6))
                   for (name, _, threads), t in zip(settings, best)]
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print('\n%d images %dx%d JPEG, options: %s; %s, %d CPU cores, Python %s'
          % (args.num_images, width, height, ' '.join(pack_options) or '(defaults)',
             platform.machine(), os.cpu_count(), platform.python_version()))
    print('best of %d interleaved runs; start-up (python -c "import cv2, mxnet"): %.2fs'
          % (args.repeat, startup))
    print('| tool | --num-thread | seconds (end to end) | images/s (end to end) | '
          'images/s (start-up subtracted) |')
    print('| --- | --- | --- | --- | --- |')
    for name, threads, t, rate, net in results:
        print('| %s | %d | %.2f | %.0f | %.0f |' % (name, threads, t, rate, net))
    ours1, oursn, wheel1, wheeln = (r[4] for r in results)
    print('\nstart-up subtracted: ours %d threads / ours 1 thread: %.2fx; ours / wheel at '
          '%d threads: %.2fx; ours / wheel at 1 thread: %.2fx' % (args.threads, oursn / ours1, args.threads,
                                               oursn / wheeln, ours1 / wheel1))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main, prog='benchmarks/im2rec.py'))
