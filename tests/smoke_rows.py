"""A row's script end to end at ``--scale smoke``, shared by the ``test_experiments_smoke*.py``
modules (helper, no tests): one module per table, so that the two test workers run tables side
by side. Each module keeps one work dir for its rows (``work``): the dataset, the teachers and
the baselines are made once and shared by the table's rows, as a re-run shares them, and the
dir is deleted when the module passes (``tests/conftest.py``).
"""
import os
import shutil
import subprocess
import sys
import time

import pytest

from gankd_gluon.experiments.chains import build_chain
from gankd_gluon.experiments.rows import rows_of
from gankd_gluon.experiments.reproduce import ChainError, step_status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRCNN_SCRIPTS = ("scripts/train_faster_rcnn.py", "scripts/train_faster_rcnn_gan_kd.py")


def results(work):
    """The ``| T..`` lines of the work dir's ``logs/results.md`` (none if it does not exist)."""
    path = os.path.join(str(work), "logs", "results.md")
    if not os.path.isfile(path):
        return []
    return [ln for ln in open(path).read().splitlines() if ln.startswith("| T")]


def run_script(row, work, *extra):
    """The row's script at ``--scale smoke`` in ``work``: a ``CompletedProcess``."""
    env = dict(os.environ, PYTHON=sys.executable)
    cmd = [os.path.join(ROOT, row.script), "--scale", "smoke", "--work-dir", str(work)] + \
        list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)


def chain_done(row, work):
    """Are all of the row's steps finished in ``work`` (what a re-run would skip)?"""
    for step in build_chain(row, "smoke", work_dir=str(work)):
        try:
            if not step_status(step)[0]:
                return False
        except ChainError:
            return False
    return True


def row_params(table):
    """The table's rows as pytest parameters named after the rows (Table 3 skips, with the
    reason, in a checkout without the Faster R-CNN scripts)."""
    params = []
    for r in rows_of(table):
        marks = []
        if r.detector == "faster_rcnn":
            missing = [s for s in FRCNN_SCRIPTS if not os.path.isfile(os.path.join(ROOT, s))]
            if missing:
                marks.append(pytest.mark.skip(reason="%s not in this checkout yet: "
                                              "Table 3 rows cannot run" % ", ".join(missing)))
        params.append(pytest.param(r, id=r.name, marks=marks))
    return params


def check_row_end_to_end(row, work, keep_checkpoints=False):
    """Run the row's script in ``work`` and check what it leaves: one new line in
    ``results.md`` (row, scale, paper's mAP, ours in [0, 100], the difference, the command,
    the commit), the trained step's log in the published format and its exported model.

    Then a distillation's checkpoint folder is deleted unless ``keep_checkpoints`` (0.4-0.6 GB
    each, read by no later row: they share the teacher and the baseline, never the
    distillation); the log, the evaluation and ``results.md`` stay (all of it with
    ``GANKD_KEEP_TMP=1``).
    """
    before = results(work)
    tic = time.time()
    out = run_script(row, work)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    after = results(work)
    assert len(after) == len(before) + 1, out.stdout[-2000:]
    cells = [c.strip() for c in after[-1].strip("|").split("|")]
    assert cells[0] == "T%d R%d %s" % (row.table, row.index, row.key)
    assert cells[1] == "smoke" and cells[2] == "%.1f" % row.paper_map
    ours = float(cells[3])
    assert 0.0 <= ours <= 100.0
    assert cells[4] == "%+.1f" % (ours - row.paper_map)
    assert "--scale smoke" in cells[7] and ("--table %d --row %d" % (row.table, row.index)) in \
        cells[7]
    assert cells[8] != "unknown"
    # what the row leaves behind: its log in the published format, its exported model, its
    # evaluation
    chain = build_chain(row, "smoke", work_dir=str(work))
    trained = [s for s in chain if s.kind == ("baseline" if row.is_baseline else "distill")][0]
    log = os.path.join(str(work), "logs", trained.get("--save-prefix") + "_train.log")
    text = open(log).read()
    assert text.startswith("Namespace(") and "cpu_devices=2" in text and "mAP=" in text
    for f in trained.outputs["files"]:
        assert os.path.isfile(f), f
    print("%s: %.0f s" % (row.name, time.time() - tic))
    if not row.is_baseline and not keep_checkpoints and not os.environ.get("GANKD_KEEP_TMP"):
        shutil.rmtree(os.path.join(str(work), "checkpoints", trained.get("--save-prefix")))
