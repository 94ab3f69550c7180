#!/usr/bin/env bash
# Table 1, row 10: SSD512, student resnet18_v1, teacher vgg16_atrous, method gan, voc; paper mAP 77.2 (+2.6).
# Usage: scripts/experiments/table1_resnet18_v1_vgg16_atrous.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 1 --row 10 "$@"
