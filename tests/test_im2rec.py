"""tools/im2rec.py: list making, packing, errors, and agreement with the wheel's im2rec.py."""
import os
import shutil

import numpy as np
import pytest

from recio_helpers import (ROOT, assert_clean_error, chw_rgb, read_indexed, read_iter,
                           run_cli, run_script)
from tools import im2rec

H, W = 12, 16
CLASSES = ['cat', 'dog', 'zebra']
PER_CLASS = 6


def _write_tree(root, seed=0):
    """Three class folders of small same-size images, JPEG and PNG mixed."""
    import cv2
    rng = np.random.RandomState(seed)
    images = {}
    for c in CLASSES:
        os.makedirs(os.path.join(root, c))
        for i in range(PER_CLASS):
            img = rng.randint(0, 256, (H, W, 3)).astype(np.uint8)
            rel = os.path.join(c, '%02d.%s' % (i, 'png' if i % 2 else 'jpg'))
            cv2.imwrite(os.path.join(root, rel), img)
            images[rel] = cv2.imread(os.path.join(root, rel), 1)
    return images


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('images'))
    return root, _write_tree(root)


def read_lst(path):
    out = []
    with open(path) as f:
        for line in f:
            fields = line.rstrip('\n').split('\t')
            out.append((int(fields[0]), [float(x) for x in fields[1:-1]], fields[-1]))
    return out


def wheel_script():
    import mxnet
    return os.path.join(os.path.dirname(mxnet.__file__), 'tools', 'im2rec.py')


# ----------------------------------------------------------------------------- list mode

def test_recursive_list_labels_sorted_folders_and_label_map(tree, tmp_path, capsys):
    root, images = tree
    prefix = tmp_path / 'data'
    rc, out, _ = run_cli(im2rec.main, [prefix, root, '--list', '--recursive'], capsys)
    assert rc == 0
    for label, c in enumerate(CLASSES):
        assert '%s %d' % (c, label) in out
    assert (tmp_path / 'data_synset.txt').read_text().split('\n')[:3] == CLASSES
    raw = (tmp_path / 'data.lst').read_text().splitlines()
    assert all(len(line.split('\t')) == 3 for line in raw)
    assert raw[0].split('\t')[1].endswith('.000000')  # '%f' labels, as MXNet writes them
    items = read_lst(str(tmp_path / 'data.lst'))
    assert sorted(i for i, _, _ in items) == list(range(len(images)))
    assert sorted(p for _, _, p in items) == sorted(images)
    for _, labels, path in items:
        assert labels == [float(CLASSES.index(path.split(os.sep)[0]))]
    assert [p for _, _, p in items] != sorted(images)  # shuffled by default


def test_list_identical_to_wheel(tree, tmp_path, capsys):
    root, _ = tree
    run_cli(im2rec.main, [tmp_path / 'ours', root, '--list', '--recursive'], capsys)
    proc = run_script(wheel_script(), [tmp_path / 'wheel', root, '--list', '--recursive'])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'ours.lst').read_text() == (tmp_path / 'wheel.lst').read_text()


def test_flat_list_exts_no_shuffle_and_seed(tmp_path, capsys):
    import cv2
    for name in ['b.png', 'a.JPG', 'c.jpeg', 'd.bmp', 'notes.txt']:
        cv2.imwrite(str(tmp_path / name), np.zeros((4, 4, 3), np.uint8)) if name != 'notes.txt' \
            else (tmp_path / name).write_text('x')
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    run_cli(im2rec.main, [out_dir / 'a', tmp_path, '--list', '--no-shuffle'], capsys)
    assert read_lst(str(out_dir / 'a.lst')) == [(0, [0.0], 'a.JPG'), (1, [0.0], 'b.png'),
                                               (2, [0.0], 'c.jpeg')]
    run_cli(im2rec.main, [out_dir / 'b', tmp_path, '--list', '--exts', 'png', 'bmp',
                         '--no-shuffle'], capsys)
    assert [p for _, _, p in read_lst(str(out_dir / 'b.lst'))] == ['b.png', 'd.bmp']


def test_seed_option(tree, tmp_path, capsys):
    root, _ = tree
    orders = {}
    for name, seed in [('s1', 1), ('s1b', 1), ('s2', 2)]:
        run_cli(im2rec.main, [tmp_path / name, root, '--list', '--recursive', '--seed', seed],
                capsys)
        orders[name] = read_lst(str(tmp_path / (name + '.lst')))
    assert orders['s1'] == orders['s1b']
    assert orders['s1'] != orders['s2']


def _split_sets(tmp_path, suffixes):
    return {s: read_lst(str(tmp_path / ('d%s.lst' % s))) for s in suffixes}


