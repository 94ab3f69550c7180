"""Evaluate a detector on VOC2007 test (or the generated set) with GluonCV's VOC07 metric.

The metric is GluonCV's ``VOC07MApMetric`` (11-point AP at IoU >= 0.5, +1 pixel box sizes,
``difficult`` objects ignored), the one behind the paper's VOC numbers; ``--metric area`` is
``VOCMApMetric`` (VOC2010+). Ties in score keep file order, as the devkit's stable sort does.
Boxes are scored in original-image pixels (see ``gankd_gluon/eval/voc.py``), so
``--save-detections DIR`` followed by ``--detections DIR`` gives the same APs.

Two ways of feeding images to the network, chosen from the network
(``gankd_gluon/eval/inputs.py``, shared with ``eval_coco.py``):

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

A model that describes itself, an export with a ``-meta.json`` (as the training scripts write)
or a ``--checkpoint`` of a training script, is evaluated at its own input size by default; a
``--data-shape`` or a dataset whose classes disagree with it is refused with one line (exit 2)
unless ``--override-meta``. An SSD checkpoint is evaluated as its run exports it (a distilled
student with its adapters folded into its head).

Examples::

    # a GluonCV model-zoo SSD with local weights, on VOC2007 test
    python scripts/eval_voc.py --network ssd_512_mobilenet1.0_voc --params ssd.params --gpus 0
    # an exported detector (HybridBlock.export) on the generated set, saving devkit files
    python scripts/eval_voc.py --dataset synthetic --dataset-root DIR --symbol out/student \\
        --save-detections dets/ --out ap.json
    # an SSD training checkpoint (the run's own input size and classes)
    python scripts/eval_voc.py --checkpoint checkpoints/<run>/<run>-best.json
    # a Faster R-CNN: a zoo network, a training checkpoint, or its export
    python scripts/eval_voc.py --network faster_rcnn_resnet50_v1b_voc --params frcnn.params
    python scripts/eval_voc.py --checkpoint checkpoints/<run>/<run>-best.json
    python scripts/eval_voc.py --symbol checkpoints/<run>/<run>-best-student --short 600
    # score devkit result files (comp4_det_test_<class>.txt) without a network
    python scripts/eval_voc.py --dataset synthetic --dataset-root DIR --detections dets/
    # your own classes (README "Your own dataset"): the devkit files are comp4_det_test_<name>.txt
    python scripts/eval_voc.py --dataset voc --dataset-root mine --classes helmet,vest,glove \
        --checkpoint checkpoints/<run>/<run>-best.json
    # a dataset split as ImageSets/Main/train.txt and val.txt: evaluate on val (devkit files
    # comp4_det_val_<class>.txt, as the devkit names the results of its val set)
    python scripts/eval_voc.py --dataset voc --dataset-root mine --val-split val \
        --checkpoint checkpoints/<run>/<run>-best.json

Output: one ``classname=AP`` line per class and ``mAP=x``, as the validation blocks of the
published logs; ``--out`` writes the same numbers as JSON.
"""
import argparse
import contextlib
import io
import sys
import time

import mxnet as mx

from gankd_gluon.data.datasets import (add_dataset_args, dataset_classes, dataset_metric_kind,
                                      get_dataset, split_names)
from gankd_gluon.eval import (add_detector_args, dataset_ground_truth, format_ap_lines,
                              load_detector, score_detections, score_devkit_dir,
                              write_devkit_detections, write_metric_json)
from gankd_gluon.usage import gpu_list, nonnegative_int, parse_checked
from gankd_gluon.eval.inputs import add_input_args, check_eval_args, input_mode, predict_dataset
from gankd_gluon.eval.voc import METRICS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="VOC evaluation (GluonCV VOC07MApMetric) of a detector or of devkit result "
                    "files.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_dataset_args(parser, train=False)
    add_detector_args(parser, checkpoint=True,
                      detections_help="directory of devkit result files "
                                      "comp4_det_<split>_<class>.txt (comp4_det_test_"
                                      "<class>.txt for the default --val-split; lines 'image_id "
                                      "score xmin ymin xmax ymax', 1-based pixels) to "
                                      "score instead of running a network")
    add_input_args(parser)
    parser.add_argument("--num-workers", type=nonnegative_int, default=0,
                        help="data loader processes")
    parser.add_argument("--gpus", type=gpu_list, default="",
                        help="comma-separated GPU ids, e.g. 0,1; empty: CPU")
    parser.add_argument("--metric", type=str, default="voc07", choices=sorted(METRICS),
                        help="voc07: VOC2007 11-point AP (the paper); area: VOC2010+ area AP")
    parser.add_argument("--save-detections", type=str, default=None, metavar="DIR",
                        help="write devkit result files comp4_det_<split>_<class>.txt here "
                             "(<split>: --val-split)")
    parser.add_argument("--out", type=str, default=None, metavar="JSON",
                        help="also write the APs to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parse_checked(parser, argv, lambda args: check_eval_args(args, "voc"))


def get_context(gpus):
    """``'0,1'`` -> [gpu(0), gpu(1)]; ``''`` -> [cpu()]."""
    ids = [int(i) for i in gpus.split(",") if i.strip()]
    return [mx.gpu(i) for i in ids] if ids else [mx.cpu()]


def main(args):
    check_eval_args(args, "voc")          # parse_args did; also for callers that skip it
    # the flags' checks, and the model's classes against the names the data will be read
    # with (known before reading it in the VOC layout), before the data is read
    known = dataset_classes(args.dataset, args.classes) \
        if dataset_metric_kind(args.dataset) == "voc" else None
    with contextlib.redirect_stderr(io.StringIO()):     # its warnings: once, below
        input_mode(args, known)
    start = time.time()
    ctx = get_context(args.gpus)
    split = split_names(args.dataset, val_split=args.val_split)[1]
    dataset = get_dataset(args.dataset, args.dataset_root, "test", classes=args.classes,
                          split_name=split)
    prefix = "comp4_det_%s_" % split         # the devkit's <comp>_det_<set>_<class>.txt
    classes = tuple(dataset.classes)
    mode, sizes = input_mode(args, classes)   # the model's classes against the data's
    net = load_detector(args, ctx, classes)
    if net is None:
        names, values = score_devkit_dir(args.detections, dataset_ground_truth(dataset), classes,
                                         args.metric, prefix=prefix,
                                         skipped_ids=dataset.report.skipped_ids)
    else:
        detections, ground_truth = predict_dataset(net, dataset, ctx, mode, sizes, args)
        names, values = score_detections(detections, ground_truth, classes, args.metric)
        if args.save_detections:
            write_devkit_detections(args.save_detections, detections, classes, prefix)
            print("devkit result files written to %s" % args.save_detections, file=sys.stderr)
    print(format_ap_lines(names, values))
    sys.stdout.flush()
    if args.out:
        source = {k: getattr(args, k) for k in ("network", "params", "symbol", "checkpoint",
                                                "detections") if getattr(args, k)}
        write_metric_json(args.out, names, values, metric=args.metric, dataset=args.dataset,
                          dataset_root=args.dataset_root, split=split, num_images=len(dataset),
                          source=source, **dict({"data_shape": None}, **sizes))
    print("evaluated %d images in %.1f s" % (len(dataset), time.time() - start), file=sys.stderr)
    return names, values


if __name__ == "__main__":
    from gankd_gluon.engine.cli import run_main
    sys.exit(run_main(main, parse_args()))
