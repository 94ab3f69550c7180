"""Guards for long runs (engine/guards.py, engine/cli.py), each against a control:

* non-finite weights and optimizer states before saves, input batches on the device, and the
  GANKD_FAULT switch, each against a finite control;
* SIGTERM and SIGINT set the stop flag; the loop then saves ``interrupted`` and the entry point
  exits with ``EXIT_INTERRUPTED`` (3), for a real ``train_ssd.py`` run, with no traceback;
* a log write that fails (a file-size limit, as a full disk) stops the run with one line and
  exit 1, instead of ``--- Logging error ---`` tracebacks and exit 0.
"""
import os
import re
import resource
import signal
import subprocess
import time

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gankd_gluon.engine.cli import run_main
from gankd_gluon.usage import EXIT_FAULT, EXIT_INTERRUPTED
from gankd_gluon.engine.guards import (FaultSwitch, FaultSwitchError, InputWatch,
                                       RunInterrupted, StopFlag, check_weights,
                                       first_non_finite, trainer_state_arrays,
                                       update_signature)
from gankd_gluon.logs.format import LogWriteError, format_namespace, format_start

NAN, INF = float("nan"), float("inf")


def test_first_non_finite_names_the_first_bad_array():
    ok = mx.nd.ones((2, 3))
    assert first_non_finite([("a", ok), ("b", ok * 2)]) is None
    assert first_non_finite([("a", ok), ("b", mx.nd.array([1, NAN])),
                             ("c", mx.nd.array([INF]))]) == "b"
    assert first_non_finite([("a", ok), ("c", mx.nd.array([-INF]))]) == "c"
    assert first_non_finite([("h", mx.nd.array([1, INF], dtype="float16"))]) == "h"
    assert first_non_finite([]) is None


def _net_on(ctx, update_on_kvstore=False):
    net = gluon.nn.Dense(2, in_units=3)
    net.initialize(mx.init.Constant(0.5), ctx=ctx)
    # the training scripts' trainers update on every device (DistEnv.trainer)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1,
                                                          "momentum": 0.9},
                            update_on_kvstore=update_on_kvstore)
    with autograd.record():
        losses = [net(mx.nd.ones((1, 3), ctx=c)).sum() for c in ctx]
    autograd.backward(losses)
    trainer.step(1)
    return net, trainer


def test_check_weights_sees_every_device_copy_and_every_optimizer_state():
    ctx = [mx.cpu(0), mx.cpu(1)]
    net, trainer = _net_on(ctx)
    check_weights({"net": net}, {"opt": trainer}, "before saving best")     # finite: passes
    names = [n for n, _ in trainer_state_arrays({"opt": trainer})]
    assert len(names) == 4 and names[0].startswith("optimizer state opt:dense")  # 2 devices
    net.weight.list_data()[1][0, 0] = NAN             # the second device's copy only
    with pytest.raises(FloatingPointError, match=r"^non-finite values in parameter "
                                                 r"net:weight before saving best; nothing "
                                                 r"saved, the previous checkpoints are intact$"):
        check_weights({"net": net}, {"opt": trainer}, "before saving best")
    net.weight.list_data()[1][0, 0] = 0.5
    trainer._updaters[1].states[0][:] = INF           # momentum of the bias, device 1
    with pytest.raises(FloatingPointError, match=r"^non-finite values in optimizer state "
                                                 r"opt:dense\d+_bias\[0\] after epoch 3"):
        check_weights({"net": net}, {"opt": trainer}, "after epoch 3")


def test_states_a_local_kvstore_keeps_are_checked_too():
    net, trainer = _net_on([mx.cpu(0), mx.cpu(1)], update_on_kvstore=True)
    names = [n for n, _ in trainer_state_arrays({"opt": trainer})]
    assert len(names) == 2
    trainer._kvstore._updater.states[0][:] = NAN
    with pytest.raises(FloatingPointError, match=r"optimizer state opt:dense\d+_"):
        check_weights({"net": net}, {"opt": trainer}, "before saving")


