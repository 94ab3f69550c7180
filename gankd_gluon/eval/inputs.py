"""How images reach an evaluated network, chosen from the network (eval_voc.py, eval_coco.py).

- SSD (``ssd_*`` zoo names, exports with GluonCV's SSD anchor generators, and any network the
  flags cannot tell): every image resized to a square ``--data-shape`` (default 512, SSD512 as
  in the paper), ``--batch-size`` images per batch (:func:`~gankd_gluon.eval.voc.get_eval_loader`),
  NMS set to ``--nms-*`` (default: ``validate`` in GluonCV's ``train_ssd.py``);
- Faster R-CNN (:func:`~gankd_gluon.eval.detector.detector_kind`: ``faster_rcnn_*`` zoo names,
  exports with RoI pooling/RoIAlign, ``--checkpoint`` manifests): GluonCV's
  ``FasterRCNNDefaultValTransform``, short side ``--short``, long side at most ``--max-size``
  (default a checkpoint's own sizes, else GluonCV's 600/1000), one image per device
  (:mod:`~gankd_gluon.eval.frcnn`); the network keeps its own NMS unless ``--nms-*`` is given.

:func:`add_input_args` adds the flags, :func:`input_mode` picks the mode and sizes (a flag of the
other kind is one ``error:`` line, before any file is read), :func:`predict_dataset` runs the
network and returns its detections in original-image pixels, which each script scores its own
way (GluonCV's VOC metric, or COCOeval).
"""
import argparse
import sys

from ..usage import UsageError, check_devices, positive_int, unit_interval
from ..models.faster_rcnn import ZOO_SETTINGS
from ..models.export_meta import check_against
from .detector import FASTER_RCNN, SSD, detector_kind, model_meta, read_checkpoint_manifest

__all__ = ["SSD_DATA_SHAPE", "FRCNN_SHORT", "FRCNN_MAX_SIZE", "SSD_NMS", "add_input_args",
           "input_mode", "set_frcnn_nms", "predict_dataset", "check_eval_args", "topk"]

#: SSD input side when --data-shape is not given: SSD512, the paper's
SSD_DATA_SHAPE = 512
#: Faster R-CNN input when --short/--max-size are not given: GluonCV's
#: FasterRCNNDefaultValTransform(short=600, max_size=1000) (data/transforms/presets/rcnn.py),
#: the faster_rcnn_*_voc presets' short=600, max_size=1000 (predefined_models.py; the *_coco
#: presets use 800/1333: pass them for a zoo COCO Faster R-CNN)
FRCNN_SHORT, FRCNN_MAX_SIZE = ZOO_SETTINGS["short"], ZOO_SETTINGS["max_size"]
#: SSD NMS when --nms-* are not given: validate() in GluonCV's train_ssd.py,
#: net.set_nms(nms_thresh=0.45, nms_topk=400), and SSD's post_nms=100
SSD_NMS = {"nms_thresh": 0.45, "nms_topk": 400, "post_nms": 100}


