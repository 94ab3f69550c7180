"""gankd_gluon.eval (GluonCV's metric, fed in file order) against an independent port of the
devkit's VOCevaldet.m (tests/voc_devkit_reference.py), on hand-worked and crafted cases."""
import math

import numpy as np
import pytest
from gluoncv.data import VOCDetection
from gluoncv.utils.metrics.voc_detection import VOC07MApMetric

from gankd_gluon.eval.devkit import read_devkit_detections, score_devkit_dir
from gankd_gluon.eval.results import DetectionSet, GroundTruth, dataset_ground_truth
from gankd_gluon.eval.voc import score_detections

import eval_fixtures as fx
import voc_devkit_reference as ref

CLASSES = ("circle", "square", "triangle")


class _TinyVOC(VOCDetection):
    CLASSES = CLASSES


def _both(gt_boxes, gt_diff, dets, metric="voc07"):
    """AP of class 0 on one image: (ours, reference). Boxes 1-based as in the devkit files.

    gt_boxes : list of (x1, y1, x2, y2); gt_diff : list of bool;
    dets : list of (score, box) in file order.
    """
    gt = GroundTruth(["img"], [np.array(gt_boxes, float).reshape(-1, 4) - 1],
                     [np.zeros(len(gt_boxes))], [np.array(gt_diff)])
    det = DetectionSet(["img"], [0] * len(dets), [0] * len(dets), [s for s, _ in dets],
                       np.array([b for _, b in dets], float).reshape(-1, 4) - 1)
    ours = score_detections(det, gt, ["x"], metric)[1][0]
    records = {"img": [("x", list(b), d) for b, d in zip(gt_boxes, gt_diff)]}
    theirs = ref.devkit_ap(["img"], records, [("img", s, list(b)) for s, b in dets], "x")
    return ours, theirs


# Boxes below are 1-based inclusive pixels. G = [1,1,10,10] is 10x10 = 100 px.
G = (1, 1, 10, 10)
HIT = (1, 1, 10, 10)            # IoU 1
HALF = (1, 1, 10, 20)           # 10x20 = 200 px, overlap 100 -> IoU 100/200 = 0.5: a match (>=)
BELOW = (1, 1, 10, 21)          # 10x21 = 210 px -> IoU 100/210 = 0.476: no match
FAR = (50, 50, 60, 60)          # no overlap


@pytest.mark.parametrize("dets, expected_07, expected_area", [
    # 1 object, hit then duplicate: tp=[1,0] fp=[0,1], rec=[1,1], prec=[1,.5];
    # every threshold t in 0..1 sees prec 1 -> AP 1; area: recall 0->1 at prec 1 -> 1
    ([(0.9, HIT), (0.8, HIT)], 1.0, 1.0),
    # miss then hit: rec=[0,1], prec=[0,.5]; each of the 11 thresholds: max prec = .5 -> AP .5
    ([(0.9, FAR), (0.8, HIT)], 0.5, 0.5),
    # IoU exactly 0.5 matches (devkit ovmax >= minoverlap; py-faster-rcnn's '>' would not)
    ([(0.9, HALF)], 1.0, 1.0),
    # IoU 0.476 does not: tp=[0], rec=[0] -> only t=0 has a point, prec 0 -> AP 0
    ([(0.9, BELOW)], 0.0, 0.0),
    # tied scores keep file order: miss first -> as the miss-then-hit case, 0.5
    ([(0.7, FAR), (0.7, HIT)], 0.5, 0.5),
    # hit first -> 1
    ([(0.7, HIT), (0.7, FAR)], 1.0, 1.0),
    # no detections: rec is empty, every threshold gives p = 0 -> 0
    ([], 0.0, 0.0),
])
def test_one_object_by_hand(dets, expected_07, expected_area):
    ours, theirs = _both([G], [False], dets)
    assert ours == pytest.approx(expected_07, abs=1e-12)
    assert theirs == pytest.approx(expected_07, abs=1e-12)
    assert _both([G], [False], dets, metric="area")[0] == pytest.approx(expected_area, abs=1e-12)


def test_two_objects_by_hand():
    # objects A, B; detections: hit A (.9), miss (.8), hit B (.7)
    # tp=[1,0,1], fp=[0,1,0]: rec=[.5,.5,1], prec=[1,.5,2/3]
    # 11-point: t=0,.1,...,.5 (6 thresholds) -> max prec over rec>=t = 1;
    #           t=.6,...,1 (5 thresholds) -> only the last point, 2/3
    #           AP = (6 * 1 + 5 * 2/3) / 11 = 0.848484...
    # area: envelope 1 on recall [0,.5], 2/3 on (.5,1] -> .5 + .5 * 2/3 = 0.8333...
    a, b = (1, 1, 10, 10), (21, 21, 40, 40)
    dets = [(0.9, a), (0.8, FAR), (0.7, b)]
    ours, theirs = _both([a, b], [False, False], dets)
    assert ours == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-12)
    assert theirs == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-12)
    assert _both([a, b], [False, False], dets, "area")[0] == pytest.approx(0.5 + 1 / 3, abs=1e-12)


