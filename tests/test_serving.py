"""Serving: `tools/export.py --format mar`, its handler in-process, and Multi Model Server on
127.0.0.1 answering as `tools/predict.py` does.

The server tests need the `serving` extra and Java (.ci/run installs both). Without them they
fail with the reason, rather than skip unseen; set ``RESNET_SKIP_SERVING=1`` to skip them on
purpose on a machine without them.
"""
import importlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile

import cv2
import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT
from mxresnet import checkpoint, export
from mxresnet.model_server import LocalModelServer
from recio_helpers import assert_clean_error, run_cli
from tools import export as export_tool
from tools import predict

VAL_REC = os.path.join(ROOT, 'data', 'fashion-mnist-val.rec')
VAL_IDX = os.path.join(ROOT, 'data', 'fashion-mnist-val.idx')


def encoded_images():
    """{name: bytes}: two PNGs of the validation set as stored (28x28 gray) and two colour
    JPEGs of other sizes made from them (decoded to gray, resized and cropped)."""
    record = mx.recordio.MXIndexedRecordIO(VAL_IDX, VAL_REC, 'r')
    images = {}
    for i in range(2):
        _, img = mx.recordio.unpack_img(record.read_idx(record.keys[i]), cv2.IMREAD_GRAYSCALE)
        images['val%d.png' % i] = cv2.imencode('.png', img)[1].tobytes()
        colour = cv2.applyColorMap(cv2.resize(img, (60 + 20 * i, 45)), cv2.COLORMAP_JET)
        images['val%d.jpg' % i] = cv2.imencode('.jpg', colour)[1].tobytes()
    record.close()
    return images


def huge_png():
    """A PNG whose header claims 20000x20000 pixels (nothing after the header is valid)."""
    data = bytearray(cv2.imencode('.png', np.zeros((8, 8), np.uint8))[1].tobytes())
    data[16:24] = struct.pack('>II', 20000, 20000)
    return bytes(data)


# Bodies that are not usable images and the reason each answer must give.
BAD_BODIES = {
    'not an image': (b'this is text, not an image', 'not a decodable image'),
    'empty': (b'', 'no image data'),
    '20000x20000 header': (huge_png(), 'claims 20000x20000 pixels'),
}


@pytest.fixture(scope='module')
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('images')
    paths = {}
    for name, data in encoded_images().items():
        paths[name] = str(folder / name)
        with open(paths[name], 'wb') as f:
            f.write(data)
    return paths


@pytest.fixture(scope='module')
def predicted(tiny_checkpoint, image_files):
    """{file name: predict.py --json's top-5 list}."""
    prefix, epoch = tiny_checkpoint
    out = io.StringIO()
    args = predict.build_parser().parse_args(
        sorted(image_files.values()) + ['--model', prefix, '--epoch', str(epoch), '--json'])
    assert predict.run(args, out=out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return {os.path.basename(line['image']): line['top'] for line in lines}


@pytest.fixture(scope='module')
def archive(tiny_checkpoint, tmp_path_factory):
    prefix, epoch = tiny_checkpoint
    path = str(tmp_path_factory.mktemp('store') / 'fmnist.mar')
    assert export_tool.run(export_tool.build_parser().parse_args(
        ['--model', prefix, '--epoch', str(epoch), '--format', 'mar', '-o', path])) == [path]
    return path


def assert_same_top(answer, expected, tolerance=1e-5):
    """The server's or handler's top-k equals predict.py's: classes and labels exactly,
    probabilities within `tolerance` (another batch size may round differently)."""
    assert [(t['class'], t['label']) for t in answer] == \
        [(t['class'], t['label']) for t in expected]
    np.testing.assert_allclose([t['probability'] for t in answer],
                               [t['probability'] for t in expected], atol=tolerance)


# ----------------------------------------------------------------------------- archive
def test_archive_holds_graph_weights_preprocessing_and_handler(archive, tiny_checkpoint):
    model = checkpoint.load_model(*tiny_checkpoint)
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read('MAR-INF/MANIFEST.json'))
        preprocess = json.loads(z.read('model-preprocess.json'))
        serving = json.loads(z.read('serving.json'))
        graph = json.loads(z.read('model-symbol.json'))
    assert names == {'model-symbol.json', 'model-0000.params', 'model-preprocess.json',
                     'serving.json', 'mxresnet_serving/__init__.py',
                     'mxresnet_serving/handler.py', 'mxresnet_serving/images.py',
                     'MAR-INF/MANIFEST.json'}
    assert manifest['model'] == {'modelName': 'fmnist', 'handler': export.MAR_HANDLER}
    assert manifest['runtime'] == 'python' and manifest['engine'] == {'engineName': 'MXNet'}
    assert preprocess == json.loads(json.dumps(checkpoint.preprocessing(model.metadata)))
    assert preprocess['synset'][3] == 'Dress'
    assert serving == {'top_k': 5}
    # the inference graph: softmax, no label input
    ops = [node['op'] for node in graph['nodes']]
    assert 'SoftmaxOutput' not in ops and ops[-1] == 'softmax'


@pytest.mark.parametrize('argv, needles', [
    (['-o', 'fmnist.zip'], ['fmnist.zip', 'NAME.mar']),
    (['-o', '-bad.mar'], ['-bad.mar']),
    (['-o', 'ok.mar', '--top-k', '0'], ['--top-k 0']),
])
def test_export_mar_refuses_bad_output_before_loading(tiny_checkpoint, tmp_path, capsys, argv,
                                                      needles):
    prefix, epoch = tiny_checkpoint
    argv = [str(tmp_path / a) if a.endswith(('.zip', '.mar')) else a for a in argv]
    rc, _, err = run_cli(export_tool.main, ['--model', prefix + '-missing', '--epoch', epoch,
                                            '--format', 'mar'] + argv, capsys)
    assert_clean_error(rc, err, *needles)
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------- handler
class FakeContext:
    """What the handler uses of MMS's Context."""

    def __init__(self, model_dir):
        self.system_properties = {'model_dir': model_dir, 'gpu_id': None, 'batch_size': 4}
        self.statuses = {}

    def set_response_status(self, code=200, phrase='', idx=0):
        self.statuses[idx] = (code, phrase)


