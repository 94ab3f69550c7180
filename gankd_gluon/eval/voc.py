"""VOC evaluation through GluonCV's metric: the numbers of the paper's Tables 1 and 3.

The metric is GluonCV's own (``gluoncv/utils/metrics/voc_detection.py``), not a re-derivation:
``VOC07MApMetric`` (``metric='voc07'``, the default: VOC2007 11-point AP at IoU >= 0.5 with +1
pixel box sizes, ``difficult`` objects ignored) or ``VOCMApMetric`` (``metric='area'``: area
under the precision envelope, VOC2010+). GluonCV's metric follows the devkit's ``VOCevaldet.m``
except in the order of tied scores; :func:`score_detections` fixes that order (see there).

Frames. GluonCV's ``train_ssd.py`` ``validate`` scores the boxes in the network's input frame
(the image resized to ``data_shape``) against ground truth resized the same way. Devkit result
files need original-image pixels, and ``eval_voc.py --save-detections`` followed by
``--detections`` must reproduce the in-loop numbers exactly, so :func:`evaluate_detector` scores
in the *original* frame: it rescales each image's predictions to that image's original size and
compares them with the dataset's unresized ground truth -- what the official devkit computes
from the saved files. The two frames differ by a per-axis scale; IoU is scale invariant except
for the +1 pixel in widths and heights, which is one input pixel in one frame and one original
pixel in the other, so a detection with an IoU very close to 0.5 can match in one frame and not
in the other. The APs therefore differ slightly, not systematically (on 100 generated images
with noisy ground-truth boxes, 1 run in 3 moved one class by 0.02 and mAP by 0.004; larger test
sets dilute it). Loaders of ``(data, label)`` batches (``get_ssd_val_loader``) still score in the
input frame, exactly as ``validate`` does.
"""
import json
import math
import os

import numpy as np
from mxnet import autograd, gluon

from ..logs.format import format_ap_lines   # the AP-line formatter of the log contract
from .results import DetectionSet, GroundTruth

__all__ = ["METRICS", "make_voc_metric", "score_detections", "EvalTransform", "get_eval_loader",
           "DetectionCollector", "predict_detections", "evaluate_detector",
           "format_ap_lines", "write_metric_json"]

#: ``--metric`` choices -> GluonCV metric class name
METRICS = {"voc07": "VOC07MApMetric", "area": "VOCMApMetric"}


def make_voc_metric(class_names, metric="voc07", iou_thresh=0.5):
    """GluonCV's VOC metric by name.

    Parameters
    ----------
    class_names : sequence of str, length C
    metric : {'voc07', 'area'}
        ``voc07``: ``VOC07MApMetric`` (11-point, the paper's metric); ``area``: ``VOCMApMetric``.
    iou_thresh : float
        A prediction matches when IoU >= this (0.5 in VOC).

    Returns
    -------
    gluoncv.utils.metrics.voc_detection.VOCMApMetric
    """
    from gluoncv.utils.metrics import voc_detection
    if metric not in METRICS:
        raise ValueError("unknown VOC metric %r, choose from %s" % (metric, sorted(METRICS)))
    return getattr(voc_detection, METRICS[metric])(iou_thresh=iou_thresh,
                                                   class_names=list(class_names))


def stable_rank_scores(labels, scores):
    """Replace scores by their stable descending rank within each class.

    Parameters
    ----------
    labels : np.ndarray of int, shape (K,)
    scores : np.ndarray of float, shape (K,)

    Returns
    -------
    np.ndarray of float64, shape (K,)
        Within each class, ``n_c`` for the first detection in stable descending score order,
        ``n_c - 1`` for the next, ..., 1 for the last: distinct, in the same order as the
        scores with ties kept in input order.
    """
    ranked = np.zeros(labels.shape[0], dtype=np.float64)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        order = idx[np.argsort(-scores[idx], kind="stable")]
        ranked[order] = np.arange(order.shape[0], 0, -1, dtype=np.float64)
    return ranked


