"""The loop's step schedule: rates by hand, and the GluonCV line it logs at each change."""
import logging

import pytest

from gankd_gluon.engine.loop import StepSchedule, step_lr


@pytest.fixture
def logger(caplog):
    caplog.set_level(logging.INFO, logger="test_engine_loop")
    return logging.getLogger("test_engine_loop")


def test_the_two_gluoncv_conventions_and_no_other():
    """train_ssd.py decays after the listed (1-based) epoch, train_faster_rcnn.py from the
    listed (0-based, as logged) epoch on: the same epoch number, one decay apart."""
    assert step_lr(1.0, 5, 0.5, [5]) == 1.0 and step_lr(1.0, 5, 0.5, [5], "at") == 0.5
    with pytest.raises(ValueError, match="convention 'before'"):
        StepSchedule({"G": 1.0}, 0.5, [5], convention="before")


def test_step_lr_is_one_based():
    # '179': epochs 1..179 at the base rate, 180 on decayed (the published SSD log's stage 1)
    assert step_lr(0.0005, 179, 0.1, [179]) == 0.0005
    assert step_lr(0.0005, 180, 0.1, [179]) == pytest.approx(0.00005)
    assert step_lr(0.001, 101, 0.1, [80, 100]) == pytest.approx(0.00001)


def test_every_trainer_decays_from_its_own_base(logger, caplog):
    sched = StepSchedule({"G": 0.0004, "D": 0.0002}, 0.5, [1, 3], logger, "GAN")
    assert sched(1) == {"G": 0.0004, "D": 0.0002}
    assert sched(2) == {"G": 0.0002, "D": 0.0001}
    assert sched(3) == {"G": 0.0002, "D": 0.0001}
    assert sched(4) == {"G": 0.0001, "D": 0.00005}
    # one line per distinct rate, at the epochs where they change, highest first
    assert caplog.messages == ["[Epoch 2] Set GAN learning rate to 0.0002",
                     "[Epoch 2] Set GAN learning rate to 0.0001",
                     "[Epoch 4] Set GAN learning rate to 0.0001",
                     "[Epoch 4] Set GAN learning rate to 5e-05"]


def test_a_resumed_run_logs_its_decayed_rate_once(logger, caplog):
    sched = StepSchedule({"SGD": 0.001}, 0.1, [80, 100], logger)
    assert sched(90) == {"SGD": pytest.approx(0.0001)}
    sched(91)
    assert caplog.messages == ["[Epoch 90] Set learning rate to %s" % (0.001 * 0.1)]


def test_no_decay_epochs_no_lines(logger, caplog):
    sched = StepSchedule({"G": 0.0005, "D": 0.0005}, 0.1, [], logger, "GAN")
    assert [sched(e) for e in (1, 2)] == [{"G": 0.0005, "D": 0.0005}] * 2
    assert caplog.messages == []


def test_validation_sees_the_batchnorm_statistics_a_save_writes(tmp_path):
    import mxnet as mx
    import numpy as np
    from mxnet import gluon
    from gankd_gluon.engine.loop import average_device_copies
    ctx = [mx.cpu(0), mx.cpu(1)]
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(2, 1, in_channels=1), gluon.nn.BatchNorm(in_channels=2))
    net.initialize(ctx=ctx)
    bn = net[1]
    # each device's own running statistics, as after training on different slices
    bn.running_mean.data(ctx[0])[:] = mx.nd.array([1.0, 2.0])
    bn.running_mean.data(ctx[1])[:] = mx.nd.array([3.0, 6.0])
    bn.running_var.data(ctx[1])[:] = mx.nd.array([3.0, 5.0])
    weight = net[0].weight.data(ctx[0]).asnumpy()
    net.save_parameters(str(tmp_path / "saved.params"))
    saved = {k: v.asnumpy() for k, v in mx.nd.load(str(tmp_path / "saved.params")).items()}
    assert saved["1.running_mean"].tolist() == [2.0, 4.0]       # the save writes the mean
    assert saved["1.running_var"].tolist() == [2.0, 3.0]        # (1 + 3) / 2, (1 + 5) / 2
    x = mx.nd.random.uniform(shape=(1, 1, 3, 3))
    outs = [net(x.as_in_context(c)).asnumpy() for c in ctx]
    assert not np.allclose(outs[0], outs[1])      # the devices would score different models
    average_device_copies({"net": net})
    for c in ctx:
        assert bn.running_mean.data(c).asnumpy().tolist() == [2.0, 4.0]
        assert bn.running_var.data(c).asnumpy().tolist() == [2.0, 3.0]
    np.testing.assert_array_equal(net[0].weight.data(ctx[0]).asnumpy(), weight)  # trained
    outs = [net(x.as_in_context(c)).asnumpy() for c in ctx]
    np.testing.assert_array_equal(outs[0], outs[1])


