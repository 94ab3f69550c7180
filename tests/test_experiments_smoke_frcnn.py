"""Table 3's rows (Faster R-CNN, ResNet101 teacher) end to end at ``--scale smoke``, as
``test_experiments_smoke.py`` runs Table 1's: one work dir for the module, shared by its rows
(``smoke_rows.py``); a module of its own so that the two test workers run the tables side by
side.
"""
import pytest

from smoke_rows import check_row_end_to_end, row_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("reproduce_smoke_frcnn")


@pytest.mark.parametrize("row", row_params(3))
def test_row_runs_end_to_end_at_smoke_scale(row, work):
    check_row_end_to_end(row, work)
