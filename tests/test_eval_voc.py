"""gankd_gluon.eval.voc: scoring, the evaluation loop, output formats."""
import json
import math
import re

import mxnet as mx
import numpy as np
import pytest
from gluoncv.utils.metrics.voc_detection import VOC07MApMetric, VOCMApMetric

from gankd_gluon.data.datasets import get_dataset
from gankd_gluon.data.loaders import get_ssd_val_loader
from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_voc
from gankd_gluon.eval.results import DetectionSet, GroundTruth, dataset_ground_truth
from gankd_gluon.eval.voc import (EvalTransform, evaluate_detector, format_ap_lines,
                                  get_eval_loader, score_detections, stable_rank_scores,
                                  write_metric_json)

import eval_fixtures as fx

DATA_SHAPE = 128


@pytest.fixture(scope="module")
def synthetic_test(tmp_path_factory):
    """11 generated test images of varied size (an uneven last batch for batch size 3/4)."""
    root = str(tmp_path_factory.mktemp("synthetic"))
    make_synthetic_voc(root, seed=3, num_train=0, num_test=11, image_size=(80, 64),
                       image_size_max=(160, 120))
    dataset = get_dataset("synthetic", root, "test")
    gt = dataset_ground_truth(dataset)
    gt.sizes = [tuple(float(v) for v in dataset[i][0].shape[1::-1]) for i in range(len(dataset))]
    return root, dataset, gt


def _plain_metric(plan, gt, metric_cls=VOC07MApMetric):
    """GluonCV's metric fed the planned (original-frame) predictions, image by image."""
    metric = metric_cls(class_names=list(SYNTHETIC_CLASSES))
    for (labels, scores, boxes), gb, gl, gd in zip(plan, gt.boxes, gt.labels, gt.difficult):
        metric.update(boxes[None], labels[None], scores[None], gb[None], gl[None], gd[None])
    return metric.get()[1]


def test_stable_rank_scores_keeps_ties_in_input_order():
    labels = np.array([0, 1, 0, 0, 1])
    scores = np.array([0.5, 0.9, 0.7, 0.5, 0.9])
    # class 0: .7 first, then the two .5 in input order (index 0 before 3)
    # class 1: the two .9 in input order (index 1 before 4)
    np.testing.assert_array_equal(stable_rank_scores(labels, scores), [2, 2, 3, 1, 1])


def test_score_detections_checks_its_inputs():
    gt = GroundTruth(["a"], [[[0, 0, 9, 9]]], [[0]])
    with pytest.raises(ValueError, match="class index"):
        score_detections(DetectionSet(["a"], [0], [3], [0.5], [[0, 0, 9, 9]]), gt, ["x"])
    with pytest.raises(ValueError, match="different image lists"):
        score_detections(DetectionSet.empty(["b"]), gt, ["x"])
    empty = GroundTruth(["a"], [np.zeros((0, 4))], [[]])
    names, values = score_detections(DetectionSet.empty(["a"]), empty, ["x"])
    assert names == ["x", "mAP"] and all(math.isnan(v) for v in values)


def test_eval_transform_empty_and_coco_labels():
    img = mx.nd.zeros((30, 40, 3), dtype="uint8")
    data, resized, orig, size = EvalTransform(64, 32)(img, np.array([]))
    assert data.shape == (3, 32, 64)
    assert orig.shape == (1, 6) and (orig == -1).all() and (resized == -1).all()
    np.testing.assert_array_equal(size, [40, 30])
    _, resized, orig, _ = EvalTransform(80, 60)(img, np.array([[4.0, 3, 20, 15, 2]]))
    np.testing.assert_array_equal(orig, [[4, 3, 20, 15, 2, 0]])
    np.testing.assert_allclose(resized[0, :4], [8, 6, 40, 30])  # x2 and y2 scale


# 11 images: batches 4+4+3 on one device; 5+5+1 on two (a last batch smaller than the devices)
@pytest.mark.parametrize("ctx_list, batch_size", [([mx.cpu()], 4), ([mx.cpu(0), mx.cpu(1)], 5)])
def test_evaluate_detector_equals_gluoncv_metric(synthetic_test, ctx_list, batch_size):
    _, dataset, gt = synthetic_test
    plan = fx.noisy_oracle_plan(np.random.RandomState(0), gt, len(SYNTHETIC_CLASSES))
    scores = np.concatenate([p[1] for p in plan])
    assert len(np.unique(scores)) == len(scores)  # no ties: GluonCV alone orders them the same
    expected = _plain_metric(plan, gt)
    assert 0.2 < expected[-1] < 0.95  # a meaningful, non-trivial AP
    net = fx.make_oracle(plan, gt.sizes, DATA_SHAPE)
    loader = get_eval_loader(dataset, DATA_SHAPE, batch_size)
    collect = {}
    names, values = evaluate_detector(net, loader, ctx_list, SYNTHETIC_CLASSES, progress=False,
                                      collect=collect, image_ids=gt.image_ids)
    assert names == list(SYNTHETIC_CLASSES) + ["mAP"]
    np.testing.assert_allclose(values, expected, atol=1e-6)
    assert net.position == len(dataset)
    # the collected detections are the plan, back in original pixels
    det = collect["detections"]
    assert len(det) == sum(p[0].shape[0] for p in plan)
    np.testing.assert_allclose(det.boxes, np.concatenate([p[2] for p in plan]), atol=1e-3)
    for i in range(len(gt)):
        np.testing.assert_array_equal(collect["ground_truth"].boxes[i], gt.boxes[i])
    # area metric too
    net = fx.make_oracle(plan, gt.sizes, DATA_SHAPE)
    _, area = evaluate_detector(net, loader, ctx_list, SYNTHETIC_CLASSES, metric="area",
                                progress=False)
    np.testing.assert_allclose(area, _plain_metric(plan, gt, VOCMApMetric), atol=1e-6)


