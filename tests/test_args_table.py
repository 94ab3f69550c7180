"""The argument table: every script refuses a bad argument before it builds or writes anything,
with one ``error:`` line naming the flag (after argparse's usage lines), exit status 2 and no
traceback; and the exit-code table of README.md ("Exit codes") as :func:`run_main` applies it.

Most rows call a script's ``parse_args`` in this process (seconds for the whole table); a few
run the scripts as a user does, to prove the path from the command line to the exit status.
Each family has a control: its valid arguments parse, so a check that refuses everything fails.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

import pytest

from gankd_gluon.data import synthetic
from gankd_gluon import usage
from gankd_gluon.engine import args as run_args
from gankd_gluon.engine.cli import run_main
from gankd_gluon.usage import EXIT_FAULT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
sys.path.insert(0, SCRIPTS)

import ablation_chen  # noqa: E402
import compare_logs  # noqa: E402
import demo  # noqa: E402
import eval_coco  # noqa: E402
import eval_voc  # noqa: E402
import launch_dist  # noqa: E402
import make_synthetic_voc  # noqa: E402
import probe_critics  # noqa: E402
import table3_demo  # noqa: E402
import train_faster_rcnn  # noqa: E402
import train_faster_rcnn_gan_kd  # noqa: E402
import train_ssd  # noqa: E402
import train_ssd_gan_kd  # noqa: E402
from gankd_gluon.experiments import reproduce  # noqa: E402

CPU = ["--gpus", ""]
SSD_OK = CPU + ["--dataset", "synthetic"]
FRCNN_OK = CPU + ["--dataset", "synthetic"]
EVAL_OK = ["--dataset", "synthetic", "--detections", "dets"]
COCO_OK = ["--dataset", "synthetic_coco", "--detections", "dets.json"]

# (script module, arguments, text the one error line must hold)
TABLE = [
    # ---- SSD training: train_ssd.py and train_ssd_gan_kd.py
    (train_ssd_gan_kd, SSD_OK + ["--batch-size", "0"], "--batch-size: 0: must be at least 1"),
    (train_ssd_gan_kd, SSD_OK + ["--batch-size", "-4"], "--batch-size: -4: must be at least 1"),
    (train_ssd_gan_kd, SSD_OK + ["--batch-size", "four"], "--batch-size: 'four' is not an integer"),
    (train_ssd_gan_kd, SSD_OK + ["--epochs", "0", "--gan-epochs", "0"],
     "--epochs 0 --gan-epochs 0: nothing to train (--save-initial saves the student"),
    (train_ssd_gan_kd, SSD_OK + ["--stage", "1", "--gan-epochs", "0"], "--stage 1 --gan-epochs 0"),
    (train_ssd_gan_kd, SSD_OK + ["--stage", "2", "--epochs", "0"], "--stage 2 --epochs 0"),
    (train_ssd_gan_kd, SSD_OK + ["--data-shape", "0"], "--data-shape: 0: must be a positive mul"),
    (train_ssd_gan_kd, SSD_OK + ["--data-shape", "100"], "--data-shape: 100: must be a positive"),
    (train_ssd_gan_kd, SSD_OK + ["--teacher", "vgg16_atrous", "--data-shape", "256"],
     "--teacher vgg16_atrous: the VGG16-atrous SSD needs --data-shape >= 320"),
    (train_ssd_gan_kd, SSD_OK + ["--lr-decay-epoch", "garbage"], "--lr-decay-epoch: 'garbage'"),
    (train_ssd_gan_kd, SSD_OK + ["--gan-lr-decay-epoch", "80,-1"], "epochs are at least 0"),
    (train_ssd_gan_kd, SSD_OK + ["--save-interval", "0"], "--save-interval: 0: must be at least 1"),
    (train_ssd_gan_kd, SSD_OK + ["--val-interval", "0"], "--val-interval: 0: must be at least 1"),
    (train_ssd_gan_kd, SSD_OK + ["--log-interval", "-1"], "--log-interval: -1: must be at least 0"),
    (train_ssd_gan_kd, SSD_OK + ["--keep-last", "-1"], "--keep-last: -1: must be at least 0"),
    (train_ssd_gan_kd, SSD_OK + ["--num-workers", "-1"], "--num-workers/-j: -1"),
    (train_ssd_gan_kd, SSD_OK + ["--cpu-devices", "0"], "--cpu-devices: 0: must be at least 1"),
    (train_ssd_gan_kd, SSD_OK + ["--batch-size", "3", "--cpu-devices", "4"],
     "--batch-size 3 gives 3 image(s) per worker for 4 devices"),
    (train_ssd_gan_kd, SSD_OK + ["--lr", "0"], "--lr: 0: must be a finite number above 0"),
    (train_ssd_gan_kd, SSD_OK + ["--lrG", "nan"], "--lrG/--lr-g: nan: must be a finite number"),
    (train_ssd_gan_kd, SSD_OK + ["--lrD", "inf"], "--lrD/--lr-d: inf: must be a finite number"),
    (train_ssd_gan_kd, SSD_OK + ["--lrD", "-1"], "--lrD/--lr-d: -1: must be a finite number of"),
    (train_ssd_gan_kd, SSD_OK + ["--lr-decay", "-0.1"], "--lr-decay: -0.1: must be a finite"),
    (train_ssd_gan_kd, SSD_OK + ["--momentum", "1"], "--momentum: 1: must be in [0, 1)"),
    (train_ssd_gan_kd, SSD_OK + ["--wd", "-1"], "--wd: -1: must be a finite number of at least 0"),
    (train_ssd_gan_kd, SSD_OK + ["--beta1", "1.5"], "--beta1: 1.5: must be in [0, 1)"),
    (train_ssd_gan_kd, SSD_OK + ["--watchdog-timeout", "0"], "--watchdog-timeout: 0"),
    (train_ssd_gan_kd, SSD_OK + ["--clamp-lower", "0.05"],
     "--clamp-lower 0.05 must be below --clamp-upper 0.03"),
    (train_ssd_gan_kd, SSD_OK + ["--student", "mobilenet9"],
     "--student mobilenet9: choose one of mobilenet1.0, mobilenet0.75"),
    (train_ssd_gan_kd, SSD_OK + ["--teacher", "resnet9000"],
     "--teacher resnet9000: choose one of mobilenet0.25"),
    (train_ssd_gan_kd, SSD_OK + ["--gpus", "a,b"], "--gpus: 'a,b' is not a comma-separated list"),
    (train_ssd_gan_kd, SSD_OK + ["--gpus", "0,0"], "--gpus: '0,0' names a GPU twice"),
    # no --gpus: the default 0,1 on a machine without GPUs
    (train_ssd_gan_kd, ["--dataset", "synthetic"],
     "--gpus 0,1: this machine has 0 GPU(s) visible to MXNet (GPUs need the mxnet-cu112 build "
     "and CUDA 11.2); --gpus '' runs on the CPU"),
    (train_ssd_gan_kd, SSD_OK + ["--resume", "gone/run-best.json"],
     "--resume gone/run-best.json: no such checkpoint manifest"),
    (train_ssd_gan_kd, SSD_OK + ["--teacher-params", "gone.params"],
     "--teacher-params gone.params: no such file"),
    (train_ssd, SSD_OK + ["--pretrained-base", "gone.params"], "--pretrained-base gone.params"),
    (train_ssd, SSD_OK + ["--save-prefix", "a/b"], "--save-prefix a/b: a run name, without '/'"),
    (train_ssd, SSD_OK + ["--log-dir", os.devnull], "--log-dir /dev/null: a file, not a folder"),
    (train_faster_rcnn, FRCNN_OK + ["--save-dir", os.devnull], "--save-dir /dev/null: a file"),
    (train_ssd_gan_kd, SSD_OK + ["--kd-temperature", "0"], "--kd-temperature: 0: must be a fin"),
    (train_ssd_gan_kd, SSD_OK + ["--ko-alpha", "1.5"], "--ko-alpha: 1.5: must be in [0, 1]"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--kd-mu", "-1"], "--kd-mu: -1: must be in [0, 1]"),
    (train_ssd, SSD_OK + ["--network", "resnet9000"],
     "--network resnet9000: choose one of mobilenet0.25, mobilenet0.5"),
    (train_ssd, SSD_OK + ["--epochs", "0"], "--epochs 0: nothing to train"),
    (train_ssd_gan_kd, SSD_OK + ["--stage", "2", "--epochs", "0", "--gan-epochs", "5"],
     "--stage 2 --epochs 0: nothing to train"),
    (train_ssd, SSD_OK + ["--batch-size", "0"], "--batch-size: 0: must be at least 1"),
    (train_ssd, ["--gpus", "0"], "--gpus 0: this machine has 0 GPU(s)"),
    # ---- Faster R-CNN training
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--epochs", "5", "--gan-epochs", "4"],
     "--epochs 5 leaves no plain epoch after --gan-epochs 4"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--epochs", "0"], "--epochs: 0: must be at least 1"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--gan-epochs", "-1"], "--gan-epochs/--GAN-epochs: -1"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--batch-size", "3", "--cpu-devices", "2"],
     "--batch-size 3 does not split evenly over 2 devices"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--student", "resnet18_v1"],
     "--student resnet18_v1: choose one of resnet50_v1b, resnet101_v1d"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--teacher", "vgg16"],
     "--teacher vgg16: choose one of resnet50_v1b, resnet101_v1d"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--lr-decay-GAN-epoch", "5,x"],
     "--lr-decay-GAN-epoch/--lr-decay-gan-epoch: '5,x'"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--short", "64"],
     "--rpn-train-post-nms 2000: a 64 px input has only 240 RPN anchors"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--clip-gradient", "-1"], "--clip-gradient: -1"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--save-interval", "0"], "--save-interval: 0"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--teacher-params", "gone.params"],
     "--teacher-params gone.params: no such file"),
    (train_faster_rcnn, FRCNN_OK + ["--resume", "gone.json"], "--resume gone.json: no such"),
    (train_faster_rcnn, FRCNN_OK + ["--network", "resnet9000"],
     "--network resnet9000: choose one of resnet50_v1b, resnet101_v1d"),
    (train_faster_rcnn, FRCNN_OK + ["--lr-decay-epoch", "garbage"], "--lr-decay-epoch: 'garbage'"),
    (train_faster_rcnn, FRCNN_OK + ["--num-sample", "0"], "--num-sample: 0: must be at least 1"),
    (train_faster_rcnn, ["--dataset", "synthetic"], "--gpus 0,1: this machine has 0 GPU(s)"),
    # ---- own datasets: --classes (one parser everywhere) and --train-years
    (train_ssd, SSD_OK + ["--classes", "helmet,,vest"], "--classes: helmet,,vest: name 2 is empty"),
    (train_ssd_gan_kd, SSD_OK + ["--classes", "helmet,vest,Helmet"],
     "--classes: helmet,vest,Helmet: name 3: 'Helmet' is repeated (first at 1)"),
    (train_faster_rcnn, FRCNN_OK + ["--classes", ""], "argument --classes: no class names (give"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--classes", "a,b,a"], "'a' is repeated"),
    (eval_voc, EVAL_OK + ["--classes", SCRIPTS], "a folder; give names 'a,b,c' or a file"),
    (eval_coco, COCO_OK + ["--classes", "x,,y"], "--classes: x,,y: name 2 is empty"),
    (probe_critics, ["--classes", "a,a"], "'a' is repeated"),
    (train_ssd, SSD_OK + ["--classes", "gone_classes.txt"],
     "argument --classes: gone_classes.txt: no such file"),
    (eval_voc, EVAL_OK + ["--classes", "gone/classes"], "argument --classes: gone/classes: no such"),
    (make_synthetic_voc, ["--class-names", "a,b"], "--class-names a,b: give 5 names"),
    (train_ssd, SSD_OK + ["--train-years", "2007,2007"], "--train-years: '2007,2007' names a year"),
    (train_ssd_gan_kd, SSD_OK + ["--train-years", "2007,x"], "--train-years: '2007,x' is not a"),
    (train_faster_rcnn, FRCNN_OK + ["--train-years", ","], "--train-years: needs at least one"),
    # ---- own datasets: --train-split / --val-split (a file name, one parser everywhere)
    (train_ssd, SSD_OK + ["--train-split", "Main/train"], "--train-split: 'Main/train': a split "
     "name, not a path"),
    (train_ssd_gan_kd, SSD_OK + ["--val-split", "..\\val"],
     "--val-split: '..\\\\val': a split name"),
    (train_faster_rcnn, FRCNN_OK + ["--train-split", ""], "--train-split: '': empty"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--val-split", "val.txt"],
     "--val-split: 'val.txt': give the name without .txt (val)"),
    (eval_voc, EVAL_OK + ["--val-split", "/abs/val"], "--val-split: '/abs/val': a split name"),
    (eval_coco, COCO_OK + ["--val-split", "instances_val.json"], "without .json"),
    (probe_critics, ["--train-split", " "], "--train-split: ' ': empty"),
    (eval_voc, EVAL_OK + ["--train-split", "train"], "unrecognized arguments: --train-split"),
    # ---- evaluation
    (eval_voc, EVAL_OK + ["--batch-size", "0"], "--batch-size: 0: must be at least 1"),
    (eval_voc, EVAL_OK + ["--data-shape", "-512"], "--data-shape: -512: must be at least 1"),
    (eval_voc, EVAL_OK + ["--nms-thresh", "1.5"], "--nms-thresh: 1.5: must be in [0, 1]"),
    (eval_voc, EVAL_OK + ["--nms-topk", "0"], "--nms-topk: 0: must be at least 1, or -1 for all"),
    (eval_voc, EVAL_OK + ["--num-workers", "-2"], "--num-workers: -2: must be at least 0"),
    (eval_voc, EVAL_OK + ["--gpus", "0"], "--gpus 0: this machine has 0 GPU(s)"),
    (eval_voc, EVAL_OK + ["--save-detections", "out"], "--save-detections needs a network"),
    (eval_voc, ["--dataset", "synthetic_coco", "--detections", "d"],
     "--dataset synthetic_coco is scored with COCO AP: use scripts/eval_coco.py"),
    (eval_coco, COCO_OK + ["--score-thresh", "-0.1"], "--score-thresh: -0.1: must be in [0, 1]"),
    (eval_coco, COCO_OK + ["--post-nms", "-5"], "--post-nms: -5: must be at least 1, or -1"),
    (eval_coco, COCO_OK + ["--short", "0"], "--short: 0: must be at least 1"),
    (eval_coco, ["--dataset", "synthetic", "--detections", "d"],
     "--dataset synthetic is scored with the VOC metric: use scripts/eval_voc.py"),
    # ---- experiments and tools
    (probe_critics, ["--gpus", "0", "--dataset", "synthetic"], "--gpus 0: this machine has 0"),
    (probe_critics, ["--gpus", "x"], "--gpus: 'x' is not a comma-separated list"),
    (demo, ["--batch-size", "0"], "--batch-size: 0: must be at least 1"),
    (demo, ["--data-shape", "100"], "--data-shape: 100: must be a positive multiple of 32"),
    (demo, ["--gan-epochs", "30"], "--gan-epochs 30 exceeds --student-epochs 18"),
    (demo, ["--gan-epochs", "18"], "--gan-epochs 18: give 1 to --student-epochs - 1 (17)"),
    (demo, ["--student-images", "700"], "--student-images 700 is outside [1, --num-train 600]"),
    (demo, ["--teacher", "resnet9000"], "--teacher resnet9000: choose one of"),
    (demo, ["--student", "vgg16_atrous"], "--student vgg16_atrous: choose one of"),
    (demo, ["--num-test", "3"], "--draw-images 0,1,2,3: the test split has 3 images (0..2)"),
    (demo, ["--draw-images", "a"], "--draw-images: 'a' is not a comma-separated list"),
    (demo, ["--student-images", "8"], "--batch-size 16: more than the --student-images 8 "
                                      "images"),
    (ablation_chen, ["--methods", "l2,nope"], "--methods l2,nope: choose from none,l2"),
    (ablation_chen, ["--val-interval", "0"], "--val-interval: 0: must be at least 1"),
    (table3_demo, ["--epochs", "2", "--gan-epochs", "1"],
     "--epochs 2 leaves no plain epoch after --gan-epochs 1"),
    (table3_demo, ["--num-train", "0"], "--num-train: 0: must be at least 1"),
    (table3_demo, ["--num-train", "1"], "--num-train 1: fewer images than one batch of 2"),
    (table3_demo, ["--out", os.devnull], "--out /dev/null: a file, not a folder"),
    (table3_demo, ["--clamp", "0"], "--clamp: 0: must be a finite number above 0"),
    (reproduce, ["--table", "1"], "give --list, or --table T --row R"),
    (reproduce, ["--table", "1", "--row", "99"], "--row 99: Table 1 has no row '99'"),
    (reproduce, ["--table", "1", "--row", "1", "--gpus", "0"], "--gpus 0: this machine has 0"),
    (reproduce, ["--table", "1", "--row", "1"], "--gpus 0,1: this machine has 0 GPU(s)"),
    (reproduce, ["--table", "1", "--row", "1", "--gpus", "x"], "--gpus: 'x' is not"),
    (launch_dist, ["-n", "0", "--", "true"], "--num-workers: 0: must be at least 1"),
    (launch_dist, ["-n", "2", "--local-workers", "3", "--", "true"],
     "--local-workers 3: more than the job's 2"),
    (launch_dist, ["-n", "2", "--port", "70000", "--", "true"], "--port: 70000: a TCP port"),
    (launch_dist, ["-n", "2", "--roles", "worker,boss", "--", "true"],
     "--roles: 'worker,boss': comma-separated roles"),
    (launch_dist, ["-n", "2", "--timeout", "-1", "--", "true"], "--timeout: -1: must be a fin"),
    (launch_dist, ["-n", "2"], "give the worker command after --"),
    (compare_logs, ["a.log", "b.log", "--run", "0"], "--run: 0: runs count from 1"),
    (compare_logs, ["a.log", "b.log", "--max-map-drop", "-0.1"], "--max-map-drop: -0.1"),
    # one image a side: the default critics' score normalisation has no spread to measure
    (train_ssd_gan_kd, SSD_OK + ["--batch-size", "1"],
     "--batch-size 1 with --critic-norm lipschitz"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--batch-size", "1"],
     "--batch-size 1 with --critic-norm lipschitz"),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--batch-size", "1", "--method", "gan+fgfi"],
     "--batch-size 1 with --critic-norm lipschitz"),
    (make_synthetic_voc, ["--num-train", "-1"], "--num-train: -1: must be at least 0"),
    (make_synthetic_voc, ["--root", os.devnull], "--root /dev/null: a file, not a folder"),
    (make_synthetic_voc, ["--num-train", "0", "--num-test", "0"], "no images to generate"),
    (make_synthetic_voc, ["--image-size", "0", "64"], "--image-size: 0: must be at least 1"),
    (make_synthetic_voc, ["--image-size", "64", "64", "--image-size-max", "32", "128"],
     "--image-size-max 32 128: smaller than --image-size 64 64"),
]

# each family's valid arguments: they parse (a check refusing everything fails here)
CONTROLS = [
    (train_ssd_gan_kd, SSD_OK + ["--batch-size", "4", "--cpu-devices", "4", "--epochs", "0",
                                 "--gan-epochs", "1", "--keep-last", "0", "--log-interval",
                                 "0"]),
    (train_ssd_gan_kd, SSD_OK + ["--lrD", "0"]),                  # frozen critics, a control
    (train_ssd_gan_kd, SSD_OK + ["--stage", "2", "--gan-epochs", "0", "--teacher",
                                 "vgg16_atrous", "--data-shape", "320", "--student",
                                 "mobilenet0.25"]),
    (train_ssd, SSD_OK + ["--network", "vgg16_atrous", "--epochs", "1", "--data-shape", "512"]),
    (train_ssd, SSD_OK + ["--resume", "auto"]),
    # nothing to train, said on purpose: the network as it starts is saved and exported
    (train_ssd, SSD_OK + ["--epochs", "0", "--save-initial"]),
    (train_ssd_gan_kd, SSD_OK + ["--epochs", "0", "--gan-epochs", "0", "--save-initial"]),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--epochs", "6", "--gan-epochs", "4",
                                           "--batch-size", "4", "--cpu-devices", "2"]),
    (train_faster_rcnn, FRCNN_OK + ["--network", "resnet101_v1d"]),
    # a batch of 1 trains where no score is normalised by its spread
    (train_ssd_gan_kd, SSD_OK + ["--batch-size", "1", "--critic-norm", "none"]),
    (train_ssd_gan_kd, SSD_OK + ["--batch-size", "1", "--method", "chen"]),
    (train_ssd_gan_kd, SSD_OK + ["--batch-size", "1", "--stage", "2"]),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--batch-size", "1", "--method", "fgfi"]),
    (train_faster_rcnn_gan_kd, FRCNN_OK + ["--batch-size", "1", "--critic-norm", "none"]),
    (train_faster_rcnn, FRCNN_OK + ["--batch-size", "1"]),
    (eval_voc, EVAL_OK + ["--nms-topk", "-1", "--nms-thresh", "1"]),
    (eval_coco, COCO_OK + ["--score-thresh", "0"]),
    (demo, ["--gan-epochs", "17", "--num-test", "4"]),
    (ablation_chen, ["--methods", "l2,gan"]),
    (table3_demo, ["--epochs", "3", "--gan-epochs", "1"]),
    (reproduce, ["--table", "1", "--row", "1", "--dry-run"]),
    (reproduce, ["--list"]),
    (launch_dist, ["-n", "2", "--local-workers", "2", "--", "true"]),
    (compare_logs, ["a.log", "b.log", "--run", "-2"]),
    (make_synthetic_voc, ["--num-train", "0", "--num-test", "1"]),
]


def _prog(module):
    return "reproduce.py" if module is reproduce else os.path.basename(module.__file__)


def _error_line(stderr):
    """The lines after argparse's usage block (``usage:`` and its indented continuation)."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("usage:")
            and not ln.startswith(" ")]


