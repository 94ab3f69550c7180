"""scripts/eval_voc.py in Faster R-CNN mode (short-side resize), on what the Faster R-CNN
training scripts write.

- a tiny Faster R-CNN trained one step by ``train_faster_rcnn.py`` (checkpoint manifest, weights,
  export) is evaluated by the script, in a subprocess, from ``--checkpoint`` and from the
  exported ``--symbol``: per-class APs, the ``--out`` JSON and the ``--save-detections`` files
  equal :func:`evaluate_frcnn` run directly on the same weights and images, and the run's own
  validation mAP;
- a distillation checkpoint (part ``student``) loads the same way;
- ``--data-shape`` with a Faster R-CNN and ``--short``/``--max-size`` with an SSD stop with one
  ``error:`` line naming the flag.
"""
import json
import os
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from gankd_gluon.data.datasets import get_dataset
from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES
from gankd_gluon.engine.cli import run_main
from gankd_gluon.usage import UsageError
from gankd_gluon.eval.devkit import read_devkit_detections
from gankd_gluon.eval.frcnn import evaluate_frcnn

from frcnn_fixtures import COMMON, fake_checkpoint, fake_symbol, make_data, tiny_frcnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import eval_voc  # noqa: E402
import train_faster_rcnn  # noqa: E402
import train_faster_rcnn_gan_kd  # noqa: E402

SCRIPT = os.path.join(ROOT, "scripts", "eval_voc.py")
# images of different sizes and aspect ratios, resized by their short side (96) within 128
SHORT, MAX_SIZE = 96, 128


