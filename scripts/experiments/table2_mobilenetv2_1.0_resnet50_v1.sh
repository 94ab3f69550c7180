#!/usr/bin/env bash
# Table 2, row 6: SSD512, student mobilenetv2_1.0, teacher resnet50_v1, method gan, coco; paper mAP 24.6 (+2.6).
# Usage: scripts/experiments/table2_mobilenetv2_1.0_resnet50_v1.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 2 --row 6 "$@"
