#!/usr/bin/env python3
"""Input-pipeline speed: OpenCV's decoding alone against each --data-backend, with and
without ImageNet training augmentation, over the same .rec of photo JPEGs.

The JPEGs are cut from the colour photos inside scikit-image's wheel (`skimage.data`,
nothing downloaded): --num-images crops of varied position, size and mirroring, resized
to --size and packed at JPEG quality 90. Every row is measured --repeat times, the rows
interleaved so that drift in the machine's load hits all of them alike, and the median is
printed: images/s of wall time, and images per CPU-second of the whole process (all its
threads), which moves less on a shared machine. Not a test: run it by hand, e.g.

    python benchmarks/pipeline.py --repeat 5
"""
import argparse
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet.errors import UsageError, run_tool  # noqa: E402
from mxresnet.runtime import use_all_cores  # noqa: E402

PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'retina', 'hubble_deep_field',
          'immunohistochemistry')
# ImageNet training augmentation in our flags: Inception-style crops of 8-100% of the
# image and aspect ratios 3/4..4/3, mirror, colour jitter, the ImageNet mean and std.
TRAIN_AUG = ['--random-resized-crop', '1', '--min-random-area', '0.08',
             '--max-random-aspect-ratio', '0.25', '--random-mirror', '1',
             '--brightness', '0.4', '--contrast', '0.4', '--saturation', '0.4']
TRAIN_AUG_NO_SATURATION = TRAIN_AUG[:-2]
NO_AUG = ['--resize', '256']
NORMALISE = ['--rgb-mean', '123.68,116.779,103.939', '--rgb-std', '58.393,57.12,57.375']


def make_dataset(base, count, width, height, seed=0):
    """`base`.rec/.idx: `count` JPEGs cut from scikit-image's photos, labelled by photo."""
    try:
        import skimage.data
    except ImportError:
        raise UsageError('the benchmark cuts its JPEGs from scikit-image\'s sample photos: '
                         'pip install "scikit-image==0.24.0"')
    import cv2
    import numpy as np
    from mxresnet.recordio import pack_arrays
    photos = [cv2.cvtColor(getattr(skimage.data, name)(), cv2.COLOR_RGB2BGR)
              for name in PHOTOS]
    rng = np.random.RandomState(seed)
    images = []
    for i in range(count):
        photo = photos[i % len(photos)]
        rows, cols = photo.shape[:2]
        # a crop of 30-100% of the photo with the output's aspect ratio
        crop_w = int(min(cols, np.sqrt(rng.uniform(0.3, 1) * rows * cols * width / height)))
        crop_h = int(min(rows, crop_w * height / width))
        crop_w = int(crop_h * width / height)
        top, left = rng.randint(0, rows - crop_h + 1), rng.randint(0, cols - crop_w + 1)
        image = cv2.resize(photo[top:top + crop_h, left:left + crop_w], (width, height),
                           interpolation=cv2.INTER_AREA)
        images.append(np.ascontiguousarray(image[:, ::-1] if rng.rand() < 0.5 else image))
    labels = [i % len(photos) for i in range(count)]
    pack_arrays(base, images, labels, encoding='.jpg', quality=90, label='benchmark set')


def read_payloads(rec, idx):
    import mxnet as mx
    records = mx.recordio.MXIndexedRecordIO(idx, rec, 'r')
    payloads = [mx.recordio.unpack(records.read_idx(key))[1] for key in records.keys]
    records.close()
    return payloads


def decode_only(payloads, threads):
    """A function that decodes every payload with OpenCV on `threads` threads."""
    import cv2
    import numpy as np

    def decode(data):
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape

    def run():
        if threads == 1:
            for data in payloads:
                decode(data)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(decode, payloads, chunksize=16))
        return len(payloads)
    return run


def pipeline_run(rec, idx, backend, flag_list, batch_size, threads, epochs):
    """A function reading `epochs` epochs of a fresh iterator of --data-backend `backend`
    made from the training flags `flag_list`, as train_resnet.py makes it."""
    import train_resnet
    from mxresnet import data, flags
    args = train_resnet.build_parser().parse_args(
        ['--data-train', rec, '--data-backend', backend, '--image-shape', '3,224,224',
         '--data-nthreads', str(threads)] + flag_list + NORMALISE)
    flags.apply_presets(args)
    record_iter = data.backend_record_iter(args, {'--data-train': idx})
    mean, std = flags.normalisation(args, 3)
    augment = args if args.random_resized_crop else None

    def run():
        it = record_iter(rec, idx, (3, 224, 224), mean, std, batch_size, threads, augment,
                         resize=args.resize)
        seen = 0
        for epoch in range(epochs):
            if epoch:
                it.reset()
            for batch in it:
                batch.data[0].wait_to_read()
                seen += batch.data[0].shape[0] - (batch.pad or 0)
        return seen
    return run