def test_train_test_val_split_covers_everything(tree, tmp_path, capsys):
    root, images = tree
    rc, _, _ = run_cli(im2rec.main, [tmp_path / 'd', root, '--list', '--recursive',
                                    '--train-ratio', 0.5, '--test-ratio', 0.25], capsys)
    assert rc == 0
    parts = _split_sets(tmp_path, ['_train', '_test', '_val'])
    assert [len(parts[s]) for s in ('_train', '_test', '_val')] == [9, 4, 5]
    paths = [p for part in parts.values() for _, _, p in part]
    assert sorted(paths) == sorted(images)


def test_test_ratio_honoured_when_train_ratio_not_given(tree, tmp_path, capsys):
    root, images = tree
    rc, _, _ = run_cli(im2rec.main, [tmp_path / 'd', root, '--list', '--recursive',
                                    '--test-ratio', 0.2], capsys)
    assert rc == 0
    assert not (tmp_path / 'd.lst').exists() and not (tmp_path / 'd_val.lst').exists()
    parts = _split_sets(tmp_path, ['_train', '_test'])
    assert len(parts['_test']) == 3 and len(parts['_train']) == 15  # none lost to rounding
    paths = [p for part in parts.values() for _, _, p in part]
    assert sorted(paths) == sorted(images)


def test_ratios_over_one_is_an_error(tree, tmp_path, capsys):
    root, _ = tree
    rc, _, err = run_cli(im2rec.main, [tmp_path / 'd', root, '--list', '--train-ratio', 1,
                                      '--test-ratio', 0.2], capsys)
    assert_clean_error(rc, err, '--test-ratio')
    assert not list(tmp_path.glob('*.lst'))


def test_chunks(tree, tmp_path, capsys):
    root, images = tree
    run_cli(im2rec.main, [tmp_path / 'd', root, '--list', '--recursive', '--chunks', 4], capsys)
    chunks = [read_lst(str(tmp_path / ('d_%d.lst' % i))) for i in range(4)]
    assert [len(c) for c in chunks] == [5, 5, 5, 3]
    assert sorted(p for c in chunks for _, _, p in c) == sorted(images)
    run_cli(im2rec.main, [tmp_path / 'e', root, '--list', '--recursive', '--chunks', 2,
                         '--test-ratio', 0.5], capsys)
    names = sorted(p.name for p in tmp_path.glob('e*.lst'))
    assert names == ['e_0_test.lst', 'e_0_train.lst', 'e_1_test.lst', 'e_1_train.lst']


def test_imagenet_layout_val_labels_follow_train_numbering(tmp_path, capsys):
    import cv2
    synsets = ['n01440764', 'n01443537', 'n01484850']
    gt_lines = []
    for label, syn in enumerate(synsets):
        os.makedirs(str(tmp_path / 'train' / syn))
        for i in range(2):
            cv2.imwrite(str(tmp_path / 'train' / syn / ('%s_%d.JPEG' % (syn, i))),
                        np.full((8, 8, 3), label, np.uint8))
    os.makedirs(str(tmp_path / 'val'))
    truth = {}
    for i, syn in enumerate([synsets[2], synsets[0], synsets[1], synsets[2]]):
        name = 'ILSVRC2012_val_%08d' % (i + 1)
        cv2.imwrite(str(tmp_path / 'val' / (name + '.JPEG')), np.zeros((8, 8, 3), np.uint8))
        gt_lines.append('%s.JPEG %s' % (name, syn))
        truth[name + '.JPEG'] = float(synsets.index(syn))
    (tmp_path / 'val_gt.txt').write_text('\n'.join(gt_lines) + '\n')
    rc, _, _ = run_cli(im2rec.main, [tmp_path / 'train', tmp_path / 'train', '--list',
                                    '--recursive'], capsys)
    assert rc == 0
    assert (tmp_path / 'train_synset.txt').read_text().split() == synsets
    rc, _, err = run_cli(im2rec.main, [tmp_path / 'val', tmp_path / 'val', '--list',
                                      '--synset', tmp_path / 'train_synset.txt',
                                      '--val-gt', tmp_path / 'val_gt.txt'], capsys)
    assert rc == 0, err
    val = read_lst(str(tmp_path / 'val.lst'))
    assert {p: labels[0] for _, labels, p in val} == truth
    # Kaggle's LOC_val_solution.csv form gives the same list.
    csv = ['ImageId,PredictionString'] + ['%s,%s 1 2 3 4' % (line.split()[0][:-5],
                                                              line.split()[1])
                                          for line in gt_lines]
    (tmp_path / 'LOC_val_solution.csv').write_text('\n'.join(csv) + '\n')
    run_cli(im2rec.main, [tmp_path / 'val2', tmp_path / 'val', '--list', '--synset',
                         tmp_path / 'train_synset.txt', '--val-gt',
                         tmp_path / 'LOC_val_solution.csv'], capsys)
    assert read_lst(str(tmp_path / 'val2.lst')) == val
    # A val image the ground truth does not know is an error naming it.
    cv2.imwrite(str(tmp_path / 'val' / 'stray.JPEG'), np.zeros((8, 8, 3), np.uint8))
    rc, _, err = run_cli(im2rec.main, [tmp_path / 'val3', tmp_path / 'val', '--list', '--synset',
                                      tmp_path / 'train_synset.txt', '--val-gt',
                                      tmp_path / 'val_gt.txt'], capsys)
    assert_clean_error(rc, err, 'stray.JPEG')


