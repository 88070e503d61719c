#!/usr/bin/env python
"""Serving speed: a checkpoint's Multi Model Server archive (`tools/export.py --format mar`)
answering PNG requests on 127.0.0.1 at 1 and 4 concurrent clients, beside the same model in
this process: `tools/predict.py`'s path (`inference.predict_files`, one image per call, so a
bind per call) and a module bound once (one image per forward: the compute floor).

    python benchmarks/serving.py                     # ResNet-20 briefly trained on data/
    python benchmarks/serving.py --model runs/r20/model --epoch 30 --workers 1,2

Each row: `--requests` requests (at most `--seconds` seconds) after 20 unmeasured ones;
latency is per request as the client sees it (connection kept open per client).
"""
import argparse
import os
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WARMUP = 20


def sample_pngs(count):
    """`count` PNG images of the bundled validation set, as stored (28x28 gray)."""
    import cv2
    import mxnet as mx
    record = mx.recordio.MXIndexedRecordIO(os.path.join(ROOT, 'data', 'fashion-mnist-val.idx'),
                                           os.path.join(ROOT, 'data', 'fashion-mnist-val.rec'),
                                           'r')
    images = []
    for key in record.keys[:count]:
        _, img = mx.recordio.unpack_img(record.read_idx(key), cv2.IMREAD_GRAYSCALE)
        images.append(cv2.imencode('.png', img)[1].tobytes())
    record.close()
    return images


def brief_checkpoint(workdir):
    """(prefix, epoch) of a ResNet-20 trained one short epoch on the bundled data."""
    import train_resnet
    prefix = os.path.join(workdir, 'model')
    with open(os.path.join(workdir, 'train.log'), 'w') as log:
        stdout, sys.stdout = sys.stdout, log
        try:
            train_resnet.run(['--num-examples', '512', '--batch-size', '64', '--num-epochs', '1',
                              '--data-nthreads', '1', '--model-prefix', prefix])
        finally:
            sys.stdout = stdout
    return prefix, 1


def timed(call, count, seconds, clients):
    """(requests done, wall seconds, [latency seconds]) of `clients` threads calling
    `call(i)` until `count` calls are done or `seconds` have passed."""
    latencies, lock, next_index = [], threading.Lock(), [0]
    deadline = time.perf_counter() + seconds

    def client():
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= count or time.perf_counter() > deadline:
                return
            start = time.perf_counter()
            call(i)
            with lock:
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies), time.perf_counter() - start, latencies


def row(path, clients, measured):
    done, wall, latencies = measured
    ms = 1000 * np.array(latencies)
    return (path, clients, done, done / wall, np.percentile(ms, 50), np.percentile(ms, 99))


def serve_rows(archive, images, workers, args, workdir):
    import http.client
    from mxresnet.model_server import HOST, LocalModelServer
    rows = []
    with LocalModelServer(archive, os.path.join(workdir, 'server-%d' % workers),
                          workers=workers) as server:
        local = threading.local()

        def call(i):
            if not hasattr(local, 'connection'):
                local.connection = http.client.HTTPConnection(HOST, server.port, timeout=60)
            local.connection.request('POST', '/predictions/' + server.name,
                                     body=images[i % len(images)],
                                     headers={'Content-Type': 'image/png'})
            response = local.connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError('the server answered %d' % response.status)

        timed(call, WARMUP, args.seconds, 1)
        for clients in (1, 4):
            rows.append(row('Multi Model Server, %d worker%s' % (workers, 's' * (workers > 1)),
                            clients, timed(call, args.requests, args.seconds, clients)))
    return rows


def in_process_rows(prefix, epoch, images, args, workdir):
    import mxnet as mx
    from mxresnet import checkpoint, inference
    model = checkpoint.load_model(prefix, epoch)
    paths = []
    for i, data in enumerate(images):
        paths.append(os.path.join(workdir, 'image%d.png' % i))
        with open(paths[-1], 'wb') as f:
            f.write(data)

    def predict_call(i):
        inference.predict_files(model, [paths[i % len(paths)]])

    shape = (1,) + tuple(model.metadata['image_shape'])
    module = inference.bind_module(model.symbol, model.arg_params, model.aux_params, shape)

    def forward_call(i):
        array = inference.load_image(paths[i % len(paths)], model.metadata)
        module.forward(mx.io.DataBatch([mx.nd.array(array[None])]), is_train=False)
        module.get_outputs()[0].asnumpy()

    rows = []
    for name, call in (('tools/predict.py in-process (a bind per call)', predict_call),
                       ('bound module, one image per forward', forward_call)):
        timed(call, WARMUP, args.seconds, 1)
        rows.append(row(name, 1, timed(call, args.requests, args.seconds, 1)))
    return rows


def format_table(rows, out):
    print('| path | clients | requests | requests/s | p50 ms | p99 ms |', file=out)
    print('| --- | ---: | ---: | ---: | ---: | ---: |', file=out)
    for path, clients, done, rate, p50, p99 in rows:
        print('| %s | %d | %d | %.1f | %.1f | %.1f |' % (path, clients, done, rate, p50, p99),
              file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', help='checkpoint prefix; default: a ResNet-20 trained one '
                        'short epoch on the bundled data')
    parser.add_argument('--epoch', type=int, default=1)
    parser.add_argument('--requests', type=int, default=500, help='requests per row')
    parser.add_argument('--seconds', type=float, default=60, help='time limit per row')
    parser.add_argument('--workers', default='1,2', help='server worker counts, e.g. "1,2"')
    args = parser.parse_args(argv)
    from mxresnet import checkpoint, export
    with tempfile.TemporaryDirectory() as workdir:
        prefix, epoch = (args.model, args.epoch) if args.model else brief_checkpoint(workdir)
        archive = export.export_mar(checkpoint.load_model(prefix, epoch),
                                    os.path.join(workdir, 'store', 'model.mar'))
        images = sample_pngs(100)
        rows = []
        for workers in [int(w) for w in args.workers.split(',')]:
            rows += serve_rows(archive, images, workers, args, workdir)
        rows += in_process_rows(prefix, epoch, images, args, workdir)
    format_table(rows, sys.stdout)


if __name__ == '__main__':
    main()
