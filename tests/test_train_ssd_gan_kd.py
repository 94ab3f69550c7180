"""End-to-end: train_ssd.py (teacher) then train_ssd_gan_kd.py on the generated dataset.

Checks what a user relies on for a week-long run: both stages log in the published format
(read back by the log parser), checkpoints and the exported student, exact resume, a refused
incomplete checkpoint, and a NaN that stops the run with exit status 1.
"""
import glob
import json
import os
import shutil
import sys

import mxnet as mx
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import train_ssd  # noqa: E402
import train_ssd_gan_kd  # noqa: E402
from gankd_gluon.data.synthetic import make_synthetic_voc  # noqa: E402
from gankd_gluon.engine.cli import run_main  # noqa: E402
from gankd_gluon.logs.parse import parse_log  # noqa: E402

pytestmark = pytest.mark.slow

COMMON = ["--dataset", "synthetic", "--gpus", "", "--data-shape", "128", "--batch-size", "8",
          "--num-workers", "0", "--augment", "flip", "--pretrained-base", "none",
          "--log-interval", "2", "--no-progress"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    make_synthetic_voc(str(root / "data"), seed=0, num_train=16, num_test=8)
    args = train_ssd.parse_args(COMMON + [
        "--dataset-root", str(root / "data"), "--network", "mobilenet0.5", "--epochs", "1",
        "--optimizer", "adam", "--save-dir", str(root / "ck"), "--log-dir", str(root / "logs"),
        "--save-prefix", "teacher"])
    assert run_main(train_ssd.main, args) == 0
    return root


def _gankd_args(root, *extra):
    return train_ssd_gan_kd.parse_args(COMMON + [
        "--dataset-root", str(root / "data"), "--student", "mobilenet0.25",
        "--teacher", "mobilenet0.5",
        "--teacher-params", str(root / "ck" / "teacher" / "teacher-final.net.params"),
        "--gan-epochs", "2", "--epochs", "1", "--save-interval", "1", "--keep-last", "10",
        "--critic-channels", "16"] + list(extra))


def _params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


@pytest.fixture(scope="module")
def full_run(workdir):
    args = _gankd_args(workdir, "--save-dir", str(workdir / "ckA"), "--log-dir",
                       str(workdir / "logsA"), "--save-prefix", "run")
    assert run_main(train_ssd_gan_kd.main, args) == 0
    return workdir


def test_teacher_log_and_checkpoint(workdir):
    log = parse_log(str(workdir / "logs" / "teacher_train.log"))
    assert log.run().validations and log.unreadable_count == 0, log.describe_unreadable()
    assert os.path.isfile(workdir / "ck" / "teacher" / "teacher-final.net.params")


def test_both_stages_log_in_the_published_format(full_run):
    log = parse_log(str(full_run / "logsA" / "run_train.log"))
    assert log.unreadable_count == 0, log.describe_unreadable()
    run = log.run()
    assert run.settings["lrD"] == 0.0005 and run.settings["clamp_upper"] == 0.03
    stages = [s.stage for s in run.segments]
    assert stages == [1, 2]                       # epochs 1-2 adversarial, then 1 plain
    assert not run.divergences                    # stage-2 nan columns are "not computed"
    first, last = run.epochs[0].metrics, run.epochs[-1].metrics
    assert np.isfinite(first["Loss_D"]) and np.isnan(last["Loss_D"])
    assert first["Loss_D"] == pytest.approx(first["Loss_D_real"] - first["Loss_D_fake"], abs=2e-3)
    assert np.isfinite(last["train_student_ori_net_CrossEntropy"])
    assert len(run.validations) == 3 and len(run.validations[0].aps) == 5


def test_checkpoints_and_exported_student(full_run):
    ck = full_run / "ckA" / "run"
    for tag in ("best", "final", "epoch-s1-e0001", "epoch-s1-e0002", "epoch-s2-e0001"):
        assert os.path.isfile(ck / ("run-%s.json" % tag)), tag
    assert not glob.glob(str(ck / "*.tmp-*"))     # atomic writes leave no temporaries
    # no step between the last epoch's checkpoint and the final one: one copy on disk
    final = json.load(open(ck / "run-final.json"))["parts"]
    last = json.load(open(ck / "run-epoch-s2-e0001.json"))["parts"]
    assert set(final) == set(last) == {"student", "dnet", "trainer:s1_G", "trainer:s1_D",
                                       "trainer:s2_SGD"}
    assert all(os.path.samefile(ck / final[k], ck / last[k]) for k in final)
    # stage 2 does not step the stage-1 trainers: its checkpoint names the optimizer states
    # file of stage 1's last save, not written again (older than that save's manifest, which
    # is written after its parts)
    s1 = json.load(open(ck / "run-epoch-s1-e0002.json"))["parts"]
    written = os.stat(ck / "run-epoch-s1-e0002.json").st_mtime_ns
    for part in ("trainer:s1_G", "trainer:s1_D"):
        assert last[part] == s1[part]
        assert os.stat(ck / last[part]).st_mtime_ns <= written, part
    assert os.stat(ck / last["student"]).st_mtime_ns > written
    assert last["student"] != s1["student"] and last["trainer:s2_SGD"] != s1["trainer:s2_SGD"]
    best = json.load(open(ck / "run-best.json"))
    same = (best["stage"], best["epoch"]) == (2, 1)
    assert os.path.samefile(ck / "run-best-student-0000.params",
                            ck / "run-final-student-0000.params") == same
    from mxnet import gluon
    net = gluon.SymbolBlock.imports(str(ck / "run-final-student-symbol.json"), ["data"],
                                    str(ck / "run-final-student-0000.params"))
    ids, scores, boxes = net(mx.nd.zeros((1, 3, 128, 128)))
    assert boxes.shape == (1, 100, 4)



def test_critics_standardise_with_the_teachers_statistics(full_run):
    """Each critic's frozen input standardisation, saved with the D-Net, is the teacher's
    per-channel mean and standard deviation of its map over the first training images (the
    validation transform, no augmentation); the score scales were observed, the critic weights
    balanced (mean 1)."""
    from gankd_gluon.data.datasets import dataset_classes, get_dataset
    from gankd_gluon.engine.ssd_runs import teacher_statistics
    from gankd_gluon.models.ssd import build_teacher, teacher_layout
    args = _gankd_args(full_run)
    teacher = build_teacher(args.teacher, dataset_classes(args.dataset),
                            teacher_layout(args.teacher, args.data_shape), "voc",
                            args.teacher_params, ctx=mx.cpu())
    stats = teacher_statistics(teacher.features, get_dataset(args.dataset, args.dataset_root,
                                                             "train"), args.data_shape, mx.cpu())
    saved = _params(str(full_run / "ckA" / "run" / "run-final.dnet.params"))
    assert len(stats) == 6
    for i, (mean, std) in enumerate(stats):
        np.testing.assert_allclose(saved["critics.%d.std.mean" % i].ravel(), mean.asnumpy(),
                                   rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(saved["critics.%d.std.std" % i].ravel(), std.asnumpy(),
                                   rtol=1e-4)
        assert saved["critics.%d.score_scale" % i][0] > 0
    assert saved["critic_weights"].mean() == pytest.approx(1.0, rel=1e-5)
    assert not np.allclose(saved["critic_weights"], 1)

def test_resume_is_exact(full_run):
    """Resuming after stage-1 epoch 1 ends with bit-identical weights (num_workers=0)."""
    src = full_run / "ckA" / "run" / "run-epoch-s1-e0001.json"
    args = _gankd_args(full_run, "--save-dir", str(full_run / "ckB"), "--log-dir",
                       str(full_run / "logsB"), "--save-prefix", "run", "--resume", str(src))
    assert run_main(train_ssd_gan_kd.main, args) == 0
    a = _params(str(full_run / "ckA" / "run" / "run-final.student.params"))
    b = _params(str(full_run / "ckB" / "run" / "run-final.student.params"))
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    log = parse_log(str(full_run / "logsB" / "run_train.log"))
    assert [e.epoch for e in log.run().epochs] == [2, 1]


def test_refuses_an_incomplete_checkpoint(full_run, tmp_path, capsys):
    import shutil
    src = full_run / "ckA" / "run"
    manifest = json.load(open(src / "run-epoch-s1-e0001.json"))
    shutil.copy(src / "run-epoch-s1-e0001.json", tmp_path)
    for name in manifest["parts"].values():
        shutil.copy(src / name, tmp_path)
    os.remove(tmp_path / manifest["parts"]["dnet"])
    args = _gankd_args(full_run, "--save-dir", str(tmp_path / "ck"), "--log-dir",
                       str(tmp_path), "--resume", str(tmp_path / "run-epoch-s1-e0001.json"))
    assert run_main(train_ssd_gan_kd.main, args) == 2
    assert "the checkpoint is missing dnet (no file %s)" % (
        tmp_path / manifest["parts"]["dnet"]) in capsys.readouterr().err



def test_resume_with_other_critics_names_the_flag(full_run, tmp_path, capsys):
    """Resuming a run whose critics were built with other flags (e.g. a run started before the
    default --critic-norm changed) is refused with the flag that differs, before anything is
    built."""
    args = _gankd_args(full_run, "--save-dir", str(tmp_path / "ck"), "--log-dir",
                       str(tmp_path), "--critic-norm", "batch", "--resume",
                       str(full_run / "ckA" / "run" / "run-epoch-s1-e0001.json"))
    assert run_main(train_ssd_gan_kd.main, args) == 2
    err = capsys.readouterr().err
    assert "this run's settings differ from the checkpoint's: --critic-norm \"lipschitz\" -> " \
           "\"batch\"" in err
    assert not os.path.exists(tmp_path / "ck")                      # nothing written
    # named as intended, the mismatch is found in the critics' parameters
    args = _gankd_args(full_run, "--save-dir", str(tmp_path / "ck"), "--log-dir",
                       str(tmp_path), "--critic-norm", "batch", "--allow-changed", "critic-norm",
                       "--resume", str(full_run / "ckA" / "run" / "run-epoch-s1-e0001.json"))
    assert run_main(train_ssd_gan_kd.main, args) == 2
    err = capsys.readouterr().err
    assert "dnet parameters differ" in err and "--critic-norm lipschitz (this run: batch)" in err

def test_resume_with_another_distillation_weight_names_the_flag(full_run, tmp_path, capsys):
    """The weights the method's terms read are run settings: a checkpoint of `--method
    gan+hint` with --kd-gamma 0.25, resumed with the default --kd-gamma, is refused naming it,
    before anything is written (the checkpoint is full_run's, its stored args edited)."""
    src = full_run / "ckA" / "run"
    manifest = json.load(open(src / "run-epoch-s1-e0001.json"))
    for name in manifest["parts"].values():
        shutil.copy(src / name, tmp_path)
    manifest["args"].update(method="gan+hint", kd_gamma=0.25)
    with open(tmp_path / "run-epoch-s1-e0001.json", "w") as f:
        json.dump(manifest, f)
    args = _gankd_args(full_run, "--save-dir", str(tmp_path / "ck"), "--log-dir",
                       str(tmp_path / "logs"), "--method", "gan+hint", "--resume",
                       str(tmp_path / "run-epoch-s1-e0001.json"))
    assert args.kd_gamma != 0.25
    assert run_main(train_ssd_gan_kd.main, args) == 2
    err = capsys.readouterr().err
    assert "this run's settings differ from the checkpoint's: --kd-gamma 0.25 -> %s" % json.dumps(
        args.kd_gamma) in err
    assert not os.path.exists(tmp_path / "ck") and not os.path.exists(tmp_path / "logs")


def test_nan_loss_stops_the_run_with_exit_1(workdir, monkeypatch, capsys):
    monkeypatch.setenv("GANKD_FAULT", "loss:1:1")      # NaN box targets in batch 1 of epoch 1
    args = _gankd_args(workdir, "--save-dir", str(workdir / "ckN"), "--log-dir",
                       str(workdir / "logsN"), "--save-prefix", "nan")
    assert run_main(train_ssd_gan_kd.main, args) == 1
    err = capsys.readouterr().err
    assert "epoch 1, batch 1" in err and "SmoothL1=nan" in err
    text = open(workdir / "logsN" / "nan_train.log").read()
    assert "non-finite loss" in text
    assert not glob.glob(str(workdir / "ckN" / "nan" / "*.json"))   # nothing saved after it


@pytest.mark.parametrize("method", ["none", "chen", "ko", "hint", "gan+hint", "l2+cls+hints"])
def test_every_method_trains_and_logs_its_terms(workdir, method):
    """Every --method runs stage 1 on the same data and schedule; its own losses are extra
    columns, the adversarial ones are 'not computed' unless the critics run."""
    args = _gankd_args(workdir, "--save-dir", str(workdir / "ckM"), "--log-dir",
                       str(workdir / "logsM"), "--method", method, "--stage", "1",
                       "--gan-epochs", "1")
    assert run_main(train_ssd_gan_kd.main, args) == 0
    from gankd_gluon.engine.methods import method_name, parse_method
    assert args.save_prefix.endswith("_" + method_name(parse_method(method)))   # names the method
    run = parse_log(str(workdir / "logsM" / (args.save_prefix + "_train.log"))).run()
    metrics = run.epochs[-1].metrics
    expected = {"none": [], "chen": ["KD_soft", "KD_L2B", "KD_hint"], "ko": ["KD_KL"],
                "hint": ["KD_hint"], "gan+hint": ["KD_hint"],
                "l2+cls+hints": ["KD_soft", "KD_L2", "KD_hint"]}[method]
    for name in expected:
        assert np.isfinite(metrics[name]), name
    assert np.isfinite(metrics["Loss_D"]) == method.startswith("gan")
    manifest = workdir / "ckM" / args.save_prefix / (args.save_prefix + "-final.json")
    assert os.path.isfile(manifest)


@pytest.mark.parametrize("monitor", [False, True])
def test_monitor_teacher_gives_the_control_a_student_teacher_distance(workdir, monitor):
    """``--method none`` trains without the teacher; ``--monitor-teacher`` runs it for the
    log's ``cosine_length_loss_metric`` alone: the column is finite with the flag and ``nan``
    (not computed) without it, and the student's weights are the same either way (the monitor
    is never optimised)."""
    out = "ckT%d" % monitor
    args = _gankd_args(workdir, "--save-dir", str(workdir / out), "--log-dir",
                       str(workdir / out), "--method", "none", "--stage", "1",
                       "--gan-epochs", "1", "--save-prefix", "mon",
                       *(["--monitor-teacher"] if monitor else []))
    assert run_main(train_ssd_gan_kd.main, args) == 0
    metrics = parse_log(str(workdir / out / "mon_train.log")).run().epochs[-1].metrics
    value = metrics["cosine_length_loss_metric"]
    assert (value is not None and np.isfinite(value)) == monitor, value
    if monitor:
        assert value > 0                             # an untrained student is not the teacher
        other = _params(str(workdir / "ckT0" / "mon" / "mon-final.student.params"))
        mine = _params(str(workdir / out / "mon" / "mon-final.student.params"))
        assert other.keys() == mine.keys()
        for k in mine:
            np.testing.assert_allclose(mine[k], other[k], rtol=1e-5, atol=1e-6, err_msg=k)
