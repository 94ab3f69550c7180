"""COCO evaluation through pycocotools' ``COCOeval``: the numbers of the paper's Table 2.

Why not GluonCV's ``COCODetectionMetric``: it assigns predictions to image ids by counting
(``self._img_ids[self._current_id]`` over *all* json images, sorted), so any image the dataset
skipped (no objects with ``skip_empty=True``, an unreadable file) shifts every later image's
detections onto the wrong id; it writes its json to a timestamped file, and its ``get()``
returns strings. The parts that decide the numbers are kept as GluonCV has them: boxes are
rescaled from the network input to the original image, written as ``[x, y, x2 - x + 1,
y2 - y + 1]`` (GluonCV's ``COCODetection`` reads ``x2 = x + w - 1``), detections under
``score_thresh`` (0.05) are dropped, and per-class AP is the mean of COCOeval's precision over
IoU 0.5:0.95 at area 'all' and 100 detections, as ``COCODetectionMetric.get``.
"""
import contextlib
import copy
import json
import os
import sys

import numpy as np

from ..usage import InputFileError, UsageError

__all__ = ["COCO_SUMMARY_NAMES", "COCO_METRIC", "coco_image_ids", "detections_to_coco",
           "read_coco_results", "write_coco_results", "coco_evaluate", "coco_validation"]

#: what the mAP of a COCO-kind validation is, as the training log's mAP line names it
COCO_METRIC = "COCO AP@[.5:.95]"

#: ``COCOeval.stats[0:6]``, named as detectron's logs: AP@[.5:.95], AP@.5, AP@.75, AP by area
COCO_SUMMARY_NAMES = ("mAP", "AP50", "AP75", "APs", "APm", "APl")


def coco_image_ids(dataset):
    """COCO image ids of a GluonCV ``COCODetection`` dataset's items, in index order.

    The dataset keeps only image paths (``_items``); each path is matched to the json entry it
    was built from with the dataset's own ``_parse_image_path``.

    Returns
    -------
    list of int, length len(dataset)
    """
    coco = dataset.coco
    by_path = {}
    for entry in coco.loadImgs(sorted(coco.getImgIds())):
        try:
            by_path[os.path.normpath(dataset._parse_image_path(entry))] = entry["id"]
        except (KeyError, AttributeError, IndexError):
            continue  # entries without a usable coco_url were skipped by the dataset too
    ids = []
    for path in dataset._items:
        key = os.path.normpath(path)
        if key not in by_path:
            raise ValueError("image %s of the dataset has no entry in its COCO json" % path)
        ids.append(by_path[key])
    return ids


def detections_to_coco(detections, coco_ids, contiguous_id_to_json, score_thresh=0.05):
    """COCO result dicts from a DetectionSet.

    Parameters
    ----------
    detections : DetectionSet
        0-based inclusive corners in original pixels (``image_index`` into ``coco_ids``).
    coco_ids : list of int
        COCO image id of each image of ``detections``.
    contiguous_id_to_json : dict
        0-based class index -> json category id (``dataset.contiguous_id_to_json``).
    score_thresh : float
        Detections below it are dropped (GluonCV's ``COCODetectionMetric`` default 0.05).

    Returns
    -------
    list of dict
        ``{'image_id', 'category_id', 'bbox': [x, y, w, h], 'score'}``, plain Python numbers.
    """
    results = []
    for k in range(len(detections)):
        score = float(detections.scores[k])
        label = int(detections.labels[k])
        if score < score_thresh or label not in contiguous_id_to_json:
            continue
        x1, y1, x2, y2 = (float(v) for v in detections.boxes[k])
        results.append({"image_id": int(coco_ids[detections.image_index[k]]),
                        "category_id": int(contiguous_id_to_json[label]),
                        # inclusive corners -> width in pixels, as COCODetectionMetric.update
                        "bbox": [x1, y1, x2 - x1 + 1.0, y2 - y1 + 1.0],
                        "score": score})
    return results