def test_two_element_loader_scores_in_the_input_frame(synthetic_test):
    # get_ssd_val_loader batches (data, label): scored as GluonCV's validate, in input pixels
    _, dataset, gt = synthetic_test
    plan = fx.noisy_oracle_plan(np.random.RandomState(1), gt, len(SYNTHETIC_CLASSES))
    loader = get_ssd_val_loader(dataset, DATA_SHAPE, 4)
    names, values = evaluate_detector(fx.make_oracle(plan, gt.sizes, DATA_SHAPE), loader,
                                      [mx.cpu()], SYNTHETIC_CLASSES, progress=False)
    metric = VOC07MApMetric(class_names=list(SYNTHETIC_CLASSES))
    oracle = fx.make_oracle(plan, gt.sizes, DATA_SHAPE)
    for data, label in loader:  # GluonCV train_ssd.py validate(), verbatim in spirit
        ids, scores, boxes = oracle(data)
        metric.update(boxes.clip(0, DATA_SHAPE), ids, scores, label.slice_axis(2, 0, 4),
                      label.slice_axis(2, 4, 5), label.slice_axis(2, 5, 6))
    np.testing.assert_allclose(values, metric.get()[1], atol=1e-6)


def test_hybridized_ssd_traced_in_train_mode_is_evaluated_in_inference_mode(synthetic_test):
    # such a net keeps returning training outputs until set_nms (mxnet 1.9.1 gluon/block.py:
    # the cached graph keeps the mode it was traced in)
    _, dataset, _ = synthetic_test
    net = fx.random_ssd(SYNTHETIC_CLASSES)
    net.hybridize()
    with mx.autograd.train_mode():
        assert len(net(mx.nd.zeros((1, 3, DATA_SHAPE, DATA_SHAPE)))) == 3
    assert net(mx.nd.zeros((1, 3, DATA_SHAPE, DATA_SHAPE)))[0].shape[-1] != 1  # train outputs
    names, values = evaluate_detector(net, get_eval_loader(dataset, DATA_SHAPE, 4), [mx.cpu()],
                                      SYNTHETIC_CLASSES, progress=False)
    assert len(values) == len(SYNTHETIC_CLASSES) + 1
    assert all(0.0 <= v <= 1.0 for v in values)


def test_training_outputs_give_a_clear_error(synthetic_test):
    _, dataset, _ = synthetic_test

    class TrainOutputs(mx.gluon.Block):
        def forward(self, x):
            return (mx.nd.zeros((x.shape[0], 10, 6)), mx.nd.zeros((x.shape[0], 10, 4)),
                    mx.nd.zeros((1, 10, 4)))

    with pytest.raises(RuntimeError, match="not detector inference outputs"):
        evaluate_detector(TrainOutputs(), get_eval_loader(dataset, DATA_SHAPE, 4), [mx.cpu()],
                          SYNTHETIC_CLASSES, progress=False)


def test_format_matches_published_log(published_ssd_log):
    # the validation block of the published log, re-printed from its own numbers
    with open(published_ssd_log) as f:
        text = f.read()
    block = text.split("[Epoch 221] StudentNet Validation: \n", 1)[1].split("\n[Epoch", 1)[0]
    lines = block.splitlines()
    assert len(lines) == 21 and lines[-1].startswith("mAP=")
    names = [line.split("=")[0] for line in lines]
    values = [float(line.split("=")[1]) for line in lines]
    assert format_ap_lines(names, values) == "\n".join(lines)
    assert re.match(r"^aeroplane=0\.8235239077265817$", lines[0])


def test_write_metric_json(tmp_path):
    path = str(tmp_path / "sub" / "ap.json")
    write_metric_json(path, ["a", "b", "mAP"], [0.5, float("nan"), 0.5], metric="voc07")
    with open(path) as f:
        payload = json.load(f)
    assert payload == {"metric": "voc07", "ap": {"a": 0.5, "b": None, "mAP": 0.5}}
