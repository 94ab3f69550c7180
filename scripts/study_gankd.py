"""The controlled GAN-KD study: arms x paired seeds, controls, confidence intervals.

Every arm is ``train_ssd_gan_kd.py`` with the same teacher, student, head, adapters, schedule,
data and evaluation, differing only in ``--method``: ``none`` (same-schedule control), ``hint``
(Hints-A, positive control), ``gan``, ``gan-frozen`` (``--lrD 0``, negative control); optional
``chen``, ``ko``, ``gan-batch`` (``--critic-norm batch``). The teacher trains once on the whole
pool and is cached; the students train on its first ``--student-images`` images::

    python scripts/study_gankd.py --name main --seeds 1,2,3,4

It writes ``logs/study/<name>/report.md``, ``results.json``, ``map_per_arm.png``,
``diagnostics.png`` and the training logs. A killed study, run again with the same command,
reuses the runs that finished. The scale, pair and schedule flags are those of
``scripts/demo.py`` (``--num-train`` is the teacher's pool, ``--teacher-epochs``,
``--student-epochs``, ``--gan-epochs``, ``--cache`` ...).
"""
import argparse
import contextlib
import io
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import demo  # noqa: E402
from gankd_gluon.data.synthetic import DIFFICULTIES  # noqa: E402
from gankd_gluon.usage import EXIT_FAULT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE  # noqa: E402
from gankd_gluon.experiments.study import ARMS, DEFAULT_ARMS  # noqa: E402

PROG = "study_gankd.py"
#: the study's own defaults of scripts/demo.py's flags, given before the user's flags (so the
#: study does not change when the demo's defaults do): the teacher's pool and the test set, the
#: pair, the schedule. Measured with them: teacher 0.527 mAP, plain student 0.096 (the gate
#: passes), evaluation noise 0.014 mAP (logs/study/main/report.md)
STUDY_DEFAULTS = (("--num-train", "1000"), ("--num-test", "500"), ("--teacher", "mobilenet1.0"),
                  ("--student", "mobilenet0.25"), ("--data-shape", "128"),
                  ("--batch-size", "16"), ("--teacher-epochs", "24"),
                  ("--student-epochs", "24"), ("--gan-epochs", "16"),
                  ("--critic-channels", "64"), ("--val-interval", "8"))


