"""Shared pieces of the multi-process tests, test_distributed.py (kvstore and Horovod against
one process) and test_horovod.py (helper, no tests): the generated dataset, the training
commands, the launchers, parameter comparison."""
import importlib.util
import os
import shutil
import socket
import sys
import time

import mxnet as mx
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
DATA_SHAPE = 128

# BatchNorm moving statistics are per replica (gradients are synchronised, not them; the
# one-process save averages its two device copies), so comparisons leave them out
MOVING_STATS = ("moving_mean", "moving_var", "running_mean", "running_var")


def _horovod_found():
    try:
        return importlib.util.find_spec("horovod.mxnet") is not None
    except ImportError:
        return False


# Marks a test whose fixtures train (module-scoped reference runs): without Horovod it skips
# at collection, before them, rather than in its body
NEEDS_HOROVOD = pytest.mark.skipif(
    not _horovod_found(), reason="Horovod with MXNet is not installed (README: Horovod)")


def horovodrun(num_proc):
    """``horovodrun --gloo`` of this interpreter's Horovod, all processes on this machine (the
    calling test skips where Horovod is not installed)."""
    pytest.importorskip("horovod.mxnet")
    return [PY, "-m", "horovod.runner.launch", "--gloo", "-np", str(num_proc),
            "-H", "localhost:%d" % num_proc]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_data(root, num_test=16):
    """16 training and ``num_test`` test images of the generated VOC set in ``root/data``."""
    from gankd_gluon.data.synthetic import make_synthetic_voc
    make_synthetic_voc(str(root / "data"), seed=1, num_train=16, num_test=num_test)
    return root


def _common(root, out):
    return ["--dataset", "synthetic", "--dataset-root", str(root / "data"), "--gpus", "",
            "--data-shape", str(DATA_SHAPE), "--batch-size", "8", "--augment", "flip",
            "--pretrained-base", "none", "--num-workers", "0", "--log-interval", "1",
            "--no-progress", "--save-dir", str(root / out), "--log-dir", str(root / out)]


def train_ssd_argv(root, out, *extra):
    """One epoch of plain SSD training (mobilenet0.25, SGD); run name ``net``."""
    return [PY, os.path.join(ROOT, "scripts", "train_ssd.py"), "--network", "mobilenet0.25",
            "--epochs", "1", "--optimizer", "sgd", "--lr", "0.01", "--save-prefix", "net"] + \
        _common(root, out) + list(extra)


def write_teacher(path, network="mobilenet0.5", data_shape=DATA_SHAPE):
    """An untrained teacher SSD for the generated dataset's classes, as a .params file."""
    from mxnet import autograd
    from gankd_gluon.data.datasets import dataset_classes
    from gankd_gluon.models.ssd import build_ssd, initialize_new_params, teacher_layout
    net = build_ssd(network, teacher_layout(network, data_shape), dataset_classes("synthetic"),
                    pretrained_base=False)
    initialize_new_params(net, mx.cpu())
    with autograd.train_mode():
        net(mx.nd.zeros((1, 3, data_shape, data_shape)))
    net.save_parameters(str(path))
    return path


def train_gankd_argv(root, out, teacher, *extra):
    """GAN-KD, one epoch of each stage (mobilenet0.25 student, the teacher file); run ``run``."""
    return [PY, os.path.join(ROOT, "scripts", "train_ssd_gan_kd.py"), "--student",
            "mobilenet0.25", "--teacher", "mobilenet0.5", "--teacher-params", str(teacher),
            "--gan-epochs", "1", "--epochs", "1", "--critic-channels", "16",
            "--save-prefix", "run"] + _common(root, out) + list(extra)


# Faster R-CNN at the sizes of tests/test_frcnn_train.py: 96 px images, 8 RoIs per image
FRCNN_SIZES = ["--short", "96", "--max-size", "96", "--num-sample", "8", "--roi-size", "7",
               "--rpn-train-pre-nms", "256", "--rpn-train-post-nms", "64",
               "--rpn-test-pre-nms", "128", "--rpn-test-post-nms", "8"]


def make_frcnn_data(root):
    """4 training and 2 test images of 96 x 96 px in ``root/frcnn_data``: two global batches
    of 2 per epoch."""
    from gankd_gluon.data.synthetic import make_synthetic_voc
    make_synthetic_voc(str(root / "frcnn_data"), seed=0, num_train=4, num_test=2,
                       image_size=(96, 96))
    return root