@pytest.fixture
def no_gpu(monkeypatch, tmp_path):
    """A machine without GPUs (whatever runs the tests), in an empty working directory."""
    monkeypatch.setattr(usage, "_num_gpus", lambda: 0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["x"])
    return tmp_path


@pytest.mark.parametrize("module, argv, message", TABLE,
                         ids=["%s %s" % (_prog(m), " ".join(a)) for m, a, _ in TABLE])
def test_bad_argument_is_one_line_exit_2_nothing_written(module, argv, message, no_gpu, capsys,
                                                         monkeypatch):
    monkeypatch.setattr(sys, "argv", [module.__file__])     # argparse's prog
    with pytest.raises(SystemExit) as err:
        module.parse_args(argv)
    out, stderr = capsys.readouterr()
    assert err.value.code == EXIT_USAGE
    assert "Traceback" not in stderr and out == ""
    lines = _error_line(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("%s: error: " % _prog(module)), lines
    assert message in lines[0], lines[0]
    assert os.listdir(str(no_gpu)) == []


@pytest.mark.parametrize("module, argv", CONTROLS,
                         ids=["%s %s" % (_prog(m), " ".join(a)) for m, a in CONTROLS])
def test_valid_arguments_parse(module, argv, no_gpu):
    assert isinstance(module.parse_args(argv), argparse.Namespace)
    assert os.listdir(str(no_gpu)) == []


def test_gpus_that_exist_are_accepted(monkeypatch):
    """The device check counts the machine's GPUs, it does not refuse every --gpus."""
    monkeypatch.setattr(usage, "_num_gpus", lambda: 2)
    args = train_ssd_gan_kd.parse_args(["--gpus", "0,1", "--batch-size", "2"])
    assert args.gpus == "0,1"
    assert usage.check_devices(args) == 2
    with pytest.raises(UsageError, match=r"--gpus 0,2: this machine has 2 GPU\(s\)"):
        usage.check_devices(argparse.Namespace(gpus="0,2"))
    # one device per process (Horovod): the batch needs one image per process, not per GPU
    assert usage.check_devices(args, one_per_process=True) == 1


def test_teacher_params_may_name_an_export_prefix(no_gpu, capsys):
    """An SSD export is a teacher too: ``--teacher-params PREFIX`` passes the file check when
    ``PREFIX-0000.params`` exists, and is refused, naming both, when it does not."""
    argv = SSD_OK + ["--teacher-params", "teacher-final-net"]
    with pytest.raises(SystemExit) as err:
        train_ssd_gan_kd.parse_args(argv)
    assert err.value.code == EXIT_USAGE
    assert _error_line(capsys.readouterr().err)[-1].endswith(
        "--teacher-params teacher-final-net: no such file (nor teacher-final-net-0000.params, "
        "an export's weights)")
    (no_gpu / "teacher-final-net-0000.params").write_bytes(b"")
    assert train_ssd_gan_kd.parse_args(argv).teacher_params == "teacher-final-net"
    # a Faster R-CNN teacher is a params file only
    with pytest.raises(SystemExit):
        train_faster_rcnn_gan_kd.parse_args(FRCNN_OK + ["--teacher-params", "teacher-final-net"])


@pytest.mark.parametrize("workers, devices, batch, message", [
    ("2", 1, 3, "--batch-size 3 does not split evenly over the job's 2 workers"),
    ("4", 1, 4, None),
    ("4", 3, 8, r"--batch-size 8 gives 2 image\(s\) per worker for 3 devices"),
    ("4", 3, 12, None),
])
def test_batch_against_distributed_workers(monkeypatch, workers, devices, batch, message):
    """The launcher's worker count (``DMLC_NUM_WORKER``): every worker's share of the global
    batch gives each of its devices at least one image."""
    monkeypatch.setenv("DMLC_NUM_WORKER", workers)
    args = argparse.Namespace(gpus="", cpu_devices=devices, batch_size=batch,
                              kvstore="dist_sync", horovod=False)
    if message is None:
        assert run_args.check_run_args(args) == devices
    else:
        with pytest.raises(UsageError, match=message):
            run_args.check_run_args(args)
    args.kvstore = "device"                          # one process: the workers do not count
    assert run_args.check_run_args(args) == devices


# ------------------------------------------------------------------ the exit-code table
def _ok(_args):
    return 0.5


def _fault(_args):
    raise FloatingPointError("Loss_G is nan at epoch 3, batch 7")


def _usage(_args):
    raise UsageError("dets/comp4_det_test_cat.txt:2: expected 'image_id score xmin ymin "
                     "xmax ymax'\nsecond line")


def test_exit_code_table(capsys):
    """README "Exit codes": 0 done, 1 runtime fault, 2 bad arguments or input (one line)."""
    assert (EXIT_OK, EXIT_FAULT, EXIT_USAGE, EXIT_INTERRUPTED) == (0, 1, 2, 3)
    assert run_main(_ok, None) == EXIT_OK
    assert capsys.readouterr().err == ""
    assert run_main(_fault, None) == EXIT_FAULT
    assert capsys.readouterr().err == "error: Loss_G is nan at epoch 3, batch 7\n"
    assert run_main(_usage, None) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: dets/comp4_det_test_cat.txt:2: ")


def test_readme_has_the_exit_code_table():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Exit codes"):]
    section = section[:section.find("\n## ", 1)]
    for code, words in ((EXIT_OK, "done"), (EXIT_FAULT, "runtime fault"),
                        (EXIT_USAGE, "bad arguments or input"),
                        (EXIT_INTERRUPTED, "interrupted")):
        assert any(line.startswith("| %d |" % code) and words in line
                   for line in section.splitlines()), (code, words)


# ------------------------------------------------------------ the scripts as a user runs them
def _script(tmp_path, name, *argv):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, os.path.join(SCRIPTS, name)] + list(argv),
                          capture_output=True, text=True, cwd=str(tmp_path), env=env,
                          timeout=300)


