"""The CPU demo of GAN-KD: a fair, one-seed, small version of the controlled study.

One command, at most 15 minutes on 2 CPU cores from a clean checkout (teacher included; 4 to
5 minutes once the teacher is cached)::

    python scripts/demo.py                 # writes runs/demo/<YYYYmmdd-HHMMSS>/results.md

It runs the study's regime (``scripts/study_gankd.py``) at a smaller scale, on the same code:

1. the easy generated dataset (``make_synthetic_voc.py --difficulty easy``): a pool of
   ``--num-train`` training images and ``--num-test`` test images;
2. the teacher (``train_ssd.py``, ``--teacher`` backbone) on the whole pool, cached in
   ``--cache`` and reused by later runs;
3. the student without distillation, ``train_ssd_gan_kd.py --method none``: the baseline, with
   the same schedule (stage 1 Adam, stage 2 SGD), the teacher's head and the adapters;
4. the student with GAN-KD, ``train_ssd_gan_kd.py --method gan`` with the script's own critics:
   the same argv as 3 but for ``--method``; both students train on the first
   ``--student-images`` images of the pool, from the same seed;
5. optionally (``--plain-student``) a plain ``train_ssd.py`` student on those images, a second,
   labelled row for scale (another schedule, its own head, no adapters);
6. the VOC07 mAP of every model on the test set;
7. ``results.md`` (the numbers beside the committed study's conclusion), ``detections.png``
   (ground truth, teacher, baseline student, GAN-KD student on the same test images),
   ``losses.png``, ``results.json`` and the training logs, in a fresh folder: by default
   ``runs/demo/<YYYYmmdd-HHMMSS>/``, else ``--out DIR`` (refused if it already holds a demo's
   results, unless ``--overwrite``).

The terminal shows "step k of n", the elapsed time, an estimate of the time left and the switch
of each student run to stage 2. One seed says little: the study
(``logs/study/main/report.md``) has the seeds, controls and confidence intervals.
"""
import argparse
import os
import shlex
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from gankd_gluon.data.synthetic import DIFFICULTIES  # noqa: E402
from gankd_gluon.usage import (UsageError, fraction, multiple_of_32,  # noqa: E402
                               nonnegative_int, parse_checked, positive_float, positive_int)
from gankd_gluon.experiments.demo import DEMO_OUTPUTS, holds_demo_results  # noqa: E402
from gankd_gluon.models.ssd import STUDENTS, TEACHERS  # noqa: E402

NETWORKS = tuple(sorted(set(TEACHERS) | set(STUDENTS)))
#: the committed study whose conclusion results.md quotes
STUDY_RESULTS = os.path.join(ROOT, "logs", "study", "main", "results.json")

#: the demo's scale: about 13 minutes on 2 idle cores from a clean cache (teacher 600 images x
#: 20 epochs at 41 ms per image; students 200 images x 12 + 6 epochs), 4 to 5 with the teacher
#: cached (23.5 and 11.9 minutes measured on 2 cores at load average 3.5-5)
DEMO_DEFAULTS = {"num_train": 600, "num_test": 200, "teacher_epochs": 20, "student_epochs": 18,
                 "gan_epochs": 12, "val_interval": 6}
#: the scale scripts/study_gankd.py and scripts/ablation_chen.py take their other flags at
#: (:func:`parse_shared_args`; the demo's scale before it became the study's small version)
SHARED_DEFAULTS = {"num_train": 300, "num_test": 100, "teacher_epochs": 32, "student_epochs": 24,
                   "gan_epochs": 16, "val_interval": 4}


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


def _check_common(args):
    if args.teacher not in NETWORKS:
        raise UsageError("--teacher %s: choose one of %s" % (args.teacher, ", ".join(NETWORKS)))
    if args.student not in STUDENTS:
        raise UsageError("--student %s: choose one of %s" % (args.student, ", ".join(STUDENTS)))
    if args.gan_epochs > args.student_epochs:
        raise UsageError("--gan-epochs %d exceeds --student-epochs %d (stage 2 gets the rest)"
                         % (args.gan_epochs, args.student_epochs))
    if max(int(v) for v in args.draw_images.split(",") if v.strip()) >= args.num_test:
        raise UsageError("--draw-images %s: the test split has %d images (0..%d)"
                         % (args.draw_images, args.num_test, args.num_test - 1))


