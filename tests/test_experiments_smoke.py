"""Table 1's rows end to end at ``--scale smoke`` (Tables 2 and 3:
``test_experiments_smoke_coco.py``, ``test_experiments_smoke_frcnn.py``): the same chain as the
paper-scale run (teacher when needed, baseline, distillation, evaluation) on a generated
4/4-image dataset (one batch of 4), 1 epoch per stage, 128 px (320 for rows with the VGG16
teacher), two CPU contexts standing in for the two GPUs. One work dir for the module, so the
dataset, the teachers and the baselines are made once and shared by the rows, as a re-run shares
them (``smoke_rows.py``). Then: a re-run skips every step, an unfinished distillation resumes,
and the optimizers that ran are the paper's. Those three need a finished row (R3 or R7, whose
checkpoints the row tests keep): the ``finished_row`` fixture runs it when the row's own test
has not (a test run alone), and reuses it when it has (the whole module), so each passes or
fails alone.
"""
import glob
import os
import pickle

import pytest

from gankd_gluon.experiments.chains import build_chain, run_names
from gankd_gluon.experiments.recipes import SMOKE
from gankd_gluon.experiments.rows import get_row

from smoke_rows import chain_done, check_row_end_to_end, results, row_params, run_script

pytestmark = pytest.mark.slow

# the rows the chain tests below finish and read (their checkpoints are kept)
CHAIN_ROWS = {(1, 3), (1, 7)}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("reproduce_smoke")


@pytest.fixture(scope="module")
def finished_row(work):
    """``finished_row(table, index)``: the row, its whole chain finished in the module's work
    dir. Run by its script here unless a test already ran it (then nothing runs again)."""
    def finish(table, index):
        row = get_row(table, index)
        if not chain_done(row, work):
            out = run_script(row, work)
            assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
            assert chain_done(row, work), out.stdout[-3000:]
        return row
    return finish


@pytest.mark.parametrize("row", row_params(1))
def test_row_runs_end_to_end_at_smoke_scale(row, work):
    check_row_end_to_end(row, work, keep_checkpoints=(row.table, row.index) in CHAIN_ROWS)


def test_rerun_skips_every_step(work, finished_row):
    row = finished_row(1, 3)
    chain = build_chain(row, "smoke", work_dir=str(work))
    outputs = [s.outputs.get("manifest") or s.outputs.get("eval_json") for s in chain[1:]]
    assert all(os.path.isfile(p) for p in outputs)
    stamps = {p: os.path.getmtime(p) for p in outputs}
    before = results(work)
    out = run_script(row, work)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(": skipped, ") == len(chain)
    assert "all steps were already done and" in out.stdout
    assert results(work) == before                         # nothing appended twice
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
    before = results(work)
    out = run_script(row, work)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert os.path.isfile(manifest)
    log = open(os.path.join(str(work), "logs", distill.get("--save-prefix") + "_train.log")).read()
    assert "Resum" in log.split("Namespace(")[-1]             # the trainer's resume event line
    assert "Start training from [Epoch 1]" not in log.split("Namespace(")[-1]
    # the exported best model did not change, so its evaluation is reused
    assert "eval: skipped" in out.stdout and results(work) == before


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
