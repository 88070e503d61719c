"""benchmarks/pipeline.py on a few small JPEGs: every row measured, bad input refused."""
import subprocess
import sys

import pytest

pytest.importorskip('skimage')
pytest.importorskip('nvidia.dali')

from benchmarks import pipeline  # noqa: E402
from recio_helpers import ROOT, assert_clean_error  # noqa: E402


def test_every_row_is_measured(tmp_path, capsys):
    assert pipeline.main(['--num-images', '24', '--size', '80x60', '--batch-size', '8',
                          '--epochs', '1', '--repeat', '1', '--workdir', str(tmp_path)]) == 0
    rows = [line.split(' | ') for line in capsys.readouterr().out.splitlines()
            if line.startswith('| ') and not line.startswith('| pipeline') and
            not line.startswith('| ---')]
    names = [row[0].lstrip('| ') for row in rows]
    assert len(names) == 2 + 2 * 3 and sum('dali' in n for n in names) == 3, names
    assert all(float(row[1]) > 0 for row in rows), rows
    assert (tmp_path / 'photos-80x60-24.idx').is_file()  # kept with --workdir


@pytest.mark.parametrize('argv, needle', [(['--size', '500by375'], '500by375'),
                                          (['--backends', 'pil'], 'pil')])
def test_bad_arguments_are_one_line(argv, needle):
    proc = subprocess.run([sys.executable, 'benchmarks/pipeline.py'] + argv, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert_clean_error(proc.returncode, proc.stderr, needle)
