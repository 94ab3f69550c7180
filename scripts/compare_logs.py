"""Compare a training log of ours with a published one: report.md and three PNG plots.

Usage::

    P=../shared/published_logs
    python scripts/compare_logs.py $P/ssd_512_mobilenet1_0_resnet50_v1_voc_g_d_new_train.log \
        logs/ssd_512_mobilenet1.0_resnet50_v1_voc_gankd_train.log --out logs/compare/ssd

A log of ours that was resumed (``--resume``: each resume writes a ``Namespace`` line and
``Resumed from ...``) is read as one run: the blocks are joined by epoch, a later block replacing
the epochs it repeats, and the resume points are marked on the plots; ``--run K`` picks block K
instead (e.g. one of the published logs' many runs).

writes ``report.md`` (settings diff, final and best mAP with deltas, per-class AP side by side,
epochs to 95% of the best mAP, losses at matching epochs, the stages of each run) and
``losses.png``, ``map.png``, ``per_class_ap.png`` into ``--out``.

Exit status: 0, also with unreadable lines (they are counted and reported) and for logs of
different detector kinds (reported as not comparable); 2 when a file cannot be read, holds no
log lines, the requested run does not exist, or ``--out`` cannot be written; 1 when
``--max-map-drop X`` is given and ours' best mAP is more than X below the published run's
best (or cannot be checked).
"""
import argparse
import os
import sys

from gankd_gluon.usage import nonnegative_float
from gankd_gluon.logs.report import compare_logs


def _run_number(value):
    """1-based run index, negative from the end; 0 names no run."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % value) from None
    if number == 0:
        raise argparse.ArgumentTypeError("0: runs count from 1 (or from -1 at the end)")
    return number


def parse_args(argv=None):
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description="Compare our training log with a published one (report.md + 3 PNGs).")
    parser.add_argument("published", help="published log, e.g. ../shared/published_logs/*.log")
    parser.add_argument("ours", help="our training log")
    parser.add_argument("--out", default=None,
                        help="output directory (default: <ours without .log>_compare/)")
    parser.add_argument("--run", type=_run_number, default=None,
                        help="run (Namespace block) of OURS to compare, 1-based, negative "
                             "from the end (default: the whole last run, its resumed blocks "
                             "joined by epoch)")
    parser.add_argument("--published-run", type=_run_number, default=-1,
                        help="run of PUBLISHED to compare (default: -1, the last)")
    parser.add_argument("--max-map-drop", type=nonnegative_float, default=None,
                        help="exit 1 when our best mAP is more than this below the published "
                             "best (e.g. 0.01)")
    parser.add_argument("--no-plots", action="store_true",
                        help="write report.md only (faster, e.g. for a --max-map-drop gate)")
    parser.add_argument("--labels", nargs=2, default=("published", "ours"),
                        metavar=("PUBLISHED", "OURS"), help="names of the two runs")
    return parser.parse_args(argv)


def main(args):
    """Run the comparison and return the exit status."""
    out = args.out or os.path.splitext(args.ours)[0] + "_compare"
    result = compare_logs(args.published, args.ours, out, published_run=args.published_run,
                          run=args.run, max_map_drop=args.max_map_drop,
                          labels=tuple(args.labels), plots=not args.no_plots)
    for message in result.messages:
        stream = sys.stdout if message.startswith(("wrote", "PASS")) else sys.stderr
        print(message, file=stream)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(parse_args()))