# ------------------------------------------------------------------ a run's life, end to end
# train_ssd.py on 16 generated images (2 batches an epoch): what stops a run, and how it
# resumes. Each non-finite case would have been saved (epoch checkpoint, best, final, export)
# before the checks existed: the fault sits in the epoch's last batch.
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import train_ssd  # noqa: E402
from gankd_gluon.data.synthetic import make_synthetic_voc  # noqa: E402
from gankd_gluon.engine.cli import run_main  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_synthetic_voc(str(root / "data"), seed=0, num_train=16, num_test=8,
                       image_size=(96, 96))
    return root


def _argv(root, name, *extra):
    return [
        "--dataset", "synthetic", "--dataset-root", str(root / "data"), "--gpus", "",
        "--data-shape", "128", "--batch-size", "8", "--num-workers", "0", "--augment", "flip",
        "--pretrained-base", "none", "--log-interval", "1", "--no-progress",
        "--network", "mobilenet0.25", "--epochs", "1", "--save-interval", "1",
        "--save-dir", str(root / "ck"), "--log-dir", str(root / "logs"),
        "--save-prefix", name] + list(extra)


def _args(root, name, *extra):
    return train_ssd.parse_args(_argv(root, name, *extra))


def _non_finite_on_disk(folder):
    """Files of ``folder`` holding a NaN/Inf array (every .params of the run)."""
    bad = []
    for path in glob.glob(os.path.join(folder, "*.params")):
        if any(not np.isfinite(a.asnumpy()).all() for a in mx.nd.load(path).values()):
            bad.append(os.path.basename(path))
    return bad


@pytest.fixture(scope="module")
def base(data):
    """A finished 2-epoch run."""
    assert run_main(train_ssd.main, _args(data, "base", "--epochs", "2")) == 0
    return data


