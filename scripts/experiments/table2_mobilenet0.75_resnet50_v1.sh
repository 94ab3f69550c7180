#!/usr/bin/env bash
# Table 2, row 4: SSD512, student mobilenet0.75, teacher resnet50_v1, method gan, coco; paper mAP 23.0 (+5.0).
# Usage: scripts/experiments/table2_mobilenet0.75_resnet50_v1.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 2 --row 4 "$@"
