"""Chen et al. 2017 Table 4 ablation (baseline, L2, L2-B, CLS, CLS-W, Hints, Hints-A,
L2-B+CLS-W, L2-B+CLS-W+Hints-A) and GAN-KD, on one SSD pair, same budget per run::

    python scripts/ablation_chen.py --out logs/ablation --student-epochs 10 --gan-epochs 6

It takes the demo's flags (scripts/demo.py: dataset size, pair, scale, teacher cache) and
shares its teacher cache, and writes ``<out>/table.md`` with the command that made it.
"""
import argparse
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import demo  # noqa: E402
from gankd_gluon.experiments.ablation import TABLE4, run_ablation, write_table  # noqa: E402
from gankd_gluon.experiments.demo import DemoConfig  # noqa: E402


def parse_args(argv=None):
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--methods", type=str, default=None,
                     help="comma-separated --method values to run (default: all of Table 4 "
                          "and gan)")
    own.add_argument("--out", type=str, default="logs/ablation")
    mine, rest = own.parse_known_args(argv)
    args = demo.parse_shared_args(rest + ["--out", mine.out])
    args.methods = [m.strip() for m in mine.methods.split(",")] if mine.methods else None
    known = [r[1] for r in TABLE4]
    unknown = [m for m in args.methods or () if m not in known]
    if unknown or args.methods == []:
        own.error("--methods %s: choose from %s" % (mine.methods, ",".join(known)))
    return args


def main(args):
    import train_ssd
    import train_ssd_gan_kd
    rows = [r for r in TABLE4 if args.methods is None or r[1] in args.methods]
    cfg = DemoConfig(args, train_ssd.parse_args, train_ssd_gan_kd.parse_args)
    os.makedirs(cfg.out, exist_ok=True)
    command = "python scripts/ablation_chen.py" + "".join(" " + shlex.quote(a)
                                                          for a in sys.argv[1:])
    results = run_ablation(cfg, rows)
    print("wrote", write_table(results, os.path.join(cfg.out, "table.md"), command, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