def score_detections(detections, ground_truth, class_names, metric="voc07", iou_thresh=0.5):
    """Score detections against ground truth with GluonCV's VOC metric.

    Tied scores keep file order, as in the devkit, whose ``VOCevaldet.m`` sorts with MATLAB's
    stable ``sort(-confidence)``. GluonCV's metric sorts with ``argsort()[::-1]`` twice (per
    image in ``update`` and over all images in ``_recall_prec``); numpy's default sort is not
    stable and the reversal puts ties in reverse order, so fed raw scores it could rank tied
    detections differently from the devkit. AP depends on the scores only through that order,
    so the metric is fed, per class, the stable descending rank of each detection instead of
    its score (:func:`stable_rank_scores`): no ties remain, and both of GluonCV's sorts reproduce
    the devkit's order. Matching within an image (greedy, best-IoU ground truth, each
    non-difficult object matched once, difficult ones ignored) then runs in that order too.

    Parameters
    ----------
    detections : DetectionSet
        ``image_ids`` must be those of ``ground_truth`` (same list, same order).
    ground_truth : GroundTruth
    class_names : sequence of str, length C
    metric : {'voc07', 'area'}
    iou_thresh : float

    Returns
    -------
    names : list of str, length C + 1
        ``class_names + ['mAP']``.
    values : list of float, length C + 1
        Per-class AP (nan for a class without non-difficult ground truth) and their nan-mean.
    """
    if list(detections.image_ids) != list(ground_truth.image_ids):
        raise ValueError("detections and ground truth cover different image lists")
    num_classes = len(class_names)
    if len(detections) and (detections.labels.min() < 0 or detections.labels.max() >= num_classes):
        raise ValueError("detection class index outside [0, %d)" % num_classes)
    metric_obj = make_voc_metric(class_names, metric, iou_thresh)
    ranked = stable_rank_scores(detections.labels, detections.scores)
    # group detections by image, keeping file order inside each image
    by_image = np.argsort(detections.image_index, kind="stable")
    bounds = np.searchsorted(detections.image_index[by_image], np.arange(len(ground_truth) + 1))
    seen_any = False
    for i in range(len(ground_truth)):
        sel = by_image[bounds[i]:bounds[i + 1]]
        gt_labels = ground_truth.labels[i]
        if not (sel.size or gt_labels.size):
            continue
        seen_any = True
        metric_obj.update(detections.boxes[sel][None], detections.labels[sel][None].astype(np.float64),
                          ranked[sel][None], ground_truth.boxes[i][None],
                          gt_labels[None].astype(np.float64),
                          ground_truth.difficult[i][None].astype(np.float64))
    if not seen_any:
        # GluonCV's _recall_prec takes max() over an empty dict here
        return list(class_names) + ["mAP"], [float("nan")] * (num_classes + 1)
    names, values = metric_obj.get()
    return list(names), [float(v) for v in values]


class EvalTransform(object):
    """SSD validation transform that also hands on what original-frame scoring needs.

    Wraps GluonCV's ``SSDDefaultValTransform`` (resize to ``width`` x ``height``, to tensor,
    normalise) and also returns the unresized label and the original image size.

    Parameters
    ----------
    width, height : int
        Network input size.

    Returns (when called with ``img`` (H, W, 3) uint8 NDArray and ``label`` (M, 5|6))
    -------------------------------------------------------------------------------
    data : NDArray, (3, height, width)
    label : np.ndarray, (M, 6)
        Resized label ``[x1, y1, x2, y2, cls, difficult]`` (float32), as the GluonCV transform.
    orig_label : np.ndarray, (M, 6)
        The dataset's label (float64), 0-based original pixels.
    orig_size : np.ndarray, (2,)
        ``(width, height)`` of the original image.
    """

    def __init__(self, width, height):
        from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
        self._transform = SSDDefaultValTransform(width, height)

    def __call__(self, img, label):
        label = np.asarray(label, dtype=np.float64)
        # VOCDetection returns np.array([]) (shape (0,)) for an image without objects
        label = label.reshape(-1, label.shape[-1]) if label.size else np.zeros((0, 6))
        if label.shape[1] == 5:  # COCO labels have no difficult column
            label = np.concatenate([label, np.zeros((label.shape[0], 1))], axis=1)
        height, width = img.shape[:2]
        data, resized = self._transform(img, label)
        if not label.shape[0]:
            # one all -1 row (dropped as padding later): MXNet 1.x cannot batch 0-row arrays
            label = np.full((1, 6), -1.0)
            resized = label.astype(resized.dtype)
        return data, resized, label, np.array([width, height], dtype=np.float64)


