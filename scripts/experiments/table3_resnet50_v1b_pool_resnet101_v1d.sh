#!/usr/bin/env bash
# Table 3, row 2: Faster R-CNN, student resnet50_v1b (RoI pool), teacher resnet101_v1d, method gan, voc07; paper mAP 73.8 (+6.8).
# Usage: scripts/experiments/table3_resnet50_v1b_pool_resnet101_v1d.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 3 --row 2 "$@"