# ----------------------------------------------------------------------------- record mode

@pytest.fixture
def listed(tree, tmp_path, capsys):
    root, images = tree
    run_cli(im2rec.main, [tmp_path / 'd', root, '--list', '--recursive'], capsys)
    return root, images, tmp_path / 'd'


def test_png_round_trip_through_image_record_iter(listed, capsys):
    root, images, prefix = listed
    rc, out, err = run_cli(im2rec.main, [prefix, root, '--encoding', '.png'], capsys)
    assert rc == 0, err
    assert 'img/s' in err  # progress / rate line
    items = read_lst(str(prefix) + '.lst')
    data, label = read_iter(str(prefix) + '.rec', (3, H, W))
    assert data.shape == (len(items), 3, H, W)
    for row, (_, labels, path) in enumerate(items):
        assert label[row] == labels[0]
        np.testing.assert_array_equal(data[row], chw_rgb(images[path]))
    records = read_indexed(str(prefix))
    assert [key for key, _, _ in records] == [i for i, _, _ in items]
    assert [h.id for _, h, _ in records] == [i for i, _, _ in items]
    assert [h.label for _, h, _ in records] == [labels[0] for _, labels, _ in items]


def test_gray_png_round_trip_and_resize(listed, capsys):
    import cv2
    root, images, prefix = listed
    rc, _, _ = run_cli(im2rec.main, [prefix, root, '--encoding', '.png', '--color', 0,
                                    '--resize', 6], capsys)
    assert rc == 0
    items = read_lst(str(prefix) + '.lst')
    data, _ = read_iter(str(prefix) + '.rec', (1, 6, 8))
    for row, (_, _, path) in enumerate(items):
        gray = cv2.imread(os.path.join(root, path), 0)
        np.testing.assert_array_equal(data[row, 0], cv2.resize(gray, (8, 6)))


def test_threads_give_identical_output(listed, tmp_path, capsys):
    root, _, prefix = listed
    run_cli(im2rec.main, [prefix, root, '--num-thread', 1], capsys)
    one = (tmp_path / 'd.rec').read_bytes(), (tmp_path / 'd.idx').read_bytes()
    run_cli(im2rec.main, [prefix, root, '--num-thread', 3], capsys)
    assert ((tmp_path / 'd.rec').read_bytes(), (tmp_path / 'd.idx').read_bytes()) == one


def test_multi_label(tree, tmp_path, capsys):
    root, images = tree
    paths = sorted(images)
    lines = ['%d\t%f\t%f\t%f\t%s' % (i, i % 3, i * 0.5, 7, p) for i, p in enumerate(paths)]
    (tmp_path / 'm.lst').write_text('\n'.join(lines) + '\n')
    rc, _, err = run_cli(im2rec.main, [tmp_path / 'm', root, '--pack-label', '--encoding',
                                      '.png'], capsys)
    assert rc == 0, err
    _, label = read_iter(str(tmp_path / 'm.rec'), (3, H, W), label_width=3)
    expected = np.array([[i % 3, i * 0.5, 7] for i in range(len(paths))], np.float32)
    np.testing.assert_array_equal(label, expected)
    assert all(h.flag == 3 for _, h, _ in read_indexed(str(tmp_path / 'm')))
    # Without --pack-label only the first label is stored, as in MXNet's im2rec.
    run_cli(im2rec.main, [tmp_path / 'm', root], capsys)
    assert [h.label for _, h, _ in read_indexed(str(tmp_path / 'm'))] == \
        [float(i % 3) for i in range(len(paths))]