def check_shared_args(args):
    """Networks that exist, a stage-2 budget left after stage 1, drawn images that exist."""
    _check_common(args)
    if args.batch_size > args.num_train:
        raise UsageError("--batch-size %d: more than the --num-train %d images of an epoch"
                         % (args.batch_size, args.num_train))


def check_demo_args(args):
    """:func:`check_shared_args`' rules for the demo, both stages non-empty, a student subset
    inside the pool, and an ``--out`` that holds no demo's results (unless ``--overwrite``).
    Nothing is written here."""
    _check_common(args)
    if not 0 < args.gan_epochs < args.student_epochs:
        raise UsageError("--gan-epochs %d: give 1 to --student-epochs - 1 (%d), so that both "
                         "stages train" % (args.gan_epochs, args.student_epochs - 1))
    if not 1 <= args.student_images <= args.num_train:
        raise UsageError("--student-images %d is outside [1, --num-train %d] (the pool)"
                         % (args.student_images, args.num_train))
    if args.batch_size > args.student_images:
        raise UsageError("--batch-size %d: more than the --student-images %d images of a "
                         "student's epoch" % (args.batch_size, args.student_images))
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError("--out %s: a file, not a folder" % args.out)
    if holds_demo_results(args.out) and not args.overwrite:
        found = [n for n in DEMO_OUTPUTS if os.path.exists(os.path.join(args.out, n))]
        raise UsageError("--out %s already holds a demo's results (%s): give a new folder, or "
                         "--overwrite to replace them" % (args.out, ", ".join(found)))