def _one_error_line(res):
    assert "Traceback" not in res.stderr, res.stderr
    lines = _error_line(res.stderr)
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.mark.parametrize("name, argv, message", [
    ("train_ssd_gan_kd.py", ["--gpus", "", "--batch-size", "0"], "--batch-size: 0: must be at"),
    ("train_ssd.py", ["--dataset", "synthetic"], "--gpus '' runs on the CPU"),
    ("train_faster_rcnn_gan_kd.py", ["--gpus", "", "--epochs", "5", "--gan-epochs", "4"],
     "leaves no plain epoch"),
    ("launch_dist.py", ["-n", "0", "--", "true"], "--num-workers: 0: must be at least 1"),
])
def test_scripts_refuse_before_writing(tmp_path, name, argv, message):
    res = _script(tmp_path, name, *argv)
    assert res.returncode == EXIT_USAGE and res.stdout == ""
    assert message in _one_error_line(res)
    assert os.listdir(str(tmp_path)) == []          # no log folder, no checkpoint folder


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("args_table_data"))
    synthetic.make_synthetic_voc(root, seed=1, num_train=0, num_test=2, image_size=(32, 32))
    return root


def test_binary_devkit_file_names_file_and_line(tiny_voc, tmp_path):
    dets = tmp_path / "dets"
    dets.mkdir()
    (dets / "comp4_det_test_circle.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\n")
    res = _script(tmp_path, "eval_voc.py", "--dataset", "synthetic", "--dataset-root", tiny_voc,
                  "--detections", str(dets))
    assert res.returncode == EXIT_USAGE and res.stdout == ""
    line = _one_error_line(res)
    assert line.startswith("error: ") and "comp4_det_test_circle.txt:1: not text" in line, line