def test_corrupt_and_missing_images_are_skipped(tree, tmp_path, capsys):
    root, images = tree
    work = tmp_path / 'imgs'
    shutil.copytree(root, str(work))
    (work / 'cat' / 'garbage.jpg').write_bytes(b'this is not a jpeg at all' * 10)
    (work / 'dog' / 'empty.png').write_bytes(b'')
    paths = sorted(images)
    listed = paths[:5] + ['cat/garbage.jpg', 'dog/empty.png', 'zebra/missing.jpg'] + paths[5:]
    (tmp_path / 'c.lst').write_text(''.join('%d\t0\t%s\n' % (i, p) for i, p in enumerate(listed)))
    rc, out, err = run_cli(im2rec.main, [tmp_path / 'c', work, '--num-thread', 2], capsys)
    assert rc == 0
    assert 'Traceback' not in err
    for bad in ('garbage.jpg', 'empty.png', 'missing.jpg'):
        assert any(bad in line and 'warning' in line for line in err.splitlines()), err
    assert '3 of %d images' % len(listed) in err
    keys = [key for key, _, _ in read_indexed(str(tmp_path / 'c'))]
    assert keys == [i for i, p in enumerate(listed) if p in images]


@pytest.mark.parametrize('options', [
    [],
    ['--resize', 8, '--center-crop', '--quality', 80],
    ['--encoding', '.png', '--color', 0],
    ['--pass-through'],
    ['--pack-label', '--encoding', '.png'],
], ids=['default', 'resize-crop', 'png-gray', 'pass-through', 'pack-label'])
def test_agrees_with_wheel_im2rec(tree, tmp_path, capsys, options):
    """Same .lst, same options: same keys, ids, labels and decoded pixels as the wheel's."""
    root, images = tree
    paths = sorted(images)
    lines = ['%d\t%f\t%f\t%s' % (10 * i + 3, i % 3, i, p) for i, p in enumerate(paths)]
    for name in ('ours', 'wheel'):
        (tmp_path / (name + '.lst')).write_text('\n'.join(lines) + '\n')
    rc, _, err = run_cli(im2rec.main, [tmp_path / 'ours', root] + options, capsys)
    assert rc == 0, err
    proc = run_script(wheel_script(), [tmp_path / 'wheel', root] + options)
    assert proc.returncode == 0, proc.stderr
    ours, wheel = read_indexed(str(tmp_path / 'ours')), read_indexed(str(tmp_path / 'wheel'))
    assert len(ours) == len(wheel) == len(paths)
    for (k1, h1, img1), (k2, h2, img2) in zip(ours, wheel):
        assert k1 == k2 and h1.id == h2.id and h1.flag == h2.flag
        np.testing.assert_array_equal(h1.label, h2.label)
        np.testing.assert_array_equal(img1, img2)


# ----------------------------------------------------------------------------- errors

def test_missing_root(tmp_path, capsys):
    rc, _, err = run_cli(im2rec.main, [tmp_path / 'd', tmp_path / 'nowhere', '--list'], capsys)
    assert_clean_error(rc, err, 'nowhere')


def test_prefix_matching_nothing(tree, tmp_path, capsys):
    root, _ = tree
    rc, _, err = run_cli(im2rec.main, [tmp_path / 'nothing', root], capsys)
    assert_clean_error(rc, err, 'nothing')


def test_folder_without_images(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    rc, _, err = run_cli(im2rec.main, [tmp_path / 'd', tmp_path / 'empty', '--list'], capsys)
    assert_clean_error(rc, err, 'no images')


@pytest.mark.parametrize('content, needle', [
    ('', 'empty'),
    ('\n\n', 'empty'),
    ('0\tcat/00.jpg\n', ':1:'),
    ('0\t1\tcat/00.jpg\nx\t1\tcat/01.png\n', ':2:'),
    ('0\tone\tcat/00.jpg\n', 'not a number'),
    ('0\t1\tcat/00.jpg\n0\t1\tcat/01.png\n', 'twice'),
], ids=['empty', 'blank-lines', 'two-fields', 'bad-index', 'bad-label', 'duplicate-index'])
def test_bad_lst(tree, tmp_path, capsys, content, needle):
    root, _ = tree
    (tmp_path / 'bad.lst').write_text(content)
    rc, _, err = run_cli(im2rec.main, [tmp_path / 'bad', root], capsys)
    assert_clean_error(rc, err, 'bad.lst', needle)
    assert not list(tmp_path.glob('bad.rec*'))


def test_script_runs_from_repo_root_without_install(tmp_path):
    proc = run_script(os.path.join('tools', 'im2rec.py'), [tmp_path / 'nothing', tmp_path],
                      cwd=ROOT)
    assert_clean_error(proc.returncode, proc.stderr, 'nothing')