def topk(value):
    """A count of boxes: at least 1, or -1 for all (GluonCV's ``set_nms`` convention)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % value) from None
    if number < 1 and number != -1:
        raise argparse.ArgumentTypeError("%s: must be at least 1, or -1 for all" % value)
    return number


def check_eval_args(args, metric):
    """Refuse evaluation arguments that cannot work, before any file is read or written.

    Parameters
    ----------
    args : argparse.Namespace
        ``eval_voc.py`` / ``eval_coco.py`` arguments.
    metric : {'voc', 'coco'}
        What the script scores.

    Raises
    ------
    UsageError
        A ``--dataset`` the other script scores, ``--save-detections`` without a network,
        ``--gpus`` naming GPUs the machine lacks.
    """
    from ..data.datasets import dataset_metric_kind
    if dataset_metric_kind(args.dataset) != metric:
        raise UsageError("--dataset %s is scored with %s: use scripts/%s"
                         % (args.dataset, "COCO AP" if metric == "voc" else "the VOC metric",
                            "eval_coco.py" if metric == "voc" else "eval_voc.py"))
    if args.detections and args.save_detections:
        raise UsageError("--save-detections needs a network (--network, --symbol or "
                         "--checkpoint)")
    check_devices(args)


def add_input_args(parser):
    """Add ``--data-shape``, ``--short``, ``--max-size``, ``--batch-size`` and ``--nms-*``.

    All default to None; :func:`input_mode` and :func:`predict_dataset` fill in the defaults of
    the network's kind.
    """
    parser.add_argument("--data-shape", type=positive_int, default=None,
                        help="SSD: square network input size (default %d, SSD512 as in the "
                             "paper); not for a Faster R-CNN" % SSD_DATA_SHAPE)
    parser.add_argument("--short", type=positive_int, default=None,
                        help="Faster R-CNN: input short side (default: a --checkpoint's own, "
                             "else %d, GluonCV's); not for an SSD" % FRCNN_SHORT)
    parser.add_argument("--max-size", type=positive_int, default=None,
                        help="Faster R-CNN: input long-side cap (default: a --checkpoint's own, "
                             "else %d, GluonCV's); not for an SSD" % FRCNN_MAX_SIZE)
    parser.add_argument("--batch-size", type=positive_int, default=8,
                        help="SSD: images per batch (a Faster R-CNN runs one image per device, "
                             "as GluonCV)")
    parser.add_argument("--nms-thresh", type=unit_interval, default=None,
                        help="NMS IoU threshold set with set_nms: SSD default %.2f as "
                             "train_ssd.py; a Faster R-CNN keeps its own (presets: 0.3) unless "
                             "given" % SSD_NMS["nms_thresh"])
    parser.add_argument("--nms-topk", type=topk, default=None,
                        help="boxes entering NMS (SSD default %d; -1 all)" % SSD_NMS["nms_topk"])
    parser.add_argument("--post-nms", type=topk, default=None,
                        help="detections kept per image (SSD default %d; -1 all)"
                             % SSD_NMS["post_nms"])
    parser.add_argument("--override-meta", action="store_true",
                        help="run an SSD export or checkpoint at a --data-shape, or any on "
                             "classes, other than its own (its -meta.json or run arguments); "
                             "without it a disagreeing flag is refused. A Faster R-CNN's own "
                             "--short/--max-size are defaults only")


def _source(args):
    """The network as the command line names it, for messages."""
    for flag in ("network", "symbol", "checkpoint"):
        if getattr(args, flag, None):
            return "--%s %s" % (flag, getattr(args, flag))
    return "the network"


def input_mode(args, classes=None, classes_from="the data has", fix=None):
    """How images reach the network: SSD's square resize or Faster R-CNN's short-side resize.

    An export with a ``-meta.json`` and a training checkpoint know their own input size and
    classes (:func:`~gankd_gluon.eval.detector.model_meta`): they are the defaults, and
    ``classes`` or an SSD's ``--data-shape`` that disagrees is refused unless
    ``--override-meta`` (a Faster R-CNN's short-side resize fits any ``--short``).

    Parameters
    ----------
    args : argparse.Namespace
        The detector flags (:func:`~gankd_gluon.eval.detector.add_detector_args`) and
        :func:`add_input_args`'s.
    classes : sequence of str, optional
        The classes of the data the network will be run on.
    classes_from : str
        Where ``classes`` come from, for the message (``'the data has'``, ``'--classes
        names'``).
    fix : str or None
        What to do about other classes, for the message (:func:`check_against`).

    Returns
    -------
    ('ssd', {'data_shape': S}) or ('faster_rcnn', {'short': S, 'max_size': M})
        ``(None, {})`` for ``--detections`` (no network).

    Raises
    ------
    UsageError
        ``--data-shape`` for a Faster R-CNN, ``--short``/``--max-size`` for an SSD, or both
        kinds of flag for a network the flags cannot tell.
    ExportMetaError
        A size or ``classes`` other than the model's own, without ``--override-meta``.
    """
    if getattr(args, "detections", None):
        return None, {}
    kind = detector_kind(args)
    frcnn_flags = [f for f, v in (("--short", args.short), ("--max-size", args.max_size))
                   if v is not None]
    # a checkpoint was validated at its run's sizes: by default the same sizes, the same numbers
    run = {}
    if kind == FASTER_RCNN and getattr(args, "checkpoint", None):
        run = read_checkpoint_manifest(args.checkpoint)["args"]
    short, max_size = run.get("short", FRCNN_SHORT), run.get("max_size", FRCNN_MAX_SIZE)
    if kind == FASTER_RCNN and args.data_shape is not None:
        raise UsageError("--data-shape is for SSD's square resize; %s is a Faster R-CNN, "
                         "resized by its short side: use --short/--max-size (default %d/%d, %s)"
                         % (_source(args), short, max_size, "the run's" if run else "GluonCV's"))
    if kind == SSD and frcnn_flags:
        raise UsageError("%s is for Faster R-CNN's short-side resize; %s is an SSD, "
                         "resized to a square: use --data-shape (default %d)"
                         % ("/".join(frcnn_flags), _source(args), SSD_DATA_SHAPE))
    if frcnn_flags and args.data_shape is not None:
        raise UsageError("--data-shape (square resize) and %s (short-side resize) "
                         "exclude each other" % "/".join(frcnn_flags))
    meta = model_meta(args)
    if meta is not None:
        override = getattr(args, "override_meta", False)
        if meta["kind"] == FASTER_RCNN:
            # a short-side resize fits any size: the model's are defaults, other sizes allowed
            check_against(meta, _source(args), classes, override, classes_from, fix)
            given = {"short": args.short, "max_size": args.max_size}
            return FASTER_RCNN, check_against(meta, _source(args), None, True, **given)
        return SSD, check_against(meta, _source(args), classes, override, classes_from, fix,
                                  data_shape=args.data_shape)
    if kind == FASTER_RCNN or (kind is None and frcnn_flags):
        return FASTER_RCNN, {"short": short if args.short is None else args.short,
                             "max_size": max_size if args.max_size is None else args.max_size}
    if args.data_shape is None and getattr(args, "symbol", None):
        print("warning: --symbol %s has no -meta.json saying its input size: evaluating at "
              "--data-shape %d; pass the size it was trained at" % (args.symbol, SSD_DATA_SHAPE),
              file=sys.stderr)
    return SSD, {"data_shape": args.data_shape or SSD_DATA_SHAPE}


def set_frcnn_nms(net, args):
    """Apply the --nms-* flags given to a Faster R-CNN; without them it keeps its own NMS (the
    presets' 0.3 / 400 / 100, which GluonCV's train_faster_rcnn.py validates with)."""
    given = {k: getattr(args, k) for k in SSD_NMS if getattr(args, k) is not None}
    if not given:
        return
    if not hasattr(net, "set_nms"):
        raise UsageError("--%s: the NMS of an exported network is fixed in its symbol"
                         % sorted(given)[0].replace("_", "-"))
    settings = {k: getattr(net, k) for k in SSD_NMS}
    settings.update(given)
    net.set_nms(force_nms=net.force_nms, **settings)


def predict_dataset(net, dataset, ctx_list, mode, sizes, args):
    """Run the network over every image of a dataset the way its kind is fed.

    Parameters
    ----------
    net : gluon.Block
        A detector in inference form (``load_detector``).
    dataset : GluonCV detection dataset (untransformed), in its index order
    ctx_list : list of mx.Context
    mode, sizes
        :func:`input_mode`'s result.
    args : argparse.Namespace
        ``batch_size``, ``num_workers``, ``no_progress`` and the ``--nms-*`` flags.

    Returns
    -------
    detections : DetectionSet
        Boxes clipped to the network input and rescaled per axis to original-image pixels;
        ``image_index`` is the dataset index.
    ground_truth : GroundTruth
        The dataset's unresized labels.
    """
    from .frcnn import predict_frcnn_dataset
    from .results import dataset_image_ids
    from .voc import get_eval_loader, predict_detections
    progress = not args.no_progress
    if mode == FASTER_RCNN:
        set_frcnn_nms(net, args)
        print("Faster R-CNN: short side %(short)d, long side at most %(max_size)d, one image "
              "per device" % sizes, file=sys.stderr)
        return predict_frcnn_dataset(net, dataset, ctx_list, num_workers=args.num_workers,
                                     progress=progress, **sizes)
    loader = get_eval_loader(dataset, sizes["data_shape"], args.batch_size, args.num_workers)
    nms = {k: v if getattr(args, k) is None else getattr(args, k) for k, v in SSD_NMS.items()}
    return predict_detections(net, loader, ctx_list, image_ids=dataset_image_ids(dataset),
                              num_images=len(dataset), progress=progress, **nms)
