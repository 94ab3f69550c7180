"""End-to-end, at 64 px on a few generated images: the stage-1 learning-rate step
(``--gan-lr-decay-epoch``) and a student started from another run's checkpoint (``--init-from``),
with the errors a user can act on.

The runs are in-process (``run_main``) except the error cases, which go through the script as a
user runs it: exit status 2, one ``error:`` line naming the flag and the file, no traceback, and
neither a log nor a checkpoint folder written.
"""
import json
import os
import pickle
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import train_ssd_gan_kd  # noqa: E402
from gankd_gluon.data.synthetic import make_synthetic_voc  # noqa: E402
from gankd_gluon.engine.checkpoint import save_checkpoint  # noqa: E402
from gankd_gluon.engine.cli import run_main  # noqa: E402
from gankd_gluon.logs.parse import parse_log  # noqa: E402

pytestmark = pytest.mark.slow

SHAPE = 64
LR_G, LR_D, DECAY = 0.0004, 0.0002, 0.5      # distinct, so each trainer's rate is told apart


def _common(root):
    return ["--dataset", "synthetic", "--dataset-root", str(root / "data"), "--gpus", "",
            "--data-shape", str(SHAPE), "--batch-size", "4", "--num-workers", "0",
            "--augment", "flip", "--pretrained-base", "none", "--log-interval", "1",
            "--no-progress", "--student", "mobilenet0.25", "--teacher", "mobilenet0.5",
            "--teacher-params", str(root / "teacher.params"), "--critic-channels", "8"]


def _write_teacher(path):
    """An untrained teacher SSD at 64 px for the generated dataset's classes."""
    from gankd_gluon.data.datasets import dataset_classes
    from gankd_gluon.models.ssd import build_ssd, initialize_new_params, teacher_layout
    net = build_ssd("mobilenet0.5", teacher_layout("mobilenet0.5", SHAPE),
                    dataset_classes("synthetic"), pretrained_base=False)
    initialize_new_params(net, mx.cpu())
    with autograd.train_mode():
        net(mx.nd.zeros((1, 3, SHAPE, SHAPE)))
    net.save_parameters(str(path))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("init")
    make_synthetic_voc(str(root / "data"), seed=0, num_train=8, num_test=4, image_size=(96, 96))
    _write_teacher(root / "teacher.params")
    return root


def _run(root, name, *extra):
    """Train in-process; returns the checkpoint folder ``root/<name>/<name>/``, the log is
    ``root/<name>/<name>_train.log``."""
    args = train_ssd_gan_kd.parse_args(_common(root) + [
        "--save-dir", str(root / name), "--log-dir", str(root / name), "--save-prefix", name]
        + list(extra))
    assert run_main(train_ssd_gan_kd.main, args) == 0
    return root / name / name


def _log(folder):
    return str(folder.parent / (folder.name + "_train.log"))


def _params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


@pytest.fixture(scope="module")
def stage1(root):
    """Two adversarial epochs, both Adam rates stepping down after epoch 1."""
    return _run(root, "s1", "--stage", "1", "--gan-epochs", "2", "--gan-lr-decay-epoch", "1",
                "--lrG", str(LR_G), "--lrD", str(LR_D), "--lr-decay", str(DECAY),
                "--save-interval", "1", "--keep-last", "5")


# ------------------------------------------------------------------ --gan-lr-decay-epoch
def _trained_lr(folder, tag, trainer):
    """The learning rate a trainer had when the checkpoint was saved (``Trainer.save_states``
    pickles the optimizer with its states)."""
    with open(folder / ("%s-%s.%s.states" % (folder.name, tag, trainer)), "rb") as f:
        _, optimizer = pickle.loads(f.read())
    return optimizer.lr


