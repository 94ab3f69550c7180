"""Run a trained detector on one's own images (``scripts/detect.py``).

Images reach the network as in the evaluation scripts, through the same transforms and the same
clipping and per-axis rescaling to original pixels (:class:`~gankd_gluon.eval.voc.EvalTransform`
for an SSD, :class:`~gankd_gluon.eval.frcnn.FasterRCNNEvalTransform` for a Faster R-CNN,
:class:`~gankd_gluon.eval.voc.DetectionCollector`), so its boxes are the ones ``eval_voc.py``
scores. The model's kind, classes and input size come from its ``-meta.json`` (an export) or
its run's arguments (a checkpoint manifest).
"""
import glob
import os
import sys

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "expand_inputs", "model_source", "Detector", "draw_detections",
           "output_names", "say"]

#: files a folder input contributes (case-insensitive)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def expand_inputs(inputs):
    """Image paths of the command line's inputs: files as given, folders' images sorted by name,
    glob patterns' matches sorted.

    Parameters
    ----------
    inputs : list of str

    Returns
    -------
    paths : list of str
        In the order given, each path once.
    errors : list of str
        One message per input that names no image.
    """
    paths, errors, seen = [], [], set()
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item)
                           if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                errors.append("%s: a folder without images (%s)" % (item,
                                                                    ", ".join(IMAGE_EXTENSIONS)))
        elif os.path.isfile(item):
            found = [item]
        elif glob.has_magic(item):
            found = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not found:
                errors.append("%s: no file matches this pattern" % item)
        else:
            found = []
            errors.append("%s: no such file or folder" % item)
        for path in found:
            if path not in seen:
                seen.add(path)
                paths.append(path)
    return paths, errors


def model_source(model):
    """``--symbol``/``--checkpoint`` flags of :func:`~gankd_gluon.eval.detector.load_detector`
    for a MODEL argument: a checkpoint manifest (``<run>-<tag>.json``) or an export (its prefix,
    or any of its files)."""
    import argparse
    from ..models.export_meta import export_prefix
    ns = argparse.Namespace(network=None, params=None, symbol=None, checkpoint=None,
                            detections=None)
    if model.endswith(".json") and not model.endswith(("-symbol.json", "-meta.json")):
        ns.checkpoint = model
    else:
        ns.symbol = export_prefix(model)
    return ns


class Detector(object):
    """A loaded detector that takes one image at a time.

    Parameters
    ----------
    net : gluon.Block
        In inference form (:func:`~gankd_gluon.eval.detector.load_detector`).
    mode : {'ssd', 'faster_rcnn'}
    sizes : dict
        ``{'data_shape': S}`` or ``{'short': S, 'max_size': M}``.
    ctx : mx.Context
    """

    def __init__(self, net, mode, sizes, ctx):
        from .inputs import SSD_NMS
        from .voc import EvalTransform, _prepare_for_inference
        from .frcnn import FasterRCNNEvalTransform
        self.net, self.ctx = net, ctx
        if mode == "faster_rcnn":
            self.transform = FasterRCNNEvalTransform(sizes["short"], sizes["max_size"])
        else:
            self.transform = EvalTransform(sizes["data_shape"], sizes["data_shape"])
            _prepare_for_inference(net, **SSD_NMS)
        self.mode = mode

    def __call__(self, img):
        """Detections on one image.

        Parameters
        ----------
        img : NDArray, (H, W, 3) uint8 RGB

        Returns
        -------
        boxes : np.ndarray, (K, 4)
            ``[x1, y1, x2, y2]`` in original-image pixels (0-based), clipped to the image.
        class_ids : np.ndarray, (K,) int
        scores : np.ndarray, (K,)
            Highest first, as the network orders them.
        """
        from mxnet import autograd
        from .voc import DetectionCollector, _check_outputs
        empty = np.full((1, 6), -1.0)
        out = self.transform(img, empty)
        data, orig_size = out[0], out[-1]
        x = data.expand_dims(0).as_in_context(self.ctx)
        with autograd.predict_mode():
            outputs = self.net(x)
        _check_outputs(outputs)
        ids, scores, boxes = [o.asnumpy()[0] for o in outputs]
        collected = DetectionCollector()
        collected.add(ids, scores, boxes, empty, (x.shape[3], x.shape[2]), orig_size)
        detections, _ = collected.result()
        boxes, labels, scores = detections.for_image(0)
        return boxes, labels, scores


def draw_detections(path, img, boxes, class_ids, scores, class_names):
    """Save ``img`` with its boxes drawn by GluonCV's ``plot_bbox`` (class name and score on
    each box) as a PNG at ``path``.

    Parameters
    ----------
    img : np.ndarray, (H, W, 3) uint8
    boxes : np.ndarray, (K, 4) original pixels
    class_ids, scores : np.ndarray, (K,)
    class_names : list of str
    """
    from gluoncv.utils.viz import plot_bbox
    from ..logs.plots import new_figure
    height, width = img.shape[:2]
    dpi = 100.0
    # at least 640 px wide, so that labels stay readable on small images
    scale = max(1.0, 640.0 / width)
    fig = new_figure(width * scale / dpi, height * scale / dpi, dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    plot_bbox(img, boxes, scores=scores, labels=class_ids, thresh=0.0, class_names=class_names,
              ax=ax, linewidth=2.0, fontsize=10)
    ax.axis("off")
    fig.savefig(path, dpi=dpi)


def output_names(paths):
    """``<image name>.png`` for each path; repeated names get ``_2``, ``_3``, ... appended."""
    names, used = [], {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        used[stem] = used.get(stem, 0) + 1
        names.append(stem + (".png" if used[stem] == 1 else "_%d.png" % used[stem]))
    return names


def say(message):
    print(message, file=sys.stderr)