def _add_scale_flags(p, d):
    """The flags the demo shares with study_gankd.py and ablation_chen.py, defaults ``d``."""
    p.add_argument("--seed", type=int, default=233,
                   help="training seed of every run (the published log's seed)")
    p.add_argument("--data-seed", type=nonnegative_int, default=0,
                   help="seed of the generated dataset")
    p.add_argument("--num-train", type=positive_int, default=d["num_train"],
                   help="generated training images (the teacher's pool)")
    p.add_argument("--num-test", type=positive_int, default=d["num_test"],
                   help="generated test images")
    p.add_argument("--teacher", type=str, default="mobilenet1.0", help="teacher backbone")
    p.add_argument("--student", type=str, default="mobilenet0.25", help="student backbone")
    p.add_argument("--data-shape", type=multiple_of_32, default=128)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--augment", choices=("default", "flip"), default="flip",
                   help="flip: resize + flip (GluonCV's default SSD augmentation costs 25-65%% "
                        "of a step on this CPU)")
    p.add_argument("--num-workers", type=nonnegative_int, default=2, help="DataLoader workers")
    p.add_argument("--teacher-epochs", type=positive_int, default=d["teacher_epochs"],
                   help="teacher budget (cached)")
    p.add_argument("--student-epochs", type=positive_int, default=d["student_epochs"],
                   help="total budget of each student: stage 1 + stage 2 (the plain student "
                        "trains this many epochs)")
    p.add_argument("--gan-epochs", type=nonnegative_int, default=d["gan_epochs"],
                   help="stage-1 epochs; stage 2 gets the rest of --student-epochs")
    p.add_argument("--lr", type=positive_float, default=0.001,
                   help="Adam lr of the teacher and of the plain student")
    p.add_argument("--baseline-optimizer", choices=("adam", "sgd"), default="adam",
                   help="optimizer of the plain train_ssd.py student (train_ssd.py --optimizer)")
    p.add_argument("--lr-g", type=positive_float, default=0.0005,
                   help="stage-1 student Adam lr (paper)")
    p.add_argument("--lr-d", type=positive_float, default=0.0005, help="critic Adam lr (paper)")
    p.add_argument("--stage2-lr", type=positive_float, default=0.001,
                   help="stage-2 SGD lr (paper)")
    p.add_argument("--head", choices=("teacher", "student"), default="teacher",
                   help="students' head (paper: teacher)")
    p.add_argument("--critic-channels", type=positive_int, default=64,
                   help="first-conv channels of each critic (train_ssd_gan_kd.py: 128; 64 "
                        "halves the critics' share of a stage-1 step on this CPU)")
    p.add_argument("--d-steps", type=positive_int, default=1, help="critic steps per student step")
    p.add_argument("--val-interval", type=positive_int, default=d["val_interval"],
                   help="epochs between validations (and the last epoch of each stage)")
    p.add_argument("--log-interval", type=nonnegative_int, default=100,
                   help="batches between log lines")
    p.add_argument("--draw-images", type=_indices, default="0,1,2,3",
                   help="test image indices drawn in detections.png")
    p.add_argument("--draw-thresh", type=fraction, default=0.3, help="score threshold drawn")
    p.add_argument("--progress", action="store_true", help="progress bars while training")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                     argparse.RawDescriptionHelpFormatter):
    """The docstring as written, and each flag's default unless it has none."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    """The demo's own command line; ``--help`` prints this module's docstring."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--out", type=str, default=None,
                   help="a new folder for results.md, pictures and logs (default "
                        "runs/demo/<YYYYmmdd-HHMMSS>); a folder holding a demo's results is "
                        "refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the demo results --out holds")
    p.add_argument("--cache", type=str, default=os.path.join("runs", "demo", "cache"),
                   help="dataset, teacher (reused when its params exist) and student "
                        "checkpoints")
    p.add_argument("--student-images", type=positive_int, default=200,
                   help="the students train on the first K images of the teacher's pool")
    p.add_argument("--difficulty", choices=DIFFICULTIES, default="easy",
                   help="generated dataset variant (make_synthetic_voc.py --difficulty)")
    p.add_argument("--plain-student", action="store_true",
                   help="also train a plain train_ssd.py student (a second, labelled row: "
                        "another schedule, its own head, no adapters; about 1 minute more)")
    p.add_argument("--study-results", type=str, default=STUDY_RESULTS,
                   help="the committed study's results.json, whose conclusion results.md "
                        "quotes (absent: results.md says no committed study was found)")
    _add_scale_flags(p, DEMO_DEFAULTS)
    return p


def parse_args(argv=None):
    """The demo's arguments; a bad one is one ``error:`` line and exit 2, nothing written."""
    p = build_parser()
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)     # for the command it prints
    if args.out is None:
        args.out = os.path.join("runs", "demo", time.strftime("%Y%m%d-%H%M%S"))
    try:
        check_demo_args(args)
    except UsageError as err:
        p.error(str(err))
    return args


def parse_shared_args(argv=None):
    """The scale, pair and schedule flags as ``scripts/study_gankd.py`` and
    ``scripts/ablation_chen.py`` take them (their defaults: :data:`SHARED_DEFAULTS`, ``--out
    logs/demo``, ``--cache logs/demo/cache``, and ``--critic-norm`` for the ablation)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=str, default="logs/demo",
                   help="results and logs go here")
    p.add_argument("--cache", type=str, default="logs/demo/cache",
                   help="dataset, teacher (reused when its params exist) and run checkpoints")
    _add_scale_flags(p, SHARED_DEFAULTS)
    p.add_argument("--critic-norm", choices=("batch", "none"), default="batch",
                   help="critics' normalisation of the ablation's runs (batch: WGAN's "
                        "reference critic; train_ssd_gan_kd.py's default is lipschitz)")
    return parse_checked(p, argv, check_shared_args)


def main(args):
    import train_ssd
    import train_ssd_gan_kd
    from gankd_gluon.experiments.demo import run_demo
    command = shlex.join(["python", "scripts/demo.py"] + args.argv)
    run_demo(args, train_ssd.parse_args, train_ssd_gan_kd.parse_args, command)
    return 0


if __name__ == "__main__":
    from gankd_gluon.engine.cli import run_main
    sys.exit(run_main(main, parse_args()))
