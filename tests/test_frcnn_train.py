"""End-to-end: train_faster_rcnn.py and train_faster_rcnn_gan_kd.py on the generated dataset.

Tiny on purpose (96 px images, 8 RoIs per image, two training images): what is checked is
what a user relies on for a week-long run. Both stages run and log in the published Faster
R-CNN format, the log is read by the comparison parser beside the published one, the
checkpoints and the exported student work, resume is exact, a NaN stops the run with exit
status 1, and the other methods (FGFI, Chen) and both RoI modes train.
"""
import glob
import json
import os
import sys

import mxnet as mx
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import train_faster_rcnn  # noqa: E402
import train_faster_rcnn_gan_kd  # noqa: E402
from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES  # noqa: E402
from gankd_gluon.engine.cli import run_main  # noqa: E402
from gankd_gluon.logs.parse import parse_log  # noqa: E402
from dist_fixtures import drop_folders  # noqa: E402
from frcnn_fixtures import COMMON, make_data, save_teacher  # noqa: E402

pytestmark = pytest.mark.slow

PUBLISHED_COLUMNS = ["RPN_Conf", "RPN_SmoothL1", "RCNN_CrossEntropy", "RCNN_SmoothL1", "RPNAcc",
                     "RPNL1Loss", "RCNNAcc", "RCNNL1Loss", "Loss_G", "Loss_D"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Data and a teacher: a ResNet101 Faster R-CNN, initialised and saved (its weights only
    have to stay fixed; training one is train_faster_rcnn.py's job, tested below). A Faster
    R-CNN checkpoint is about 0.5 GB (weights + optimizer states): all deleted at the end."""
    import shutil
    root = tmp_path_factory.mktemp("frcnn_e2e")
    make_data(root / "data", num_train=2, num_test=2)
    save_teacher(root / "teacher.params")
    yield root
    shutil.rmtree(str(root), ignore_errors=True)


def _gankd_args(root, *extra):
    return train_faster_rcnn_gan_kd.parse_args(COMMON + [
        "--dataset-root", str(root / "data"), "--teacher-params", str(root / "teacher.params"),
        "--gan-epochs", "1", "--epochs", "3", "--train-D-eopch", "1", "--save-interval", "1",
        "--keep-last", "10", "--critic-channels", "8"] + list(extra))


def _params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


@pytest.fixture(scope="module")
def full_run(workdir):
    before = _params(str(workdir / "teacher.params"))
    args = _gankd_args(workdir, "--save-dir", str(workdir / "ckA"), "--log-dir",
                       str(workdir / "logsA"), "--save-prefix", "run")
    assert run_main(train_faster_rcnn_gan_kd.main, args) == 0
    after = _params(str(workdir / "teacher.params"))
    assert all(np.array_equal(before[k], after[k]) for k in before)
    return workdir


def test_both_stages_log_in_the_published_format(full_run, published_frcnn_log, tmp_path):
    log = parse_log(str(full_run / "logsA" / "run_train.log"))
    assert log.kind == "frcnn" and log.unreadable_count == 0, log.describe_unreadable()
    run = log.run()
    assert run.settings["GAN_epochs"] == 1 and run.settings["train_D_eopch"] == 1
    assert [s.stage for s in run.segments] == [1, 2] and not run.divergences
    # counted from 0 through both stages, the switch after GAN_epochs as published
    assert [e.epoch for e in run.epochs] == [0, 1, 2]
    assert run.segments[1].first_epoch == run.settings["GAN_epochs"] + 1
    # the published columns, then our monitors (engine/diagnostics.py), in stage 1 only
    monitors = ["cosine_length_loss_metric", "W_0"]
    assert list(run.batches[0].metrics) == PUBLISHED_COLUMNS + monitors
    first, last = run.epochs[0].metrics, run.epochs[-1].metrics
    assert list(first) == ["RPN_Conf", "RPN_SmoothL1", "RCNN_CrossEntropy", "RCNN_SmoothL1",
                           "Loss_G", "Loss_D"] + monitors       # the published epoch line + ours
    assert list(last) == ["RPN_Conf", "RPN_SmoothL1", "RCNN_CrossEntropy", "RCNN_SmoothL1",
                          "Loss_G", "Loss_D"]                   # stage 2: as published
    assert np.isfinite(first["Loss_D"]) and np.isnan(last["Loss_D"])
    # one critic: W_0 = -Loss_D (each rounded to 3 decimals in the log)
    assert first["W_0"] == pytest.approx(-first["Loss_D"], abs=1.5e-3)
    assert first["cosine_length_loss_metric"] > 0
    assert np.isfinite(last["RCNN_CrossEntropy"])
    assert [v.epoch for v in run.validations] == [0, 1, 2]
    assert all(len(v.aps) == 5 and v.title == "Validation" for v in run.validations)
    # read beside the published log by the comparison report
    from gankd_gluon.logs.report import compare_logs
    result = compare_logs(published_frcnn_log, str(full_run / "logsA" / "run_train.log"),
                          str(tmp_path / "cmp"), plots=False)
    assert result.exit_code == 0 and result.comparable
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "RCNN_CrossEntropy" in report


def test_checkpoints_and_exported_student(full_run):
    ck = full_run / "ckA" / "run"
    for tag in ("best", "final", "epoch-s1-e0001", "epoch-s1-e0002", "epoch-s2-e0001"):
        assert os.path.isfile(ck / ("run-%s.json" % tag)), tag
    assert not glob.glob(str(ck / "*.tmp-*"))
    final = json.load(open(ck / "run-final.json"))["parts"]      # linked, not written twice
    last = json.load(open(ck / "run-epoch-s2-e0001.json"))["parts"]
    assert final.keys() == last.keys() and "student" in final
    assert all(os.path.samefile(ck / final[k], ck / last[k]) for k in final)
    from mxnet import gluon
    net = gluon.SymbolBlock.imports(str(ck / "run-final-student-symbol.json"), ["data"],
                                    str(ck / "run-final-student-0000.params"))
    ids, scores, boxes = net(mx.nd.zeros((1, 3, 96, 128)))    # any size: short-side inputs
    assert boxes.shape[0] == 1 and boxes.shape[2] == 4
    # the export describes itself: kind, classes and the run's sizes
    meta = json.load(open(ck / "run-final-student-meta.json"))
    assert (meta["kind"], meta["input"], meta["classes"], meta["checkpoint"]) == (
        "faster_rcnn", {"short": 96, "max_size": 96}, list(SYNTHETIC_CLASSES), "run-final.json")



def test_critic_standardises_with_the_teachers_statistics(full_run):
    """The critic's frozen input standardisation, saved with it, is the teacher's per-channel
    mean and standard deviation of its stride-16 map over the first training images."""
    from gankd_gluon.engine.frcnn_runs import (_datasets, frcnn_settings,
                                               frcnn_teacher_statistics)
    from gankd_gluon.data.datasets import dataset_classes
    from gankd_gluon.models.faster_rcnn import build_teacher
    args = _gankd_args(full_run)
    teacher = build_teacher(args.teacher, dataset_classes(args.dataset), args.Teacher_param_path,
                            mx.cpu(), **frcnn_settings(args))
    (mean, std), = frcnn_teacher_statistics(teacher, _datasets(args)[0], args.short,
                                            args.max_size, mx.cpu())
    saved = _params(str(full_run / "ckA" / "run" / "run-final.dnet.params"))
    np.testing.assert_allclose(saved["critics.0.std.mean"].ravel(), mean.asnumpy(), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(saved["critics.0.std.std"].ravel(), std.asnumpy(), rtol=1e-4)
    assert saved["critics.0.score_scale"][0] > 0 and (saved["critic_weights"] == 1).all()

def test_resume_is_exact(full_run):
    """Resuming after epoch 0 (stage 1) ends with bit-identical weights (num_workers=0)."""
    src = full_run / "ckA" / "run" / "run-epoch-s1-e0001.json"
    args = _gankd_args(full_run, "--save-dir", str(full_run / "ckB"), "--log-dir",
                       str(full_run / "logsB"), "--save-prefix", "run", "--resume", str(src),
                       "--keep-last", "1")
    assert run_main(train_faster_rcnn_gan_kd.main, args) == 0
    for part in ("student", "dnet"):
        a = _params(str(full_run / "ckA" / "run" / ("run-final.%s.params" % part)))
        b = _params(str(full_run / "ckB" / "run" / ("run-final.%s.params" % part)))
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), part
    log = parse_log(str(full_run / "logsB" / "run_train.log"))
    assert [e.epoch for e in log.run().epochs] == [1, 2]
    drop_folders(full_run / "ckB")


def test_nan_loss_stops_the_run_with_exit_1(workdir, monkeypatch, capsys):
    # NaN in the last batch element (the RPN box mask) of batch 0 (the only one: 2 images in
    # batches of 2) of the loop's first epoch, which the log counts as epoch 0
    monkeypatch.setenv("GANKD_FAULT", "loss:1:0")
    args = _gankd_args(workdir, "--save-dir", str(workdir / "ckN"), "--log-dir",
                       str(workdir / "logsN"), "--save-prefix", "nan")
    assert run_main(train_faster_rcnn_gan_kd.main, args) == 1
    err = capsys.readouterr().err
    assert "epoch 0, batch 0" in err and "RPN_SmoothL1=nan" in err
    assert "non-finite loss" in open(workdir / "logsN" / "nan_train.log").read()
    assert not glob.glob(str(workdir / "ckN" / "nan" / "*.json"))   # nothing saved after it


def test_roi_pooling_on_two_devices_with_gan_and_fgfi(workdir):
    """Both stages, RoI pooling, the batch split over two devices, critic and imitation."""
    args = _gankd_args(workdir, "--save-dir", str(workdir / "ckP"), "--log-dir",
                       str(workdir / "logsP"), "--roi-mode", "pool", "--cpu-devices", "2",
                       "--batch-size", "2", "--gan-epochs", "0", "--epochs", "2",
                       "--method", "gan+fgfi", "--train-D-eopch", "0", "--keep-last", "1")
    assert run_main(train_faster_rcnn_gan_kd.main, args) == 0
    assert args.save_prefix.endswith("_gankd+fgfi_pool")
    run = parse_log(str(workdir / "logsP" / (args.save_prefix + "_train.log"))).run()
    assert [s.stage for s in run.segments] == [1, 2]
    assert [e.epoch for e in run.epochs] == [0, 1]
    first = run.epochs[0].metrics
    assert np.isfinite(first["Loss_G"]) and first["KD_FGFI"] > 0
    drop_folders(workdir / "ckP")


def test_chen_trains_and_logs_its_terms(workdir):
    """Chen et al. on the RPN and RCNN heads (teacher run on the student's RoIs) and the hint."""
    args = _gankd_args(workdir, "--save-dir", str(workdir / "ckM"), "--log-dir",
                       str(workdir / "logsM"), "--method", "chen", "--stage", "1",
                       "--gan-epochs", "0")
    assert run_main(train_faster_rcnn_gan_kd.main, args) == 0
    assert args.save_prefix.endswith("_chen_align")
    metrics = parse_log(str(workdir / "logsM" / (args.save_prefix + "_train.log"))
                        ).run().epochs[-1].metrics
    for name in ("KD_soft", "KD_L2B", "KD_hint"):
        assert np.isfinite(metrics[name]) and metrics[name] >= 0, name
    assert np.isnan(metrics["Loss_D"])                        # no critic: "not computed"
    assert np.isnan(metrics["W_0"]) and np.isfinite(metrics["cosine_length_loss_metric"])
    drop_folders(workdir / "ckM")


def test_plain_training_script(workdir):
    """train_faster_rcnn.py (the teacher and the baselines; here ResNet50 with RoI pooling)
    logs GluonCV's columns, validates and checkpoints."""
    args = train_faster_rcnn.parse_args(COMMON + [
        "--dataset-root", str(workdir / "data"), "--network", "resnet50_v1b", "--roi-mode",
        "pool", "--epochs", "1", "--save-dir", str(workdir / "ckT"), "--log-dir",
        str(workdir / "logsT")])
    assert run_main(train_faster_rcnn.main, args) == 0
    assert args.save_prefix == "faster_rcnn_resnet50_v1b_synthetic_pool"
    log = parse_log(str(workdir / "logsT" / (args.save_prefix + "_train.log")))
    run = log.run()
    assert log.kind == "frcnn" and log.unreadable_count == 0
    assert [e.epoch for e in run.epochs] == [0] and [v.epoch for v in run.validations] == [0]
    assert list(run.batches[0].metrics) == PUBLISHED_COLUMNS[:8]
    assert list(run.epochs[0].metrics) == PUBLISHED_COLUMNS[:4]
    assert os.path.isfile(workdir / "ckT" / args.save_prefix /
                          (args.save_prefix + "-final.net.params"))
    drop_folders(workdir / "ckT")
