#!/usr/bin/env bash
# Table 3, row 3: Faster R-CNN, student resnet50_v1b (RoI align), no teacher (baseline), voc07; paper mAP 71.7.
# Usage: scripts/experiments/table3_resnet50_v1b_align_baseline.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 3 --row 3 "$@"