class UsageError(Exception):
    """A bad argument: one line on stderr, exit 2, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _int_list(text):
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a comma-separated list of integers" % text)


def parse_args(argv=None):
    """The study's own flags, then ``scripts/demo.py``'s for the rest.

    Raises
    ------
    UsageError
        A bad or inconsistent argument (the message names the flag).
    """
    own = _Parser(prog=PROG, description=__doc__.split("\n")[0], allow_abbrev=False,
                  epilog="Other flags: those of scripts/demo.py (scale, pair, schedule), with "
                         "the study's own defaults %s." % " ".join(
                             "%s %s" % kv for kv in STUDY_DEFAULTS),
                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    own.add_argument("--name", type=str, default="main",
                     help="the study's name: output in <--out>/<name>")
    own.add_argument("--out", type=str, default="logs/study", help="parent of the study folder")
    own.add_argument("--cache", type=str, default="logs/study/cache",
                     help="dataset, teacher and run checkpoints (gitignored)")
    own.add_argument("--arms", type=str, default=",".join(DEFAULT_ARMS),
                     help="comma-separated arms of: " + ", ".join(ARMS))
    own.add_argument("--seeds", type=_int_list, default=[1, 2, 3, 4],
                     help="comma-separated paired seeds (--seed of every arm's run)")
    own.add_argument("--student-images", type=int, default=200,
                     help="students train on the first K training images of the pool")
    own.add_argument("--difficulty", choices=DIFFICULTIES, default="easy",
                     help="generated dataset variant (make_synthetic_voc.py --difficulty)")
    own.add_argument("--min-effect", type=float, default=0.03,
                     help="smallest mAP difference the report treats as meaningful")
    own.add_argument("--gate-teacher-map", type=float, default=0.5,
                     help="gate: the teacher's mAP must reach this")
    own.add_argument("--gate-margin", type=float, default=0.2,
                     help="gate: the teacher must exceed the plain student by this")
    own.add_argument("--no-gate", action="store_true",
                     help="go on when the gate fails (the report says it failed)")
    own.add_argument("--bootstrap-samples", type=int, default=10000,
                     help="bootstrap resamples of the paired differences over seeds")
    own.add_argument("--bootstrap-seed", type=int, default=0,
                     help="seed of both bootstraps (stated in the report)")
    own.add_argument("--report-only", action="store_true",
                     help="write report.md and the plots from <--out>/<name>/results.json as it "
                          "stands (a study stopped part way: the report lists the runs it lacks) "
                          "and train nothing")
    own.add_argument("--eval-bootstrap", type=int, default=100,
                     help="bootstrap resamples of the test images for the evaluation noise "
                          "(about 1.5 s each for 500 images of 100 detections on this CPU)")
    mine, rest = own.parse_known_args(argv)
    if "--critic-norm" in rest or any(r.startswith("--critic-norm=") for r in rest):
        raise UsageError("--critic-norm is set by the arm (gan: train_ssd_gan_kd.py's default, "
                         "gan-batch: batch), not for the whole study")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = demo.parse_shared_args([x for kv in STUDY_DEFAULTS for x in kv] + rest
                                          + ["--out", os.path.join(mine.out, mine.name),
                                             "--cache", mine.cache])
    except SystemExit as stop:
        if stop.code in (0, None):
            raise
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        raise UsageError(lines[-1].split("error: ", 1)[-1] if lines else "bad arguments")
    study = argparse.Namespace(**vars(mine))
    study.arms = [x.strip() for x in mine.arms.split(",") if x.strip()]
    unknown = [x for x in study.arms if x not in ARMS]
    if unknown or not study.arms or len(set(study.arms)) != len(study.arms):
        raise UsageError("--arms %r: give distinct arms of %s" % (mine.arms, ", ".join(ARMS)))
    if len(study.seeds) < 2 or len(set(study.seeds)) != len(study.seeds) or \
            min(study.seeds) < 0:
        raise UsageError("--seeds: give at least 2 distinct non-negative seeds, got %r"
                         % (study.seeds,))
    if not 1 <= study.student_images <= args.num_train:
        raise UsageError("--student-images %d is outside [1, --num-train %d]"
                         % (study.student_images, args.num_train))
    if not 0 < args.gan_epochs < args.student_epochs:
        raise UsageError("--gan-epochs must be between 1 and --student-epochs - 1, got %d of %d"
                         % (args.gan_epochs, args.student_epochs))
    if not study.name or os.sep in study.name or study.name.startswith("."):
        raise UsageError("--name %r must be a plain folder name" % study.name)
    for flag in ("bootstrap_samples", "eval_bootstrap"):
        if getattr(study, flag) < 1:
            raise UsageError("--%s must be at least 1" % flag.replace("_", "-"))
    if not study.min_effect > 0:
        raise UsageError("--min-effect must be positive, got %g" % study.min_effect)
    return args, study


def main(args, study, command):
    import train_ssd
    import train_ssd_gan_kd
    from gankd_gluon.experiments.demo import DemoConfig
    from gankd_gluon.experiments.study import run_study
    from gankd_gluon.experiments.study import finish_report
    say = lambda msg: print("[study] %s" % msg, flush=True)  # noqa: E731
    cfg = DemoConfig(args, train_ssd.parse_args, train_ssd_gan_kd.parse_args)
    if study.report_only:
        if not os.path.isfile(os.path.join(cfg.out, "results.json")):
            print("%s: error: --report-only: %s has no results.json (no student run of study "
                  "%r finished yet)" % (PROG, cfg.out, study.name), file=sys.stderr)
            return EXIT_USAGE
        finish_report(cfg.out, say)
        return EXIT_OK
    os.makedirs(cfg.out, exist_ok=True)
    run_study(cfg, study, command, say=say)
    return EXIT_OK


def cli(argv=None):
    """Parse, run, and turn a usage error or a failed gate into one line and an exit code."""
    from gankd_gluon.engine.guards import RunInterrupted
    from gankd_gluon.experiments.study import StudyError
    try:
        args, study = parse_args(argv)
    except UsageError as err:
        print("%s: error: %s" % (PROG, err), file=sys.stderr)
        return EXIT_USAGE
    command = "python scripts/study_gankd.py" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        return main(args, study, command)
    except StudyError as err:
        print("%s: %s" % (PROG, err), file=sys.stderr)
        return EXIT_FAULT
    except RunInterrupted as err:
        # the study's runs always start afresh (--overwrite): the saved checkpoint is not used
        print("%s: stopped on %s during a run; the same command continues the study (finished "
              "runs are reused, the interrupted one trains again)" % (PROG, err.signal_name),
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(cli())
