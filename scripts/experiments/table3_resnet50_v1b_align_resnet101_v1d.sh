#!/usr/bin/env bash
# Table 3, row 4: Faster R-CNN, student resnet50_v1b (RoI align), teacher resnet101_v1d, method gan, voc07; paper mAP 74.0 (+2.3).
# Usage: scripts/experiments/table3_resnet50_v1b_align_resnet101_v1d.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 3 --row 4 "$@"
