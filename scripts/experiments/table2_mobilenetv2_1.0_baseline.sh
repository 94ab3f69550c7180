#!/usr/bin/env bash
# Table 2, row 5: SSD512, student mobilenetv2_1.0, no teacher (baseline), coco; paper mAP 22.0.
# Usage: scripts/experiments/table2_mobilenetv2_1.0_baseline.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 2 --row 5 "$@"
