#!/usr/bin/env bash
# Table 1, row 8: SSD512, student mobilenetv2_1.0, teacher resnet101_v2, method gan, voc; paper mAP 77.5 (+1.5).
# Usage: scripts/experiments/table1_mobilenetv2_1.0_resnet101_v2.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 1 --row 8 "$@"
