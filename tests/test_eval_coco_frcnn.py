"""scripts/eval_coco.py in Faster R-CNN mode (short-side resize), on the generated set read as COCO.

- a tiny Faster R-CNN (96 px, 8 RoIs, no pretrained base, seeded initialisation) saved with a
  checkpoint manifest as ``train_faster_rcnn.py`` writes it is evaluated by the script, in a
  subprocess, from ``--checkpoint``: its APs and its ``--save-detections`` json equal COCO
  results written here by hand from the same weights, GluonCV's own
  ``FasterRCNNDefaultValTransform`` and a per-axis rescale, scored with :func:`coco_evaluate`;
  ``--out`` records the run's sizes;
- the network sees aspect-keeping inputs (short side 96, long side at most 120, each image its
  own shape), and a square resize of the same images gives other detections;
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
from gluoncv.data.transforms.presets.rcnn import FasterRCNNDefaultValTransform
from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform

from gankd_gluon.data.datasets import get_dataset
from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES
from gankd_gluon.usage import UsageError
from gankd_gluon.eval.coco import coco_evaluate, coco_image_ids

from test_eval_coco import eval_coco           # scripts/eval_coco.py as a module
from frcnn_fixtures import COMMON, fake_checkpoint, fake_symbol, make_data, tiny_frcnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import train_faster_rcnn  # noqa: E402

SCRIPT = os.path.join(ROOT, "scripts", "eval_coco.py")
# images from 96x96 to 150x128, resized by their short side (96) within 120: the cap bites on
# the generated set's 134x103 image
SHORT, MAX_SIZE = 96, 120
SCORE_THRESH = 0.05


def _script(*argv):
    """Run scripts/eval_coco.py in a subprocess; (returncode, stdout, stderr)."""
    proc = subprocess.run([sys.executable, SCRIPT, "--no-progress"] + [str(a) for a in argv],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr


def _ap_lines(stdout):
    pairs = [line.split("=", 1) for line in stdout.strip().splitlines()]
    return {k: float(v) for k, v in pairs}


def _results_by_hand(net, dataset, transform):
    """COCO results of ``net`` on ``dataset``, written out here rather than by the eval package.

    Each image goes through ``transform`` (a GluonCV preset), the boxes are clipped to the
    network input and scaled per axis to the original image, as GluonCV's BBoxClipToImage and
    ``COCODetectionMetric`` do; json boxes are ``[x, y, x2 - x + 1, y2 - y + 1]``.

    Returns
    -------
    results : list of dict; input_shapes : list of (h, w)
    """
    coco_ids = coco_image_ids(dataset)
    results, input_shapes = [], []
    with mx.autograd.predict_mode():
        for i in range(len(dataset)):
            img, label = dataset[i]
            x = transform(img, label)[0]
            height, width = img.shape[:2]
            in_h, in_w = x.shape[1:]
            input_shapes.append((in_h, in_w))
            ids, scores, boxes = [o[0].asnumpy() for o in net(x.expand_dims(0))]
            for cls, score, box in zip(ids[:, 0], scores[:, 0], boxes.astype(np.float64)):
                if cls < 0 or score < SCORE_THRESH:
                    continue
                x1, y1, x2, y2 = (np.clip(box, 0, [in_w, in_h, in_w, in_h])
                                  * [width / in_w, height / in_h, width / in_w, height / in_h])
                results.append({"image_id": coco_ids[i],
                                "category_id": dataset.contiguous_id_to_json[int(cls)],
                                "bbox": [x1, y1, x2 - x1 + 1.0, y2 - y1 + 1.0],
                                "score": float(score)})
    return results, input_shapes


def _rows(results):
    """Result dicts as sorted rows (image, category, score, bbox) for an exact comparison."""
    rows = np.array([[r["image_id"], r["category_id"], r["score"]] + list(r["bbox"])
                     for r in results], dtype=np.float64)
    return rows[np.lexsort(rows.T[::-1])]


@pytest.fixture(scope="module")
def frcnn(tmp_path_factory):
    """The generated set, a seeded tiny Faster R-CNN saved as a train_faster_rcnn.py checkpoint
    (manifest with the run's args + part 'net'), and its COCO results written by hand."""
    root = tmp_path_factory.mktemp("eval_coco_frcnn")
    data = make_data(root / "data", num_train=0, num_test=8, seed=3, image_size_max=(150, 128))
    run = train_faster_rcnn.parse_args(COMMON + ["--dataset-root", data, "--max-size",
                                                 str(MAX_SIZE), "--rpn-test-post-nms", "32"])
    assert (run.short, run.max_size) == (SHORT, MAX_SIZE)
    net = tiny_frcnn(run.network, roi_mode=run.roi_mode, max_size=MAX_SIZE, rpn_test_post_nms=32)
    net.hybridize()                     # as the script's network: the same graph, same floats
    folder = root / "ck"
    folder.mkdir()
    net.save_parameters(str(folder / "run-best.net.params"))
    manifest = str(folder / "run-best.json")
    with open(manifest, "w") as f:
        json.dump({"args": vars(run), "parts": {"net": "run-best.net.params"}, "tag": "best",
                   "epoch": 0}, f, default=str)

    dataset = get_dataset("synthetic_coco", data, "test")
    results, shapes = _results_by_hand(net, dataset, FasterRCNNDefaultValTransform(SHORT,
                                                                                   MAX_SIZE))
    names, values = coco_evaluate(dataset.coco, results, SYNTHETIC_CLASSES,
                                  cat_ids=[dataset.contiguous_id_to_json[c]
                                           for c in range(len(SYNTHETIC_CLASSES))])
    yield {"data": data, "manifest": manifest, "net": net, "dataset": dataset,
           "results": results, "shapes": shapes, "aps": dict(zip(names, values))}
    shutil.rmtree(str(root), ignore_errors=True)        # about 0.1 GB of weights


def _assert_same_aps(got, expected):
    assert list(got) == list(expected)
    for name, value in expected.items():
        if np.isnan(value):
            assert got[name] is None or np.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value, abs=1e-6), name


