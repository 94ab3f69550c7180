"""End-to-end: stage-1 logs of ``train_ssd_gan_kd.py`` carry the monitors after the published
columns (engine/diagnostics.py), parse with no unreadable line and compare with the published
log. Tiny on purpose: 64 px, four training images, batch 2, one epoch, a line per batch; the
teacher is initialised and saved, not trained (its weights only have to stay fixed)."""
import os
import sys

import mxnet as mx
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import train_ssd_gan_kd  # noqa: E402
from gankd_gluon.data.synthetic import make_synthetic_voc  # noqa: E402
from gankd_gluon.engine.cli import run_main  # noqa: E402
from gankd_gluon.logs.parse import parse_log  # noqa: E402

pytestmark = pytest.mark.slow

SIZE = 64
PUBLISHED = ["Loss_D", "Loss_G", "Loss_D_real", "Loss_D_fake",
             "train_student_ori_net_CrossEntropy", "train_student_ori_net_SmoothL1"]
MONITORS = ["cosine_length_loss_metric"] + ["W_%d" % i for i in range(6)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from dist_fixtures import write_teacher
    root = tmp_path_factory.mktemp("diag")
    make_synthetic_voc(str(root / "data"), seed=0, num_train=4, num_test=2)
    mx.random.seed(0)
    write_teacher(root / "teacher.params", data_shape=SIZE)
    return root


def _train(root, method):
    args = train_ssd_gan_kd.parse_args([
        "--dataset", "synthetic", "--dataset-root", str(root / "data"), "--gpus", "",
        "--data-shape", str(SIZE), "--batch-size", "2", "--num-workers", "0", "--augment", "flip",
        "--pretrained-base", "none", "--log-interval", "1", "--no-progress",
        "--student", "mobilenet0.25", "--teacher", "mobilenet0.5",
        "--teacher-params", str(root / "teacher.params"), "--stage", "1", "--gan-epochs", "1",
        "--critic-channels", "8", "--method", method, "--save-dir", str(root / "ck"),
        "--log-dir", str(root / "logs"), "--save-prefix", method])
    assert run_main(train_ssd_gan_kd.main, args) == 0
    path = str(root / "logs" / (method + "_train.log"))
    parsed = parse_log(path)
    assert parsed.unreadable_count == 0, parsed.describe_unreadable()
    return path, parsed.run()


def test_gankd_stage1_lines_carry_the_monitors(workdir, published_ssd_log, tmp_path):
    path, run = _train(workdir, "gan")
    assert [b.batch for b in run.batches] == [0, 1] and len(run.epochs) == 1
    for rec in run.batches + run.epochs:
        # the published columns in their order, then ours (the published log's
        # cosine_length_loss_metric also comes right after SmoothL1)
        assert list(rec.metrics) == PUBLISHED + MONITORS
        assert all(np.isfinite(rec.metrics[m]) for m in MONITORS)
        assert rec.metrics["cosine_length_loss_metric"] > 0
        # sum_i W_i = -Loss_D (each printed to 3 decimals)
        w = sum(rec.metrics["W_%d" % i] for i in range(6))
        assert w == pytest.approx(-rec.metrics["Loss_D"], abs=4e-3)
    line = [l for l in open(path) if l.startswith("[Epoch 1][Batch 0]")][0]
    assert "train_student_ori_net_SmoothL1=" in line.split("cosine_length_loss_metric=")[0]
    # the comparison draws our metric beside the published curve
    from gankd_gluon.logs.report import compare_logs
    result = compare_logs(published_ssd_log, path, str(tmp_path / "cmp"))
    assert result.exit_code == 0 and result.comparable
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "`cosine_length_loss_metric` (published, ours)" in report
    assert "per-critic separation `W_i` (ours)" in report


@pytest.mark.parametrize("method, cosine, critics", [("none", False, False),
                                                     ("hint", True, False)])
def test_monitors_not_computed_print_nan(workdir, method, cosine, critics):
    """Without a teacher (``none``) neither monitor is computed; a KD baseline (``hint``) has
    the teacher's maps but no critics. The columns stay, as nan: every method's stage-1 log
    has the same columns, and the parser calls them not computed."""
    _, run = _train(workdir, method)
    seg = run.segments[0]
    for rec in run.batches + run.epochs:
        assert list(rec.metrics)[-len(MONITORS):] == MONITORS
        assert np.isfinite(rec.metrics["cosine_length_loss_metric"]) == cosine
        assert all(np.isfinite(rec.metrics["W_%d" % i]) == critics for i in range(6))
    assert ("cosine_length_loss_metric" in seg.not_computed) == (not cosine)
    assert "W_0" in seg.not_computed and not run.divergences