def test_update_signature_moves_with_every_step_and_setting_and_only_then():
    """A checkpoint names a trainer's earlier states file while its signature stays: a step
    (on either device, or the local kvstore's updater), an update of one parameter alone, a
    new learning rate or weight decay must move it; another trainer's step on the same
    parameters must not."""
    for update_on_kvstore in (False, True):
        net, trainer = _net_on([mx.cpu(0), mx.cpu(1)], update_on_kvstore)
        sig = update_signature(trainer)
        assert sig is not None and update_signature(trainer) == sig
        with autograd.record():
            losses = [net(mx.nd.ones((1, 3), ctx=c)).sum() for c in (mx.cpu(0), mx.cpu(1))]
        autograd.backward(losses)
        trainer.step(1)
        assert update_signature(trainer) != sig
        for change in (lambda: trainer.set_learning_rate(0.01),
                       lambda: setattr(trainer._optimizer, "wd", 1e-4)):
            sig = update_signature(trainer)
            change()
            assert update_signature(trainer) != sig
        # one parameter updated alone, below the largest count (num_update does not move),
        # as a step with stale gradients elsewhere (ignore_stale_grad) updates it
        opt = trainer._optimizer
        opt._update_count(0)
        num_update, sig = opt.num_update, update_signature(trainer)
        opt._update_count(1)
        assert opt.num_update == num_update and update_signature(trainer) != sig
    # another trainer stepping the same parameters leaves this one's signature as it was
    net, trainer = _net_on([mx.cpu(0)])
    other = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    sig = update_signature(trainer)
    with autograd.record():
        loss = net(mx.nd.ones((1, 3))).sum()
    loss.backward()
    other.step(1)
    assert update_signature(trainer) == sig and update_signature(other) is not None
    # a trainer of another network with the same history has its own signature
    assert update_signature(_net_on([mx.cpu(0)])[1]) != sig


def test_input_watch_reports_the_first_bad_batch_at_the_check():
    watch = InputWatch()
    watch.check(1)                                      # nothing seen: nothing to say
    good = mx.nd.ones((2, 3, 4, 4))
    watch.update(good, 0)
    watch.update([good, good], 1)
    watch.check(1)                                      # finite: passes
    bad = good.copy()
    bad[1, 2, 3, 3] = INF
    watch.update([good, bad], 2)                       # on the second device
    watch.update(good * NAN, 3)
    with pytest.raises(FloatingPointError, match=r"^non-finite input image at epoch 7, "
                                                 r"batch 2 "):
        watch.check(7)
    watch.reset()
    watch.update(good, 0)
    watch.check(8)


@pytest.mark.parametrize("spec, place, epoch, batch, stage", [
    ("", None, None, None, None),
    ("kill-save:12", None, None, None, None),
    ("input:2:0", "input", 2, 0, None),
    ("gradient:1:5:2", "gradient", 1, 5, 2),
])
def test_fault_switch_parses(spec, place, epoch, batch, stage):
    switch = FaultSwitch(spec)
    assert switch.place == place
    if place:
        assert (switch.epoch, switch.batch, switch.stage) == (epoch, batch, stage)


@pytest.mark.parametrize("spec", ["nan:1:1", "input:1", "input:a:1", "kill-save:x",
                                  "loss:1:1:1:1"])
def test_fault_switch_refuses_what_does_not_parse(spec):
    with pytest.raises(FaultSwitchError, match=r"^GANKD_FAULT=%s: expected " % spec):
        FaultSwitch(spec)


def test_fault_switch_hits_one_batch_and_poisons_one_place():
    switch = FaultSwitch("input:2:1")
    assert switch.hits(1, 2, 1) and switch.hits(2, 2, 1)            # any stage
    assert not switch.hits(1, 2, 0) and not switch.hits(1, 1, 1)
    assert not FaultSwitch("input:2:1:2").hits(1, 2, 1)
    batch = [mx.nd.ones((2, 3)), mx.nd.zeros((2, 1)), mx.nd.ones((2, 4))]
    poisoned = switch.poison(batch)
    assert np.isnan(poisoned[0].asnumpy()).sum() == 1
    assert all(np.isfinite(b.asnumpy()).all() for b in batch)       # a copy
    assert all(np.isfinite(b.asnumpy()).all() for b in poisoned[1:])
    loss = FaultSwitch("loss:2:1").poison([[mx.nd.ones((1, 3))], [mx.nd.ones((1, 4))] * 2])
    assert np.isfinite(loss[0][0].asnumpy()).all()
    assert np.isnan(loss[1][0].asnumpy()).sum() == 1 and np.isfinite(loss[1][1].asnumpy()).all()


def test_fault_switch_gradient_reaches_the_update_once():
    net = gluon.nn.Dense(2, in_units=3)
    net.initialize(mx.init.Constant(0.5))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1},
                            update_on_kvstore=False)          # no momentum to carry the NaN
    disarm = FaultSwitch("gradient:1:0").wrap_step(trainer)
    with autograd.record():
        loss = net(mx.nd.ones((1, 3))).sum()
    loss.backward()
    assert np.isfinite(loss.asnumpy()).all()
    trainer.step(1)
    disarm()
    assert np.isnan(net.bias.data().asnumpy()).all()          # the trainer's first parameter
    assert np.isfinite(net.weight.data().asnumpy()).all()
    net.bias.set_data(mx.nd.ones((2,)))
    with autograd.record():
        loss = net(mx.nd.ones((1, 3))).sum()
    loss.backward()
    trainer.step(1)                                                 # disarmed: finite
    assert np.isfinite(net.bias.data().asnumpy()).all()


