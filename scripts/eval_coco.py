"""Evaluate a detector on COCO val2017 (or the generated set read as COCO) with pycocotools.

Reports what the paper's Table 2 uses, AP@[.5:.95] (``mAP``), plus AP@.5, AP@.75 and AP for
small / medium / large objects, from pycocotools' ``COCOeval`` (bbox), and per-class
AP@[.5:.95] as GluonCV's ``COCODetectionMetric`` prints it. Boxes are rescaled to the original
images and written as GluonCV does (``gankd_gluon/eval/coco.py`` says why GluonCV's metric class
itself is not used).

Images reach the network as in ``eval_voc.py``, chosen from the network
(``gankd_gluon/eval/inputs.py``):

- SSD (``ssd_*`` zoo names, exports with GluonCV's SSD anchor generators, and any network the
  flags cannot tell): every image resized to a square ``--data-shape`` (default 512),
  ``--batch-size`` images per batch;
- Faster R-CNN (``faster_rcnn_*`` zoo names, exports with RoI pooling/RoIAlign, the
  ``--checkpoint`` of ``train_faster_rcnn.py`` / ``train_faster_rcnn_gan_kd.py``): GluonCV's
  ``FasterRCNNDefaultValTransform``, short side ``--short`` and long side at most ``--max-size``
  (default 600 and 1000, or a checkpoint's own; GluonCV's ``*_coco`` presets use 800 and 1333),
  one image per device. ``--data-shape`` with a Faster R-CNN, or ``--short``/``--max-size``
  with an SSD, is an error.

An export with a ``-meta.json`` or a ``--checkpoint`` is evaluated at its own input size by
default; a disagreeing ``--data-shape`` or class list is refused with one line (exit 2) unless
``--override-meta``.

Examples::

    python scripts/eval_coco.py --network ssd_512_mobilenet1.0_coco --params ssd.params --gpus 0
    python scripts/eval_coco.py --dataset synthetic_coco --dataset-root DIR --symbol out/student \\
        --data-shape 256 --save-detections dets.json --out ap.json
    # a Faster R-CNN: a zoo network (at its preset's sizes), a training checkpoint, its export
    python scripts/eval_coco.py --network faster_rcnn_resnet50_v1b_coco --params frcnn.params \\
        --short 800 --max-size 1333
    python scripts/eval_coco.py --dataset synthetic_coco --dataset-root DIR \\
        --checkpoint checkpoints/<run>/<run>-best.json
    python scripts/eval_coco.py --symbol checkpoints/<run>/<run>-best-student --short 600
    # score a COCO results json without a network
    python scripts/eval_coco.py --dataset synthetic_coco --dataset-root DIR --detections dets.json

Output: one ``classname=AP`` line per class, then ``mAP=``, ``AP50=``, ``AP75=``, ``APs=``,
``APm=``, ``APl=``; ``--out`` writes the same numbers as JSON, with the resize used
(``data_shape``, or ``short`` and ``max_size``).
"""
import argparse
import contextlib
import io
import sys
import time

import mxnet as mx

from gankd_gluon.data.datasets import add_dataset_args, get_dataset, split_names
from gankd_gluon.eval import (add_detector_args, format_ap_lines, load_detector,
                              write_metric_json)
from gankd_gluon.eval.coco import (coco_evaluate, coco_image_ids, detections_to_coco,
                                   read_coco_results, write_coco_results)
