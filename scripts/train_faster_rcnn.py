"""Plain Faster R-CNN training, as GluonCV's train_faster_rcnn.py: the teacher and the
no-distillation rows of Table 3, with the data, schedule and evaluation of
train_faster_rcnn_gan_kd.py, so a baseline and a distilled student differ only in the
distillation.

    python scripts/train_faster_rcnn.py --network resnet101_v1d            # the teacher
    python scripts/train_faster_rcnn.py --network resnet50_v1b --roi-mode pool
    python scripts/train_faster_rcnn.py --network resnet50_v1b --roi-mode align
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gankd_gluon.usage import parse_checked  # noqa: E402
from gankd_gluon.engine.cli import run_main  # noqa: E402
from gankd_gluon.engine import runs  # noqa: E402
from gankd_gluon.engine.frcnn_runs import (  # noqa: E402
    FasterRCNNPart, add_frcnn_common_args, check_frcnn_plain_args)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--network", type=str, default="resnet50_v1b",
                        help="backbone of faster_rcnn_<network>_voc: resnet50_v1b (the "
                             "students' baseline) or resnet101_v1d (the teacher)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                        help="sgd as GluonCV's train_faster_rcnn.py; adam for short "
                             "from-scratch runs")
    add_frcnn_common_args(parser)
    return parse_checked(parser, argv, check_frcnn_plain_args)


def main(args):
    return runs.run_plain(args, FasterRCNNPart())


if __name__ == "__main__":
    sys.exit(run_main(main, parse_args()))
