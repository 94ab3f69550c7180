#!/usr/bin/env bash
# Table 1, row 12: SSD512, student resnet18_v1, teacher resnet101_v2, method gan, voc; paper mAP 77.3 (+2.7).
# Usage: scripts/experiments/table1_resnet18_v1_resnet101_v2.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 1 --row 12 "$@"
