"""tools/cifar2rec.py and tools/mnist2rec.py on small files in the exact release formats."""
import gzip
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from recio_helpers import assert_clean_error, chw_rgb, read_indexed, read_iter, run_cli
from tools import cifar2rec, mnist2rec

# ----------------------------------------------------------------------------- CIFAR


def _dump(path, obj):
    # The official files are Python 2 cPickles: protocol 2, bytes keys.
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=2)


def make_cifar10(folder, per_batch=3, test=4, seed=0):
    """A cifar-10-batches-py folder; returns {split: (images N x 32 x 32 x 3 RGB, labels)}."""
    rng = np.random.RandomState(seed)
    os.makedirs(folder)
    out = {'train': ([], []), 'test': ([], [])}
    names = ['data_batch_%d' % i for i in range(1, 6)] + ['test_batch']
    for name in names:
        n = test if name == 'test_batch' else per_batch
        data = rng.randint(0, 256, (n, 3072)).astype(np.uint8)
        labels = [int(x) for x in rng.randint(0, 10, n)]
        _dump(os.path.join(folder, name), {
            b'batch_label': b'batch', b'labels': labels, b'data': data,
            b'filenames': [b'img_%d.png' % i for i in range(n)]})
        split = out['test' if name == 'test_batch' else 'train']
        split[0].append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        split[1].extend(labels)
    _dump(os.path.join(folder, 'batches.meta'), {
        b'num_cases_per_batch': per_batch, b'num_vis': 3072,
        b'label_names': [b'airplane', b'automobile', b'bird', b'cat', b'deer', b'dog',
                         b'frog', b'horse', b'ship', b'truck']})
    return {k: (np.concatenate(v[0]), np.array(v[1])) for k, v in out.items()}


