"""Plain SSD training of any backbone, as GluonCV's train_ssd.py: trains the teachers and the
"-" (no distillation) rows of Tables 1 and 2 with the same data, schedule and evaluation as
train_ssd_gan_kd.py, so a baseline and a distilled student differ only in the distillation.

    python scripts/train_ssd.py --network mobilenet1.0 --epochs 240 --lr-decay-epoch 160,200
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gankd_gluon.usage import parse_checked  # noqa: E402
from gankd_gluon.engine import runs  # noqa: E402
from gankd_gluon.engine.ssd_runs import SSDPart, add_common_args, check_plain_args  # noqa: E402
from gankd_gluon.engine.cli import run_main  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--network", type=str, default="mobilenet1.0",
                        help="backbone: mobilenet1.0, mobilenet0.75, mobilenetv2_1.0, "
                             "resnet18_v1, resnet50_v1, resnet101_v2, vgg16_atrous, ...")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                        help="sgd as GluonCV's train_ssd.py; adam for short from-scratch runs")
    add_common_args(parser)
    return parse_checked(parser, argv, check_plain_args)


def main(args):
    return runs.run_plain(args, SSDPart())


if __name__ == "__main__":
    sys.exit(run_main(main, parse_args()))
