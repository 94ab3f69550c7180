"""The paper's Table 3 set at CPU-demo scale: teacher, two baselines, two GAN-KD students, FGFI
(``scripts/table3_demo.py``, which writes ``logs/table3/README.md`` and the logs).

Every row of Table 3 runs through the real scripts, on the generated shapes dataset, with tiny
Faster R-CNN sizes (128 px inputs, 16 sampled RoIs, 7x7 RoI pooling) and a few epochs, from
scratch (no ImageNet weights here):

1. teacher: ``train_faster_rcnn.py --network resnet101_v1d`` (RoIAlign);
2. baselines: ``train_faster_rcnn.py --network resnet50_v1b --roi-mode pool|align``;
3. GAN-KD students: ``train_faster_rcnn_gan_kd.py --roi-mode pool|align`` (stage 1
   adversarial, stage 2 plain, same number of epochs as the baselines);
4. fine-grained imitation: ``train_faster_rcnn_gan_kd.py --method fgfi`` (RoIAlign).

The point is that every stage runs, logs in the published format and evaluates with the
VOC07 metric; at this scale the mAPs say nothing about the method (a from-scratch ResNet on a
few dozen images for a few epochs). The table records the command, the settings and the
measured seconds per iteration. Checkpoints (about 0.5 GB each) go to ``--work`` and are
deleted at the end unless ``--keep-work``.
"""
import argparse
import os
import shutil
import string
import subprocess
import sys
import time

from ..logs.parse import parse_log
from ..usage import nonnegative_int, positive_float, positive_int
from .runs import ensure_dataset, git_state, shell_command

__all__ = ["parse_args", "main"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "scripts")
# images per iteration: the smallest batch the default critics take (a batch of 1 is refused:
# their scores are normalised by the spread over one step's real and fake samples)
BATCH = 2


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=str, default="logs/table3",
                   help="README.md (the table) and the training logs go here")
    p.add_argument("--work", type=str, default="/tmp/gankd_table3",
                   help="dataset and checkpoints (large; deleted at the end)")
    p.add_argument("--keep-work", action="store_true", help="keep --work")
    p.add_argument("--num-train", type=positive_int, default=32, help="generated training images")
    p.add_argument("--num-test", type=positive_int, default=16, help="generated test images")
    p.add_argument("--image-size", type=positive_int, default=128, help="generated image side")
    p.add_argument("--teacher-epochs", type=positive_int, default=5)
    p.add_argument("--epochs", type=positive_int, default=4,
                   help="epochs of every student (baselines; GAN-KD/FGFI stage 1 + stage 2)")
    p.add_argument("--gan-epochs", type=nonnegative_int, default=1,
                   help="last stage-1 epoch of GAN-KD and FGFI (0-based, published meaning: "
                        "epochs 0..N are stage 1)")
    p.add_argument("--train-D-eopch", type=nonnegative_int, default=0,
                   help="critic warm-up epochs of GAN-KD (published: 2). At this scale a "
                        "warm-up epoch lets the critic's margin grow, and switching the "
                        "adversarial term on afterwards blew the from-scratch student up "
                        "(Adam's second moment has not seen gradients that size)")
    p.add_argument("--clamp", type=positive_float, default=0.01,
                   help="critic weight clipping +-clamp (the published log used 0.03 in 25 "
                        "runs and 0.01 in 20; 0.03 with 128-channel critics diverged here)")
    p.add_argument("--critic-channels", type=positive_int, default=32,
                   help="first-conv channels of the critic (script default 128)")
    p.add_argument("--lr", type=positive_float, default=0.0005,
                   help="lr of every optimizer (from scratch, few steps: the published 1e-4 "
                        "SGD would not move)")
    p.add_argument("--seed", type=int, default=233)
    p.add_argument("--num-workers", type=nonnegative_int, default=0)
    args = p.parse_args(argv)
    for flag, path in (("--out", args.out), ("--work", args.work)):
        if os.path.exists(path) and not os.path.isdir(path):
            p.error("%s %s: a file, not a folder" % (flag, path))
    # the training scripts run from the repository's root: relative folders are the caller's
    args.out, args.work = os.path.abspath(args.out), os.path.abspath(args.work)
    if args.num_train < BATCH:
        p.error("--num-train %d: fewer images than one batch of %d" % (args.num_train, BATCH))
    if args.epochs < args.gan_epochs + 2:
        # train_faster_rcnn_gan_kd.py counts epochs from 0: stage 1 is 0..gan_epochs
        p.error("--epochs %d leaves no plain epoch after --gan-epochs %d (stage 1 is epochs "
                "0..%d)" % (args.epochs, args.gan_epochs, args.gan_epochs))
    return args