# ---------------------------------------------------------------- stop requests, the log
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_flag_catches_sigterm_and_sigint(sig):
    before = signal.getsignal(sig)
    flag = StopFlag()
    try:
        assert not flag
        os.kill(os.getpid(), sig)          # handled at the next bytecode: no exit, no raise
        time.sleep(0.01)
        assert flag and flag.requested == sig.name
    finally:
        flag.restore()
    assert signal.getsignal(sig) is before


def test_run_main_exit_codes_for_a_stop_and_a_failed_log(capsys):
    def interrupted(_):
        raise RunInterrupted("SIGINT", "ckpt/run-interrupted.json")

    def log_failed(_):
        raise LogWriteError("cannot write the log /x/run_train.log: [Errno 28] No space left")
    assert run_main(interrupted, None) == EXIT_INTERRUPTED == 3
    assert capsys.readouterr().err == ("stopped on SIGINT; saved ckpt/run-interrupted.json "
                                       "(continue with --resume ckpt/run-interrupted.json)\n")
    assert run_main(log_failed, None) == EXIT_FAULT == 1
    assert capsys.readouterr().err == ("error: cannot write the log /x/run_train.log: [Errno "
                                       "28] No space left\n")


# ---------------------------------------------------------------- end to end, train_ssd.py
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from dist_fixtures import make_data
    return make_data(tmp_path_factory.mktemp("guards"))


@pytest.mark.slow
def test_sigint_saves_interrupted_and_exits_3(data):
    # Ctrl-C; SIGTERM takes the same path (test_distributed.py sends it through the launcher)
    sig = signal.SIGINT
    from dist_fixtures import train_ssd_argv
    out = data / ("one_%s" % sig.name)
    proc = subprocess.Popen(train_ssd_argv(data, out.name, "--epochs", "50"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = out / "net_train.log"
    try:
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline and not (
                log.exists() and "[Batch" in log.read_text()):
            time.sleep(0.2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, err[-3000:]
    assert "Traceback" not in err
    manifest = out / "net" / "net-interrupted.json"
    assert manifest.exists()
    assert err.strip().splitlines()[-1] == ("stopped on %s; saved %s (continue with --resume %s)"
                                            % (sig.name, manifest, manifest))
    text = log.read_text()
    # where it stopped depends on the machine's speed (an epoch is 2 batches, and a loaded
    # machine may finish it before the signal lands): some batch of the 50 epochs, logged
    # before the saved line
    stop = re.search(r"^Stopping on %s after \[Epoch (\d+)\]\[Batch \d+\]; saving$" % sig.name,
                     text, re.M)
    assert stop and int(stop.group(1)) < 50, text[-2000:]
    assert text.index("Saved %s" % manifest) > stop.start()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.4, 1.5])
def test_sigterm_to_the_process_group_with_loader_workers(data, delay):
    # Slurm's scancel and systemd's stop send SIGTERM to every process of the job, the
    # DataLoader's workers included. Before the workers ignored it, a run killed this way saved
    # `interrupted` and then never exited (a killed worker left the pool's queue lock taken), or
    # its validation waited for batches that never came. `delay` after the second epoch starts:
    # the signal lands in training or in the validation after it (--val-interval 1)
    from dist_fixtures import descendants, kill_left, train_ssd_argv, wait_for_line
    out = "pgroup%d" % int(delay * 10)
    argv = train_ssd_argv(data, out, "--epochs", "50")
    argv[argv.index("--num-workers") + 1] = "2"
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    log = data / out / "net_train.log"
    try:
        wait_for_line(log, proc, "[Epoch 2]")
        time.sleep(delay)
        group = [proc.pid] + descendants(proc.pid)
        assert len(group) >= 3, group                   # the run and its loader workers
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
    manifest = data / out / "net" / "net-interrupted.json"
    assert err.strip().splitlines()[-1] == ("stopped on SIGTERM; saved %s (continue with "
                                            "--resume %s)" % (manifest, manifest))
    time.sleep(1)
    assert kill_left(group) == []                       # no worker left behind


@pytest.mark.slow
def test_a_log_that_cannot_be_written_stops_the_run(data):
    from dist_fixtures import train_ssd_argv
    out = data / "fullog"
    out.mkdir()
    log = out / "net_train.log"
    argv = train_ssd_argv(data, out.name, "--epochs", "2")
    # room for the Namespace, data and start lines, not for the first batch line. The limit
    # applies to every file the run writes: MXNet's shared-memory batches (1.5 MB) and the
    # checkpoints (a few MB) stay below it. A sparse file takes no space.
    from gankd_gluon.data.datasets import get_splits, summary_lines
    notes = summary_lines(*get_splits("synthetic", str(data / "data")))
    assert notes and all(line.startswith("data: ") for line in notes)
    room = len(format_namespace(_train_ssd_script().parse_args(argv[2:]))) + 1 + \
        sum(len(line) + 1 for line in notes) + len(format_start(1)) + 1 + 20
    limit = 64 * 1024 * 1024
    with open(log, "wb") as f:
        f.truncate(limit - room)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    tic = time.time()
    run = subprocess.run(argv, capture_output=True,
                         text=True, timeout=600, preexec_fn=small_files)
    assert run.returncode == EXIT_FAULT, run.stderr[-3000:]
    assert "Logging error" not in run.stderr and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "error: cannot write the log %s: [Errno 27] File too large" % log)
    assert time.time() - tic < 300
    # stopped before the first checkpoint: the run folder holds only the run's lock
    assert os.listdir(out / "net") == [".lock"]
    with open(log, "rb") as f:          # the lines that fitted, then the cut batch line
        f.seek(limit - room)
        written = f.read().decode()
    assert written.startswith("Namespace(") and "\n%s\nStart training from [Epoch 1]\n[Epoch 1]" \
        % "\n".join(notes) in written


