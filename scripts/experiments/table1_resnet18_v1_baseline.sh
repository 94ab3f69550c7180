#!/usr/bin/env bash
# Table 1, row 9: SSD512, student resnet18_v1, no teacher (baseline), voc; paper mAP 74.8.
# Usage: scripts/experiments/table1_resnet18_v1_baseline.sh [--dry-run] [--gpus 0,1] [--scale smoke] [--work-dir DIR]  (docs/reproducing.md)
exec "${PYTHON:-python}" "$(dirname "$0")/../reproduce.py" --table 1 --row 9 "$@"
