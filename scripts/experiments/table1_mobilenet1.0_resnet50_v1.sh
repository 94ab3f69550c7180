#!/usr/bin/env bash
# Table 1, row 3: SSD512, student mobilenet1.0, teacher resnet50_v1, method gan, voc; paper mAP 77.6 (+2.2).
# Usage: scripts/experiments/table1_mobilenet1.0_resnet50_v1.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 1 --row 3 "$@"
