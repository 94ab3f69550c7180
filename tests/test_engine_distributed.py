"""engine/distributed.py and engine/launcher.py without a training job: the key ranges of a run's
trainers; a worker that raises stops at once (a small kvstore job on loopback, no model); the
launcher on stand-in workers (no MXNet in them): SIGTERM passed on, the grace period, SIGKILL to
the launcher, and no process left, children of the roles included; the launcher itself imports
no MXNet."""
import os
import socket
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from dist_fixtures import PY, alive, free_port, kill_left
from gankd_gluon.engine.distributed import DistEnv, KeyRangeStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CTX = [mx.cpu(0), mx.cpu(1)]


def _dense_and_trainer(units, kv):
    net = gluon.nn.Dense(units, use_bias=False, in_units=2)
    net.initialize(mx.init.One(), ctx=CTX)
    return net, gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0}, kvstore=kv,
                              update_on_kvstore=False)


def _step(net, trainer):
    # device i sees inputs of i + 1: the summed gradient of each weight is 1 + 2 = 3
    with autograd.record():
        losses = [net(mx.nd.ones((1, 2), ctx=c) * (i + 1)).sum() for i, c in enumerate(CTX)]
    autograd.backward(losses)
    trainer.step(1)


def test_two_trainers_on_one_kvstore_use_disjoint_keys():
    kv = mx.kv.create("local")
    a, ta = _dense_and_trainer(3, KeyRangeStore(kv, 0, 1 << 20))
    b, tb = _dense_and_trainer(5, KeyRangeStore(kv, 1 << 20, 1 << 20))
    for net, trainer in ((a, ta), (b, tb)):
        _step(net, trainer)
        for c in CTX:       # 1 - lr * (1 + 2) on every device: the gradients were summed
            np.testing.assert_array_equal(net.weight.data(c).asnumpy(), -2.0)


def test_the_control_two_trainers_on_the_same_keys_collide():
    # what DistEnv.trainer did before: both trainers number their keys from 0
    kv = mx.kv.create("local")
    a, ta = _dense_and_trainer(3, KeyRangeStore(kv, 0, 1 << 20))
    b, tb = _dense_and_trainer(5, KeyRangeStore(kv, 0, 1 << 20))
    _step(a, ta)
    with pytest.raises(mx.base.MXNetError, match="duplicate init of key 0"):
        _step(b, tb)


def test_key_outside_the_range_is_refused():
    store = KeyRangeStore(mx.kv.create("local"), 10, 4)
    assert store._key(3) == 13 and store._key([0, 1]) == [10, 11]
    with pytest.raises(KeyError, match="outside this trainer's range of 4 keys"):
        store._key(4)
    assert not store.is_capable("optimizer")      # the update stays on the workers


def test_a_trainer_name_is_used_once():
    env = DistEnv("device")
    net = gluon.nn.Dense(1, in_units=1)
    net.initialize()
    env.trainer(net.collect_params(), "sgd", {}, "s1_G")
    with pytest.raises(ValueError, match="'s1_G' used twice"):
        env.trainer(net.collect_params(), "sgd", {}, "s1_G")


# rank 1 raises after joining the job; rank 0 waits in a pushpull for it
_WORKER = """
import sys
sys.path.insert(0, %r)
import mxnet as mx
from gankd_gluon.engine.cli import run_main
from gankd_gluon.engine.distributed import DistEnv

def main(_):
    env = DistEnv("dist_sync")
    if env.rank == 1:
        raise RuntimeError("worker 1 failed at start-up")
    out = mx.nd.zeros((1,))
    env.allreduce_array("x", mx.nd.ones((1,)))
    print("rank 0 got", env.allreduce_array("x", mx.nd.ones((1,))).asscalar())

sys.exit(run_main(main, None))
"""


@pytest.mark.slow
def test_a_worker_that_raises_at_start_up_exits_at_once(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER % ROOT)
    tic = time.time()
    out = subprocess.run([PY, os.path.join(ROOT, "scripts", "launch_dist.py"), "-n", "2",
                          "--port", str(free_port()), "--timeout", "120", "--", PY, str(script)],
                         capture_output=True, text=True, timeout=200)
    # before: the failed worker waited in MXNet's exit barrier, and the launcher only stopped
    # the job at --timeout (status 124)
    assert out.returncode == 1, out.stderr[-2000:]
    assert time.time() - tic < 60
    assert "RuntimeError: worker 1 failed at start-up" in out.stderr
    assert "a worker exited with status 1" in out.stderr


# ---------------------------------------------------------------- the launcher, without MXNet
# A worker that writes its pid and its child's (a DataLoader worker, say), then waits; on
# SIGTERM it exits with 3 (rank 0 after saving 'interrupted') or ignores the signal.
_FAKE_WORKER = """
import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.path.join(%r, "pids"), "a") as f:
    f.write("%%d %%d\\n" %% (os.getpid(), child.pid))
if %r == "save":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
else:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(600)
"""


