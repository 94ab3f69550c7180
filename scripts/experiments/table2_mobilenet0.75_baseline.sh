#!/usr/bin/env bash
# Table 2, row 3: SSD512, student mobilenet0.75, no teacher (baseline), coco; paper mAP 18.0.
# Usage: scripts/experiments/table2_mobilenet0.75_baseline.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 2 --row 3 "$@"
