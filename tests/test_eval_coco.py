"""gankd_gluon.eval.coco and scripts/eval_coco.py on the generated set read as COCO."""
import importlib.util
import json
import math
import os

import mxnet as mx
import numpy as np
import pytest
from gluoncv.utils.metrics.coco_detection import COCODetectionMetric
from pycocotools.coco import COCO

from gankd_gluon.data.datasets import get_dataset
from gankd_gluon.usage import InputFileError, UsageError
from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_voc
from gankd_gluon.eval.coco import (COCO_SUMMARY_NAMES, coco_evaluate, coco_image_ids,
                                   read_coco_results)
from gankd_gluon.eval.results import dataset_ground_truth

import eval_fixtures as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_SHAPE = 128


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "eval_coco_script", os.path.join(ROOT, "scripts", "eval_coco.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eval_coco = _load_script()


def _coco(tmp_path, images, annotations, categories=("a", "b")):
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(categories)]}
    path = str(tmp_path / "gt.json")
    with open(path, "w") as f:
        json.dump(data, f)
    return COCO(path)


def test_coco_evaluate_by_hand(tmp_path):
    # one 40x40 object of class a (area 1600: 'medium', 32^2 < area < 96^2) in a 100x100 image
    gt = _coco(tmp_path, [{"id": 1, "width": 100, "height": 100}],
               [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40],
                 "area": 1600, "iscrowd": 0}])
    exact = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.9}]
    names, values = coco_evaluate(gt, exact, ["a", "b"])
    assert names == ["a", "b"] + list(COCO_SUMMARY_NAMES)
    got = dict(zip(names, values))
    # an exact box matches at every IoU threshold: AP 1 at all of them; no gt of class b -> nan;
    # no small or large objects -> pycocotools' -1
    assert got["a"] == pytest.approx(1.0) and math.isnan(got["b"])
    for key in ("mAP", "AP50", "AP75", "APm"):
        assert got[key] == pytest.approx(1.0), key
    assert got["APs"] == -1.0 and got["APl"] == -1.0
    # shifted by 8 px: IoU = 32*40 / (2*1600 - 1280) = 2/3 -> a match at thresholds .5, .55, .6,
    # .65 only: 4 of the 10 -> AP@[.5:.95] 0.4, AP50 1, AP75 0
    shifted = [{"image_id": 1, "category_id": 1, "bbox": [18, 10, 40, 40], "score": 0.9}]
    got = dict(zip(*coco_evaluate(gt, shifted, ["a", "b"])))
    assert got["mAP"] == pytest.approx(0.4) and got["AP50"] == pytest.approx(1.0)
    assert got["AP75"] == 0.0
    assert shifted[0] == {"image_id": 1, "category_id": 1, "bbox": [18, 10, 40, 40],
                          "score": 0.9}  # not modified by pycocotools' loadRes
    # no detections at all: 0, not a crash
    got = dict(zip(*coco_evaluate(gt, [], ["a", "b"])))
    assert got["a"] == 0.0 and got["mAP"] == 0.0


def test_read_coco_results_checks_entries(tmp_path):
    gt = _coco(tmp_path, [{"id": 1, "width": 100, "height": 100}], [])
    path = tmp_path / "dets.json"
    for content, message in (
            ('{"a": 1}', "is a list"),
            ('[{"image_id": 1}]', "entry 0 needs"),
            ('[{"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]',
             "image_id 2 is not in"),
            ('[{"image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1], "score": 1}]',
             "category_id 9 is not in"),
            ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 1}]',
             r"entry 0: bbox \[0, 0, 1\] is not \[x, y, w, h\]"),
            ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 1}]',
             r"entry 0: bbox .* w, h >= 0"),
            ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, "a"], "score": 1}]',
             r"entry 0: bbox"),
            ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1},\n'
             ' {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": NaN}]',
             r"entry 1: score nan is not a finite number"),
            ('[\n{"image_id": 1,\n nope', r"dets.json:3: not json"),
            (b'[\n\x89PNG\x00\xff', r"dets.json:2: not a COCO results json \(byte 3 is not"),
            ("nope", "not json")):
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(UsageError, match=message) as err:
            read_coco_results(str(path), gt)
        assert "\n" not in str(err.value)
    with pytest.raises(InputFileError, match="missing.json does not exist"):
        read_coco_results(str(tmp_path / "missing.json"), gt)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("gen"))
    make_synthetic_voc(root, seed=9, num_train=0, num_test=24, image_size=(64, 64),
                       image_size_max=(128, 112))
    dataset = get_dataset("synthetic_coco", root, "test")
    gt = dataset_ground_truth(dataset)
    gt.sizes = [tuple(float(v) for v in dataset[i][0].shape[1::-1]) for i in range(len(dataset))]
    return root, dataset, gt


