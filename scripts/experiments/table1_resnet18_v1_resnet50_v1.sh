#!/usr/bin/env bash
# Table 1, row 11: SSD512, student resnet18_v1, teacher resnet50_v1, method gan, voc; paper mAP 77.6 (+2.8).
# Usage: scripts/experiments/table1_resnet18_v1_resnet50_v1.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 1 --row 11 "$@"
