#!/usr/bin/env bash
# Table 1, row 7: SSD512, student mobilenetv2_1.0, teacher resnet50_v1, method gan, voc; paper mAP 77.7 (+1.7).
# Usage: scripts/experiments/table1_mobilenetv2_1.0_resnet50_v1.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 1 --row 7 "$@"