def test_malformed_coco_json_names_file_and_line(tiny_voc, tmp_path):
    annotations = glob.glob(os.path.join(tiny_voc, "**", "*test*.json"), recursive=True)
    with open(annotations[0]) as f:
        gt = json.load(f)
    path = tmp_path / "dets.json"
    entry = {"image_id": gt["images"][0]["id"], "category_id": gt["categories"][0]["id"],
             "bbox": [1, 2, 3], "score": 0.5}     # valid json, a bbox of three numbers
    path.write_text(json.dumps([entry]))
    res = _script(tmp_path, "eval_coco.py", "--dataset", "synthetic_coco", "--dataset-root",
                  tiny_voc, "--detections", str(path))
    assert res.returncode == EXIT_USAGE and res.stdout == ""
    line = _one_error_line(res)
    assert "dets.json: entry 0: bbox [1, 2, 3] is not [x, y, w, h]" in line, line
    path.write_bytes(b"[\n\x00\xff")
    res = _script(tmp_path, "eval_coco.py", "--dataset", "synthetic_coco", "--dataset-root",
                  tiny_voc, "--detections", str(path))
    assert res.returncode == EXIT_USAGE
    assert "dets.json:2: not a COCO results json" in _one_error_line(res)


@pytest.mark.parametrize("module", [train_ssd, train_ssd_gan_kd, train_faster_rcnn,
                                    train_faster_rcnn_gan_kd, eval_voc, eval_coco, probe_critics])
