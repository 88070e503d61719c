"""Helpers shared by the dataset-tool tests: running the tools and reading what they wrote."""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(cli, argv, capsys):
    """Run a tool's ``main(argv)`` in-process: ``(exit status, stdout, stderr)``."""
    rc = cli([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def run_script(script, argv, cwd=ROOT):
    """Run ``python <script> argv`` as a separate process, as a user would."""
    return subprocess.run([sys.executable, script] + [str(a) for a in argv], cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


def assert_clean_error(rc, err, *needles):
    """Exit status 2, one ``error:`` line on stderr naming every needle, no traceback."""
    assert rc == 2, err
    assert 'Traceback' not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and 'error:' in lines[0], err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


def read_indexed(rec_base):
    """``[(key, header, decoded image)]`` of ``rec_base.rec/.idx`` in file order."""
    import mxnet as mx
    record = mx.recordio.MXIndexedRecordIO(rec_base + '.idx', rec_base + '.rec', 'r')
    try:
        out = []
        for key in record.keys:
            header, img = mx.recordio.unpack_img(record.read_idx(key), -1)
            out.append((key, header, img))
        return out
    finally:
        record.close()


def read_iter(rec_path, data_shape, label_width=1):
    """All ``(data, label)`` of a ``.rec`` through ``mx.io.ImageRecordIter``, in file order."""
    import mxnet as mx
    n = sum(1 for _ in _records(rec_path))
    it = mx.io.ImageRecordIter(path_imgrec=rec_path, data_shape=data_shape, batch_size=n,
                               label_width=label_width, shuffle=False, preprocess_threads=1,
                               round_batch=False)
    batch = next(iter(it))
    return batch.data[0].asnumpy(), batch.label[0].asnumpy()


def _records(rec_path):
    import mxnet as mx
    record = mx.recordio.MXRecordIO(rec_path, 'r')
    try:
        while True:
            item = record.read()
            if item is None:
                return
            yield item
    finally:
        record.close()


def chw_rgb(bgr):
    """An OpenCV image (HxW or HxWx3 BGR) as the CHW RGB float array ImageRecordIter yields."""
    if bgr.ndim == 2:
        return bgr[None].astype(np.float32)
    return bgr[..., ::-1].transpose(2, 0, 1).astype(np.float32)