def load():
    return '%.2f %.2f %.2f' % os.getloadavg()


def main(argv=None):
    use_all_cores()  # ImageRecordIter's threads are MXNet's OpenMP threads, as in training
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--num-images', type=int, default=1000)
    parser.add_argument('--size', default='500x375', help='WIDTHxHEIGHT of the JPEGs')
    parser.add_argument('--threads', type=int, default=os.cpu_count(),
                        help='decoding threads of every pipeline (--data-nthreads)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--epochs', type=int, default=2, help='epochs per measurement')
    parser.add_argument('--repeat', type=int, default=5, help='measurements per row')
    parser.add_argument('--backends', default='mxnet,dali', help='--data-backend values')
    parser.add_argument('--workdir', help='folder for the .rec (kept; default: a temporary '
                        'one, removed afterwards)')
    args = parser.parse_args(argv)
    try:
        width, height = (int(x) for x in args.size.lower().split('x'))
    except ValueError:
        raise UsageError('--size %r: expected WIDTHxHEIGHT, e.g. 500x375' % args.size)
    from mxresnet import flags
    backends = [b.strip() for b in args.backends.split(',') if b.strip()]
    for backend in backends:
        if backend not in flags.DATA_BACKENDS:
            raise UsageError('--backends: %r is not one of %s'
                             % (backend, ', '.join(flags.DATA_BACKENDS)))
    workdir = args.workdir or tempfile.mkdtemp(prefix='pipeline-bench-')
    os.makedirs(workdir, exist_ok=True)
    base = os.path.join(workdir, 'photos-%dx%d-%d' % (width, height, args.num_images))
    rec, idx = base + '.rec', base + '.idx'
    try:
        if not os.path.isfile(idx):
            make_dataset(base, args.num_images, width, height)
        payloads = read_payloads(rec, idx)
        rows = [('OpenCV decode only, 1 thread', decode_only(payloads, 1)),
                ('OpenCV decode only, %d threads' % args.threads,
                 decode_only(payloads, args.threads))]
        for backend in backends:
            for name, flag_list in (
                    ('ImageNet training augmentation', TRAIN_AUG),
                    ('the same without --saturation', TRAIN_AUG_NO_SATURATION),
                    ('no augmentation (resize 256, centre crop)', NO_AUG)):
                rows.append(('--data-backend %s, %s' % (backend, name),
                             pipeline_run(rec, idx, backend, flag_list, args.batch_size,
                                          args.threads, args.epochs)))
        loads = [load()]
        wall = {name: [] for name, _ in rows}
        cpu = {name: [] for name, _ in rows}
        for _ in range(args.repeat):
            for name, run in rows:
                start, start_cpu = time.time(), time.process_time()
                count = run()
                wall[name].append(count / (time.time() - start))
                cpu[name].append(count / max(time.process_time() - start_cpu, 1e-9))
                print('  %s: %.0f images/s' % (name, wall[name][-1]), file=sys.stderr)
            loads.append(load())
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    bound = statistics.median(wall[rows[0][0]]) * os.cpu_count()
    print('\n%s; %d JPEGs %dx%d (quality 90) from skimage.data; %s, %d CPU cores, Python %s'
          % (datetime.date.today().isoformat(), args.num_images, width, height,
             platform.machine(), os.cpu_count(), platform.python_version()))
    print('command: python benchmarks/pipeline.py %s' % ' '.join(argv if argv is not None
                                                                 else sys.argv[1:]))
    print('batch %d, %d threads, %d epochs a measurement, median of %d; load average '
          '(1, 5, 15 min) before and after each round: %s'
          % (args.batch_size, args.threads, args.epochs, args.repeat, '; '.join(loads)))
    print('decode-only bound: 1-thread median x %d cores = %.0f images/s\n'
          % (os.cpu_count(), bound))
    print('| pipeline | images/s (median) | min..max | of the bound | images per CPU-second |')
    print('| --- | --- | --- | --- | --- |')
    for name, _ in rows:
        print('| %s | %.0f | %.0f..%.0f | %.0f%% | %.0f |' % (
            name, statistics.median(wall[name]), min(wall[name]), max(wall[name]),
            100 * statistics.median(wall[name]) / bound, statistics.median(cpu[name])))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main, prog='benchmarks/pipeline.py'))