def make_cifar100(folder, n_train=6, n_test=4, seed=1):
    rng = np.random.RandomState(seed)
    os.makedirs(folder)
    out = {}
    for name, n in (('train', n_train), ('test', n_test)):
        data = rng.randint(0, 256, (n, 3072)).astype(np.uint8)
        fine = [int(x) for x in rng.randint(0, 100, n)]
        coarse = [f // 5 for f in fine]
        _dump(os.path.join(folder, name), {
            b'filenames': [b'f%d.png' % i for i in range(n)], b'batch_label': b'b',
            b'fine_labels': fine, b'coarse_labels': coarse, b'data': data})
        out[name] = (data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.array(fine),
                     np.array(coarse))
    _dump(os.path.join(folder, 'meta'), {
        b'fine_label_names': [b'fine%d' % i for i in range(100)],
        b'coarse_label_names': [b'coarse%d' % i for i in range(20)]})
    return out


def check_split(prefix, split, images_rgb, labels):
    data, label = read_iter('%s-%s.rec' % (prefix, split), (3, 32, 32))
    np.testing.assert_array_equal(label, labels.astype(np.float32))
    np.testing.assert_array_equal(data, images_rgb.transpose(0, 3, 1, 2).astype(np.float32))


def test_cifar10_folder_round_trip(tmp_path, capsys):
    truth = make_cifar10(str(tmp_path / 'cifar-10-batches-py'))
    rc, out, err = run_cli(cifar2rec.main, [tmp_path / 'cifar-10-batches-py', tmp_path / 'c10'],
                           capsys)
    assert rc == 0, err
    assert 'cifar-10' in out
    for split in ('train', 'test'):
        check_split(tmp_path / 'c10', split, *truth[split])
    assert (tmp_path / 'c10-synset.txt').read_text().splitlines()[:2] == ['airplane',
                                                                          'automobile']
    # lossless PNG by default, ids are positions in the split
    records = read_indexed(str(tmp_path / 'c10-train'))
    assert [h.id for _, h, _ in records] == list(range(15))


def test_cifar10_tar_gz_same_as_folder(tmp_path, capsys):
    make_cifar10(str(tmp_path / 'cifar-10-batches-py'))
    with tarfile.open(str(tmp_path / 'cifar-10-python.tar.gz'), 'w:gz') as tar:
        tar.add(str(tmp_path / 'cifar-10-batches-py'), arcname='cifar-10-batches-py')
    run_cli(cifar2rec.main, [tmp_path / 'cifar-10-batches-py', tmp_path / 'a'], capsys)
    rc, _, err = run_cli(cifar2rec.main, [tmp_path / 'cifar-10-python.tar.gz', tmp_path / 'b'],
                         capsys)
    assert rc == 0, err
    for split in ('train', 'test'):
        assert (tmp_path / ('a-%s.rec' % split)).read_bytes() == \
            (tmp_path / ('b-%s.rec' % split)).read_bytes()


@pytest.mark.parametrize('kind', ['fine', 'coarse'])
def test_cifar100_fine_and_coarse(tmp_path, capsys, kind):
    truth = make_cifar100(str(tmp_path / 'cifar-100-python'))
    rc, _, err = run_cli(cifar2rec.main, [tmp_path / 'cifar-100-python', tmp_path / 'c',
                                         '--labels', kind], capsys)
    assert rc == 0, err
    for split in ('train', 'test'):
        images, fine, coarse = truth[split]
        check_split(tmp_path / 'c', split, images, fine if kind == 'fine' else coarse)
    names = (tmp_path / 'c-synset.txt').read_text().splitlines()
    assert len(names) == (100 if kind == 'fine' else 20) and names[1] == '%s1' % kind


def test_cifar10_jpeg_option(tmp_path, capsys):
    truth = make_cifar10(str(tmp_path / 'cifar-10-batches-py'))
    rc, _, _ = run_cli(cifar2rec.main, [tmp_path / 'cifar-10-batches-py', tmp_path / 'j',
                                       '--encoding', '.jpg', '--quality', 95], capsys)
    assert rc == 0
    data, label = read_iter(str(tmp_path / 'j-test.rec'), (3, 32, 32))
    np.testing.assert_array_equal(label, truth['test'][1])
    assert data.shape == (4, 3, 32, 32)


def test_cifar_truncated_pickle(tmp_path, capsys):
    make_cifar10(str(tmp_path / 'cifar-10-batches-py'))
    path = tmp_path / 'cifar-10-batches-py' / 'data_batch_3'
    path.write_bytes(path.read_bytes()[:500])
    rc, _, err = run_cli(cifar2rec.main, [tmp_path / 'cifar-10-batches-py', tmp_path / 'c'],
                         capsys)
    assert_clean_error(rc, err, 'data_batch_3')
    assert not list(tmp_path.glob('c-*.rec'))


def test_cifar_label_count_mismatch(tmp_path, capsys):
    make_cifar10(str(tmp_path / 'cifar-10-batches-py'))
    path = str(tmp_path / 'cifar-10-batches-py' / 'test_batch')
    with open(path, 'rb') as f:
        batch = pickle.load(f)
    batch[b'labels'] = batch[b'labels'][:-1]
    _dump(path, batch)
    rc, _, err = run_cli(cifar2rec.main, [tmp_path / 'cifar-10-batches-py', tmp_path / 'c'],
                         capsys)
    assert_clean_error(rc, err, 'test_batch', '4 images but 3 labels')


def test_cifar_pickle_cannot_run_code(tmp_path, capsys):
    make_cifar10(str(tmp_path / 'cifar-10-batches-py'))

    class Evil(object):
        def __reduce__(self):
            return (os.system, ('echo pwned > %s' % (tmp_path / 'pwned'),))

    _dump(str(tmp_path / 'cifar-10-batches-py' / 'batches.meta'), {b'label_names': Evil()})
    rc, _, err = run_cli(cifar2rec.main, [tmp_path / 'cifar-10-batches-py', tmp_path / 'c'],
                         capsys)
    assert_clean_error(rc, err, 'batches.meta')
    assert not (tmp_path / 'pwned').exists()


def test_cifar_not_a_release(tmp_path, capsys):
    (tmp_path / 'x').mkdir()
    rc, _, err = run_cli(cifar2rec.main, [tmp_path / 'x', tmp_path / 'c'], capsys)
    assert_clean_error(rc, err, 'not a CIFAR')
    rc, _, err = run_cli(cifar2rec.main, [tmp_path / 'missing.tar.gz', tmp_path / 'c'], capsys)
    assert_clean_error(rc, err, 'missing.tar.gz')


# ----------------------------------------------------------------------------- MNIST

def idx_bytes(array):
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack('>BBBB', 0, 0, 8, array.ndim) + \
        struct.pack('>%dI' % array.ndim, *array.shape) + array.tobytes()


def make_mnist(folder, n_train=40, n_test=30, gz=True, seed=0):
    rng = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    out = {}
    for stem, n in (('train', n_train), ('t10k', n_test)):
        images = rng.randint(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        for kind, arr, dims in (('images', images, 3), ('labels', labels, 1)):
            name = os.path.join(folder, '%s-%s-idx%d-ubyte' % (stem, kind, dims))
            if gz:
                with gzip.open(name + '.gz', 'wb') as f:
                    f.write(idx_bytes(arr))
            else:
                with open(name, 'wb') as f:
                    f.write(idx_bytes(arr))
        out[stem] = (images, labels)
    return out


@pytest.mark.parametrize('gz', [True, False], ids=['gzipped', 'plain'])
def test_mnist_round_trip(tmp_path, capsys, gz):
    truth = make_mnist(str(tmp_path / 'src'), gz=gz)
    rc, _, err = run_cli(mnist2rec.main, [tmp_path / 'src', tmp_path / 'm'], capsys)
    assert rc == 0, err
    for split, stem in (('train', 'train'), ('test', 't10k')):
        images, labels = truth[stem]
        data, label = read_iter(str(tmp_path / ('m-%s.rec' % split)), (1, 28, 28))
        np.testing.assert_array_equal(label, labels)
        np.testing.assert_array_equal(data, images[:, None].astype(np.float32))
    assert (tmp_path / 'm-synset.txt').read_text().split() == [str(i) for i in range(10)]


def test_mnist_balanced_subset(tmp_path, capsys):
    truth = make_mnist(str(tmp_path / 'src'), n_train=60, n_test=40)
    argv = [tmp_path / 'src', tmp_path / 's', '--subset-per-class', '3,2', '--test-name', 'val',
            '--classes', 'fashion-mnist', '--synset', tmp_path / 'synset.txt']
    rc, _, err = run_cli(mnist2rec.main, argv, capsys)
    assert rc == 0, err
    first = (tmp_path / 's-train.rec').read_bytes()
    for split, stem, per in (('train', 'train', 3), ('val', 't10k', 2)):
        images, labels = truth[stem]
        records = read_indexed(str(tmp_path / ('s-%s' % split)))
        ids = [h.id for _, h, _ in records]
        assert len(set(ids)) == len(ids) == 10 * per
        assert sorted(np.bincount([int(h.label) for _, h, _ in records])) == [per] * 10
        for key, header, img in records:
            assert key == header.id and header.label == labels[header.id]
            np.testing.assert_array_equal(img, images[header.id])
        assert ids != sorted(ids)  # stored shuffled
    assert (tmp_path / 'synset.txt').read_text().splitlines()[0] == 'T-shirt/top'
    run_cli(mnist2rec.main, argv, capsys)
    assert (tmp_path / 's-train.rec').read_bytes() == first  # deterministic


def test_mnist_subset_larger_than_class(tmp_path, capsys):
    make_mnist(str(tmp_path / 'src'))
    rc, _, err = run_cli(mnist2rec.main, [tmp_path / 'src', tmp_path / 's',
                                         '--subset-per-class', '5,1'], capsys)
    assert_clean_error(rc, err, 'train-images-idx3-ubyte.gz', 'class')


def test_mnist_header_length_mismatch(tmp_path, capsys):
    make_mnist(str(tmp_path / 'src'), gz=False)
    path = tmp_path / 'src' / 't10k-images-idx3-ubyte'
    path.write_bytes(path.read_bytes()[:-100])
    rc, _, err = run_cli(mnist2rec.main, [tmp_path / 'src', tmp_path / 'm'], capsys)
    assert_clean_error(rc, err, 't10k-images-idx3-ubyte', 'header says')
    assert not list(tmp_path.glob('m-*'))


def test_mnist_truncated_gzip(tmp_path, capsys):
    make_mnist(str(tmp_path / 'src'))
    path = tmp_path / 'src' / 'train-images-idx3-ubyte.gz'
    path.write_bytes(path.read_bytes()[:200])
    rc, _, err = run_cli(mnist2rec.main, [tmp_path / 'src', tmp_path / 'm'], capsys)
    assert_clean_error(rc, err, 'train-images-idx3-ubyte.gz')


def test_mnist_bad_magic(tmp_path, capsys):
    make_mnist(str(tmp_path / 'src'), gz=False)
    (tmp_path / 'src' / 'train-labels-idx1-ubyte').write_bytes(b'\x12\x34\x08\x01' + b'\0' * 8)
    rc, _, err = run_cli(mnist2rec.main, [tmp_path / 'src', tmp_path / 'm'], capsys)
    assert_clean_error(rc, err, 'train-labels-idx1-ubyte', 'magic')


def test_mnist_label_count_differs(tmp_path, capsys):
    make_mnist(str(tmp_path / 'src'), gz=False)
    with open(str(tmp_path / 'src' / 'train-labels-idx1-ubyte'), 'wb') as f:
        f.write(idx_bytes(np.zeros(39, np.uint8)))
    rc, _, err = run_cli(mnist2rec.main, [tmp_path / 'src', tmp_path / 'm'], capsys)
    assert_clean_error(rc, err, 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                       '40 images', '39 labels')


def test_mnist_missing_files(tmp_path, capsys):
    (tmp_path / 'src').mkdir()
    rc, _, err = run_cli(mnist2rec.main, [tmp_path / 'src', tmp_path / 'm'], capsys)
    assert_clean_error(rc, err, 'train-images-idx3-ubyte')
    rc, _, err = run_cli(mnist2rec.main, [tmp_path / 'nowhere', tmp_path / 'm'], capsys)
    assert_clean_error(rc, err, 'nowhere')