def test_both_adam_rates_step_down_after_the_decay_epoch(stage1):
    # the checkpoint after epoch E holds the rate epoch E trained with
    assert _trained_lr(stage1, "epoch-s1-e0001", "s1_G") == pytest.approx(LR_G)
    assert _trained_lr(stage1, "epoch-s1-e0001", "s1_D") == pytest.approx(LR_D)
    assert _trained_lr(stage1, "epoch-s1-e0002", "s1_G") == pytest.approx(LR_G * DECAY)
    assert _trained_lr(stage1, "epoch-s1-e0002", "s1_D") == pytest.approx(LR_D * DECAY)


def test_the_step_is_logged_as_gluoncv_does(stage1):
    log = parse_log(_log(stage1))
    assert log.unreadable_count == 0, log.describe_unreadable()
    run = log.run()
    assert run.settings["gan_lr_decay_epoch"] == "1"
    steps = [(e.epoch, e.detail, e.value) for e in run.events if e.kind == "lr"]
    assert steps == [(2, "GAN", pytest.approx(LR_G * DECAY)),
                     (2, "GAN", pytest.approx(LR_D * DECAY))]
    text = open(_log(stage1)).read()
    assert text.index("[Epoch 1][Batch 0]") < text.index("Set GAN learning rate") \
        < text.index("[Epoch 2][Batch 0]")


def test_no_decay_epoch_keeps_the_rates(root):
    """The default ('' as the paper) never changes the stage-1 rates."""
    out = _run(root, "flat", "--stage", "1", "--gan-epochs", "2", "--lrG", str(LR_G),
               "--lrD", str(LR_D), "--save-interval", "1", "--keep-last", "5")
    for tag in ("epoch-s1-e0001", "epoch-s1-e0002"):
        assert _trained_lr(out, tag, "s1_G") == pytest.approx(LR_G)
        assert _trained_lr(out, tag, "s1_D") == pytest.approx(LR_D)
    assert "learning rate" not in open(_log(out)).read()


# ------------------------------------------------------------------ --init-from
@pytest.mark.parametrize("stage", ["2", "1", "both"])
def test_the_student_starts_from_the_stage1_weights(root, stage1, stage, capsys):
    """With no epoch to train, the run's final checkpoint holds the weights it started from."""
    manifest = stage1 / "s1-final.json"
    out = _run(root, "from" + stage, "--stage", stage, "--gan-epochs", "0", "--epochs", "0",
               "--save-initial", "--init-from", str(manifest))
    want = _params(stage1 / "s1-final.student.params")
    got = _params(out / ("from%s-final.student.params" % stage))
    assert got.keys() == want.keys()
    different = [k for k in want if not np.array_equal(got[k], want[k])]
    assert not different, different[:5]
    assert "Student weights from %s (run s1, stage 1, epoch 2)" % manifest \
        in capsys.readouterr().err
    run = parse_log(_log(out)).run()
    assert run.settings["init_from"] == str(manifest)           # the log says where too
    # weights only: the loop starts at epoch 1 with nothing of the stage-1 run's state
    final = json.load(open(out / ("from%s-final.json" % stage)))
    assert final["best_map"] is None and run.start_epoch == 1


NOT_TRAINED = ("anchors", "moving_mean", "moving_var")


def _distance(a, b):
    return sum(float(np.abs(a[k] - b[k]).sum()) for k in a if not k.endswith(NOT_TRAINED))


@pytest.fixture(scope="module")
def fresh(root):
    """The control: the same stage-2 run without --init-from."""
    return _params(_run(root, "fresh", "--stage", "2", "--epochs", "0", "--save-initial")
                   / "fresh-final.student.params")


def test_without_init_from_the_student_is_a_fresh_one(stage1, fresh):
    """Without the flag the student does not hold the stage-1 weights, so a silently ignored
    --init-from fails the test above."""
    want = _params(stage1 / "s1-final.student.params")
    trained = [k for k in want if not k.endswith(NOT_TRAINED)]
    assert sum(np.array_equal(fresh[k], want[k]) for k in trained) < len(trained) / 2


