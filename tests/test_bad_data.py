"""Bad data and bad places to write: named, refused or warned about before any work, one
line on stderr, never a traceback, and never trained on quietly."""
import os
import struct
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT
from recio_helpers import assert_clean_error, run_cli
from mxresnet import checkpoint, images, recordio
from mxresnet import data as data_mod
from mxresnet.errors import UsageError

TRAIN = os.path.join(ROOT, 'train_resnet.py')
TRAIN_REC = os.path.join(ROOT, 'data', 'fashion-mnist-train.rec')
VAL_REC = os.path.join(ROOT, 'data', 'fashion-mnist-val.rec')
QUICK = ['--preset', 'fashion-mnist', '--num-layers', '8', '--batch-size', '16',
         '--num-epochs', '1', '--num-examples', '32', '--data-nthreads', '1']


def photo(seed=0, size=(40, 60)):
    return np.random.RandomState(seed).randint(0, 255, size + (3,)).astype(np.uint8)


def jpeg(img):
    return cv2.imencode('.jpg', img)[1].tobytes()


def png(img):
    return cv2.imencode('.png', img)[1].tobytes()


def png_claiming(width, height):
    """A small valid PNG whose header is rewritten to claim width x height."""
    data = bytearray(png(photo()))
    data[16:24] = struct.pack('>II', width, height)
    return bytes(data)


def write_rec(base, payloads, labels=None):
    """A .rec/.idx of the encoded images `payloads` (record ids 0, 1, ...)."""
    writer = mx.recordio.MXIndexedRecordIO(base + '.idx', base + '.rec', 'w')
    for i, payload in enumerate(payloads):
        label = float(i % 10) if labels is None else labels[i]
        writer.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, label, i, 0), payload))
    writer.close()
    return base + '.rec', base + '.idx'


def gray_pngs(count, size=28):
    rng = np.random.RandomState(1)
    return [png(rng.randint(0, 255, (size, size)).astype(np.uint8)) for _ in range(count)]