def test_the_launcher_imports_no_mxnet():
    """scripts/launch_dist.py only starts processes: MXNet (about 2 s of CPU to import) is
    imported by the roles, not by the launcher."""
    code = ("import runpy, sys\n"
            "sys.argv = [%r, '--help']\n"
            "try:\n"
            "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('mxnet' in sys.modules, 'gankd_gluon.engine.launcher' in sys.modules)\n"
            % os.path.join(ROOT, "scripts", "launch_dist.py"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False True"
    assert "--timeout" in out.stdout                 # the help was printed


@pytest.mark.slow
def test_workers_that_never_join_the_kvstore_do_not_leave_the_job_waiting(capfd):
    """Workers that exit 0 without using the kvstore (a command without --kvstore dist_sync)
    leave a real scheduler and server waiting for ever; the launcher stops the job once
    ``settle`` seconds have passed, with status 1 and a message, and leaves no process."""
    from gankd_gluon.engine.launcher import launch
    tic = time.time()
    status = launch([PY, "-c", "pass"], 2, port=free_port(), settle=2.0, timeout=120)
    err = capfd.readouterr().err
    assert status == 1, err
    assert "every worker exited 0, but the scheduler and servers were still waiting 2 s " \
        "later" in err
    assert time.time() - tic < 60
    # the control: a worker of another machine still running keeps the job waiting
    status = launch([PY, "-c", "pass"], 2, port=free_port(), settle=2.0, timeout=5,
                    local_workers=1)
    assert status == 124, capfd.readouterr().err


@pytest.mark.parametrize("program", ["/nonexistent/worker", "no_such_program_x", "plain_file"])
def test_a_worker_command_that_cannot_run_is_a_usage_error(tmp_path, program):
    if program == "plain_file":                     # exists, not executable
        program = str(tmp_path / "worker.py")
        open(program, "w").close()
    port = free_port()
    out = subprocess.run([PY, os.path.join(ROOT, "scripts", "launch_dist.py"), "-n", "1",
                          "--port", str(port), "--", program, "x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        "launch_dist.py: error: the worker command %r: not an executable file, nor a program on "
        "PATH" % program)
    with socket.socket() as s:                      # no scheduler was started on the port
        s.bind(("127.0.0.1", port))


_LAUNCH = """
import sys
sys.path.insert(0, %r)
from gankd_gluon.engine.launcher import launch
sys.exit(launch([sys.executable, %r], 2, roles=("worker",), grace=%r))
"""


def _launch_fake(tmp_path, behaviour, grace):
    worker = tmp_path / "worker.py"
    worker.write_text(_FAKE_WORKER % (str(tmp_path), behaviour))
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH % (ROOT, str(worker), grace)],
                            stderr=subprocess.PIPE, text=True)
    pids_file = tmp_path / "pids"
    deadline = time.time() + 60
    while time.time() < deadline and (not pids_file.exists()
                                      or len(pids_file.read_text().split()) < 4):
        time.sleep(0.1)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 4
    return proc, pids


@pytest.mark.slow
@pytest.mark.parametrize("behaviour, status", [("save", 3), ("ignore", 128 + 15)])
def test_launcher_passes_sigterm_on_and_leaves_no_process(tmp_path, behaviour, status):
    import signal as sig
    proc, pids = _launch_fake(tmp_path, behaviour, grace=2.0)
    tic = time.time()
    proc.send_signal(sig.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # 3 when a worker saved; else the signal's status once the grace and the kill are over
    assert proc.returncode == status, err
    assert "launch: SIGTERM; passing it to 2 worker(s)" in err
    assert time.time() - tic < 2.0 + 5.0 + 5.0
    time.sleep(0.5)
    assert not kill_left(pids)      # the workers and their children (each role's process group)


@pytest.mark.slow
def test_sigkill_to_the_launcher_kills_the_roles(tmp_path):
    proc, pids = _launch_fake(tmp_path, "ignore", grace=2.0)
    proc.kill()
    proc.wait(10)
    workers = pids[0::2]
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in workers):
        time.sleep(0.1)
    left = kill_left(pids)
    assert not [p for p in workers if p in left]      # PR_SET_PDEATHSIG


@pytest.mark.slow
def test_a_worker_killed_by_a_signal_stops_the_job_with_exit_1(tmp_path):
    """A worker killed by SIGKILL (the OOM killer, say): one line naming the signal, the
    other roles stopped, exit 1 (a runtime fault), not 256 - 9."""
    import signal as sig
    proc, pids = _launch_fake(tmp_path, "ignore", grace=2.0)
    os.kill(pids[0], sig.SIGKILL)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "launch: a worker was killed by SIGKILL; stopping the job" in err
    time.sleep(0.5)
    assert not kill_left(pids)