def get_eval_loader(dataset, data_shape, batch_size, num_workers=0):
    """Loader for :func:`evaluate_detector` scoring in the original frame.

    Parameters
    ----------
    dataset : GluonCV detection dataset (untransformed)
    data_shape : int or (int, int)
        Network input size, ``S`` or ``(W, H)`` (as ``gankd_gluon.data.loaders``).
    batch_size, num_workers : int

    Returns
    -------
    mxnet.gluon.data.DataLoader
        In dataset order, all images kept. Batches ``(data (B, 3, H, W), label (B, M, 6),
        orig_label (B, M', 6), orig_size (B, 2))``, labels padded with -1.
    """
    from gluoncv.data.batchify import Pad, Stack, Tuple
    width, height = (data_shape, data_shape) if np.isscalar(data_shape) else data_shape
    batchify = Tuple(Stack(), Pad(pad_val=-1), Pad(pad_val=-1), Stack())
    from ..data.loaders import DataLoader
    return DataLoader(
        dataset.transform(EvalTransform(int(width), int(height))), batch_size, shuffle=False,
        last_batch="keep", batchify_fn=batchify, num_workers=num_workers, thread_pool=False)


def _prepare_for_inference(net, nms_thresh, nms_topk, post_nms):
    """Make sure a hybridized net is traced again in inference mode.

    A hybridized SSD first run in train mode keeps returning its training outputs
    (mxnet 1.9.1 ``mxnet/gluon/block.py``: the cached graph keeps the traced mode).
    ``set_nms`` (gluoncv 0.10.5 ``gluoncv/model_zoo/ssd/ssd.py``) clears it, as ``validate`` in
    GluonCV's ``train_ssd.py`` does with the same NMS settings.
    """
    if hasattr(net, "set_nms"):
        net.set_nms(nms_thresh=nms_thresh, nms_topk=nms_topk, post_nms=post_nms)
    elif isinstance(net, gluon.HybridBlock) and not isinstance(net, gluon.SymbolBlock):
        net._clear_cached_op()  # pylint: disable=protected-access


def _check_outputs(outputs):
    """Raise a clear error unless ``outputs`` look like detector inference outputs."""
    ok = isinstance(outputs, (list, tuple)) and len(outputs) == 3
    if ok:
        ids, scores, bboxes = outputs
        ok = (ids.ndim == 3 and ids.shape[-1] == 1 and scores.shape == ids.shape
              and bboxes.shape[:2] == ids.shape[:2] and bboxes.shape[-1] == 4)
    if not ok:
        shapes = [getattr(o, "shape", None) for o in outputs] if isinstance(
            outputs, (list, tuple)) else getattr(outputs, "shape", None)
        raise RuntimeError(
            "the detector returned %s, not detector inference outputs (ids (B,K,1), scores "
            "(B,K,1), boxes (B,K,4)); a network traced or exported in training mode gives its "
            "training outputs (an SSD: cls_preds, box_preds, anchors): hybridize/export it after "
            "a forward pass outside autograd.record()" % (shapes,))


def _progress(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, unit="img", desc="evaluating", disable=not enabled, leave=False)