def _train_ssd_script():
    import importlib.util
    from dist_fixtures import ROOT
    spec = importlib.util.spec_from_file_location("train_ssd_script",
                                                  os.path.join(ROOT, "scripts", "train_ssd.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ctrl_c_outside_the_loop_is_one_line(capsys):
    def building(_):
        raise KeyboardInterrupt
    assert run_main(building, None) == 130
    err = capsys.readouterr().err
    assert err == "stopped by SIGINT outside the training loop; nothing saved\n"


@pytest.mark.parametrize("where", ["main", "__del__"])
def test_sigterm_outside_the_loop_is_one_line(tmp_path, where):
    # SIGTERM while the networks are built or loaders forked (scancel at start-up): one line
    # and 128 + 15, as Ctrl-C gives 130 (it ended by the signal, silently); also when the
    # handler runs inside a __del__ (gc.collect in MXNet's DataLoader), where an exception
    # raised by the handler is printed and dropped. In a subprocess, since without the
    # handler the signal ends the process that gets it
    import sys
    script = tmp_path / "building.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from gankd_gluon.engine.cli import run_main\n"
        "class Array:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(0.5)\n"
        "def building(_):\n"
        "    if %r == 'main':\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    else:\n"
        "        Array()\n"
        "    time.sleep(2)\n"
        "    print('went on')\n"
        "code = run_main(building, None)\n"
        "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL    # put back\n"
        "sys.exit(code)\n" % where)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 128 + signal.SIGTERM, run.stderr[-2000:]
    assert run.stderr == "stopped by SIGTERM outside the training loop; nothing saved\n"
    assert run.stdout == ""


def test_sigterm_while_the_loaders_fork_their_workers_is_one_line(tmp_path):
    # scancel (SIGTERM to the group) while a run forks its loaders' workers: one line, 143,
    # no worker left (the signal was lost: the run trained on and exited 0)
    import sys
    script = tmp_path / "loaders.py"
    script.write_text(
        "import multiprocessing, os, signal, sys\n"
        "import numpy as np\n"
        "from mxnet import gluon\n"
        "from gankd_gluon.data.loaders import DataLoader\n"
        "from gankd_gluon.engine.cli import run_main\n"
        "real_pool = multiprocessing.Pool\n"
        "def pool(*args, **kwargs):\n"
        "    os.killpg(0, signal.SIGTERM)\n"
        "    return real_pool(*args, **kwargs)\n"
        "multiprocessing.Pool = pool\n"
        "def building(_):\n"
        "    data = gluon.data.ArrayDataset(np.arange(64, dtype='float32').reshape(16, 4))\n"
        "    DataLoader(data, batch_size=4, num_workers=2, thread_pool=False)\n"
        "    print('went on')\n"
        "sys.exit(run_main(building, None))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert err == "stopped by SIGTERM outside the training loop; nothing saved\n"
    assert out == ""
    time.sleep(1)
    from dist_fixtures import session_processes
    assert session_processes(proc.pid) == []        # nothing left in its session