def test_coco_image_ids_survive_skipped_images(generated, tmp_path):
    root, dataset, _ = generated
    assert coco_image_ids(dataset) == sorted(dataset.coco.getImgIds())
    # a zero-byte image is skipped by the dataset: later images must keep their own ids
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(root, copy, symlinks=True)
    first = sorted(dataset.coco.getImgIds())[2]
    open(os.path.join(copy, "VOCdevkit", "VOC2007", "JPEGImages", "%06d.jpg" % first), "w").close()
    skipped = get_dataset("synthetic_coco", copy, "test")
    ids = coco_image_ids(skipped)
    assert len(ids) == len(dataset) - 1 and first not in ids
    assert ids == [int(os.path.basename(p).split(".")[0]) for p in skipped._items]


def _run(argv):
    names, values = eval_coco.main(eval_coco.parse_args(argv + ["--no-progress"]))
    return dict(zip(names, values))


def test_network_path_equals_gluoncv_metric_and_round_trips(generated, tmp_path, monkeypatch):
    root, dataset, gt = generated
    plan = fx.noisy_oracle_plan(np.random.RandomState(3), gt, len(SYNTHETIC_CLASSES))
    # GluonCV's COCODetectionMetric fed the same predictions, in input pixels, as train_ssd.py
    metric = COCODetectionMetric(dataset, str(tmp_path / "gluoncv"), use_time=False,
                                 cleanup=True, data_shape=(DATA_SHAPE, DATA_SHAPE))
    oracle = fx.make_oracle(plan, gt.sizes, DATA_SHAPE)
    for _ in range(len(dataset)):
        ids, scores, boxes = oracle(mx.nd.zeros((1, 3, DATA_SHAPE, DATA_SHAPE)))
        metric.update(boxes, ids, scores)
    metric.get()  # runs COCOeval evaluate, accumulate, summarize
    stats = metric._coco_eval.stats[:6]
    assert 0.1 < stats[0] < 0.9

    oracle = fx.make_oracle(plan, gt.sizes, DATA_SHAPE)
    monkeypatch.setattr(eval_coco, "load_detector", lambda args, ctx, classes=None: oracle)
    saved = str(tmp_path / "dets.json")
    out = str(tmp_path / "ap.json")
    got = _run(["--dataset", "synthetic_coco", "--dataset-root", root, "--network", "oracle",
                "--data-shape", str(DATA_SHAPE), "--batch-size", "5", "--save-detections",
                saved, "--out", out])
    np.testing.assert_allclose([got[k] for k in COCO_SUMMARY_NAMES], stats, atol=1e-6)
    with open(out) as f:
        assert json.load(f)["ap"] == got
    monkeypatch.undo()
    again = _run(["--dataset", "synthetic_coco", "--dataset-root", root, "--detections", saved])
    assert again == got


def test_voc_dataset_is_refused(generated, capsys):
    with pytest.raises(SystemExit) as err:
        _run(["--dataset", "synthetic", "--dataset-root", generated[0], "--detections", "x"])
    assert err.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("use scripts/eval_voc.py")


def test_training_validation_of_a_coco_kind_dataset_is_coco_ap(generated, tmp_path):
    """The SSD runs' validator: COCO AP@[.5:.95] (equal to GluonCV's COCODetectionMetric on the
    same predictions) for synthetic_coco, named in its result; VOC07 mAP@0.5 (much higher on
    these jittered boxes) for the same images read as VOC."""
    import argparse
    from gankd_gluon.engine.ssd_runs import _validator
    root, dataset, gt = generated
    plan = fx.noisy_oracle_plan(np.random.RandomState(3), gt, len(SYNTHETIC_CLASSES))
    metric = COCODetectionMetric(dataset, str(tmp_path / "gluoncv"), use_time=False,
                                 cleanup=True, data_shape=(DATA_SHAPE, DATA_SHAPE))
    oracle = fx.make_oracle(plan, gt.sizes, DATA_SHAPE)
    for _ in range(len(dataset)):
        ids, scores, boxes = oracle(mx.nd.zeros((1, 3, DATA_SHAPE, DATA_SHAPE)))
        metric.update(boxes, ids, scores)
    metric.get()
    reference = metric._coco_eval.stats[0]

    def validate(kind):
        args = argparse.Namespace(dataset=kind, data_shape=DATA_SHAPE, batch_size=5,
                                  num_workers=0, progress=False)
        val = get_dataset(kind, root, "test")
        return _validator(fx.make_oracle(plan, gt.sizes, DATA_SHAPE), val, args,
                          [mx.cpu()])()
    names, aps, mean_ap, metric_name = validate("synthetic_coco")
    assert metric_name == "COCO AP@[.5:.95]" and names == list(SYNTHETIC_CLASSES)
    assert mean_ap == pytest.approx(reference, abs=1e-6)
    voc = validate("synthetic")
    assert len(voc) == 3 and voc[2] > mean_ap + 0.1