class DetectionCollector(object):
    """Detections and ground truth of one pass over a loader, image by image.

    What the SSD loop (:func:`predict_detections`) and the Faster R-CNN loop
    (:func:`~gankd_gluon.eval.frcnn.predict_frcnn`) share: valid detections kept, boxes clipped
    to the network input and, when the original size is known, rescaled per axis to original
    pixels; the labels' padding rows dropped.
    """

    def __init__(self):
        self.parts, self.sizes = [], []
        self.gt_boxes, self.gt_labels, self.gt_difficult = [], [], []

    def __len__(self):
        return len(self.gt_boxes)

    def add(self, ids, scores, boxes, label, in_size, orig_size=None):
        """Add one image.

        Parameters
        ----------
        ids, scores : np.ndarray, (K, 1)
            Network outputs for the image; ``ids < 0`` is padding.
        boxes : np.ndarray, (K, 4)
            Corner boxes in input pixels.
        label : np.ndarray, (M, 5|6)
            Ground truth ``[x1, y1, x2, y2, cls(, difficult)]``; rows with ``cls < 0`` are
            padding. In the original frame when ``orig_size`` is given, else the input frame.
        in_size : (int, int)
            ``(width, height)`` of the network input.
        orig_size : (float, float) or None
            ``(width, height)`` of the original image: boxes are rescaled to it.
        """
        in_w, in_h = in_size
        keep = ids[:, 0] >= 0
        box = boxes[keep].astype(np.float64)
        # clip to the input image as validate() does (bboxes.clip(0, data_shape)) and
        # GluonCV's BBoxClipToImage for Faster R-CNN ([0, w] x [0, h])
        box[:, 0::2] = np.clip(box[:, 0::2], 0, in_w)
        box[:, 1::2] = np.clip(box[:, 1::2], 0, in_h)
        if orig_size is not None:
            width, height = orig_size
            box[:, 0::2] *= width / in_w
            box[:, 1::2] *= height / in_h
            # the devkit file stores box + 1 exactly (repr); reading it back subtracts 1.
            # Doing the same round trip here keeps both paths bit-identical.
            box = (box + 1.0) - 1.0
            self.sizes.append((float(width), float(height)))
        self.parts.append((np.full(box.shape[0], len(self)), ids[keep, 0].astype(np.int64),
                           scores[keep, 0].astype(np.float64), box))
        lab = np.asarray(label, dtype=np.float64)
        lab = lab[lab[:, 4] >= 0]
        self.gt_boxes.append(lab[:, :4])
        self.gt_labels.append(lab[:, 4])
        self.gt_difficult.append(lab[:, 5] if lab.shape[1] > 5 else np.zeros(lab.shape[0]))

    def result(self, image_ids=None):
        """``(DetectionSet, GroundTruth)`` over ``image_ids`` (default: ``'0'``, ``'1'``, ...)."""
        if image_ids is None:
            image_ids = [str(i) for i in range(len(self))]
        if len(image_ids) != len(self):
            raise ValueError("%d image ids for %d images from the loader"
                             % (len(image_ids), len(self)))
        ground_truth = GroundTruth(image_ids, self.gt_boxes, self.gt_labels, self.gt_difficult,
                                   sizes=self.sizes or None)
        return DetectionSet.concatenate(image_ids, self.parts), ground_truth


