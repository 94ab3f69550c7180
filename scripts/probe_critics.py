"""Probe the D-Net: can fresh critics tell the teacher's feature maps from other maps, and how
does the adversarial gradient split over the maps?

For each fake (a random network of the teacher's architecture, the teacher's maps x 0.5, shifted
by half a standard deviation, a fresh student's adapted maps, and the teacher's maps of other
images as the no-difference control) it trains fresh critics, built with the critic flags of
``train_ssd_gan_kd.py``, for ``--steps`` critic steps of the training code, and prints the
separation ``mean D(fake) - mean D(real)`` of every critic on held-out images, and each critic's
share of the adversarial gradient reaching the student's backbone. At the demo's scale::

    python scripts/probe_critics.py --dataset synthetic --dataset-root DATA --gpus '' \\
        --teacher mobilenet1.0 --teacher-params TEACHER.params --student mobilenet0.25 \\
        --data-shape 128 --critic-channels 64 --out probe.json

The Faster R-CNN critic (one, on the stride-16 map; images resized to ``--data-shape``
square)::

    python scripts/probe_critics.py --detector faster_rcnn --teacher resnet101_v1d \\
        --teacher-params TEACHER.params --student resnet50_v1b --data-shape 128 \\
        --dataset synthetic --dataset-root DATA --gpus '' --critic-channels 64

At the paper's layout with random weights (no ``--teacher-params``: a randomly initialised
teacher)::

    python scripts/probe_critics.py --teacher resnet50_v1 --student mobilenet1.0 \\
        --data-shape 512 --dataset synthetic --dataset-root DATA --gpus '' --num-train 32
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gankd_gluon.data.datasets import add_dataset_args, add_train_years_arg  # noqa: E402
from gankd_gluon.engine.args import add_critic_args  # noqa: E402
from gankd_gluon.usage import UsageError, check_devices, gpu_list  # noqa: E402
from gankd_gluon.engine.cli import run_main  # noqa: E402
from gankd_gluon.engine.ssd_runs import SSD_CRITIC_NORM, SSD_CRITIC_NORM_HELP  # noqa: E402
from gankd_gluon.experiments.critic_probe import FAKES  # noqa: E402
from gankd_gluon.models.ssd import STUDENTS, TEACHERS  # noqa: E402


def _fakes(value):
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in FAKES]
    if bad or not names:
        raise argparse.ArgumentTypeError("--fakes %s: choose from %s" % (value, ",".join(FAKES)))
    return names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_dataset_args(parser)
    add_train_years_arg(parser, None, "VOC layout: the VOC<year> folders whose trainval is "
                        "read; default 2007,2012 for voc, 2007 for synthetic")
    parser.add_argument("--detector", choices=("ssd", "faster_rcnn"), default="ssd",
                        help="whose critics: SSD's, one per map of the feature pyramid, or "
                             "Faster R-CNN's, one on the stride-16 map")
    parser.add_argument("--teacher", default=None,
                        help="teacher backbone (default: resnet50_v1 for SSD, resnet101_v1d for "
                             "Faster R-CNN, the paper's)")
    parser.add_argument("--teacher-params", default="random",
                        help="the trained teacher's .params; 'random': a randomly initialised "
                             "teacher (layout and gradient checks without weights)")
    parser.add_argument("--student", default=None,
                        help="student backbone (default: mobilenet1.0 for SSD, resnet50_v1b "
                             "for Faster R-CNN)")
    parser.add_argument("--head", choices=("teacher", "student"), default="teacher")
    parser.add_argument("--data-shape", type=int, default=None,
                        help="input size (default: 512 for SSD, 600 for Faster R-CNN: the "
                             "presets' short side)")
    parser.add_argument("--steps", type=int, default=100, help="critic steps per fake")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="images per critic step (real and fake each)")
    parser.add_argument("--num-train", type=int, default=96,
                        help="images in each of the two training pools (A: real, B: fakes)")
    parser.add_argument("--num-heldout", type=int, default=96,
                        help="held-out images in each of the two held-out pools (the test "
                             "split, then training images beyond the training pools)")
    parser.add_argument("--fakes", type=_fakes, default=list(FAKES),
                        help="comma list of: " + ",".join(FAKES))
    parser.add_argument("--gpus", type=gpu_list, default="", help="GPU id ('' = CPU)")
    parser.add_argument("--cpu-devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=233)
    parser.set_defaults(hybridize=True)    # on the parser: the help shows no "(default: True)"
    parser.add_argument("--no-hybridize", dest="hybridize", action="store_false",
                        default=argparse.SUPPRESS,
                        help="run the networks imperatively (slower; for debugging), not as "
                             "hybridized graphs")
    parser.add_argument("--out", default="", help="write the result as JSON here")
    add_critic_args(parser, critic_norm=SSD_CRITIC_NORM, critic_norm_help=SSD_CRITIC_NORM_HELP)
    args = parser.parse_args(argv)
    for flag in ("steps", "batch_size", "num_train", "num_heldout"):
        if getattr(args, flag) < 1:
            parser.error("--%s must be at least 1" % flag.replace("_", "-"))
    if args.batch_size > min(args.num_train, args.num_heldout):
        parser.error("--batch-size %d is larger than --num-train / --num-heldout"
                     % args.batch_size)
    if args.teacher_params != "random" and not os.path.isfile(args.teacher_params):
        parser.error("--teacher-params %s: no such file" % args.teacher_params)
    frcnn = args.detector == "faster_rcnn"
    if args.data_shape is None:
        args.data_shape = 600 if frcnn else 512
    if args.data_shape < 32 or (not frcnn and args.data_shape % 32):
        parser.error("--data-shape %d: must be %s" % (
            args.data_shape, "at least 32" if frcnn else "a positive multiple of 32"))
    if frcnn:
        from gankd_gluon.models.faster_rcnn import BACKBONES
        teachers = students = sorted(BACKBONES)
        args.teacher = args.teacher or "resnet101_v1d"
        args.student = args.student or "resnet50_v1b"
    else:
        teachers = sorted(set(TEACHERS + STUDENTS))    # any backbone can teach in a probe
        students = STUDENTS
        args.teacher = args.teacher or "resnet50_v1"
        args.student = args.student or "mobilenet1.0"
    if args.teacher not in teachers:
        parser.error("--teacher %s: choose one of %s" % (args.teacher, ", ".join(teachers)))
    if args.student not in students:
        parser.error("--student %s: choose one of %s" % (args.student, ", ".join(students)))
    try:
        check_devices(args)
    except UsageError as err:
        parser.error(str(err))
    out_dir = os.path.dirname(os.path.abspath(args.out)) if args.out else ""
    if out_dir and not os.path.isdir(out_dir):
        parser.error("--out %s: no such folder %s" % (args.out, out_dir))
    return args


def main(args):
    from gankd_gluon.experiments.critic_probe import format_table, probe_critics, write_json
    if args.teacher_params == "random":
        args.teacher_params = None
    result = probe_critics(args)
    print(format_table(result))
    if args.out:
        write_json(result, args.out)
        print("wrote %s" % args.out)


if __name__ == "__main__":
    sys.exit(run_main(main, parse_args()))