def test_difficult_by_hand():
    # objects: D difficult, N normal; npos = 1. Detection on D (.9) is ignored (neither tp nor fp),
    # detection on N (.8) is a tp: tp=[0,1], fp=[0,0] -> rec=[0,1], prec=[nan,1]; AP 1
    d, n = (1, 1, 10, 10), (31, 31, 40, 40)
    ours, theirs = _both([d, n], [True, False], [(0.9, d), (0.8, n)])
    assert ours == pytest.approx(1.0, abs=1e-12) and theirs == pytest.approx(1.0, abs=1e-12)
    # a duplicate on the difficult object is ignored too (not a false positive): still 1
    ours, theirs = _both([d, n], [True, False], [(0.9, d), (0.85, d), (0.8, n)])
    assert ours == pytest.approx(1.0, abs=1e-12) and theirs == pytest.approx(1.0, abs=1e-12)


def test_best_overlap_decides_difficult():
    # A detection whose best-IoU object is difficult is ignored even though it also overlaps a
    # normal object with IoU >= 0.5 (devkit: jmax is the argmax; GluonCV: iou.argmax).
    normal = (1, 1, 10, 20)       # 200 px
    diff = (1, 1, 10, 12)         # 120 px
    det = (1, 1, 10, 11)          # 110 px: IoU with diff 110/120, with normal 110/200 = .55
    ours, theirs = _both([normal, diff], [False, True], [(0.9, det)])
    # ignored: no tp, npos 1 -> recall never > 0; prec all nan -> GluonCV 0, devkit NaN
    assert ours == 0.0
    assert math.isnan(theirs)


def test_all_detections_on_difficult_differs_only_as_documented():
    # the only case where the two disagree besides ties: every detection ignored.
    # devkit: prec=[NaN], MATLAB max([NaN]) = NaN -> AP NaN; GluonCV: nan_to_num -> 0
    ours, theirs = _both([G, FAR], [True, False], [(0.9, G)])
    assert ours == 0.0 and math.isnan(theirs)


def test_plain_gluoncv_does_not_keep_file_order_on_ties():
    # why score_detections feeds ranks: GluonCV alone sorts with argsort()[::-1] (reverses ties)
    # in update (matching order within an image) and again over all images.
    # (1) one object, two tied hits in file order d1, d2. Devkit: d1 tp, d2 duplicate ->
    #     [tp, fp] -> AP 1. GluonCV matches d2 first (tp), d1 is the duplicate, then reverses
    #     the pair again -> [fp, tp] -> AP 0.5.
    hit0 = [0, 0, 9, 9]
    metric = VOC07MApMetric(class_names=["x"])
    metric.update(np.array([[hit0, hit0]], float), np.zeros((1, 2)), np.full((1, 2), 0.7),
                  np.array([[hit0]], float), np.zeros((1, 1)))
    assert metric.get()[1][0] == pytest.approx(0.5)
    ours, theirs = _both([G], [False], [(0.7, HIT), (0.7, HIT)])
    assert ours == pytest.approx(1.0) and theirs == pytest.approx(1.0)
    # (2) across images: a miss in image a, then a hit in image b, tied. Devkit [fp, tp]: 3/11
    #     (see test_tie_across_images_keeps_file_order); GluonCV [tp, fp]: 6/11.
    metric = VOC07MApMetric(class_names=["x"])
    metric.update(np.array([[[49, 49, 59, 59]], [hit0]], float), np.zeros((2, 1)),
                  np.full((2, 1), 0.5), np.array([[hit0], [hit0]], float), np.zeros((2, 1)))
    assert metric.get()[1][0] == pytest.approx(6 / 11)


def test_tie_across_images_keeps_file_order():
    # image a: one object, missed by a .5 detection; image b: one object, hit at .5.
    # File lists a first: rec=[0, .5], prec=[0, .5] -> t=0..0.5 (6): .5, t>.5: 0 -> AP 3/11
    # (listing b first would give rec=[.5,.5], prec=[1,.5] -> 6/11)
    gt = GroundTruth(["a", "b"], [np.array([G]) - 1.0, np.array([G]) - 1.0], [[0], [0]])
    for order, expected in (((0, 1), 3 / 11), ((1, 0), 6 / 11)):
        rows = [(0, FAR), (1, HIT)]
        rows = [rows[k] for k in order]
        det = DetectionSet(["a", "b"], [r[0] for r in rows], [0, 0], [0.5, 0.5],
                           np.array([r[1] for r in rows], float) - 1)
        assert score_detections(det, gt, ["x"])[1][0] == pytest.approx(expected, abs=1e-12)
        records = {"a": [("x", list(G), False)], "b": [("x", list(G), False)]}
        dets = [("ab"[r[0]], 0.5, list(r[1])) for r in rows]
        assert ref.devkit_ap(["a", "b"], records, dets, "x") == pytest.approx(expected, abs=1e-12)