@pytest.fixture(scope='module')
def handler(archive, tmp_path_factory):
    """The archive's handler module, imported from the unpacked archive as MMS does."""
    model_dir = str(tmp_path_factory.mktemp('unpacked'))
    with zipfile.ZipFile(archive) as z:
        z.extractall(model_dir)
    sys.path.insert(0, model_dir)
    try:
        module = importlib.import_module('mxresnet_serving.handler')
        assert module.__file__.startswith(model_dir)
        context = FakeContext(model_dir)
        assert module.handle(None, context) is None   # MMS's load-time call
        yield module, context
    finally:
        sys.path.remove(model_dir)
        for name in [n for n in sys.modules if n.startswith('mxresnet_serving')]:
            del sys.modules[name]


def test_handler_answers_a_batch_as_predict_does_and_400s_the_bad_requests(
        handler, predicted):
    module, context = handler
    images = encoded_images()
    requests = [{'body': bytearray(images['val0.png'])},
                {'body': bytearray(BAD_BODIES['not an image'][0])},
                {'data': bytearray(images['val1.jpg']), 'top_k': bytearray(b'2')},
                {'body': 'text sent as text/plain'},
                {'body': {'json': 'object'}},
                {'data': bytearray(images['val0.jpg']), 'top_k': bytearray(b'two')}]
    answers = module.handle(requests, context)
    assert len(answers) == len(requests)
    assert_same_top(answers[0]['top'], predicted['val0.png'])
    assert_same_top(answers[2]['top'], predicted['val1.jpg'][:2])
    assert sorted(context.statuses) == [1, 3, 4, 5]
    for i, needle in ((1, 'not a decodable image'), (3, 'not a decodable image'),
                      (4, 'JSON'), (5, "top_k 'two'")):
        assert context.statuses[i][0] == 400 and needle in context.statuses[i][1]
        assert answers[i] == {'code': 400, 'type': 'BadRequest',
                              'message': context.statuses[i][1]}


# ----------------------------------------------------------------------------- server
def require_serving():
    """Fail naming what is missing for Multi Model Server (skip if RESNET_SKIP_SERVING=1)."""
    try:
        import mms  # noqa: F401
        missing = None
    except ImportError:
        missing = 'the serving extra is not installed (pip install -e ".[serving]")'
    if not missing and not shutil.which('java') and not os.environ.get('JAVA_HOME'):
        missing = 'Java is not installed (Debian: apt-get install default-jre-headless)'
    if missing and os.environ.get('RESNET_SKIP_SERVING') == '1':
        pytest.skip('RESNET_SKIP_SERVING=1: %s' % missing)
    if missing:
        pytest.fail('%s (or set RESNET_SKIP_SERVING=1 to skip the server tests)' % missing)


@pytest.fixture(scope='module')
def server(archive, tmp_path_factory):
    require_serving()
    with LocalModelServer(archive, str(tmp_path_factory.mktemp('server'))) as running:
        yield running


def multipart(fields):
    """(body, content type) of a multipart/form-data request with `fields` {name: bytes}."""
    boundary = 'mxresnet-test-boundary'
    parts = []
    for name, value in fields.items():
        parts.append(b'--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
                     b'Content-Type: application/octet-stream\r\n\r\n%s\r\n'
                     % (boundary.encode(), name.encode(), name.encode(), value))
    parts.append(b'--%s--\r\n' % boundary.encode())
    return b''.join(parts), 'multipart/form-data; boundary=%s' % boundary


def test_server_answers_jpeg_and_png_as_predict_does(server, predicted):
    assert server.request('GET', '/ping') == (200, {'status': 'Healthy'})
    for name, data in encoded_images().items():
        content_type = 'image/png' if name.endswith('.png') else 'image/jpeg'
        status, answer = server.predict(data, content_type)
        assert status == 200, answer
        assert_same_top(answer['top'], predicted[name])
    body, content_type = multipart({'data': encoded_images()['val1.png'], 'top_k': b'3'})
    status, answer = server.predict(body, content_type)
    assert status == 200, answer
    assert_same_top(answer['top'], predicted['val1.png'][:3])


@pytest.mark.parametrize('bad', sorted(BAD_BODIES))
def test_server_answers_bad_requests_4xx_and_keeps_answering(server, predicted, bad):
    body, needle = BAD_BODIES[bad]
    status, answer = server.predict(body)
    assert 400 <= status < 500, (status, answer)
    assert needle in answer['message'], answer
    status, answer = server.predict(encoded_images()['val0.png'], 'image/png')
    assert status == 200
    assert_same_top(answer['top'], predicted['val0.png'])


def test_server_stops_with_its_workers(archive, tmp_path):
    require_serving()
    server = LocalModelServer(archive, str(tmp_path), workers=2)
    with server:
        workers = subprocess.run(['pgrep', '-g', str(server.process.pid), '-f',
                                  'model_service_worker'], stdout=subprocess.PIPE,
                                 universal_newlines=True).stdout.split()
        assert len(workers) >= 2   # MMS 1.1 forks its workers from one more process
    assert not server.group_alive()
    assert server.process.returncode is not None
    for pid in workers:
        assert not os.path.exists('/proc/%s' % pid), pid
