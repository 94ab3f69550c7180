"""Evaluate a detector on VOC2007 test (or the generated set) with GluonCV's VOC07 metric.

The metric is GluonCV's ``VOC07MApMetric`` (11-point AP at IoU >= 0.5, +1 pixel box sizes,
``difficult`` objects ignored), the one behind the paper's VOC numbers; ``--metric area`` is
``VOCMApMetric`` (VOC2010+). Ties in score keep file order, as the devkit's stable sort does.
Boxes are scored in original-image pixels (see ``gankd_gluon/eval/voc.py``), so
``--save-detections DIR`` followed by ``--detections DIR`` gives the same APs.

Two ways of feeding images to the network, chosen from the network:

- SSD (``ssd_*`` zoo names, exports with GluonCV's SSD anchor generators such as the
  ``<run>-best-student`` of ``train_ssd_gan_kd.py``, and any network the flags cannot tell):
  every image resized to a square ``--data-shape`` (default 512, SSD512 as in the paper),
  ``--batch-size`` images per batch;
- Faster R-CNN (``faster_rcnn_*`` zoo names, exports with RoI pooling/RoIAlign, the
  ``--checkpoint`` of ``train_faster_rcnn.py`` / ``train_faster_rcnn_gan_kd.py``): GluonCV's
  ``FasterRCNNDefaultValTransform``, short side ``--short`` and long side at most ``--max-size``
  (default 600 and 1000, or a checkpoint's own), one image per device
  (``gankd_gluon/eval/frcnn.py``). ``--short``/``--max-size`` also choose it for a network
  the flags cannot tell.

Examples::

    # a GluonCV model-zoo SSD with local weights, on VOC2007 test
    python scripts/eval_voc.py --network ssd_512_mobilenet1.0_voc --params ssd.params --gpus 0
    # an exported detector (HybridBlock.export) on the generated set, saving devkit files
    python scripts/eval_voc.py --dataset synthetic --dataset-root DIR --symbol out/student \\
        --data-shape 256 --save-detections dets/ --out ap.json
    # a Faster R-CNN: a zoo network, a training checkpoint, or its export
    python scripts/eval_voc.py --network faster_rcnn_resnet50_v1b_voc --params frcnn.params
    python scripts/eval_voc.py --checkpoint checkpoints/<run>/<run>-best.json
    python scripts/eval_voc.py --symbol checkpoints/<run>/<run>-best-student --short 600
    # score devkit result files (comp4_det_test_<class>.txt) without a network
    python scripts/eval_voc.py --dataset synthetic --dataset-root DIR --detections dets/

Output: one ``classname=AP`` line per class and ``mAP=x``, as the validation blocks of the
published logs; ``--out`` writes the same numbers as JSON.
"""
import argparse
import sys
import time

import mxnet as mx

from gankd_gluon.data.datasets import (add_dataset_args, dataset_classes, dataset_metric_kind,
                                       get_dataset)
from gankd_gluon.eval import (add_detector_args, dataset_ground_truth, dataset_image_ids,
                              evaluate_detector, format_ap_lines, get_eval_loader, load_detector,
                              score_devkit_dir, write_devkit_detections, write_metric_json)
from gankd_gluon.eval.detector import FASTER_RCNN, SSD, detector_kind, read_checkpoint_manifest
from gankd_gluon.eval.frcnn import evaluate_frcnn
from gankd_gluon.eval.voc import METRICS
from gankd_gluon.models.faster_rcnn import ZOO_SETTINGS

