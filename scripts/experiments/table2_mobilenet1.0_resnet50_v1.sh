#!/usr/bin/env bash
# Table 2, row 2: SSD512, student mobilenet1.0, teacher resnet50_v1, method gan, coco; paper mAP 25.4 (+3.7).
# Usage: scripts/experiments/table2_mobilenet1.0_resnet50_v1.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 2 --row 2 "$@"
