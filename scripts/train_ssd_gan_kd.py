"""GAN-Knowledge Distillation of an SSD (Hong, Yu, Fan 2019): stage 1 adversarial, stage 2 plain.

The paper's setting (Table 1, MobileNet1.0 student, ResNet50 teacher, VOC07+12, SSD512, 2 GPUs)::

    python scripts/train_ssd_gan_kd.py --student mobilenet1.0 --teacher resnet50_v1

Without internet, give the weights as files::

    python scripts/train_ssd_gan_kd.py --student mobilenet1.0 --teacher resnet50_v1 \\
        --teacher-params ssd_512_resnet50_v1_voc.params --pretrained-base mobilenet1.0.params

Two processes of one GPU each with Horovod (README, "Several machines")::

    horovodrun --gloo -np 2 -H localhost:2 python scripts/train_ssd_gan_kd.py --horovod

On the generated dataset, on the CPU (see README for the demo)::

    python scripts/train_ssd_gan_kd.py --dataset synthetic --dataset-root data/synthetic \\
        --gpus '' --data-shape 128 --teacher-params TEACHER.params --pretrained-base none
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gankd_gluon.usage import parse_checked  # noqa: E402
from gankd_gluon.engine import runs  # noqa: E402
from gankd_gluon.engine.ssd_runs import (  # noqa: E402
    SSDPart, add_common_args, add_gankd_args, check_gankd_args)
from gankd_gluon.engine.cli import run_main  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_gankd_args(add_common_args(parser))
    return parse_checked(parser, argv, check_gankd_args)


def main(args):
    return runs.run_gankd(args, SSDPart())


if __name__ == "__main__":
    sys.exit(run_main(main, parse_args()))
