#!/usr/bin/env bash
# Table 1, row 2: SSD512, student mobilenet1.0, teacher vgg16_atrous, method gan, voc; paper mAP 77.3 (+1.9).
# Usage: scripts/experiments/table1_mobilenet1.0_vgg16_atrous.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 1 --row 2 "$@"
