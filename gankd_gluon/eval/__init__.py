"""Evaluation: VOC (GluonCV's VOC07MApMetric / VOCMApMetric), devkit result files, COCO.

- :mod:`.voc` -- running a detector over a loader and scoring with GluonCV's metric
  (ties in file order, original-image frame);
- :mod:`.devkit` -- ``comp4_det_test_<class>.txt`` files out and in;
- :mod:`.results` -- detections / ground truth containers shared by both;
- :mod:`.frcnn` -- a Faster R-CNN over short-side-resized images, scored as in :mod:`.voc`;
- :mod:`.detector` -- ``load_detector(args, ctx)``: model zoo, exported symbol, Faster R-CNN
  checkpoint, or none; ``detector_kind(args)``: Faster R-CNN or SSD;
- :mod:`.inputs` -- how images reach the network of ``eval_voc.py`` / ``eval_coco.py``: SSD's
  square resize or Faster R-CNN's short-side resize, from ``detector_kind``;
- :mod:`.coco` -- COCO AP through pycocotools' COCOeval.
"""
from .results import DetectionSet, GroundTruth, dataset_ground_truth, dataset_image_ids
from .voc import (METRICS, evaluate_detector, format_ap_lines, get_eval_loader, make_voc_metric,
                  predict_detections, score_detections, write_metric_json)
from .devkit import read_devkit_detections, score_devkit_dir, write_devkit_detections
from .detector import add_detector_args, load_detector

__all__ = ["DetectionSet", "GroundTruth", "dataset_ground_truth", "dataset_image_ids", "METRICS",
           "evaluate_detector", "format_ap_lines", "get_eval_loader", "make_voc_metric",
           "predict_detections", "score_detections", "write_metric_json", "read_devkit_detections",
           "score_devkit_dir", "write_devkit_detections", "add_detector_args", "load_detector"]
