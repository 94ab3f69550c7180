"""Horovod as the second distributed engine (``--horovod``, GluonCV's flag).

Without Horovod: ``--horovod`` stops with one line naming the install command, and
``--horovod`` with ``--kvstore dist_*`` is refused. With Horovod (``horovodrun --gloo`` on
loopback, two processes of one CPU device each):

* the trainer's update is the *sum* of the workers' gradients (losses are normalised by the
  global batch), checked on one Dense layer with gradients known by hand;
* SIGTERM to ``horovodrun`` or its process group ends the job with whole checkpoints.

The Horovod runs that must end with the weights of one process on two CPU devices (SSD and
Faster R-CNN GAN-KD) are in ``test_distributed.py``, beside the kvstore runs: both compare
with the same one-process run, made once.
"""
import argparse
import os
import subprocess

import mxnet as mx
import pytest
from dist_fixtures import PY, ROOT, horovodrun, make_data, train_gankd_argv, write_teacher

from gankd_gluon.engine.distributed import DistributedSetupError
from gankd_gluon.engine.ssd_runs import get_contexts

SCRIPT = os.path.join(ROOT, "scripts", "train_ssd_gan_kd.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_data(tmp_path_factory.mktemp("hvd"))
    write_teacher(root / "teacher.params")
    return root


def _run_script(argv, block_horovod=False):
    """Run train_ssd_gan_kd.py in a fresh interpreter, optionally as if Horovod were absent."""
    code = ("import runpy, sys\n"
            "if %r:\n"
            "    sys.modules['horovod'] = None   # 'import horovod...' now raises ImportError\n"
            "sys.argv = %r\n"
            "runpy.run_path(%r, run_name='__main__')\n" % (block_horovod, [SCRIPT] + argv, SCRIPT))
    return subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=300)


def _cheap_argv(root):
    """Flags of a run that never starts: the checks come before any data or weights are read
    (the teacher file must exist: the argument checks look for it first)."""
    open(str(root / "teacher.params"), "w").close()
    return ["--dataset", "synthetic", "--dataset-root", str(root / "data"), "--gpus", "",
            "--pretrained-base", "none", "--teacher-params", str(root / "teacher.params"),
            "--save-dir", str(root / "unused"), "--log-dir", str(root / "unused")]


# ------------------------------------------------------------------ without Horovod
def test_horovod_missing_is_one_clear_line(tmp_path):
    out = _run_script(_cheap_argv(tmp_path) + ["--horovod"], block_horovod=True)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: --horovod needs Horovod built with MXNet")
    for word in ("HOROVOD_WITH_MXNET=1", "HOROVOD_WITH_GLOO=1", "HOROVOD_WITHOUT_MPI=1",
                 "pip install --no-build-isolation horovod==0.28.1"):
        assert word in lines[0]
    assert not os.path.exists(tmp_path / "unused")      # stopped before any work


def test_horovod_with_dist_kvstore_is_refused(tmp_path):
    out = _run_script(_cheap_argv(tmp_path) + ["--horovod", "--kvstore", "dist_sync"])
    assert out.returncode == 2, out.stderr[-2000:]
    assert "--horovod and --kvstore dist_sync are two distributed engines" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


class _OneDevicePerProcess:
    one_device_per_process = True
    local_rank = 1


def test_horovod_takes_one_device_per_process():
    args = argparse.Namespace(gpus="", cpu_devices=1)
    assert get_contexts(args, _OneDevicePerProcess()) == [mx.cpu(1)]
    with pytest.raises(DistributedSetupError, match="one device per process"):
        get_contexts(argparse.Namespace(gpus="", cpu_devices=2), _OneDevicePerProcess())
    with pytest.raises(DistributedSetupError, match="local process 1 has no GPU"):
        get_contexts(argparse.Namespace(gpus="0", cpu_devices=1), _OneDevicePerProcess())


# ------------------------------------------------------------------ with Horovod
# Rank r's loss is (r + 1) * sum(w * x) on one Dense(1) without bias, x = 1: its gradient is
# r + 1 per weight, the workers' sum 1 + 2 = 3. SGD with lr 1 and step(1) moves w by -3 when
# the trainer sums, -1.5 when it averages (DistributedTrainer's own behaviour).
_SUM_CHECK = """
import sys
import mxnet as mx
from mxnet import autograd, gluon
sys.path.insert(0, %r)
from gankd_gluon.engine.distributed import HorovodEnv, allreduce_sum, sync_trainers
env = HorovodEnv()
net = gluon.nn.Dense(1, use_bias=False, in_units=4)
net.initialize(mx.init.Constant(env.rank + 10.0), ctx=mx.cpu(env.local_rank))
sync_trainers(env, [], {"net": net})                     # rank 0's weights everywhere
w0 = net.weight.data().asnumpy().copy()
trainer = env.trainer(net.collect_params(), "sgd", {"learning_rate": 1.0}, "t")
with autograd.record():
    loss = (env.rank + 1) * net(mx.nd.ones((1, 4), ctx=mx.cpu(env.local_rank))).sum()
loss.backward()
trainer.step(1)
delta = (net.weight.data().asnumpy() - w0).ravel().tolist()
print("RESULT rank=%%d size=%%d w0=%%s delta=%%s sum=%%s" %% (
    env.rank, env.num_workers, w0.ravel()[0], delta, allreduce_sum(env, "x", env.rank + 0.5)))
"""


@pytest.mark.slow
def test_horovod_trainer_sums_the_workers_gradients(tmp_path):
    script = tmp_path / "sum_check.py"
    script.write_text(_SUM_CHECK % ROOT)
    out = subprocess.run(horovodrun(2) + [PY, str(script)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = sorted(line.split("RESULT ", 1)[1] for line in out.stdout.splitlines()
                     if "RESULT " in line)
    assert results == ["rank=%d size=2 w0=10.0 delta=[-3.0, -3.0, -3.0, -3.0] sum=2.0" % r
                       for r in (0, 1)], out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", ["launcher", "group"])
def test_sigterm_to_horovodrun_ends_the_job_with_whole_checkpoints(data, target):
    # SIGTERM to horovodrun or to its whole process group (as scancel sends it). horovodrun
    # passes SIGTERM to the ranks and kills them 5 s later (Horovod 0.28's
    # GRACEFUL_TERMINATION_TIME_S): rank 0 saves `interrupted` if its step and the save fit in
    # that time (measured here: saved in 3 of 4 tries on the loaded 2-core machine). Either way
    # the job ends, horovodrun exits non-zero naming the first rank's status, no process is
    # left, and every checkpoint manifest on disk names a whole set
    import signal
    import time
    from dist_fixtures import descendants, kill_left, wait_for_line
    from gankd_gluon.engine.checkpoint import run_manifests
    from gankd_gluon.models.weights import read_checkpoint
    out = "hvd_sig_" + target
    proc = subprocess.Popen(horovodrun(2) + train_gankd_argv(
        data, out, data / "teacher.params", "--horovod", "--gan-epochs", "30", "--epochs", "10"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    log = data / out / "run_train.log"
    try:
        wait_for_line(log, proc, "[Epoch 2]")
        group = [proc.pid] + descendants(proc.pid)
        assert len(group) >= 3, group                   # horovodrun and two ranks at least
        if target == "launcher":
            os.kill(proc.pid, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
        text, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1 and "Exit code: " in text, text[-3000:]
    manifests = run_manifests(str(data / out / "run" / "run"))
    assert manifests                                    # epoch 1's checkpoint at least
    for manifest in manifests:
        read_checkpoint(manifest, need=None)            # every part, its size and checksum
    time.sleep(1)
    assert kill_left(group) == []
