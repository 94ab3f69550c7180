"""The paper's Table 3 set at CPU-demo scale: teacher, two baselines, two GAN-KD students, FGFI.

    python scripts/table3_demo.py                 # writes logs/table3/README.md and logs

What it runs and what the table records: :mod:`gankd_gluon.experiments.table3`.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gankd_gluon.experiments.table3 import main, parse_args  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(parse_args()))
