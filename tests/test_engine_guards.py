"""Stop requests and a log that cannot be written (engine/guards.py, engine/cli.py):

* SIGTERM and SIGINT set the stop flag; the loop then saves ``interrupted`` and the entry point
  exits with ``EXIT_INTERRUPTED`` (3), for a real ``train_ssd.py`` run, with no traceback;
* a log write that fails (a file-size limit, as a full disk) stops the run with one line and
  exit 1, instead of ``--- Logging error ---`` tracebacks and exit 0.
"""
import os
import resource
import signal
import subprocess
import time

import pytest

from gankd_gluon.engine.cli import EXIT_FAULT, EXIT_INTERRUPTED, run_main
from gankd_gluon.engine.guards import RunInterrupted, StopFlag
from gankd_gluon.logs.format import LogWriteError, format_namespace, format_start


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
    assert "Stopping on %s after [Epoch 1]" % sig.name in text


@pytest.mark.slow
def test_a_log_that_cannot_be_written_stops_the_run(data):
    from dist_fixtures import train_ssd_argv
    out = data / "fullog"
    out.mkdir()
    log = out / "net_train.log"
    argv = train_ssd_argv(data, out.name, "--epochs", "2")
    # room for the Namespace and start lines, not for the first batch line. The limit applies
    # to every file the run writes: MXNet's shared-memory batches (1.5 MB) and the checkpoints
    # (a few MB) stay below it. A sparse file takes no space.
    room = len(format_namespace(_train_ssd_script().parse_args(argv[2:]))) + 1 + \
        len(format_start(1)) + 1 + 20
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
    assert not (out / "net").exists()         # stopped before the first checkpoint
    with open(log, "rb") as f:          # the lines that fitted, then the cut batch line
        f.seek(limit - room)
        written = f.read().decode()
    assert written.startswith("Namespace(") and "\nStart training from [Epoch 1]\n[Epoch 1]" \
        in written


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
