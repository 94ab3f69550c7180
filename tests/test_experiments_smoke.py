"""Every row's script end to end at ``--scale smoke``: the same chain as the paper-scale run
(teacher when needed, baseline, distillation, evaluation) on a generated 4/4-image dataset
(one batch of 4), 1 epoch per stage, 128 px (320 for rows with the VGG16 teacher), two CPU
contexts standing in for the two GPUs. One work dir for the whole session, so the dataset, the
teachers and the baselines are made once and shared by the rows, as a re-run shares them. Then:
a re-run skips every step, an unfinished distillation resumes, and the optimizers that ran are
the paper's. Those three need a finished row: the ``finished_row`` fixture runs it when the
row's own test has not (a test run alone), and reuses it when it has (the whole module), so
each passes or fails alone.
"""
import glob
import os
import pickle
import subprocess
import sys
import time

import pytest

from gankd_gluon.experiments.chains import build_chain, run_names
from gankd_gluon.experiments.recipes import SMOKE
from gankd_gluon.experiments.rows import ROWS, get_row
from gankd_gluon.experiments.reproduce import ChainError, step_status

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRCNN_SCRIPTS = ("scripts/train_faster_rcnn.py", "scripts/train_faster_rcnn_gan_kd.py")


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("reproduce_smoke")


def _results(work):
    path = os.path.join(str(work), "logs", "results.md")
    if not os.path.isfile(path):
        return []
    return [ln for ln in open(path).read().splitlines() if ln.startswith("| T")]


def _run_script(row, work, *extra):
    env = dict(os.environ, PYTHON=sys.executable)
    cmd = [os.path.join(ROOT, row.script), "--scale", "smoke", "--work-dir", str(work)] + \
        list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)


def _chain_done(row, work):
    """Are all of the row's steps finished in ``work`` (what a re-run would skip)?"""
    for step in build_chain(row, "smoke", work_dir=str(work)):
        try:
            if not step_status(step)[0]:
                return False
        except ChainError:
            return False
    return True


@pytest.fixture(scope="session")
def finished_row(work):
    """``finished_row(table, index)``: the row, its whole chain finished in the shared work
    dir. Run by its script here unless a test already ran it (then nothing runs again)."""
    def finish(table, index):
        row = get_row(table, index)
        if not _chain_done(row, work):
            out = _run_script(row, work)
            assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
            assert _chain_done(row, work), out.stdout[-3000:]
        return row
    return finish


def _row_param(r):
    marks = []
    if r.detector == "faster_rcnn":
        missing = [s for s in FRCNN_SCRIPTS if not os.path.isfile(os.path.join(ROOT, s))]
        if missing:
            marks.append(pytest.mark.skip(reason="%s not in this checkout yet: "
                                          "Table 3 rows cannot run" % ", ".join(missing)))
    return pytest.param(r, id=r.name, marks=marks)


@pytest.mark.parametrize("row", [_row_param(r) for r in ROWS])
def test_row_runs_end_to_end_at_smoke_scale(row, work):
    before = _results(work)
    tic = time.time()
    out = _run_script(row, work)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    after = _results(work)
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


def test_rerun_skips_every_step(work, finished_row):
    row = finished_row(1, 3)
    chain = build_chain(row, "smoke", work_dir=str(work))
    outputs = [s.outputs.get("manifest") or s.outputs.get("eval_json") for s in chain[1:]]
    assert all(os.path.isfile(p) for p in outputs)
    stamps = {p: os.path.getmtime(p) for p in outputs}
    before = _results(work)
    out = _run_script(row, work)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(": skipped, ") == len(chain)
    assert "all steps were already done and" in out.stdout
    assert _results(work) == before                         # nothing appended twice
    assert {p: os.path.getmtime(p) for p in outputs} == stamps


def test_unfinished_distillation_resumes(work, finished_row):
    """Without its final manifest the distillation is not done: the re-run resumes from its
    last epoch checkpoint (--resume auto) instead of training again, then evaluates."""
    row = finished_row(1, 7)
    chain = build_chain(row, "smoke", work_dir=str(work))
    distill = [s for s in chain if s.kind == "distill"][0]
    manifest = distill.outputs["manifest"]
    assert os.path.isfile(manifest)
    os.remove(manifest)
    before = _results(work)
    out = _run_script(row, work)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert os.path.isfile(manifest)
    log = open(os.path.join(str(work), "logs", distill.get("--save-prefix") + "_train.log")).read()
    assert "Resum" in log.split("Namespace(")[-1]             # the trainer's resume event line
    assert "Start training from [Epoch 1]" not in log.split("Namespace(")[-1]
    # the exported best model did not change, so its evaluation is reused
    assert "eval: skipped" in out.stdout and _results(work) == before


def test_the_optimizers_that_ran_are_the_papers(work, finished_row):
    """Read back from the distillation's checkpoint: stage 1 Adam (lr 0.0005, beta1 0.5) for the
    student and the critics, stage 2 SGD (lr 0.001, momentum 0.9, wd 0.0005)."""
    import mxnet as mx   # noqa: F401  (unpickling needs the optimizer classes)
    row = finished_row(1, 3)
    prefix = run_names(row, "smoke")["distill"]
    folder = os.path.join(str(work), "checkpoints", prefix)
    states = {os.path.basename(p).split(".")[-2]: p
              for p in glob.glob(os.path.join(folder, prefix + "-final.*.states"))}
    assert set(states) == {"s1_G", "s1_D", "s2_SGD"}
    opt = {k: pickle.loads(open(p, "rb").read())[1] for k, p in states.items()}
    for k in ("s1_G", "s1_D"):
        assert type(opt[k]).__name__ == "Adam"
        assert (opt[k].lr, opt[k].beta1) == (0.0005, 0.5)
    sgd = opt["s2_SGD"]
    assert type(sgd).__name__ == "SGD"
    assert (sgd.lr, sgd.momentum, sgd.wd) == (0.001, 0.9, 0.0005)
    # one epoch per stage on SMOKE["num_train"] images in batches of SMOKE["batch_size"]
    assert sgd.num_update == SMOKE["num_train"] // SMOKE["batch_size"]
