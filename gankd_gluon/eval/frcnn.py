"""Evaluation of a Faster R-CNN (paper Table 3), through the same scoring as SSD's.

:func:`~gankd_gluon.eval.voc.get_eval_loader` resizes every image to one square size, as SSD
does. Faster R-CNN keeps the aspect ratio instead: GluonCV's ``FasterRCNNDefaultValTransform``
resizes the short side to ``short`` (long side at most ``max_size``), so images differ in size
and are run one at a time (GluonCV's ``validate`` batches with ``Append`` and gives each
device one image). Scoring is the project's: detections are clipped to the input image,
rescaled per axis to the original image and scored against the dataset's unresized labels
with GluonCV's VOC07 metric (:func:`~gankd_gluon.eval.voc.score_detections`, devkit tie
order) or, in ``eval_coco.py``, written as COCO results and scored with COCOeval
(:func:`predict_frcnn_dataset` gives the detections to both). GluonCV's ``validate``
rescales both axes by the height ratio instead; the two differ only by the rounding of the
resized width (below one input pixel).
"""
import warnings

import numpy as np
from mxnet import autograd, gluon

from .results import dataset_image_ids
from .voc import DetectionCollector, _check_outputs, _progress, score_detections

__all__ = ["FasterRCNNEvalTransform", "get_frcnn_eval_loader", "predict_frcnn",
           "predict_frcnn_dataset", "evaluate_frcnn"]


class FasterRCNNEvalTransform(object):
    """GluonCV's Faster R-CNN validation resize, plus what original-frame scoring needs.

    Parameters
    ----------
    short, max_size : int
        Short side and long-side cap of the network input (presets: 600, 1000).
    mean, std : sequence of 3 float
        Normalisation (GluonCV's).

    ``__call__(img (H, W, 3) uint8, label (M, 5|6))`` returns ``data`` (3, h, w) float32,
    ``orig_label`` (M, 6) float64 (0-based original pixels, difficult column added for COCO
    kinds; one all -1 row for an image without objects) and ``orig_size`` (2,) = (W, H).
    """

    def __init__(self, short=600, max_size=1000, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225)):
        self._short, self._max_size = short, max_size
        self._mean, self._std = mean, std

    def __call__(self, img, label):
        import mxnet as mx
        from gluoncv.data.transforms import image as timage
        label = np.asarray(label, dtype=np.float64)
        label = label.reshape(-1, label.shape[-1]) if label.size else np.full((1, 6), -1.0)
        if label.shape[1] == 5:
            label = np.concatenate([label, np.zeros((label.shape[0], 1))], axis=1)
        height, width = img.shape[:2]
        img = timage.resize_short_within(img, self._short, self._max_size, interp=1)
        data = mx.nd.image.normalize(mx.nd.image.to_tensor(img), mean=self._mean,
                                     std=self._std)
        return data, label, np.array([width, height], dtype=np.float64)


def get_frcnn_eval_loader(dataset, short=600, max_size=1000, num_workers=0):
    """Images one by one, in dataset order (``Append`` batchify, variable sizes).

    Returns
    -------
    gluon.data.DataLoader
        Batches ``(data, orig_label, orig_size)``, each a list of one array.
    """
    from gluoncv.data.batchify import Append, Tuple
    from ..data.loaders import DataLoader
    return DataLoader(
        dataset.transform(FasterRCNNEvalTransform(short, max_size)), 1, shuffle=False,
        last_batch="keep", batchify_fn=Tuple(Append(), Append(), Append()),
        num_workers=num_workers, thread_pool=False)