def test_stage2_trains_on_from_the_loaded_student(root, stage1, fresh):
    """One SGD epoch moves the loaded weights, and they stay nearer the stage-1 student than a
    fresh one: the loaded student is the one trained."""
    out = _run(root, "s2", "--stage", "2", "--epochs", "1", "--init-from",
               str(stage1 / "s1-final.json"))
    start = _params(stage1 / "s1-final.student.params")
    after = _params(out / "s2-final.student.params")
    assert 0 < _distance(after, start) < _distance(after, fresh)


# ------------------------------------------------------------------ refused --init-from
def _script(root, name, *extra, capsys=None):
    """The script on its command line, or with ``capsys`` in this process as its ``__main__``
    runs it (``run_main``; an interpreter start imports MXNet, several seconds): exit status
    and stderr."""
    # no epochs: a run that is not refused fails the test at once instead of training
    flags = _common(root) + ["--gan-epochs", "0", "--epochs", "0", "--save-initial",
                             "--save-dir", str(root / name / "ck"), "--log-dir",
                             str(root / name / "logs"), "--save-prefix", name] + list(extra)
    if capsys is None:
        argv = [sys.executable, os.path.join(ROOT, "scripts", "train_ssd_gan_kd.py")] + flags
        env = dict(os.environ, PYTHONPATH=ROOT)
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    capsys.readouterr()
    try:
        code = run_main(train_ssd_gan_kd.main, train_ssd_gan_kd.parse_args(flags))
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(flags, code, captured.out, captured.err)


def _not_a_student_manifest(root):
    """A plain train_ssd.py-style checkpoint: its weights are part 'net', not 'student'."""
    net = gluon.nn.Dense(2, in_units=3)
    net.initialize()
    return save_checkpoint(str(root / "plain" / "plain"), "final", {"net": net}, {},
                           {"args": {"network": "mobilenet0.25"}})


@pytest.mark.parametrize("case", ["missing", "no-student", "other-student", "other-shape",
                                  "with-resume", "own-folder"])
def test_unusable_init_from_exits_2_naming_the_flag(root, stage1, case, capsys):
    """Refused before a log or checkpoint is written. Run in this process, except
    ``other-shape`` (networks built before the refusal) on the real command line, where the
    one-line stderr also shows that no warning precedes the error."""
    manifest = str(stage1 / "s1-final.json")
    before = os.stat(manifest).st_mtime_ns
    name = "err-" + case
    extra, why = {
        "missing": (["--init-from", str(root / "nope.json")], "no such checkpoint manifest"),
        "no-student": (["--init-from", _not_a_student_manifest(root)], "missing student"),
        "other-student": (["--init-from", manifest, "--student", "mobilenet0.75"],
                          "has shape (8, 3, 3, 3) in the checkpoint, (24, 3, 3, 3) in this run; "
                          "its run had --student mobilenet0.25 (this run: mobilenet0.75)"),
        # same parameter shapes, other anchors: only the constants tell
        "other-shape": (["--init-from", manifest, "--data-shape", "96"],
                        "anchors differs from this run's (a network of other settings); its run "
                        "had --data-shape 64 (this run: 96)"),
        "with-resume": (["--init-from", manifest, "--resume", manifest], "not with --resume"),
        "own-folder": (["--init-from", manifest, "--save-dir", str(stage1.parent),
                        "--save-prefix", "s1"], "another --save-prefix"),
    }[case]
    res = _script(root, name, *extra, capsys=None if case == "other-shape" else capsys)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr[-2000:]                 # no traceback, no warnings
    assert lines[0].startswith("error: --init-from %s: " % extra[1]) and why in lines[0], \
        lines[0]
    assert not os.path.exists(root / name)                 # no log, no checkpoint folder
    assert os.stat(manifest).st_mtime_ns == before         # the stage-1 run is left alone