@pytest.mark.slow
@pytest.mark.parametrize("fault, message", [
    ("input:1:1", "non-finite input image at epoch 1, batch 1"),
    ("loss:1:1", "non-finite loss at epoch 1, batch 1, before the update: SmoothL1=nan"),
    ("gradient:1:1", "non-finite values in parameter net:"),
])
def test_a_non_finite_input_loss_or_gradient_saves_nothing(data, monkeypatch, capsys, fault,
                                                          message):
    monkeypatch.setenv("GANKD_FAULT", fault)
    name = "nan_" + fault.split(":")[0]
    assert run_main(train_ssd.main, _args(data, name)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    folder = str(data / "ck" / name)
    assert not glob.glob(os.path.join(folder, "*.json"))       # no checkpoint, no export
    assert _non_finite_on_disk(folder) == []


@pytest.mark.slow
def test_a_diverging_learning_rate_saves_no_non_finite_weight(data, capsys):
    """``--optimizer sgd --lr 1e12``: the run stops (exit 1) on the first non-finite loss or
    weight; no file on disk holds a NaN/Inf."""
    args = _args(data, "lr1e12", "--optimizer", "sgd", "--lr", "1e12", "--epochs", "2")
    assert run_main(train_ssd.main, args) == 1
    err = capsys.readouterr().err
    assert "non-finite" in err
    assert _non_finite_on_disk(str(data / "ck" / "lr1e12")) == []


@pytest.mark.slow
def test_a_second_run_under_a_used_name_stops_and_writes_nothing(base, capsys):
    folder = base / "ck" / "base"
    before = {f: os.stat(folder / f).st_mtime_ns for f in os.listdir(folder)}
    log = (base / "logs" / "base_train.log").read_text()
    assert run_main(train_ssd.main, _args(base, "base")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --save-prefix base: %s already holds 4 checkpoint(s) of an earlier "
                   "run (e.g. base-final.json); continue it with --resume auto, choose another "
                   "--save-prefix, or pass --overwrite to replace them" % folder]
    assert {f: os.stat(folder / f).st_mtime_ns for f in os.listdir(folder)} == before
    assert (base / "logs" / "base_train.log").read_text() == log


@pytest.mark.slow
@pytest.mark.parametrize("flags, named", [
    (["--network", "mobilenet0.5"], '--network "mobilenet0.25" -> "mobilenet0.5"'),
    (["--lr", "0.5", "--batch-size", "4"], "--lr 0.001 -> 0.5, --batch-size 8 -> 4"),
])
def test_resume_with_other_settings_is_refused_naming_each(base, capsys, flags, named):
    folder = base / "ck" / "base"
    before = sorted(os.listdir(folder))
    args = _args(base, "base", "--epochs", "2", "--resume", "auto", *flags)
    assert run_main(train_ssd.main, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --resume %s: this run's settings differ from the "
                              "checkpoint's: " % (folder / "base-final.json"))
    assert named in err[-1] and "--allow-changed" in err[-1]
    assert sorted(os.listdir(folder)) == before


@pytest.mark.slow
def test_resume_auto_after_interrupted_and_an_allowed_change(data, capsys):
    """SIGTERM in epoch 2 saves ``interrupted``; ``--resume auto`` takes it (newer than epoch
    1's checkpoint), says so, and with ``--allow-changed lr`` continues at another rate, which
    the log records."""
    folder = data / "ck" / "term"
    stopped = []

    def terminate_in_epoch_2():
        while not os.path.isfile(folder / "term-epoch-s2-e0001.json"):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        stopped.append(True)
    threading.Thread(target=terminate_in_epoch_2, daemon=True).start()
    assert run_main(train_ssd.main, _args(data, "term", "--epochs", "3")) == 3  # resumable
    assert stopped and os.path.isfile(folder / "term-interrupted.json")
    assert not os.path.isfile(folder / "term-final.json")
    saved = folder / "term-interrupted.json"
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "stopped on SIGTERM; saved %s (continue with --resume %s)" % (saved, saved)
    args = _args(data, "term", "--epochs", "3", "--resume", "auto", "--lr", "0.002",
                 "--allow-changed", "lr")
    assert run_main(train_ssd.main, args) == 0
    err = capsys.readouterr().err
    assert "--resume auto: took %s" % (folder / "term-interrupted.json") in err
    log = (data / "logs" / "term_train.log").read_text()
    assert "--resume: changed on purpose (--allow-changed): --lr 0.001 -> 0.002" in log
    assert "Resumed from %s (stage 2, epoch 1 done)" % (folder / "term-interrupted.json") in log
    # the interrupted checkpoint, older than the epoch checkpoints after it, is gone
    assert not os.path.isfile(folder / "term-interrupted.json")
    assert json.load(open(folder / "term-final.json"))["epoch"] == 3


@pytest.mark.slow
def test_a_run_killed_inside_a_save_resumes_from_a_whole_checkpoint(data):
    """``GANKD_FAULT=kill-save:20`` SIGKILLs train_ssd.py while it writes epoch 2's checkpoint
    (step 20 of its saves: epoch 1's best with its export and epoch checkpoint take 17); every
    manifest left is whole, and ``--resume auto`` finishes the run from epoch 1's."""
    import subprocess
    from gankd_gluon.engine.checkpoint import is_manifest
    from gankd_gluon.models.weights import read_checkpoint
    folder = data / "ck" / "killed"
    argv = [sys.executable, os.path.join(ROOT, "scripts", "train_ssd.py")] + _argv(
        data, "killed", "--epochs", "2")
    env = dict(os.environ, PYTHONPATH=ROOT, GANKD_FAULT="kill-save:20")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    manifests = sorted(glob.glob(str(folder / "killed-*.json")))
    manifests = [m for m in manifests if is_manifest(m)]
    assert [os.path.basename(m) for m in manifests] == ["killed-best.json",
                                                        "killed-epoch-s2-e0001.json"]
    for m in manifests:
        read_checkpoint(m, None, "check")
    assert glob.glob(str(folder / "*.tmp-*"))             # the killed write's temporary file
    args = _args(data, "killed", "--epochs", "2", "--resume", "auto")
    assert run_main(train_ssd.main, args) == 0
    assert not glob.glob(str(folder / "*.tmp-*"))
    final = json.load(open(folder / "killed-final.json"))
    assert (final["stage"], final["epoch"]) == (2, 2)
    log = (data / "logs" / "killed_train.log").read_text()
    assert "Resumed from %s (stage 2, epoch 1 done)" % (folder / "killed-epoch-s2-e0001.json") \
        in log


def _run_with(tmp_path, value):
    """A :class:`Run` over one Dense layer and an Adam trainer stepped once (stage 1)."""
    import types
    import mxnet as mx
    from mxnet import autograd, gluon
    from gankd_gluon.engine.loop import Run
    net = gluon.nn.Dense(2, in_units=3)
    net.initialize(mx.init.Constant(value))
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.1})
    with autograd.record():
        loss = net(mx.nd.ones((1, 3))).sum()
    loss.backward()
    trainer.step(1)
    args = types.SimpleNamespace(resume="")
    run = Run(args, logging.getLogger("test_engine_loop"), None, [mx.cpu()], {"net": net}, None,
              str(tmp_path / "run" / "run"))
    stage = types.SimpleNamespace(number=1, trainers={"G": trainer})
    return run, net, stage


def test_a_save_after_a_step_refuses_non_finite_weights_and_one_after_none_names_the_last(
        tmp_path):
    """Every save with a step since the last save checks the weights (an ``interrupted`` save
    in the middle of an epoch has no epoch-end check before it); a save with none names the
    files of the last save, which was checked."""
    import glob
    import json
    run, net, stage = _run_with(tmp_path, 1.0)
    first = run._save([stage], "epoch-s1-e0001", 1, 1, True)
    net.weight.set_data(net.weight.data() * float("nan"))
    run._unchanged = None                  # what the loop does when an epoch (a step) starts
    with pytest.raises(FloatingPointError, match=r"^non-finite values in parameter net:weight "
                                                  r"before saving interrupted at stage 1, "
                                                  r"epoch 2; nothing saved"):
        run._save([stage], "interrupted", 1, 2, False)
    assert not glob.glob(str(tmp_path / "run" / "run-interrupted.json"))
    # no step since ``first``: the save names first's files (the weights it checked)
    run._unchanged = first
    best = run._save([stage], "best", 1, 1, True)
    assert json.load(open(best))["parts"] == json.load(open(first))["parts"]