@pytest.mark.slow
def test_checkpoint_through_the_script_equals_detections_by_hand(frcnn, tmp_path):
    aps = frcnn["aps"]
    # not a comparison of empty sets: detections, and some of them right
    assert len(frcnn["results"]) > 100 and aps["mAP"] > 0 and aps["AP50"] > 0
    out, saved = str(tmp_path / "ap.json"), str(tmp_path / "dets.json")
    code, stdout, stderr = _script("--dataset", "synthetic_coco", "--dataset-root", frcnn["data"],
                                   "--checkpoint", frcnn["manifest"], "--out", out,
                                   "--save-detections", saved)
    assert code == 0, stderr
    assert "short side 96, long side at most 120" in stderr    # the run's sizes by default
    _assert_same_aps(_ap_lines(stdout), aps)
    with open(out) as f:
        payload = json.load(f)
    _assert_same_aps(payload["ap"], aps)
    assert (payload["short"], payload["max_size"], payload["data_shape"]) == (SHORT, MAX_SIZE,
                                                                             None)
    assert payload["source"] == {"checkpoint": frcnn["manifest"]}
    # the saved json holds the detections made by hand, box for box
    with open(saved) as f:
        got = json.load(f)
    assert len(got) == len(frcnn["results"])
    np.testing.assert_allclose(_rows(got), _rows(frcnn["results"]), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_inputs_keep_the_aspect_ratio_not_a_square(frcnn, tmp_path, monkeypatch):
    """The network gets each image at its own aspect-keeping size (what GluonCV's transform
    gives, checked against the rule by hand); a square resize would give other detections."""
    dataset = frcnn["dataset"]
    expected = []
    for i in range(len(dataset)):
        height, width = dataset[i][0].shape[:2]
        scale = SHORT / min(height, width)
        if round(max(height, width) * scale) > MAX_SIZE:    # long side capped
            scale = MAX_SIZE / max(height, width)
        expected.append((int(round(height * scale)), int(round(width * scale))))
    assert frcnn["shapes"] == expected
    assert len(set(expected)) > 2 and any(h != w for h, w in expected)
    assert any(max(s) == MAX_SIZE and min(s) < SHORT for s in expected)     # the cap bites

    seen = []
    real_load = eval_coco.load_detector

    def recording_load(args, ctx, classes=None):
        net = real_load(args, ctx, classes)

        def forward(x):
            seen.append(tuple(x.shape[2:]))
            return net(x)
        return forward
    monkeypatch.setattr(eval_coco, "load_detector", recording_load)
    out = str(tmp_path / "ap.json")
    names, values = eval_coco.main(eval_coco.parse_args([
        "--dataset", "synthetic_coco", "--dataset-root", frcnn["data"], "--checkpoint",
        frcnn["manifest"], "--out", out, "--no-progress"]))
    assert seen == expected
    _assert_same_aps(dict(zip(names, values)), frcnn["aps"])

    square, square_shapes = _results_by_hand(frcnn["net"], dataset,
                                             SSDDefaultValTransform(SHORT, SHORT))
    assert set(square_shapes) == {(SHORT, SHORT)}
    assert len(square) != len(frcnn["results"]) or not np.allclose(_rows(square),
                                                                   _rows(frcnn["results"]))


@pytest.mark.parametrize("argv, line", [
    (["--network", "faster_rcnn_resnet50_v1b_coco", "--data-shape", "512"],
     "error: --data-shape is for SSD's square resize; --network faster_rcnn_resnet50_v1b_coco is "
     "a Faster R-CNN, resized by its short side: use --short/--max-size (default 600/1000, "
     "GluonCV's)"),
    (["--network", "ssd_512_mobilenet1.0_coco", "--short", "600"],
     "error: --short is for Faster R-CNN's short-side resize; --network "
     "ssd_512_mobilenet1.0_coco is an SSD, resized to a square: use --data-shape (default 512)"),
])
def test_wrong_resize_flag_is_one_error_line(tmp_path, argv, line):
    # no dataset, no weights: the flags are refused before anything is read
    code, stdout, stderr = _script("--dataset", "synthetic_coco", "--dataset-root",
                                   str(tmp_path / "none"), *argv)
    assert code == 2 and stdout == ""              # README, "Exit codes": bad arguments
    assert stderr.strip() == line, stderr


@pytest.mark.parametrize("source, flags, message", [
    ("checkpoint", ["--data-shape", "96"],
     r"^--data-shape is for SSD.*--checkpoint .*run-best.json is a Faster R-CNN.*"
     r"\(default 96/96, the run's\)$"),
    ("symbol", ["--data-shape", "96"], r"--data-shape is for SSD.*--symbol .* is a Faster R-CNN"),
    ("ssd", ["--short", "600", "--max-size", "1000"],
     r"^--short/--max-size is for Faster R-CNN.* is an SSD"),
    ("unknown", ["--short", "600", "--data-shape", "512"], r"exclude each other"),
])
def test_wrong_resize_flag_for_checkpoints_and_exports(tmp_path, source, flags, message):
    source = {"checkpoint": lambda: ["--checkpoint", fake_checkpoint(tmp_path)],
              "symbol": lambda: ["--symbol", fake_symbol(tmp_path)],
              "ssd": lambda: ["--network", "ssd_512_mobilenet1.0_coco"],
              "unknown": lambda: ["--network", "yolo3_darknet53_coco"]}[source]()
    args = eval_coco.parse_args(["--dataset", "synthetic_coco", "--dataset-root",
                                 str(tmp_path / "none")] + source + flags)
    with pytest.raises(UsageError, match=message) as err:
        eval_coco.main(args)
    assert "\n" not in str(err.value)