def test_bad_class_file_names_file_and_line(module, tmp_path, no_gpu, capsys):
    """A --classes FILE that is not UTF-8 text: one line naming the file and line, exit 2."""
    path = tmp_path / "classes.txt"
    path.write_bytes(b"helmet\nv\xe9st\n")
    base = {eval_voc: EVAL_OK, eval_coco: COCO_OK, probe_critics: []}.get(module, SSD_OK)
    with pytest.raises(SystemExit) as err:
        module.parse_args(base + ["--classes", str(path)])
    assert err.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert ": error: argument --classes: %s line 2: byte 0xe9 at column 2 is not UTF-8" % path \
        in line


@pytest.fixture(scope="module")
def train_val_voc(tmp_path_factory):
    """A VOC2007-only dataset split as ImageSets/Main/train.txt and val.txt."""
    root = str(tmp_path_factory.mktemp("train_val_data"))
    synthetic.make_synthetic_voc(root, seed=1, num_train=2, num_test=2, image_size=(32, 32))
    main = os.path.join(root, "VOCdevkit", "VOC2007", "ImageSets", "Main")
    os.rename(os.path.join(main, "trainval.txt"), os.path.join(main, "train.txt"))
    os.rename(os.path.join(main, "test.txt"), os.path.join(main, "val.txt"))
    return root