def _script(*argv):
    """Run scripts/eval_voc.py in a subprocess; (returncode, stdout, stderr)."""
    proc = subprocess.run([sys.executable, SCRIPT, "--no-progress"] + [str(a) for a in argv],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr


def _ap_lines(stdout):
    pairs = [line.split("=", 1) for line in stdout.strip().splitlines()]
    return {k: float(v) for k, v in pairs}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One SGD step of train_faster_rcnn.py (checkpoints and export as a real run writes them)
    and :func:`evaluate_frcnn` on its best weights, loaded independently of eval_voc.py."""
    root = tmp_path_factory.mktemp("eval_frcnn")
    data = make_data(root / "data", num_train=2, num_test=8, seed=3, image_size_max=(150, 128))
    args = train_faster_rcnn.parse_args(COMMON + [
        "--dataset-root", data, "--max-size", str(MAX_SIZE), "--rpn-test-post-nms", "32",
        "--epochs", "1", "--keep-last", "0", "--save-dir", str(root / "ck"), "--log-dir",
        str(root / "logs"), "--save-prefix", "run"])
    assert args.short == SHORT
    assert run_main(train_faster_rcnn.main, args) == 0
    prefix = str(root / "ck" / "run" / "run")
    with open(prefix + "-best.json") as f:
        manifest = json.load(f)

    dataset = get_dataset("synthetic", data, "test")
    # the run's network (its target generator's constants are in the saved file too)
    net = tiny_frcnn("resnet50_v1b", max_size=MAX_SIZE, rpn_test_post_nms=32,
                     target_generator=True)
    net.load_parameters(prefix + "-best.net.params")
    expected = {}
    for metric in ("voc07", "area"):
        collect = {}
        names, values = evaluate_frcnn(net, dataset, [mx.cpu()], SYNTHETIC_CLASSES, SHORT,
                                       MAX_SIZE, metric=metric, progress=False, collect=collect)
        expected[metric] = (dict(zip(names, values)), collect["detections"])
    yield {"root": root, "data": data, "prefix": prefix, "manifest": manifest,
           "expected": expected}
    shutil.rmtree(str(root), ignore_errors=True)        # about 0.8 GB of checkpoints


def _rows(detections):
    """(image, class, score, box) rows in a fixed order (devkit files are grouped by class)."""
    rows = np.column_stack([detections.image_index, detections.labels, detections.scores,
                            detections.boxes])
    return rows[np.lexsort(rows.T[::-1])]


def _assert_same_aps(got, expected):
    assert list(got) == list(expected)
    for name, value in expected.items():
        if np.isnan(value):
            assert got[name] is None or np.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value, abs=1e-6), name


@pytest.mark.slow
def test_checkpoint_through_the_script(trained, tmp_path):
    aps, detections = trained["expected"]["voc07"]
    assert len(detections) > 0 and aps["mAP"] > 0          # not a comparison of empty sets
    # the run validated these weights with the same code: same number
    assert trained["manifest"]["best_map"] == pytest.approx(aps["mAP"], abs=1e-6)

    out, det_dir = str(tmp_path / "ap.json"), str(tmp_path / "dets")
    code, stdout, stderr = _script("--dataset", "synthetic", "--dataset-root", trained["data"],
                                   "--checkpoint", trained["prefix"] + "-best.json",
                                   "--out", out, "--save-detections", det_dir)
    assert code == 0, stderr
    assert "short side 96, long side at most 128" in stderr    # the run's sizes by default
    _assert_same_aps(_ap_lines(stdout), aps)
    with open(out) as f:
        payload = json.load(f)
    _assert_same_aps(payload["ap"], aps)
    assert (payload["short"], payload["max_size"], payload["data_shape"]) == (SHORT, MAX_SIZE,
                                                                             None)
    # the devkit files hold exactly the detections evaluate_frcnn made
    saved = read_devkit_detections(det_dir, SYNTHETIC_CLASSES, detections.image_ids)
    np.testing.assert_array_equal(_rows(saved), _rows(detections))
    code, stdout, stderr = _script("--dataset", "synthetic", "--dataset-root", trained["data"],
                                   "--detections", det_dir)
    assert code == 0, stderr
    _assert_same_aps(_ap_lines(stdout), aps)


@pytest.mark.slow
def test_export_through_the_script_with_explicit_sizes_and_area_metric(trained):
    aps, _ = trained["expected"]["area"]
    code, stdout, stderr = _script("--dataset", "synthetic", "--dataset-root", trained["data"],
                                   "--symbol", trained["prefix"] + "-best-net", "--short", SHORT,
                                   "--max-size", MAX_SIZE, "--metric", "area")
    assert code == 0, stderr
    _assert_same_aps(_ap_lines(stdout), aps)


@pytest.mark.slow
def test_distillation_checkpoint_loads_its_student(trained, tmp_path):
    """train_faster_rcnn_gan_kd.py's manifests name the backbone --student and the part
    'student'; the plain run's weights under that layout give the same APs."""
    args = vars(train_faster_rcnn_gan_kd.parse_args(COMMON + [
        "--dataset-root", trained["data"], "--max-size", str(MAX_SIZE),
        "--rpn-test-post-nms", "32"]))
    folder = os.path.dirname(trained["prefix"])
    manifest = dict(trained["manifest"], args=args,
                    parts={"student": "run-best.net.params", "dnet": "missing.params"})
    path = os.path.join(folder, "gankd-best.json")
    with open(path, "w") as f:
        json.dump(manifest, f, default=str)
    names, values = eval_voc.main(eval_voc.parse_args([
        "--dataset", "synthetic", "--dataset-root", trained["data"], "--checkpoint", path,
        "--no-progress"]))
    _assert_same_aps(dict(zip(names, values)), trained["expected"]["voc07"][0])


@pytest.mark.parametrize("argv, line", [
    (["--network", "faster_rcnn_resnet50_v1b_voc", "--data-shape", "512"],
     "error: --data-shape is for SSD's square resize; --network faster_rcnn_resnet50_v1b_voc is "
     "a Faster R-CNN, resized by its short side: use --short/--max-size (default 600/1000, "
     "GluonCV's)"),
    (["--network", "ssd_512_mobilenet1.0_voc", "--short", "600"],
     "error: --short is for Faster R-CNN's short-side resize; --network ssd_512_mobilenet1.0_voc "
     "is an SSD, resized to a square: use --data-shape (default 512)"),
])
def test_wrong_resize_flag_is_one_error_line(tmp_path, argv, line):
    # no dataset, no weights: the flags are refused before anything is read
    code, stdout, stderr = _script("--dataset", "synthetic", "--dataset-root",
                                   str(tmp_path / "none"), *argv)
    assert code == 2 and stdout == ""              # README, "Exit codes": bad arguments
    assert stderr.strip() == line, stderr


@pytest.mark.parametrize("source, flags, message", [
    ("checkpoint", ["--data-shape", "96"],
     r"--data-shape is for SSD.*--checkpoint .*run-best.json is a Faster R-CNN.*"
     r"\(default 96/96, the run's\)"),
    ("symbol", ["--data-shape", "96"], r"--data-shape is for SSD.*--symbol .* is a Faster R-CNN"),
    ("ssd", ["--short", "600", "--max-size", "1000"],
     r"--short/--max-size is for Faster R-CNN.* is an SSD"),
    ("ssd", ["--max-size", "1000"], r"^--max-size is for Faster R-CNN"),
])
def test_wrong_resize_flag_for_checkpoints_and_exports(tmp_path, source, flags, message):
    source = {"checkpoint": lambda: ["--checkpoint", fake_checkpoint(tmp_path)],
              "symbol": lambda: ["--symbol", fake_symbol(tmp_path)],
              "ssd": lambda: ["--network", "ssd_512_mobilenet1.0_voc"]}[source]()
    args = eval_voc.parse_args(["--dataset", "synthetic", "--dataset-root",
                                str(tmp_path / "none")] + source + flags)
    with pytest.raises(UsageError, match=message):
        eval_voc.main(args)


def test_input_mode_defaults(tmp_path):
    """GluonCV's 600/1000 for a zoo Faster R-CNN, the run's sizes for a checkpoint, explicit
    --short for a network the flags cannot tell, SSD512 otherwise."""
    def mode(*argv):
        return eval_voc.input_mode(eval_voc.parse_args(["--dataset", "synthetic"] + list(argv)))
    assert mode("--network", "faster_rcnn_resnet50_v1b_voc") == (
        "faster_rcnn", {"short": 600, "max_size": 1000})
    checkpoint = fake_checkpoint(tmp_path)
    assert mode("--checkpoint", checkpoint) == ("faster_rcnn", {"short": 96, "max_size": 96})
    assert mode("--checkpoint", checkpoint, "--max-size", "160") == (
        "faster_rcnn", {"short": 96, "max_size": 160})
    assert mode("--symbol", fake_symbol(tmp_path)) == (
        "faster_rcnn", {"short": 600, "max_size": 1000})
    assert mode("--network", "yolo3_darknet53_voc", "--short", "300") == (
        "faster_rcnn", {"short": 300, "max_size": 1000})
    assert mode("--network", "yolo3_darknet53_voc") == ("ssd", {"data_shape": 512})
    assert mode("--network", "ssd_512_mobilenet1.0_voc", "--data-shape", "300") == (
        "ssd", {"data_shape": 300})
    with pytest.raises(UsageError, match="exclude each other"):
        mode("--network", "yolo3_darknet53_voc", "--short", "300", "--data-shape", "300")
