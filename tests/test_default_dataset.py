"""The bundled default dataset in data/: what it holds, and that our tool rebuilds it exactly.

The rebuild test needs the Debian package ``dataset-fashion-mnist`` (``.ci/run`` installs it).
Without it that test fails with the reason, rather than skip unseen; set
``RESNET_SKIP_FASHION_MNIST=1`` to skip it on purpose on a machine without the package.
"""
import os

import numpy as np
import pytest

from recio_helpers import ROOT, read_indexed, read_iter, run_cli
from mxresnet import converters
from tools import mnist2rec

DATA = os.path.join(ROOT, 'data')
FASHION_MNIST = '/usr/share/datasets/fashion-mnist'
SPLITS = {'train': 1000, 'val': 200}  # images per class
CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
           'Bag', 'Ankle boot']
# The rebuild command documented in data/README.md, as arguments.
REBUILD = ['--classes', 'fashion-mnist', '--subset-per-class', '1000,200', '--test-name', 'val',
           '--seed', '0']


def fashion_mnist_dir():
    if os.path.isfile(os.path.join(FASHION_MNIST, 'train-images-idx3-ubyte.gz')):
        return FASHION_MNIST
    if os.environ.get('RESNET_SKIP_FASHION_MNIST') == '1':
        pytest.skip('RESNET_SKIP_FASHION_MNIST=1 and %s is missing' % FASHION_MNIST)
    pytest.fail('Fashion-MNIST is not installed at %s: run `apt-get install '
                'dataset-fashion-mnist` (or set RESNET_SKIP_FASHION_MNIST=1 to skip on '
                'purpose)' % FASHION_MNIST)


def test_files_synset_and_size():
    names = ['README.md', 'synset.txt'] + ['fashion-mnist-%s.%s' % (s, ext)
                                            for s in SPLITS for ext in ('rec', 'idx')]
    for name in names:
        assert os.path.isfile(os.path.join(DATA, name)), name
    total = sum(os.path.getsize(os.path.join(DATA, f)) for f in os.listdir(DATA))
    assert total < 10 * 1024 * 1024
    with open(os.path.join(DATA, 'synset.txt')) as f:
        assert f.read().splitlines() == CLASSES
    with open(os.path.join(DATA, 'README.md')) as f:
        readme = f.read()
    assert 'MIT' in readme and 'tools/mnist2rec.py' in readme
    for arg in REBUILD:
        assert arg in readme


@pytest.mark.parametrize('split', sorted(SPLITS))
def test_split_decodes_balanced_gray_28x28(split):
    per_class = SPLITS[split]
    base = os.path.join(DATA, 'fashion-mnist-%s' % split)
    data, label = read_iter(base + '.rec', (1, 28, 28))
    assert data.shape == (10 * per_class, 1, 28, 28)
    assert np.bincount(label.astype(int), minlength=10).tolist() == [per_class] * 10
    assert data.max() > 200 and data.min() == 0
    records = read_indexed(base)
    assert all(img.shape == (28, 28) for _, _, img in records[:50])  # stored as 1 channel
    ids = [h.id for _, h, _ in records]
    assert len(set(ids)) == len(ids)
    np.testing.assert_array_equal([h.label for _, h, _ in records], label)


def test_rebuild_matches_shipped_files(tmp_path, capsys):
    """Real-data test: our tool on the Debian Fashion-MNIST gives the shipped records."""
    source = fashion_mnist_dir()
    rc, _, err = run_cli(mnist2rec.main, [source, tmp_path / 'fashion-mnist'] + REBUILD +
                         ['--synset', tmp_path / 'synset.txt'], capsys)
    assert rc == 0, err
    assert (tmp_path / 'synset.txt').read_text() == open(os.path.join(DATA, 'synset.txt')).read()
    raw = {'train': converters.load_split(source, 'train', 10),
           'val': converters.load_split(source, 'test', 10)}
    for split in SPLITS:
        shipped = read_indexed(os.path.join(DATA, 'fashion-mnist-%s' % split))
        rebuilt = read_indexed(str(tmp_path / ('fashion-mnist-%s' % split)))
        assert len(shipped) == len(rebuilt)
        images, labels, _ = raw[split]
        for (k1, h1, img1), (k2, h2, img2) in zip(shipped, rebuilt):
            assert (k1, h1.id, h1.label) == (k2, h2.id, h2.label)
            np.testing.assert_array_equal(img1, img2)
            # lossless: the pixels and label of image h1.id in the official file
            np.testing.assert_array_equal(img1, images[h1.id])
            assert h1.label == labels[h1.id]