def train(args):
    return subprocess.run([sys.executable, TRAIN] + QUICK + [str(a) for a in args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def error_lines(stderr):
    """stderr without MXNet's own info lines ([HH:MM:SS] ...)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith('[')]


# -- images -------------------------------------------------------------------------------
def test_header_sizes_of_png_and_jpeg():
    img = photo(size=(37, 53))
    assert images.header_size(png(img)) == (37, 53)
    assert images.header_size(jpeg(img)) == (37, 53)
    assert images.header_size(b'GIF89a....') is None


@pytest.mark.parametrize('data, why', [
    (b'', 'no image data'),
    (jpeg(photo())[:-300], 'a truncated JPEG'),
    (png(photo())[:-20], 'a truncated PNG'),
    (png_claiming(60000, 60000), 'claims 60000x60000 pixels'),
    (b'not an image at all' * 5, 'not a decodable image'),
])
def test_unusable_images_say_why(data, why):
    decoded, reason = images.decode_image(data)
    assert decoded is None and why in reason


def test_truncated_jpeg_is_caught_where_opencv_decodes_it_silently():
    data = jpeg(photo())[:-300]
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    assert images.image_problem(data).startswith('a truncated JPEG')
    assert images.image_problem(jpeg(photo())) is None
    assert images.image_problem(png(photo())) is None


# -- the .rec and its index -----------------------------------------------------------------
def test_index_of_another_file_or_shifted_is_refused(tmp_path):
    rec, idx = write_rec(str(tmp_path / 'a'), gray_pngs(8))
    _, other_idx = write_rec(str(tmp_path / 'b'), gray_pngs(8, size=20))
    assert len(recordio.record_offsets(rec, idx)) == 8
    with pytest.raises(UsageError, match='is not the index of .*a.rec: .* offsets'):
        recordio.record_offsets(rec, other_idx)
    lines = open(idx).read().splitlines()
    shifted = tmp_path / 'shifted.idx'
    shifted.write_text(''.join('%s\t%d\n' % (k, int(o) + 4)
                               for k, o in (l.split('\t') for l in lines)))
    with pytest.raises(UsageError, match='are not where a record starts'):
        recordio.record_offsets(rec, str(shifted))
    twice = tmp_path / 'twice.idx'
    twice.write_text('\n'.join(lines + lines[:1]) + '\n')
    with pytest.raises(UsageError, match='more than once'):
        recordio.record_offsets(rec, str(twice))
    short = tmp_path / 'short.idx'
    short.write_text('\n'.join(lines[:3]) + '\n')
    with pytest.raises(UsageError, match='lists 3 of the 8 records'):
        recordio.record_offsets(rec, str(short))


def test_mostly_undecodable_data_is_refused(tmp_path):
    payloads = gray_pngs(8)
    for i in range(5):
        payloads[i] = b'garbage' * 10
    rec, idx = write_rec(str(tmp_path / 'bad'), payloads)
    with pytest.raises(UsageError) as err:
        data_mod.check_dataset(rec, idx, (1, 28, 28), '--data-train')
    assert '5 of all 8 records cannot be used (records 0, 1, 2, 3, 4: not a decodable' \
        in str(err.value)


def test_some_unusable_records_are_named_in_a_warning(tmp_path, caplog):
    payloads = gray_pngs(16)
    payloads[3] = payloads[3][:-20]
    payloads[11] = b''
    rec, idx = write_rec(str(tmp_path / 'some'), payloads)
    assert data_mod.check_dataset(rec, idx, (1, 28, 28), '--data-train') == 16
    warning, = [r.getMessage() for r in caplog.records if 'cannot be used' in r.getMessage()]
    assert '2 of all 16 records' in warning
    assert 'record 3: a truncated PNG' in warning and 'record 11: no image data' in warning


def test_sample_checks_evenly_spread_records(tmp_path, caplog):
    payloads = gray_pngs(40)
    payloads[-1] = b'garbage' * 10
    rec, idx = write_rec(str(tmp_path / 'sampled'), payloads)
    data_mod.check_dataset(rec, idx, (1, 28, 28), '--data-train', sample=10)
    assert not [r for r in caplog.records if 'cannot be used' in r.getMessage()]
    data_mod.check_dataset(rec, idx, (1, 28, 28), '--data-train', sample=0)
    assert [r for r in caplog.records if 'record 39' in r.getMessage()]


def test_all_undecodable_rec_stops_training_before_it_starts(tmp_path):
    rec, _ = write_rec(str(tmp_path / 'garbage'), [b'garbage' * 10] * 32)
    result = train(['--data-train', rec, '--model-prefix', tmp_path / 'm'])
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr
    assert '32 of all 32 records cannot be used' in lines[0]
    assert not os.path.exists(tmp_path / 'm-symbol.json')


def test_a_crop_that_keeps_little_of_the_image_warns_once_naming_both_sizes(tmp_path):
    result = train(['--image-shape', '1,4,4', '--model-prefix', ''])
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if 'centre crop' in line]
    assert len(warnings) == 2  # --data-train and --data-val
    assert 'the images are 28x28 but --image-shape 1,4,4 takes a 4x4 centre crop' \
        in warnings[0] and '--resize 4' in warnings[0]
    quiet = train(['--image-shape', '1,24,24', '--model-prefix', ''])
    assert quiet.returncode == 0 and 'centre crop' not in quiet.stdout


def test_resize_scales_the_shorter_side_and_is_recorded(tmp_path, caplog):
    """Images packed at 56 px read at 28: the shorter side is scaled, then centre-cropped,
    and the checkpoint records it so that scoring reads them the same way."""
    rng = np.random.RandomState(2)
    big = [cv2.resize(rng.randint(0, 255, (28, 28)).astype(np.uint8), (84, 56),
                      interpolation=cv2.INTER_NEAREST) for _ in range(32)]
    rec, idx = write_rec(str(tmp_path / 'big'), [png(img) for img in big])
    data_mod.check_dataset(rec, idx, (1, 28, 28), '--data-train')
    assert [r for r in caplog.records if 'the images are 56x84' in r.getMessage()]
    caplog.clear()
    data_mod.check_dataset(rec, idx, (1, 28, 28), '--data-train', resize=28)
    assert not [r for r in caplog.records if 'centre crop' in r.getMessage()]
    batch = next(iter(data_mod.record_iter(rec, idx, (1, 28, 28), [0], [1], 4, 1, resize=28)))
    expected = np.stack([cv2.resize(img, (42, 28), interpolation=cv2.INTER_AREA)[:, 7:35]
                         for img in big[:4]])
    assert np.abs(batch.data[0].asnumpy()[:, 0] - expected).mean() < 8
    prefix = tmp_path / 'm'
    result = train(['--data-train', rec, '--image-shape', '1,28,28', '--resize', 28,
                    '--model-prefix', prefix])
    assert result.returncode == 0, result.stderr
    assert 'centre crop' not in result.stdout
    assert checkpoint.read_metadata(str(prefix))['resize'] == 28


# -- im2rec -------------------------------------------------------------------------------
@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / 'images'
    root.mkdir()
    for i in range(3):
        (root / ('%d.jpg' % i)).write_bytes(jpeg(photo(i)))
    return root


@pytest.mark.parametrize('label', ['-1', '2.5', 'nan'])
def test_im2rec_refuses_labels_that_are_not_class_numbers(image_folder, tmp_path, capsys,
                                                          label):
    from tools import im2rec
    lst = tmp_path / 'data.lst'
    lst.write_text('0\t1\t0.jpg\n1\t%s\t1.jpg\n2\t0\t2.jpg\n' % label)
    rc, _, err = run_cli(im2rec.main, [tmp_path / 'data', image_folder], capsys)
    assert_clean_error(rc, err, 'data.lst:2: label %s is not a class number' % label,
                       '--pack-label')
    assert not os.path.exists(tmp_path / 'data.rec')
    if label != 'nan':
        rc, _, err = run_cli(im2rec.main, [tmp_path / 'data', image_folder, '--pack-label'],
                             capsys)
        assert rc == 0, err
        record = mx.recordio.MXIndexedRecordIO(str(tmp_path / 'data.idx'),
                                               str(tmp_path / 'data.rec'), 'r')
        header, _ = mx.recordio.unpack(record.read_idx(1))
        assert header.label == float(label)


@pytest.mark.parametrize('options', [[], ['--pass-through']])
def test_im2rec_skips_a_truncated_jpeg_naming_it(image_folder, tmp_path, capsys, options):
    from tools import im2rec
    (image_folder / '1.jpg').write_bytes(jpeg(photo(1))[:-300])
    (tmp_path / 'data.lst').write_text('0\t1\t0.jpg\n1\t1\t1.jpg\n2\t0\t2.jpg\n')
    rc, out, err = run_cli(im2rec.main, [tmp_path / 'data', image_folder] + options, capsys)
    assert rc == 0, err
    assert any('1.jpg' in line and 'truncated JPEG' in line for line in err.splitlines()), err
    assert '2 records' in out


# -- predict --------------------------------------------------------------------------------
@pytest.mark.parametrize('name, content, why', [
    ('cut.jpg', jpeg(photo())[:-300], 'a truncated JPEG'),
    ('huge.png', png_claiming(60000, 60000), 'its header claims 60000x60000 pixels'),
])
def test_predict_names_an_unusable_image(tiny_checkpoint, tmp_path, capsys, name, content, why):
    from tools import predict
    prefix, epoch = tiny_checkpoint
    (tmp_path / name).write_bytes(content)
    rc = predict.main(['--model', prefix, '--epoch', str(epoch), str(tmp_path / name)])
    err = capsys.readouterr().err
    assert rc != 0 and 'Traceback' not in err
    assert '%s: cannot decode the image: %s' % (tmp_path / name, why) in err


# -- places that cannot be written ---------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs mounted for the test (root only: skipped elsewhere)."""
    mount = tmp_path / 'disk'
    mount.mkdir()
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip('cannot mount a tmpfs here (needs root): %s' % result.stderr.strip())
    try:
        yield mount
    finally:
        subprocess.run(['umount', '-l', str(mount)], check=False)


def remount_read_only(mount):
    subprocess.run(['mount', '-o', 'remount,ro', str(mount)], check=True)


def fill(mount, leave):
    """Fill the file system at `mount` until `leave` bytes are free."""
    stat = os.statvfs(str(mount))
    with open(str(mount / 'filler'), 'wb') as f:
        f.write(b'\0' * max(stat.f_bavail * stat.f_frsize - leave, 0))


def test_full_disk_keeps_the_previous_checkpoint(small_disk):
    prefix = str(small_disk / 'model')
    first = train(['--model-prefix', prefix])
    assert first.returncode == 0, first.stderr
    with open(prefix + '-0001.params', 'rb') as f:
        saved = f.read()
    fill(small_disk, 200 * 1024)   # room for the log, not for a checkpoint
    result = train(['--model-prefix', prefix, '--load-epoch', 1, '--num-epochs', 2])
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert 'Traceback' not in result.stderr and len(lines) >= 1
    assert 'No space left on device' in lines[-1] and 'checkpoint 2 is not saved' in lines[-1]
    with open(prefix + '-0001.params', 'rb') as f:
        assert f.read() == saved
    assert checkpoint.available(prefix, complete=True) == [1]
    assert not [n for n in os.listdir(str(small_disk)) if '.tmp-' in n]


def test_read_only_outputs_fail_before_any_work(small_disk, tiny_checkpoint, tmp_path,
                                                capsys):
    from tools import im2rec, score
    (small_disk / 'data.lst').write_text('0\t0\t0.jpg\n')
    (small_disk / '0.jpg').write_bytes(jpeg(photo()))
    remount_read_only(small_disk)
    result = train(['--model-prefix', small_disk / 'model'])
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and 'Read-only file system' in lines[0], result.stderr
    assert 'Training' not in result.stdout
    prefix, epoch = tiny_checkpoint
    for flag in ('--json', '--confusion'):
        rc = score.main(['--model', prefix, '--epoch', str(epoch), '--data-val', VAL_REC,
                         flag, str(small_disk / 'out')])
        assert_clean_error(rc, capsys.readouterr().err, flag, 'Read-only file system')
    rc, _, err = run_cli(im2rec.main, [small_disk / 'data', small_disk], capsys)
    assert_clean_error(rc, err, 'output', 'Read-only file system')
