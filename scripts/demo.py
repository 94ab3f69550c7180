"""The CPU demo of GAN-KD: teacher, baseline student and GAN-KD student on the generated dataset.

One command, about 13 minutes on 2 CPU cores from a clean state (the teacher is cached after
that)::

    python scripts/demo.py                      # writes logs/demo/results.md

It generates the synthetic shapes dataset (if missing), trains the teacher with
``train_ssd.py``'s code (once; ``--cache`` keeps it), trains the student without distillation
(``train_ssd.py``) and with GAN-KD (``train_ssd_gan_kd.py``, stage 1 + stage 2) on the same
epochs and data, evaluates the three with the project's VOC07 evaluation and writes
``results.md``, ``detections.png`` (GluonCV ``plot_bbox``), ``losses.png``, the training logs and
``demo.log`` to ``--out``.

This is a small-scale analog of the paper (which needs ImageNet weights, VOC and GPUs): a wide
MobileNet teacher over a thin MobileNet student at 128 px, from scratch (see logs/demo/NOTES.md
for the measurements behind the defaults).
"""
import argparse
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from gankd_gluon.engine.args import (fraction, multiple_of_32, nonnegative_int,  # noqa: E402
                                     parse_checked, positive_float, positive_int)
from gankd_gluon.engine.cli import UsageError  # noqa: E402
from gankd_gluon.experiments.demo import run_demo  # noqa: E402
from gankd_gluon.models.ssd import STUDENTS, TEACHERS  # noqa: E402

NETWORKS = tuple(sorted(set(TEACHERS) | set(STUDENTS)))


def _indices(value):
    """``--draw-images``: comma-separated test image indices."""
    try:
        indices = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a comma-separated list of image indices"
                                         % value) from None
    if not indices or min(indices) < 0:
        raise argparse.ArgumentTypeError("%r: give image indices of at least 0" % value)
    return value


def check_demo_args(args):
    """Networks that exist, a stage-2 budget left after stage 1, drawn images that exist."""
    if args.teacher not in NETWORKS:
        raise UsageError("--teacher %s: choose one of %s" % (args.teacher, ", ".join(NETWORKS)))
    if args.student not in STUDENTS:
        raise UsageError("--student %s: choose one of %s" % (args.student, ", ".join(STUDENTS)))
    if args.gan_epochs > args.student_epochs:
        raise UsageError("--gan-epochs %d exceeds --student-epochs %d (stage 2 gets the rest)"
                         % (args.gan_epochs, args.student_epochs))
    if args.batch_size > args.num_train:
        raise UsageError("--batch-size %d: more than the --num-train %d images of an epoch"
                         % (args.batch_size, args.num_train))
    if max(int(v) for v in args.draw_images.split(",") if v.strip()) >= args.num_test:
        raise UsageError("--draw-images %s: the test split has %d images (0..%d)"
                         % (args.draw_images, args.num_test, args.num_test - 1))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=str, default="logs/demo",
                   help="results.md, pictures and logs go here")
    p.add_argument("--cache", type=str, default="logs/demo/cache",
                   help="dataset, teacher (reused when its params exist) and student "
                        "checkpoints; gitignored")
    p.add_argument("--seed", type=int, default=233,
                   help="training seed of all three runs (published log's seed)")
    p.add_argument("--data-seed", type=nonnegative_int, default=0,
                   help="seed of the generated dataset")
    p.add_argument("--num-train", type=positive_int, default=300, help="generated training images")
    p.add_argument("--num-test", type=positive_int, default=100, help="generated test images")
    p.add_argument("--teacher", type=str, default="mobilenet1.0", help="teacher backbone")
    p.add_argument("--student", type=str, default="mobilenet0.25", help="student backbone")
    p.add_argument("--data-shape", type=multiple_of_32, default=128)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--augment", choices=("default", "flip"), default="flip",
                   help="flip: resize + flip (GluonCV's default SSD augmentation costs 25-65%% "
                        "of a step on this CPU)")
    p.add_argument("--num-workers", type=nonnegative_int, default=2, help="DataLoader workers")
    p.add_argument("--teacher-epochs", type=positive_int, default=32,
                   help="teacher budget (cached); mobilenet1.0 reaches about 0.18 mAP here, "
                        "four times the students")
    p.add_argument("--student-epochs", type=positive_int, default=24,
                   help="total budget of each student: baseline epochs = GAN-KD stage 1 + stage 2")
    p.add_argument("--gan-epochs", type=nonnegative_int, default=16,
                   help="GAN-KD stage-1 epochs; stage 2 gets the rest of --student-epochs")
    p.add_argument("--lr", type=positive_float, default=0.001,
                   help="Adam lr of the teacher and of the baseline student")
    p.add_argument("--baseline-optimizer", choices=("adam", "sgd"), default="adam",
                   help="optimizer of the baseline student (train_ssd.py --optimizer)")
    p.add_argument("--lr-g", type=positive_float, default=0.0005,
                   help="GAN-KD stage-1 student Adam lr "
                   "(paper)")
    p.add_argument("--lr-d", type=positive_float, default=0.0005, help="critic Adam lr (paper)")
    p.add_argument("--stage2-lr", type=positive_float, default=0.001,
                   help="GAN-KD stage-2 SGD lr (paper)")
    p.add_argument("--head", choices=("teacher", "student"), default="teacher",
                   help="GAN-KD student head (paper: teacher)")
    p.add_argument("--critic-channels", type=positive_int, default=64,
                   help="first-conv channels of each critic (train_ssd_gan_kd.py: 128; 64 "
                        "halves the critics' share of a stage-1 step on this CPU)")
    p.add_argument("--critic-norm", choices=("batch", "none"), default="batch",
                   help="critics' normalisation: batch, WGAN's reference critic (the "
                        "demo's recorded runs; train_ssd_gan_kd.py's default is lipschitz)")
    p.add_argument("--d-steps", type=positive_int, default=1, help="critic steps per student step")
    p.add_argument("--val-interval", type=positive_int, default=4,
                   help="epochs between validations")
    p.add_argument("--log-interval", type=nonnegative_int, default=100,
                   help="batches between log lines")
    p.add_argument("--draw-images", type=_indices, default="0,1,2,3",
                   help="test image indices drawn in detections.png")
    p.add_argument("--draw-thresh", type=fraction, default=0.3, help="score threshold drawn")
    p.add_argument("--progress", action="store_true", help="progress bars while training")
    return parse_checked(p, argv, check_demo_args)


def main(args):
    import train_ssd
    import train_ssd_gan_kd
    command = "python scripts/demo.py" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    run_demo(args, train_ssd.parse_args, train_ssd_gan_kd.parse_args, command)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