@pytest.mark.parametrize("module", [train_ssd, train_ssd_gan_kd, train_faster_rcnn,
                                    train_faster_rcnn_gan_kd, eval_voc, probe_critics])
@pytest.mark.parametrize("splits, flag, missing", [
    ([], None, None), (["--train-split", "train", "--val-split", "nope"], "--val-split", "nope")])
def test_missing_split_file_names_the_flag(module, splits, flag, missing, train_val_voc, no_gpu,
                                           capsys):
    """A dataset split as train.txt/val.txt read with a name it lacks: one line naming the split
    files there and the flag that picks one, exit 2, nothing written."""
    if module is eval_voc:
        if splits:
            return                              # no --train-split to evaluate
        argv = ["--dataset", "synthetic", "--detections", "dets"]
    else:
        argv = (CPU if module is not probe_critics else []) + [
            "--dataset", "synthetic", "--save-dir", "out", "--log-dir", "out"][
            :2 if module is probe_critics else 6] + splits
    argv += ["--dataset-root", train_val_voc]
    flag = flag or ("--val-split" if module is eval_voc else "--train-split")
    missing = missing or ("test" if module is eval_voc else "trainval")
    args = module.parse_args(argv)
    assert run_main(module.main, args) == EXIT_USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    main = os.path.join(train_val_voc, "VOCdevkit", "VOC2007", "ImageSets", "Main")
    assert lines[-1] == ("error: split file not found: %s.txt. %s holds train.txt, val.txt: pass "
                         "%s NAME with one of them (train, val)"
                         % (os.path.join(main, missing), main, flag)), lines
    assert os.listdir(str(no_gpu)) == []


