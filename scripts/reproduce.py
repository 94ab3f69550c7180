"""Reproduce a row of the paper's tables: the teacher (when GluonCV's zoo has none), the
baseline, the distilled student, the evaluation, and a line in logs/results.md.

    python scripts/reproduce.py --list                          # the 24 rows, paper mAP
    python scripts/reproduce.py --table 1 --row 3 --dry-run     # the exact commands
    python scripts/reproduce.py --table 1 --row 3               # run it on GPUs 0,1
    python scripts/reproduce.py --table 1 --row 3 --scale smoke # same chain, generated data, CPU

A re-run skips finished steps and resumes an unfinished training. See docs/reproducing.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gankd_gluon.experiments.reproduce import main, parse_args  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(parse_args()))