def write_coco_results(path, results):
    """Write result dicts as json (floats round-trip exactly)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _check_result(path, k, res, images, cats):
    """One entry of a COCO results json; a :class:`UsageError` names the file and entry."""
    if not isinstance(res, dict) or not {"image_id", "category_id", "bbox", "score"} <= set(res):
        raise UsageError("%s: entry %d needs image_id, category_id, bbox, score" % (path, k))
    if res["image_id"] not in images:
        raise UsageError("%s: entry %d: image_id %r is not in the ground truth"
                         % (path, k, res["image_id"]))
    if res["category_id"] not in cats:
        raise UsageError("%s: entry %d: category_id %r is not in the ground truth"
                         % (path, k, res["category_id"]))
    box = res["bbox"]
    if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)
            and box[2] >= 0 and box[3] >= 0):
        raise UsageError("%s: entry %d: bbox %r is not [x, y, w, h] of four finite numbers "
                         "with w, h >= 0" % (path, k, box))
    if not _number(res["score"]):
        raise UsageError("%s: entry %d: score %r is not a finite number"
                         % (path, k, res["score"]))


def read_coco_results(path, coco_gt):
    """Read and check a COCO results json.

    Parameters
    ----------
    path : str
    coco_gt : pycocotools.coco.COCO

    Returns
    -------
    list of dict

    Raises
    ------
    InputFileError
        ``path`` does not exist.
    UsageError
        The file is not UTF-8 text or not json (the message names the line and column), is not
        a list, or an entry lacks a field, names an image or category outside the ground
        truth, or has a bbox or score that is not finite numbers (the message names the entry).
    """
    if not os.path.isfile(path):
        raise InputFileError("detections file %s does not exist (a COCO results json: "
                             "[{image_id, category_id, bbox: [x, y, w, h], score}, ...])" % path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise UsageError("%s:%d: not a COCO results json (byte %d is not UTF-8 text)"
                         % (path, line, err.start + 1)) from None
    try:
        results = json.loads(text)
    except ValueError as err:
        where = ":%d" % err.lineno if isinstance(err, json.JSONDecodeError) else ""
        raise UsageError("%s%s: not json (%s)" % (path, where, err)) from None
    if not isinstance(results, list):
        raise UsageError("%s: a COCO results json is a list of detections" % path)
    images, cats = set(coco_gt.getImgIds()), set(coco_gt.getCatIds())
    for k, res in enumerate(results):
        _check_result(path, k, res, images, cats)
    return results


def coco_evaluate(coco_gt, results, class_names, cat_ids=None, verbose=False):
    """AP of COCO results with ``COCOeval`` (bbox).

    Parameters
    ----------
    coco_gt : pycocotools.coco.COCO
    results : list of dict
        Not modified (pycocotools' ``loadRes`` edits its input; a copy is given).
    class_names : sequence of str, length C
        In GluonCV's contiguous-id order.
    cat_ids : sequence of int, length C, optional
        Json category id of each class (default ``coco_gt.getCatIds()``, the order GluonCV's
        ``COCODetection`` numbers classes in). COCOeval orders classes by sorted id instead.
    verbose : bool
        Let pycocotools print its progress and summary table (to stderr).

    Returns
    -------
    names : list of str, length C + 6
        ``class_names`` then :data:`COCO_SUMMARY_NAMES`.
    values : list of float
        Per-class AP@[.5:.95] (nan for a class without ground truth), then ``COCOeval.stats[0:6]``
        (-1 where pycocotools has no ground truth of that area).
    """
    from pycocotools.cocoeval import COCOeval
    from pycocotools.coco import COCO
    sink = sys.stderr if verbose else open(os.devnull, "w")
    try:
        with contextlib.redirect_stdout(sink):
            if results:
                coco_dt = coco_gt.loadRes(copy.deepcopy(results))
            else:
                # loadRes([]) fails (it reads results[0]); no detections is a valid result
                coco_dt = COCO()
                coco_dt.dataset = {"images": list(coco_gt.dataset["images"]),
                                   "categories": copy.deepcopy(coco_gt.dataset["categories"]),
                                   "annotations": []}
                coco_dt.createIndex()
            coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
    finally:
        if not verbose:
            sink.close()
    iou_thrs = coco_eval.params.iouThrs
    lo = int(np.argmin(np.abs(iou_thrs - 0.5)))
    hi = int(np.argmin(np.abs(iou_thrs - 0.95)))
    # precision: (iou, recall, class, area range, max dets); area 0 = all, max dets 2 = 100
    precision = coco_eval.eval["precision"][lo:hi + 1, :, :, 0, 2]
    if cat_ids is None:
        cat_ids = coco_gt.getCatIds()
    eval_cats = list(coco_eval.params.catIds)
    values = []
    for cls in range(len(class_names)):
        p = precision[:, :, eval_cats.index(cat_ids[cls])]
        p = p[p > -1]
        values.append(float(np.mean(p)) if p.size else float("nan"))
    values.extend(float(v) for v in coco_eval.stats[:6])
    return list(class_names) + list(COCO_SUMMARY_NAMES), values


def coco_validation(detections, dataset, class_names, score_thresh=0.05):
    """The validation numbers of a COCO-kind dataset: per-class AP@[.5:.95] and their mean as
    pycocotools computes it (``COCOeval.stats[0]``, the paper's Table 2 metric).

    Parameters
    ----------
    detections : DetectionSet
        In original pixels, ``image_index`` the dataset index (``predict_detections`` over
        ``get_eval_loader``, or ``predict_frcnn_dataset``).
    dataset : GluonCV ``COCODetection`` (``coco``, ``contiguous_id_to_json``)
    class_names : sequence of str, length C
    score_thresh : float
        As ``eval_coco.py`` (GluonCV's ``COCODetectionMetric``).

    Returns
    -------
    names : list of str, length C + 1
        ``class_names + ['mAP']``.
    values : list of float, length C + 1
    """
    results = detections_to_coco(detections, coco_image_ids(dataset),
                                 dataset.contiguous_id_to_json, score_thresh)
    cat_ids = [dataset.contiguous_id_to_json[c] for c in range(len(class_names))]
    names, values = coco_evaluate(dataset.coco, results, class_names, cat_ids=cat_ids)
    n = len(class_names)
    return list(names[:n]) + ["mAP"], list(values[:n]) + [values[n]]
