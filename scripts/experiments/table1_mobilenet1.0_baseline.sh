#!/usr/bin/env bash
# Table 1, row 1: SSD512, student mobilenet1.0, no teacher (baseline), voc; paper mAP 75.4.
# Usage: scripts/experiments/table1_mobilenet1.0_baseline.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 1 --row 1 "$@"