#: SSD input side when --data-shape is not given: SSD512, the paper's
SSD_DATA_SHAPE = 512
#: Faster R-CNN input when --short/--max-size are not given: GluonCV's
#: FasterRCNNDefaultValTransform(short=600, max_size=1000) (data/transforms/presets/rcnn.py),
#: the faster_rcnn_*_voc presets' short=600, max_size=1000 (predefined_models.py)
FRCNN_SHORT, FRCNN_MAX_SIZE = ZOO_SETTINGS["short"], ZOO_SETTINGS["max_size"]
#: SSD NMS when --nms-* are not given: validate() in GluonCV's train_ssd.py,
#: net.set_nms(nms_thresh=0.45, nms_topk=400), and SSD's post_nms=100
SSD_NMS = {"nms_thresh": 0.45, "nms_topk": 400, "post_nms": 100}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="VOC evaluation (GluonCV VOC07MApMetric) of a detector or of devkit result "
                    "files.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_dataset_args(parser)
    add_detector_args(parser, checkpoint=True,
                      detections_help="directory of devkit result files "
                                      "comp4_det_test_<class>.txt (lines 'image_id "
                                      "score xmin ymin xmax ymax', 1-based pixels) to "
                                      "score instead of running a network")
    parser.add_argument("--data-shape", type=int, default=None,
                        help="SSD: square network input size (default %d, SSD512 as in the "
                             "paper); not for a Faster R-CNN" % SSD_DATA_SHAPE)
    parser.add_argument("--short", type=int, default=None,
                        help="Faster R-CNN: input short side (default: a --checkpoint's own, "
                             "else %d, GluonCV's); not for an SSD" % FRCNN_SHORT)
    parser.add_argument("--max-size", type=int, default=None,
                        help="Faster R-CNN: input long-side cap (default: a --checkpoint's own, "
                             "else %d, GluonCV's); not for an SSD" % FRCNN_MAX_SIZE)
    parser.add_argument("--batch-size", type=int, default=8,
                        help="SSD: images per batch (a Faster R-CNN runs one image per device, "
                             "as GluonCV)")
    parser.add_argument("--num-workers", type=int, default=0, help="data loader processes")
    parser.add_argument("--gpus", type=str, default="",
                        help="comma-separated GPU ids, e.g. 0,1; empty: CPU")
    parser.add_argument("--metric", type=str, default="voc07", choices=sorted(METRICS),
                        help="voc07: VOC2007 11-point AP (the paper); area: VOC2010+ area AP")
    parser.add_argument("--nms-thresh", type=float, default=None,
                        help="NMS IoU threshold set with set_nms: SSD default %.2f as "
                             "train_ssd.py; a Faster R-CNN keeps its own (presets: 0.3) unless "
                             "given" % SSD_NMS["nms_thresh"])
    parser.add_argument("--nms-topk", type=int, default=None,
                        help="boxes entering NMS (SSD default %d)" % SSD_NMS["nms_topk"])
    parser.add_argument("--post-nms", type=int, default=None,
                        help="detections kept per image (SSD default %d)" % SSD_NMS["post_nms"])
    parser.add_argument("--save-detections", type=str, default=None, metavar="DIR",
                        help="write devkit result files comp4_det_test_<class>.txt here")
    parser.add_argument("--out", type=str, default=None, metavar="JSON",
                        help="also write the APs to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def get_context(gpus):
    """``'0,1'`` -> [gpu(0), gpu(1)]; ``''`` -> [cpu()]."""
    ids = [int(i) for i in gpus.split(",") if i.strip()]
    return [mx.gpu(i) for i in ids] if ids else [mx.cpu()]


def _source(args):
    """The network as the command line names it, for messages."""
    for flag in ("network", "symbol", "checkpoint"):
        if getattr(args, flag, None):
            return "--%s %s" % (flag, getattr(args, flag))
    return "the network"


def input_mode(args):
    """How images reach the network: SSD's square resize or Faster R-CNN's short-side resize.

    Returns
    -------
    ('ssd', {'data_shape': S}) or ('faster_rcnn', {'short': S, 'max_size': M})

    Raises
    ------
    SystemExit
        ``--data-shape`` for a Faster R-CNN, ``--short``/``--max-size`` for an SSD, or both
        kinds of flag for a network the flags cannot tell.
    """
    kind = detector_kind(args)
    frcnn_flags = [f for f, v in (("--short", args.short), ("--max-size", args.max_size))
                   if v is not None]
    # a checkpoint was validated at its run's sizes: by default the same sizes, the same numbers
    run = {}
    if kind == FASTER_RCNN and args.checkpoint:
        run = read_checkpoint_manifest(args.checkpoint)["args"]
    short, max_size = run.get("short", FRCNN_SHORT), run.get("max_size", FRCNN_MAX_SIZE)
    if kind == FASTER_RCNN and args.data_shape is not None:
        raise SystemExit("error: --data-shape is for SSD's square resize; %s is a Faster R-CNN, "
                         "resized by its short side: use --short/--max-size (default %d/%d, %s)"
                         % (_source(args), short, max_size, "the run's" if run else "GluonCV's"))
    if kind == SSD and frcnn_flags:
        raise SystemExit("error: %s is for Faster R-CNN's short-side resize; %s is an SSD, "
                         "resized to a square: use --data-shape (default %d)"
                         % ("/".join(frcnn_flags), _source(args), SSD_DATA_SHAPE))
    if frcnn_flags and args.data_shape is not None:
        raise SystemExit("error: --data-shape (square resize) and %s (short-side resize) "
                         "exclude each other" % "/".join(frcnn_flags))
    if kind == FASTER_RCNN or (kind is None and frcnn_flags):
        return FASTER_RCNN, {"short": short if args.short is None else args.short,
                             "max_size": max_size if args.max_size is None else args.max_size}
    return SSD, {"data_shape": args.data_shape or SSD_DATA_SHAPE}


def set_frcnn_nms(net, args):
    """Apply the --nms-* flags given to a Faster R-CNN; without them it keeps its own NMS (the
    presets' 0.3 / 400 / 100, which GluonCV's train_faster_rcnn.py validates with)."""
    given = {k: getattr(args, k) for k in SSD_NMS if getattr(args, k) is not None}
    if not given:
        return
    if not hasattr(net, "set_nms"):
        raise SystemExit("error: --%s: the NMS of an exported network is fixed in its symbol"
                         % sorted(given)[0].replace("_", "-"))
    settings = {k: getattr(net, k) for k in SSD_NMS}
    settings.update(given)
    net.set_nms(force_nms=net.force_nms, **settings)


def main(args):
    if dataset_metric_kind(args.dataset) != "voc":
        raise SystemExit("error: --dataset %s is scored with COCO AP: use scripts/eval_coco.py"
                         % args.dataset)
    if args.detections and args.save_detections:
        raise SystemExit("error: --save-detections needs a network (--network, --symbol or "
                         "--checkpoint)")
    mode, sizes = input_mode(args) if not args.detections else (None, {})
    start = time.time()
    ctx = get_context(args.gpus)
    classes = dataset_classes(args.dataset)
    dataset = get_dataset(args.dataset, args.dataset_root, "test")
    image_ids = dataset_image_ids(dataset)
    net = load_detector(args, ctx, classes)
    collect = {}
    if net is None:
        names, values = score_devkit_dir(args.detections, dataset_ground_truth(dataset), classes,
                                         args.metric)
    elif mode == FASTER_RCNN:
        set_frcnn_nms(net, args)
        print("Faster R-CNN: short side %(short)d, long side at most %(max_size)d, one image "
              "per device" % sizes, file=sys.stderr)
        names, values = evaluate_frcnn(net, dataset, ctx, classes, metric=args.metric,
                                       num_workers=args.num_workers,
                                       progress=not args.no_progress, collect=collect, **sizes)
    else:
        loader = get_eval_loader(dataset, sizes["data_shape"], args.batch_size,
                                 args.num_workers)
        nms = {k: v if getattr(args, k) is None else getattr(args, k)
               for k, v in SSD_NMS.items()}
        names, values = evaluate_detector(
            net, loader, ctx, classes, metric=args.metric, progress=not args.no_progress,
            collect=collect, image_ids=image_ids, num_images=len(dataset), **nms)
    if args.save_detections:
        write_devkit_detections(args.save_detections, collect["detections"], classes)
        print("devkit result files written to %s" % args.save_detections, file=sys.stderr)
    print(format_ap_lines(names, values))
    sys.stdout.flush()
    if args.out:
        source = {k: getattr(args, k) for k in ("network", "params", "symbol", "checkpoint",
                                                "detections") if getattr(args, k)}
        write_metric_json(args.out, names, values, metric=args.metric, dataset=args.dataset,
                          dataset_root=args.dataset_root, split="test", num_images=len(dataset),
                          data_shape=sizes.get("data_shape"), source=source,
                          **{k: v for k, v in sizes.items() if k != "data_shape"})
    print("evaluated %d images in %.1f s" % (len(dataset), time.time() - start), file=sys.stderr)
    return names, values


if __name__ == "__main__":
    from gankd_gluon.engine.cli import run_main
    sys.exit(run_main(main, parse_args()))
