"""dist_sync on loopback: scheduler + 1 server + 2 workers, launched by scripts/launch_dist.py.

* After one epoch the 2-worker run's parameters equal a one-process run over two CPU devices
  on the same global batches (each worker reads its shard = a device's slice).
* Killing a worker ends the whole job with a non-zero status within a bounded time.
* The step watchdog ends a process whose steps stopped.
"""
import os
import signal
import socket
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from gankd_gluon.data.synthetic import make_synthetic_voc
    root = tmp_path_factory.mktemp("dist")
    make_synthetic_voc(str(root / "data"), seed=1, num_train=16, num_test=4)
    return root


def _train_argv(root, out, *extra):
    return [PY, os.path.join(ROOT, "scripts", "train_ssd.py"), "--network", "mobilenet0.25",
            "--dataset", "synthetic", "--dataset-root", str(root / "data"), "--gpus", "",
            "--data-shape", "128", "--batch-size", "8", "--epochs", "1", "--optimizer", "sgd",
            "--lr", "0.01", "--augment", "flip", "--pretrained-base", "none", "--num-workers",
            "0", "--log-interval", "1", "--no-progress", "--save-prefix", "net",
            "--save-dir", str(root / out), "--log-dir", str(root / out)] + list(extra)


def _params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


def test_two_workers_equal_one_process_on_two_devices(data):
    launcher = [PY, os.path.join(ROOT, "scripts", "launch_dist.py"), "-n", "2", "-s", "1",
                "--port", str(_free_port()), "--timeout", "600", "--"]
    dist = subprocess.run(launcher + _train_argv(data, "dist", "--kvstore", "dist_sync",
                                                 "--watchdog-timeout", "120"),
                          capture_output=True, text=True, timeout=700)
    assert dist.returncode == 0, dist.stderr[-3000:]
    single = subprocess.run(_train_argv(data, "single", "--cpu-devices", "2"),
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    a = _params(data / "dist" / "net" / "net-final.net.params")
    b = _params(data / "single" / "net" / "net-final.net.params")
    assert a.keys() == b.keys()
    # BatchNorm moving statistics are per replica (the kvstore syncs gradients, not them; the
    # one-process save averages its two device copies), so they are left out
    trained = [k for k in a if not k.endswith(("moving_mean", "moving_var", "running_mean",
                                               "running_var"))]
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in trained)
    changed = max(float(np.abs(a[k]).max()) for k in a if "weight" in k)
    assert worst < 1e-4, worst                   # float32 summation order only
    assert changed > 0
    # only rank 0 writes: one log, one set of checkpoints
    logs = [f for f in os.listdir(data / "dist") if f.endswith(".log")]
    assert logs == ["net_train.log"]
    assert "[rank 1]" in dist.stderr              # rank 1 prints, it does not write
    # the logged losses are the global batch's, as in the one-process log
    from gankd_gluon.logs.parse import parse_log
    ours = parse_log(str(data / "dist" / "net_train.log")).run().epochs[-1].metrics
    ref = parse_log(str(data / "single" / "net_train.log")).run().epochs[-1].metrics
    for name in ("CrossEntropy", "SmoothL1"):
        assert ours[name] == pytest.approx(ref[name], abs=2e-3)


def test_killed_worker_stops_the_whole_job(data):
    marker = "killme%d" % os.getpid()
    launcher = [PY, os.path.join(ROOT, "scripts", "launch_dist.py"), "-n", "2", "-s", "1",
                "--port", str(_free_port()), "--timeout", "600", "--"]
    cmd = _train_argv(data, marker, "--kvstore", "dist_sync", "--epochs", "200",
                      "--watchdog-timeout", "60")
    proc = subprocess.Popen(launcher + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    log = data / marker / "net_train.log"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and "[Batch" in log.read_text()):
        time.sleep(1)
    assert log.exists() and "[Batch" in log.read_text(), "training never started"
    pids = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    workers = [int(p) for p in pids if int(p) != proc.pid]
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)
    tic = time.time()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert time.time() - tic < 60
    assert "exited with status" in err
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert not left.strip(), "processes left behind: %s" % left


def test_watchdog_ends_a_stalled_process():
    code = ("import time\nfrom gankd_gluon.engine.distributed import StepWatchdog\n"
            "w = StepWatchdog(1.0, 2.0)\nw.beat()\ntime.sleep(30)\n")
    tic = time.time()
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 3
    assert "no training step completed" in out.stderr
    assert time.time() - tic < 15
