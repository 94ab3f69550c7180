#!/usr/bin/env bash
# Table 2, row 1: SSD512, student mobilenet1.0, no teacher (baseline), coco; paper mAP 21.7.
# Usage: scripts/experiments/table2_mobilenet1.0_baseline.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 2 --row 1 "$@"