SIZES = ["--short", "128", "--max-size", "128", "--num-sample", "16", "--roi-size", "7",
         "--rpn-train-pre-nms", "512", "--rpn-train-post-nms", "128", "--rpn-test-pre-nms",
         "256", "--rpn-test-post-nms", "32"]


def _common(args):
    return ["--dataset", "synthetic", "--dataset-root", os.path.join(args.work, "data"),
            "--gpus", "", "--batch-size", str(BATCH), "--num-workers", str(args.num_workers),
            "--pretrained-base", "none", "--log-interval", "8", "--no-progress",
            "--seed", str(args.seed), "--save-interval", "100", "--keep-last", "1",
            "--log-dir", os.path.join(args.out, "logs"),
            "--save-dir", os.path.join(args.work, "checkpoints")] + SIZES


def _rows(args):
    """(name, row label, script, extra arguments) of every run, teacher first."""
    teacher = os.path.join(args.work, "checkpoints", "teacher", "teacher-final.net.params")
    plain = ["--optimizer", "adam", "--lr", str(args.lr), "--epochs", str(args.epochs)]
    kd = ["--teacher-params", teacher, "--epochs", str(args.epochs), "--gan-epochs",
          str(args.gan_epochs), "--train-D-eopch", str(args.train_D_eopch), "--lrG",
          str(args.lr), "--lrD", str(args.lr), "--lr", str(args.lr), "--clamp-lower",
          str(-args.clamp), "--clamp-upper", str(args.clamp), "--critic-channels",
          str(args.critic_channels)]
    return [
        ("teacher", "ResNet101 teacher (roialign)", "train_faster_rcnn.py",
         ["--network", "resnet101_v1d", "--roi-mode", "align", "--optimizer", "adam", "--lr",
          str(args.lr), "--epochs", str(args.teacher_epochs)]),
        ("baseline_pool", "ResNet50 (roipooling)", "train_faster_rcnn.py",
         ["--network", "resnet50_v1b", "--roi-mode", "pool"] + plain),
        ("gankd_pool", "ResNet50 (roipooling + GAN-KD)", "train_faster_rcnn_gan_kd.py",
         ["--roi-mode", "pool"] + kd),
        ("baseline_align", "ResNet50 (roialign)", "train_faster_rcnn.py",
         ["--network", "resnet50_v1b", "--roi-mode", "align"] + plain),
        ("gankd_align", "ResNet50 (roialign + GAN-KD)", "train_faster_rcnn_gan_kd.py",
         ["--roi-mode", "align"] + kd),
        ("fgfi_align", "ResNet50 (roialign + fine-grained imitation)",
         "train_faster_rcnn_gan_kd.py", ["--roi-mode", "align", "--method", "fgfi"] + kd),
    ]


def _run(args, name, script, extra):
    cmd = [sys.executable, os.path.join(SCRIPTS, script)] + _common(args) + \
        ["--save-prefix", name, "--overwrite"] + extra
    start = time.time()
    console = os.path.join(args.out, "logs", name + ".stdout.txt")
    with open(console, "w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    if code == 0:
        os.remove(console)          # the training log has the same lines; kept on failure
    return code, time.time() - start


def _summary(args, name, code, wall):
    """Final and best mAP, and seconds per iteration by stage, from the run's own log."""
    path = os.path.join(args.out, "logs", name + "_train.log")
    row = {"code": code, "wall": wall, "final": float("nan"), "best": float("nan"),
           "s_per_it": {}}
    if not os.path.isfile(path):
        return row
    run = parse_log(path).run()
    if run.validations:
        row["final"] = run.validations[-1].mean_ap
        row["best"] = max(v.mean_ap for v in run.validations)
    # a distillation run has two segments (a 'Start training' line opens stage 2); without
    # critic columns the parser cannot tell FGFI's stage 1 from plain training, so go by order
    stages = [1, 2] if len(run.segments) == 2 else [2] * len(run.segments)
    for stage, seg in zip(stages, run.segments):
        costs = [e.cost for e in run.epochs if e.segment == seg.index and e.cost is not None]
        if costs:
            iterations = args.num_train // BATCH       # the loader drops a short last batch
            row["s_per_it"][stage] = sum(costs) / len(costs) / iterations
    return row


def _fmt(x):
    return "-" if x != x else "%.3f" % x


#: The README's text, with ``string.Template`` fields (``$name``) for the numbers and the table
RESULTS_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates",
                                "table3_results.md")