def test_recall_exactly_six_tenths_threshold_rounding():
    # npos = 5 objects. Hits on 3 of them (recall 3/5 == 0.6 exactly as a double), then 2 misses,
    # then the other 2 hits: prec = [1,1,1, .75,.6, 4/6, 5/7], rec = [.2,.4,.6,.6,.6,.8,1].
    # At t = "0.6": with numpy/GluonCV's 0.6000000000000001 the points with rec .6 are excluded
    # -> p = max(4/6, 5/7) = 5/7; with MATLAB's symmetric colon (0.6 exactly) p = 1.
    # t=0..0.5 (6 thresholds): 1; t=.6: see above; t=.7,.8: 5/7 (rec .8 point has 4/6 < 5/7);
    # t=.9, 1: 5/7. linear: (6 + 5 * 5/7) / 11; symmetric: (7 + 4 * 5/7) / 11.
    boxes = [(1 + 20 * k, 1, 10 + 20 * k, 10) for k in range(5)]
    dets = [(0.9, boxes[0]), (0.89, boxes[1]), (0.88, boxes[2]), (0.5, FAR), (0.49, FAR),
            (0.3, boxes[3]), (0.2, boxes[4])]
    ours, theirs = _both(boxes, [False] * 5, dets)
    linear = (6 + 5 * 5 / 7) / 11
    assert ours == pytest.approx(linear, abs=1e-12) and theirs == pytest.approx(linear, abs=1e-12)
    records = {"img": [("x", list(b), False) for b in boxes]}
    symmetric = ref.devkit_ap(["img"], records, [("img", s, list(b)) for s, b in dets], "x",
                              thresholds="symmetric")
    assert symmetric == pytest.approx((7 + 4 * 5 / 7) / 11, abs=1e-12)


@pytest.mark.parametrize("seed, tie_levels, fractional", [
    (0, None, False), (1, 4, False), (2, 10, True), (3, None, True), (4, 2, False)])
def test_crafted_files_match_reference(tmp_path, seed, tie_levels, fractional):
    rng = np.random.RandomState(seed)
    images = fx.random_images(rng, CLASSES, 25)
    voc_dir = str(tmp_path / "VOC2007")
    fx.write_voc_tree(voc_dir, images)
    skip_images = {images[0][0], images[3][0]}  # images with no detections
    dets = fx.crafted_detections(rng, images, CLASSES, skip_class=CLASSES[2],
                                 skip_images=skip_images, tie_levels=tie_levels,
                                 fractional=fractional)
    det_dir = str(tmp_path / "results")
    fx.write_result_files(det_dir, dets)
    dataset = _TinyVOC(root=str(tmp_path), splits=((2007, "test"),))
    names, values = score_devkit_dir(det_dir, dataset_ground_truth(dataset), CLASSES)
    expected = ref.devkit_ap_from_files(voc_dir, det_dir, CLASSES)
    for name, value in zip(names, values):
        if name == "mAP":
            continue
        assert value == pytest.approx(expected[name], abs=1e-6), name
    assert values[CLASSES.index(CLASSES[2])] == 0.0  # the class without detections
    assert values[-1] == pytest.approx(np.nanmean(list(expected.values())), abs=1e-6)
    # the crafted data does contain what the test claims to cover
    assert any(d for _, _, objs in images for _, _, d in objs)
    assert any(not objs for _, _, objs in images) or skip_images
    if tie_levels:
        scores = [s for rows in dets.values() for _, s, _ in rows]
        assert len(set(scores)) < len(scores)
        # and the ties matter: GluonCV's metric fed the raw scores disagrees with the devkit
        assert not np.allclose(_plain_gluoncv(det_dir, dataset), values, atol=1e-6)


def _plain_gluoncv(det_dir, dataset):
    """Per-class APs + mAP of GluonCV's metric fed the file's raw scores, image by image."""
    gt = dataset_ground_truth(dataset)
    det = read_devkit_detections(det_dir, CLASSES, gt.image_ids)
    metric = VOC07MApMetric(class_names=list(CLASSES))
    for i in range(len(gt)):
        boxes, labels, scores = det.for_image(i)
        metric.update(boxes[None], labels[None], scores[None], gt.boxes[i][None],
                      gt.labels[i][None], gt.difficult[i][None])
    return metric.get()[1]
