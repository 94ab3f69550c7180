"""dist_sync on loopback: scheduler + 1 server + 2 workers, launched by scripts/launch_dist.py.

* After one epoch the 2-worker run's parameters equal a one-process run over two CPU devices
  on the same global batches (each worker reads its shard = a device's slice).
* Killing a worker ends the whole job with a non-zero status within a bounded time.
* The step watchdog ends a process whose steps stopped.
"""
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from dist_fixtures import PY, ROOT, free_port, load_params, make_data, max_trained_diff
from dist_fixtures import train_ssd_argv as _train_argv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("dist"))


def test_two_workers_equal_one_process_on_two_devices(data):
    launcher = [PY, os.path.join(ROOT, "scripts", "launch_dist.py"), "-n", "2", "-s", "1",
                "--port", str(free_port()), "--timeout", "600", "--"]
    dist = subprocess.run(launcher + _train_argv(data, "dist", "--kvstore", "dist_sync",
                                                 "--watchdog-timeout", "120"),
                          capture_output=True, text=True, timeout=700)
    assert dist.returncode == 0, dist.stderr[-3000:]
    single = subprocess.run(_train_argv(data, "single", "--cpu-devices", "2"),
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    a = load_params(data / "dist" / "net" / "net-final.net.params")
    b = load_params(data / "single" / "net" / "net-final.net.params")
    worst = max_trained_diff(a, b)           # BatchNorm moving statistics are per replica
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
                "--port", str(free_port()), "--timeout", "600", "--"]
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