def predict_detections(net, val_loader, ctx_list, image_ids=None, num_images=None, progress=True,
                       nms_thresh=0.45, nms_topk=400, post_nms=100):
    """Run a detector over a loader; collect its detections and the ground truth.

    Parameters
    ----------
    net : gluon.Block
        ``net(x)`` with x (B, 3, H, W) returns ``ids (B, K, 1), scores (B, K, 1), boxes (B, K, 4)``
        in input pixels, -1 ids for padding (a GluonCV SSD in inference mode).
    val_loader : DataLoader
        Sequential, every image once. Batches of 4 (:func:`get_eval_loader`): predictions are
        clipped to the input image, rescaled to the original size and compared with the
        original labels. Batches of 2 (``(data, label)``, ``get_ssd_val_loader``): everything
        stays in the input frame, as GluonCV's ``validate``.
    ctx_list : list of mx.Context
        Each batch is split over these (``split_and_load``).
    image_ids : list of str, optional
        Ids of the loader's images in order (default: their index).
    num_images : int, optional
        Progress-bar total (default: the loader's dataset length, when it has one).
    progress : bool
        Show a tqdm bar over images.
    nms_thresh, nms_topk, post_nms : float, int, int
        Passed to ``net.set_nms`` when the net has it (values of GluonCV's ``validate``).

    Returns
    -------
    detections : DetectionSet
        Original-frame boxes for 4-element batches, input-frame boxes otherwise.
    ground_truth : GroundTruth
    """
    if num_images is None:
        dataset = getattr(val_loader, "_dataset", None)
        num_images = len(dataset) if dataset is not None else None
    _prepare_for_inference(net, nms_thresh, nms_topk, post_nms)
    collected = DetectionCollector()
    bar = _progress(num_images, progress)
    with autograd.predict_mode():
        for batch in val_loader:
            if len(batch) not in (2, 4):
                raise ValueError("loader batches must be (data, label) or (data, label, "
                                 "orig_label, orig_size), got %d elements" % len(batch))
            original = len(batch) == 4
            # a last batch smaller than the device count: split_and_load would make empty
            # slices, which MXNet cannot copy
            devices = ctx_list[:max(1, min(len(ctx_list), batch[0].shape[0]))]
            data = gluon.utils.split_and_load(batch[0], ctx_list=devices, batch_axis=0,
                                              even_split=False)
            in_size = (batch[0].shape[3], batch[0].shape[2])
            labels = (batch[2] if original else batch[1]).asnumpy().astype(np.float64)
            orig_sizes = batch[3].asnumpy() if original else None
            outputs = []
            for x in data:
                out = net(x)
                _check_outputs(out)
                outputs.append([o.asnumpy() for o in out])
            ids = np.concatenate([o[0] for o in outputs], axis=0)
            scores = np.concatenate([o[1] for o in outputs], axis=0)
            bboxes = np.concatenate([o[2] for o in outputs], axis=0)
            for j in range(ids.shape[0]):
                collected.add(ids[j], scores[j], bboxes[j], labels[j], in_size,
                              orig_sizes[j] if original else None)
            bar.update(ids.shape[0])
    bar.close()
    return collected.result(image_ids)


def evaluate_detector(net, val_loader, ctx_list, class_names, metric="voc07", progress=True,
                      collect=None, image_ids=None, num_images=None, nms_thresh=0.45,
                      nms_topk=400, post_nms=100):
    """Evaluate a detector on a loader with GluonCV's VOC metric.

    With :func:`get_eval_loader` the boxes are scored in original-image pixels (see the module
    docstring), which is what ``--save-detections`` writes, so re-scoring the saved files
    gives the same APs. Tied scores keep image order, then the network's output order
    (:func:`score_detections`).

    Parameters
    ----------
    net, val_loader, ctx_list, image_ids, num_images, progress, nms_thresh, nms_topk, post_nms
        As :func:`predict_detections`.
    class_names : sequence of str, length C
    metric : {'voc07', 'area'}
    collect : dict, optional
        Filled with ``'detections'`` (DetectionSet) and ``'ground_truth'`` (GroundTruth).

    Returns
    -------
    names : list of str, length C + 1
        ``class_names + ['mAP']``
    values : list of float, length C + 1
    """
    detections, ground_truth = predict_detections(
        net, val_loader, ctx_list, image_ids=image_ids, num_images=num_images, progress=progress,
        nms_thresh=nms_thresh, nms_topk=nms_topk, post_nms=post_nms)
    if collect is not None:
        collect["detections"] = detections
        collect["ground_truth"] = ground_truth
    return score_detections(detections, ground_truth, class_names, metric)


def write_metric_json(path, names, values, **extra):
    """Write ``{"metric": ..., "ap": {name: value}, ...extra}`` to ``path``; nan becomes null.

    Parameters
    ----------
    path : str
    names : list of str
    values : list of float
    **extra
        Further top-level keys (e.g. ``metric='voc07'``, ``dataset='voc'``).
    """
    def clean(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        return 1.0 if 1.0 < v <= 1.0 + 1e-9 else v     # 1.0000000000000002: rounding only
    payload = dict(extra)
    payload["ap"] = {k: clean(float(v)) for k, v in zip(names, values)}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=False)
        f.write("\n")
