"""Evaluate a detector on VOC2007 test (or the generated set) with GluonCV's VOC07 metric.

The metric is GluonCV's ``VOC07MApMetric`` (11-point AP at IoU >= 0.5, +1 pixel box sizes,
``difficult`` objects ignored), the one behind the paper's VOC numbers; ``--metric area`` is
``VOCMApMetric`` (VOC2010+). Ties in score keep file order, as the devkit's stable sort does.
Boxes are scored in original-image pixels (see ``gankd_gluon/eval/voc.py``), so
``--save-detections DIR`` followed by ``--detections DIR`` gives the same APs.

Examples::

    # a GluonCV model-zoo SSD with local weights, on VOC2007 test
    python scripts/eval_voc.py --network ssd_512_mobilenet1.0_voc --params ssd.params --gpus 0
    # an exported detector (HybridBlock.export) on the generated set, saving devkit files
    python scripts/eval_voc.py --dataset synthetic --dataset-root DIR --symbol out/student \\
        --data-shape 256 --save-detections dets/ --out ap.json
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
from gankd_gluon.eval.voc import METRICS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="VOC evaluation (GluonCV VOC07MApMetric) of a detector or of devkit result "
                    "files.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_dataset_args(parser)
    add_detector_args(parser, detections_help="directory of devkit result files "
                                              "comp4_det_test_<class>.txt (lines 'image_id "
                                              "score xmin ymin xmax ymax', 1-based pixels) to "
                                              "score instead of running a network")
    parser.add_argument("--data-shape", type=int, default=512,
                        help="network input size (SSD512 as in the paper)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch")
    parser.add_argument("--num-workers", type=int, default=0, help="data loader processes")
    parser.add_argument("--gpus", type=str, default="",
                        help="comma-separated GPU ids, e.g. 0,1; empty: CPU")
    parser.add_argument("--metric", type=str, default="voc07", choices=sorted(METRICS),
                        help="voc07: VOC2007 11-point AP (the paper); area: VOC2010+ area AP")
    parser.add_argument("--nms-thresh", type=float, default=0.45,
                        help="NMS IoU threshold set on GluonCV SSDs (set_nms), as train_ssd.py")
    parser.add_argument("--nms-topk", type=int, default=400, help="boxes entering NMS")
    parser.add_argument("--post-nms", type=int, default=100, help="detections kept per image")
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


def main(args):
    if dataset_metric_kind(args.dataset) != "voc":
        raise SystemExit("error: --dataset %s is scored with COCO AP: use scripts/eval_coco.py"
                         % args.dataset)
    if args.detections and args.save_detections:
        raise SystemExit("error: --save-detections needs a network (--network or --symbol)")
    start = time.time()
    ctx = get_context(args.gpus)
    classes = dataset_classes(args.dataset)
    dataset = get_dataset(args.dataset, args.dataset_root, "test")
    image_ids = dataset_image_ids(dataset)
    net = load_detector(args, ctx, classes)
    if net is None:
        names, values = score_devkit_dir(args.detections, dataset_ground_truth(dataset), classes,
                                         args.metric)
    else:
        loader = get_eval_loader(dataset, args.data_shape, args.batch_size, args.num_workers)
        collect = {}
        names, values = evaluate_detector(
            net, loader, ctx, classes, metric=args.metric, progress=not args.no_progress,
            collect=collect, image_ids=image_ids, num_images=len(dataset),
            nms_thresh=args.nms_thresh, nms_topk=args.nms_topk, post_nms=args.post_nms)
        if args.save_detections:
            write_devkit_detections(args.save_detections, collect["detections"], classes)
            print("devkit result files written to %s" % args.save_detections, file=sys.stderr)
    print(format_ap_lines(names, values))
    sys.stdout.flush()
    if args.out:
        source = {k: getattr(args, k) for k in ("network", "params", "symbol", "detections")
                  if getattr(args, k)}
        write_metric_json(args.out, names, values, metric=args.metric, dataset=args.dataset,
                          dataset_root=args.dataset_root, split="test", num_images=len(dataset),
                          data_shape=None if net is None else args.data_shape, source=source)
    print("evaluated %d images in %.1f s" % (len(dataset), time.time() - start), file=sys.stderr)
    return names, values


if __name__ == "__main__":
    from gankd_gluon.engine.cli import run_main
    sys.exit(run_main(main, parse_args()))