def predict_frcnn(net, loader, ctx_list, image_ids=None, progress=True):
    """Run a Faster R-CNN (inference mode) over :func:`get_frcnn_eval_loader`'s batches.

    Images go to the devices in turn; all of one round are sent before any result is read,
    so several devices work at once. Detections are kept, clipped and rescaled to original
    pixels as SSD's (:class:`~gankd_gluon.eval.voc.DetectionCollector`).

    Parameters
    ----------
    net : FasterRCNN or SymbolBlock
        ``net(x)`` with x (1, 3, h, w) returns ids, scores, boxes (1, K, 1|1|4), -1 padded.
    loader : DataLoader
    ctx_list : list of Context
    image_ids : list of str or None
    progress : bool

    Returns
    -------
    detections : DetectionSet (original pixels); ground_truth : GroundTruth
    """
    collected = DetectionCollector()
    pending = []
    bar = _progress(len(loader._dataset), progress)      # pylint: disable=protected-access

    def flush():
        for x, out, label, orig_size in pending:
            _check_outputs(out)
            ids, scores, boxes = [o.asnumpy()[0] for o in out]
            collected.add(ids, scores, boxes, label, (x.shape[3], x.shape[2]), orig_size)
            bar.update(1)
        del pending[:]

    with autograd.predict_mode():
        for data, orig_label, orig_size in loader:
            # Append() gives each item a batch axis of 1: x is (1, 3, h, w)
            n_seen = len(collected) + len(pending)
            x = data[0].as_in_context(ctx_list[n_seen % len(ctx_list)])
            pending.append((x, net(x), orig_label[0].asnumpy()[0], orig_size[0].asnumpy()[0]))
            if len(pending) == len(ctx_list):
                flush()
        flush()
    bar.close()
    return collected.result(image_ids)


def predict_frcnn_dataset(net, dataset, ctx_list, short=600, max_size=1000, num_workers=0,
                          progress=True):
    """Detections of a Faster R-CNN on every image of a dataset, in original-image pixels.

    What :func:`evaluate_frcnn` scores with the VOC metric and ``eval_coco.py`` with COCOeval.

    Parameters
    ----------
    net : FasterRCNN or SymbolBlock
        A GluonCV Faster R-CNN is traced again for inference here (a hybridized GluonCV
        detector first run in training mode keeps returning training outputs until
        ``hybridize()`` clears its cached graph: mxnet 1.9.1 ``mxnet/gluon/block.py``).
    dataset : detection dataset (untransformed), e.g. ``get_dataset(name, root, 'test')``
    ctx_list : list of Context
    short, max_size : int
        :class:`FasterRCNNEvalTransform`'s.
    num_workers : int
    progress : bool

    Returns
    -------
    detections : DetectionSet
        ``image_index`` is the dataset index; ``image_ids`` the dataset's
        (:func:`~gankd_gluon.eval.results.dataset_image_ids`).
    ground_truth : GroundTruth
    """
    loader = get_frcnn_eval_loader(dataset, short, max_size, num_workers)
    try:
        image_ids = dataset_image_ids(dataset)
    except (AttributeError, TypeError, ValueError):
        image_ids = None
    with warnings.catch_warnings():
        # a hybridize with the student's FeatureTap hook attached, and GluonCV's RCNN target
        # generator constants that inference does not use: both harmless
        warnings.simplefilter("ignore", UserWarning)
        if isinstance(net, gluon.HybridBlock) and not isinstance(net, gluon.SymbolBlock):
            net.hybridize()
            net._gankd_hybrid = None  # pylint: disable=protected-access; next step re-traces
        return predict_frcnn(net, loader, ctx_list, image_ids, progress)


def evaluate_frcnn(net, dataset, ctx_list, class_names, short=600, max_size=1000,
                   metric="voc07", num_workers=0, progress=True, collect=None):
    """VOC AP of a Faster R-CNN on a dataset (paper Table 3: VOC07 11-point, IoU 0.5).

    Parameters
    ----------
    net, dataset, ctx_list, short, max_size, num_workers, progress
        As :func:`predict_frcnn_dataset`.
    class_names : sequence of str
    metric : {'voc07', 'area'}
    collect : dict or None
        Filled with ``'detections'`` and ``'ground_truth'``.

    Returns
    -------
    names : list of str (classes + 'mAP'); values : list of float
    """
    detections, ground_truth = predict_frcnn_dataset(net, dataset, ctx_list, short, max_size,
                                                     num_workers, progress)
    if collect is not None:
        collect["detections"], collect["ground_truth"] = detections, ground_truth
    return score_detections(detections, ground_truth, class_names, metric)