from gankd_gluon.usage import gpu_list, nonnegative_int, parse_checked, unit_interval
from gankd_gluon.eval.inputs import add_input_args, check_eval_args, input_mode, predict_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="COCO evaluation (pycocotools COCOeval, bbox) of a detector or of a COCO "
                    "results json.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_dataset_args(parser, default="coco", train=False)
    add_detector_args(parser, checkpoint=True,
                      detections_help="COCO results json ([{image_id, category_id, bbox: "
                                      "[x, y, w, h], score}, ...]) to score instead of "
                                      "running a network")
    add_input_args(parser)
    parser.add_argument("--num-workers", type=nonnegative_int, default=0,
                        help="data loader processes")
    parser.add_argument("--gpus", type=gpu_list, default="",
                        help="comma-separated GPU ids, e.g. 0,1; empty: CPU")
    parser.add_argument("--score-thresh", type=unit_interval, default=0.05,
                        help="drop network detections below this score (GluonCV "
                             "COCODetectionMetric); a --detections file is scored as it is")
    parser.add_argument("--save-detections", type=str, default=None, metavar="JSON",
                        help="write the detections as a COCO results json")
    parser.add_argument("--out", type=str, default=None, metavar="JSON",
                        help="also write the APs to this JSON file")
    parser.add_argument("--verbose", action="store_true",
                        help="show pycocotools' loading messages, progress and summary table "
                             "(on stderr)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parse_checked(parser, argv, lambda args: check_eval_args(args, "coco"))


def get_context(gpus):
    """``'0,1'`` -> [gpu(0), gpu(1)]; ``''`` -> [cpu()]."""
    ids = [int(i) for i in gpus.split(",") if i.strip()]
    return [mx.gpu(i) for i in ids] if ids else [mx.cpu()]


def main(args):
    check_eval_args(args, "coco")          # parse_args did; also for callers that skip it
    with contextlib.redirect_stderr(io.StringIO()):     # its warnings: once, below
        input_mode(args)                  # the flags' checks, before the data is read
    start = time.time()
    ctx = get_context(args.gpus)
    split = split_names(args.dataset, val_split=args.val_split)[1]
    # pycocotools' "loading annotations..." (4 lines) only with --verbose: an error stays the
    # one line on stderr
    with contextlib.redirect_stdout(sys.stderr if args.verbose else io.StringIO()):
        dataset = get_dataset(args.dataset, args.dataset_root, "test", classes=args.classes,
                              split_name=split)
    classes = tuple(dataset.classes)       # the json's categories, in category-id order
    mode, sizes = input_mode(args, classes,   # the model's classes against the data's
                             classes_from="the json's categories are",
                             fix="evaluate on data of its classes (a COCO json's classes are its "
                                 "categories, in category-id order)")
    coco_gt = dataset.coco
    if len(dataset) < len(coco_gt.getImgIds()):
        print("warning: the dataset kept %d of the %d images of its json; detections on the "
              "others are not counted" % (len(dataset), len(coco_gt.getImgIds())),
              file=sys.stderr)
    net = load_detector(args, ctx, classes)
    if net is None:
        results = read_coco_results(args.detections, coco_gt)
    else:
        detections, _ = predict_dataset(net, dataset, ctx, mode, sizes, args)
        results = detections_to_coco(detections, coco_image_ids(dataset),
                                     dataset.contiguous_id_to_json, args.score_thresh)
        if args.save_detections:
            write_coco_results(args.save_detections, results)
            print("COCO results written to %s" % args.save_detections, file=sys.stderr)
    cat_ids = [dataset.contiguous_id_to_json[c] for c in range(len(classes))]
    names, values = coco_evaluate(coco_gt, results, classes, cat_ids=cat_ids,
                                  verbose=args.verbose)
    print(format_ap_lines(names, values))
    sys.stdout.flush()
    if args.out:
        source = {k: getattr(args, k) for k in ("network", "params", "symbol", "checkpoint",
                                                "detections") if getattr(args, k)}
        write_metric_json(args.out, names, values, metric="coco", dataset=args.dataset,
                          dataset_root=args.dataset_root, split=split, num_images=len(dataset),
                          score_thresh=args.score_thresh, source=source,
                          **dict({"data_shape": None}, **sizes))
    print("evaluated %d images in %.1f s" % (len(dataset), time.time() - start), file=sys.stderr)
    return names, values


if __name__ == "__main__":
    from gankd_gluon.engine.cli import run_main
    sys.exit(run_main(main, parse_args()))