def write_table(args, results, command, total, state=None, compare=None):
    """``--out``/README.md from :data:`RESULTS_TEMPLATE`: the rows run so far, the command,
    its wall time (``total``, seconds), the code's git state and, when ``compare`` names a
    report beside it, that report."""
    by = dict(results)
    rows = []
    for name, label, _, _ in _rows(args):
        r = by.get(name)
        if r is None:
            continue
        its = r["s_per_it"]
        s1 = its.get(1) if name.startswith(("gankd", "fgfi")) else None
        s2 = its.get(2)
        rows.append("| %s | `%s` | %s | %s | %s | %s | %d |" % (
            label, name, _fmt(r["final"]), _fmt(r["best"]),
            "-" if s1 is None else "%.2f" % s1, "-" if s2 is None else "%.2f" % s2, r["code"]))
    state = state or {}
    fields = {
        "num_train": args.num_train, "image_size": args.image_size, "num_test": args.num_test,
        "wall_min": "%.0f" % (total / 60.0), "command": command,
        "commit": state.get("commit", "unknown"),
        "tree": " with local changes to " + ", ".join(state["dirty"]) if state.get("dirty")
        else "",
        "rows": "\n".join(rows), "teacher_epochs": args.teacher_epochs, "epochs": args.epochs,
        "gan_epochs": args.gan_epochs, "lr": "%g" % args.lr, "batch": BATCH,
        "sizes": " ".join(SIZES), "warmup": args.train_D_eopch, "clamp": "%g" % args.clamp,
        "critic_channels": args.critic_channels,
        "compare": (" `%s` is that report for the GAN-KD RoI-pooling run." % compare)
        if compare else ""}
    with open(RESULTS_TEMPLATE) as f:
        text = string.Template(f.read()).substitute(fields)
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(text)


def main(args, argv=None):
    """Train and evaluate every row, writing ``--out``/README.md after each; exit status 0
    when every run ended with 0, else 1."""
    argv = sys.argv[1:] if argv is None else argv
    command = shell_command("table3_demo.py", argv)
    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
    start = time.time()
    ensure_dataset(os.path.join(args.work, "data"), 0, args.num_train, args.num_test,
                   image_size=(args.image_size, args.image_size))
    state = git_state()
    results = []
    for name, label, script, extra in _rows(args):
        old = os.path.join(args.out, "logs", name + "_train.log")
        if os.path.exists(old):
            os.remove(old)                     # one run per log file
        code, wall = _run(args, name, script, extra)
        results.append((name, _summary(args, name, code, wall)))
        print("%-15s exit %d, %.0f s" % (name, code, wall), flush=True)
        write_table(args, results, command, time.time() - start, state)
        if name == "teacher" and code != 0:
            print("the teacher's run failed (its output: %s): no student can be distilled"
                  % os.path.join(args.out, "logs", name + ".stdout.txt"), file=sys.stderr)
            break
    compare = _compare_with_published(args, results)
    if compare:
        write_table(args, results, command, time.time() - start, state, compare)
    if not args.keep_work:
        shutil.rmtree(args.work, ignore_errors=True)
    return 0 if all(r["code"] == 0 for _, r in results) else 1


#: The comparison of the GAN-KD RoI-pooling run with the authors' published log, beside README
COMPARE_REPORT = "compare_gankd_pool_vs_published.md"


def _compare_with_published(args, results):
    """When the authors' Faster R-CNN log is at hand (:func:`~gankd_gluon.logs.published.
    published_log`) and the GAN-KD RoI-pooling run ended with 0, write the log comparison of
    the two (:func:`~gankd_gluon.logs.report.compare_logs`, report only) as
    ``--out``/:data:`COMPARE_REPORT`; return its file name, or None (and remove a stale one)."""
    from ..logs.published import FRCNN_LOG, published_log
    from ..logs.report import compare_logs
    target = os.path.join(args.out, COMPARE_REPORT)
    if os.path.exists(target):
        os.remove(target)
    published = published_log(FRCNN_LOG)
    if published is None or dict(results).get("gankd_pool", {}).get("code") != 0:
        return None
    scratch = os.path.join(args.work, "compare")
    result = compare_logs(published, os.path.join(args.out, "logs", "gankd_pool_train.log"),
                          scratch, plots=False)
    if result.exit_code != 0:
        print("log comparison failed: %s" % "; ".join(result.messages), file=sys.stderr)
        return None
    shutil.copyfile(os.path.join(scratch, "report.md"), target)
    return COMPARE_REPORT
