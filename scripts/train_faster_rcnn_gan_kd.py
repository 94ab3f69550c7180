"""GAN-Knowledge Distillation of a Faster R-CNN (Hong, Yu, Fan 2019, Table 3): stage 1
adversarial, stage 2 plain, as the authors' published Faster R-CNN log.

The paper's setting (ResNet50-v1b student, ResNet101-v1d teacher, VOC2007 trainval, VOC2007
test; the published log's settings are the defaults)::

    python scripts/train_faster_rcnn_gan_kd.py --roi-mode pool
    python scripts/train_faster_rcnn_gan_kd.py --roi-mode align

Without internet, give the weights as files::

    python scripts/train_faster_rcnn_gan_kd.py --teacher-params faster_rcnn_resnet101_v1d_voc.params \\
        --pretrained-base resnet50_v1b.params

The comparison rows: ``--method fgfi`` (Wang et al. 2019, fine-grained feature imitation),
``--method chen`` (Chen et al. 2017 on the RPN and RCNN heads), ``--method none``.
A CPU demo on the generated dataset: ``python scripts/table3_demo.py``.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gankd_gluon.usage import parse_checked  # noqa: E402
from gankd_gluon.engine.cli import run_main  # noqa: E402
from gankd_gluon.engine import runs  # noqa: E402
from gankd_gluon.engine.frcnn_runs import (FasterRCNNPart, add_frcnn_common_args,  # noqa: E402
                                           add_frcnn_gankd_args, check_frcnn_gankd_args)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_frcnn_gankd_args(add_frcnn_common_args(parser))
    return parse_checked(parser, argv, check_frcnn_gankd_args)


def main(args):
    return runs.run_gankd(args, FasterRCNNPart())


if __name__ == "__main__":
    sys.exit(run_main(main, parse_args()))
