#!/usr/bin/env bash
# Table 3, row 6: Faster R-CNN, student resnet50_v1b (RoI align), teacher resnet101_v1d, method fgfi, voc07; paper mAP 72.0 (+3.0).
# Usage: scripts/experiments/table3_resnet50_v1b_fgfi_resnet101_v1d.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 3 --row 6 "$@"