def test_teacher_of_other_classes_is_refused_before_the_data_is_read(no_gpu, tmp_path_factory,
                                                                      capsys):
    """A --teacher-params whose -meta.json names other classes than the VOC-layout data will be
    read with (--classes, else the kind's default names): one line naming both lists, at
    argument time (no warning per object of the data first); the teacher's own classes parse."""
    from gankd_gluon.models.export_meta import build_meta, write_meta
    folder = tmp_path_factory.mktemp("teachers")
    ssd, frcnn = str(folder / "ssd"), str(folder / "frcnn")
    write_meta(ssd, build_meta("ssd", ("cat", "dog"), {"data_shape": 512}, commit=""))
    write_meta(frcnn, build_meta("faster_rcnn", ("cat", "dog"), {"short": 600, "max_size": 1000},
                                 commit=""))
    for prefix in (ssd, frcnn):
        open(prefix + "-0000.params", "wb").close()
    cases = [(train_ssd_gan_kd, SSD_OK + ["--teacher-params", ssd]),
             (train_faster_rcnn_gan_kd, FRCNN_OK + ["--teacher-params", frcnn + "-0000.params"])]
    for module, argv in cases:
        for classes, theirs in ((["--classes", "dog,cat"], "2 (dog, cat)"),
                                ([], "5 (%s)" % ", ".join(synthetic.SYNTHETIC_CLASSES))):
            with pytest.raises(SystemExit) as err:
                module.parse_args(argv + classes)
            assert err.value.code == EXIT_USAGE
            lines = _error_line(capsys.readouterr()[1])
            assert len(lines) == 1 and "the teacher predicts 2 classes (cat, dog), the data " \
                "has %s: distil on the teacher's classes (--classes cat,dog)" % theirs \
                in lines[0], lines
        assert module.parse_args(argv + ["--classes", "cat,dog"]).classes == ("cat", "dog")
    assert os.listdir(str(no_gpu)) == []


def test_table3_demo_folders_are_the_callers(no_gpu):
    """The Table 3 demo starts the training scripts from the repository's root: relative
    ``--out`` and ``--work`` are taken from where it is called, not from there."""
    args = table3_demo.parse_args(["--out", "out", "--work", "work"])
    assert args.out == os.path.join(str(no_gpu), "out")
    assert args.work == os.path.join(str(no_gpu), "work")