def _frcnn_common(root, out):
    return ["--dataset", "synthetic", "--dataset-root", str(root / "frcnn_data"), "--gpus", "",
            "--batch-size", "2", "--num-workers", "0", "--pretrained-base", "none",
            "--log-interval", "1", "--no-progress", "--save-dir", str(root / out),
            "--log-dir", str(root / out)] + FRCNN_SIZES


def write_frcnn_teacher(path):
    """An untrained ResNet101 Faster R-CNN for the generated classes, as a .params file."""
    from mxnet import autograd
    from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES
    from gankd_gluon.models.faster_rcnn import build_faster_rcnn, initialize_params
    mx.random.seed(0)
    teacher = build_faster_rcnn("resnet101_v1d", SYNTHETIC_CLASSES, short=96, max_size=96,
                                num_sample=8, roi_size=7, rpn_train_post_nms=64,
                                rpn_test_post_nms=8)
    initialize_params(teacher, mx.cpu())
    with autograd.predict_mode():
        teacher(mx.nd.zeros((1, 3, 96, 96)))
    teacher.save_parameters(str(path))
    return path


def train_frcnn_argv(root, out, *extra):
    """One epoch of plain Faster R-CNN training (ResNet50, SGD); run name ``net``."""
    return [PY, os.path.join(ROOT, "scripts", "train_faster_rcnn.py"), "--network",
            "resnet50_v1b", "--epochs", "1", "--lr", "0.01", "--save-prefix", "net"] + \
        _frcnn_common(root, out) + list(extra)


def train_frcnn_gankd_argv(root, out, teacher, *extra):
    """Faster R-CNN GAN-KD, one epoch of each stage (epoch 0 adversarial with the critic's
    warm-up off, epoch 1 plain); run name ``run``; the last epoch checkpoint kept (with best
    and final: the tests read final)."""
    return [PY, os.path.join(ROOT, "scripts", "train_faster_rcnn_gan_kd.py"),
            "--teacher-params", str(teacher), "--gan-epochs", "0", "--epochs", "2",
            "--train-D-eopch", "0", "--critic-channels", "8", "--save-prefix", "run",
            "--keep-last", "1"] + _frcnn_common(root, out) + list(extra)


def drop_folders(*folders):
    """Checkpoint folders a passed test has read and no other test reads (full-size sets,
    0.3-1 GB each), deleted at once rather than when the module ends, as the smoke rows drop
    theirs. ``GANKD_KEEP_TMP=1`` keeps them."""
    if not os.environ.get("GANKD_KEEP_TMP"):
        for folder in folders:
            shutil.rmtree(str(folder), ignore_errors=True)


def drop_checkpoints(root, run, sides=("dist", "single")):
    """A passed comparison's checkpoint folders ``root/<side>/<run>`` (:func:`drop_folders`);
    the logs beside them stay."""
    drop_folders(*[root / side / run for side in sides])


def load_params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


def max_trained_diff(a, b):
    """Largest absolute difference between two parameter files' trained values (same keys)."""
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a if not k.endswith(MOVING_STATS))


# ---------------------------------------------------------------- processes, from /proc (Linux)
def _stat(pid):
    """(state, parent pid) of ``pid`` from /proc/PID/stat, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1])


def alive(pid):
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def descendants(pid):
    """Pids of every process below ``pid`` (children, their children, ...)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                parents.setdefault(stat[1], []).append(int(name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def processes_with(marker):
    """Pids of the live processes whose command line contains ``marker``."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if marker in cmdline and alive(int(name)):
            pids.append(int(name))
    return pids


def session_processes(sid):
    """Pids of the live processes of session ``sid`` (a process started with
    ``start_new_session=True`` leads the session of its own pid)."""
    pids = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            pids.append(int(name))
    return pids


def wait_for_line(log, proc, text, limit=300):
    """Wait until ``text`` is in the file ``log``, ``proc`` ended or ``limit`` seconds passed."""
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None and not (
            log.exists() and text in log.read_text()):
        time.sleep(0.2)


def kill_left(pids):
    """The pids still alive, killed (so that a failing test leaves nothing behind either)."""
    left = [p for p in pids if alive(p)]
    for p in left:
        try:
            os.kill(p, 9)
        except ProcessLookupError:
            pass
    return left
