"""Mechanism check: does GAN-KD's adversarial term move the student's maps toward the teacher's?

GAN-KD (Hong, Yu, Fan, "GAN-Knowledge Distillation for one-stage Object Detection",
arXiv:1906.08467, 2019) claims that stage 1, where WGAN critics learn to tell the teacher's
feature maps from the student's and the student learns to fool them, makes the student's maps
like the teacher's. This script measures that claim directly, on held-out images, rather than
through a downstream mAP.

**Arms.** The student is trained in stage 1 only (``train_ssd_gan_kd.py --stage 1``, called in
process through that script's own ``parse_args(argv)`` and
:func:`gankd_gluon.engine.runs.run_gankd`), three times per seed, the runs differing in one
thing only:

- ``gan``: ``--method gan``, the paper's stage 1 (critics learn with ``--lrD``);
- ``frozen``: ``--method gan --lrD 0``: the same adversarial term through critics that never
  learn. They keep their random initialisation (after the WGAN clipping the step applies even at
  lr 0), so the student is pushed by an adversarial gradient that carries *no* knowledge of the
  teacher. This is the control that exposes an adversarial term acting as a mere perturbation
  (or a regulariser) of the maps: whatever ``gan`` does beyond ``frozen`` is what the critics
  learned from the teacher;
- ``none``: ``--method none``: no distillation term at all; same schedule, same (teacher's) head,
  same adapters, same data.

Every other flag is the same (``--stage1-flags`` appends more to all arms). With one seed the
three runs start from the same student (the same seed builds the same initial weights; checked
here, see below) and see the same batches in the same order (the loop reseeds every epoch), so
the comparisons are paired by seed.

**Start point.** Per arm and seed a run with ``--gan-epochs 0`` writes the freshly initialised
student (and critics) through the same code path; its maps give the ``start`` row, so the table
shows how far each arm moved. The script checks that the three arms' start students are
identical and that the ``frozen`` arm's learnable critic weights at the end equal their
clipped initial values (BatchNorm's moving statistics do move: they are updated by every
training-mode forward and unused there).

**Metrics**, on the first ``--num-images`` images of the dataset's ``test`` split, GluonCV's SSD
validation transform, both networks in inference mode: the student's ``features`` (the adapted
maps, the teacher's channels) against the teacher's ``features`` of the same images, map by map:

- ``cosine_length``: :func:`gankd_gluon.engine.diagnostics.cosine_length_distance`
  ``(1 - cos(s, t)) + | |s| - |t| | / |t|`` of the channel vectors at each location, averaged
  over images and locations, then over maps
  (:func:`~gankd_gluon.engine.diagnostics.cosine_length_metric`, the stage-1 monitor column):
  does each location's vector point and scale like the teacher's?
- ``moment_distance`` (:func:`moment_distance`): per channel, the mean and standard deviation
  over images and locations; ``|mean_s - mean_t| / std_t + |std_s - std_t| / std_t`` averaged
  over channels, then over maps. This is the kind of difference a critic can see in
  distribution (first and second moments), without a pairing of locations.

Lower is closer to the teacher; 0 is the teacher itself. Each table cell is the mean over seeds
with a 95% t-interval (Student's t, n - 1 degrees of freedom), then the per-seed values; the
paired differences ``gan - frozen``, ``gan - none`` and ``arm - start`` are per seed, then
summarised the same way. ``DIR/mechanism.json`` holds every number per seed and per map, the
exact argv of every run, the wall times and the git commit; ``DIR/logs/`` the runs' training
logs. Run folders (checkpoints) go to a temporary directory, deleted at the end unless
``--keep``.

At the old demo's scale (its teacher: mobilenet1.0 SSD at 128 px on the default generated set,
which ``scripts/demo.py`` trained into ``logs/demo/cache`` before it became the study's small
version, and ``scripts/ablation_chen.py`` still trains there; its data and student
mobilenet0.25; 3 seeds x 3 arms x 6 epochs, about 18 minutes on 2 busy CPU cores)::

    T=logs/demo/cache/teacher/ssd_128_mobilenet1.0_synthetic_teacher_e32_s233_n300
    python benchmarks/mechanism_check.py --teacher-params $T/$(basename $T)-final.net.params \\
        --dataset-root logs/demo/cache/synthetic_s0_n300_100 --out logs/mechanism

Nothing here runs in CI except ``tests/test_mechanism_check.py``'s tiny end-to-end run.
"""
import argparse
import json
import math
import os
import platform
import shlex
import shutil
import string
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd  # noqa: E402

from gankd_gluon.experiments.scripts import load_script  # noqa: E402
from gankd_gluon.data.datasets import dataset_classes, get_dataset  # noqa: E402
from gankd_gluon.engine.checkpoint import load_checkpoint  # noqa: E402
from gankd_gluon.models.weights import read_checkpoint  # noqa: E402
from gankd_gluon.engine.diagnostics import (cosine_length_distance,  # noqa: E402
                                            cosine_length_metric)
from gankd_gluon.engine.runs import run_gankd  # noqa: E402
from gankd_gluon.engine.ssd_runs import SSDPart, build_gankd_models  # noqa: E402

__all__ = ["ARMS", "METRICS", "moment_distance", "map_metrics", "t_interval", "parse_args", "main"]

#: The three arms: name -> the flags that make it (everything else is shared).
ARMS = {"gan": ["--method", "gan"],
        "frozen": ["--method", "gan", "--lrD", "0"],
        "none": ["--method", "none"]}
METRICS = ("cosine_length", "moment_distance")
#: Paired differences reported, (a, b) = a - b per seed.
CONTRASTS = (("gan", "frozen"), ("gan", "none"), ("gan", "start"), ("frozen", "start"),
             ("none", "start"))
# flags the script sets itself (an arm's identity, the seed, the schedule, where runs write) or
# has a flag of its own for (the report states them)
RESERVED = ("--method", "--lrD", "--lr-d", "--stage", "--gan-epochs", "--seed", "--save-dir",
            "--save-prefix", "--log-dir", "--resume", "--init-from", "--teacher-params",
            "--dataset", "--dataset-root", "--teacher", "--student", "--data-shape",
            "--batch-size", "--critic-channels")


def _existing(kind):
    def check(value):
        ok = os.path.isfile(value) if kind == "file" else os.path.isdir(value)
        if not ok:
            raise argparse.ArgumentTypeError("%s: no such %s" % (value, kind))
        return os.path.abspath(value)
    return check


def _seeds(value):
    try:
        seeds = [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a comma-separated list of seeds" % value) \
            from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError("%r: give one or more distinct seeds" % value)
    return seeds


def _stage1_flags(value):
    flags = shlex.split(value)
    taken = [f for f in flags if f.split("=")[0] in RESERVED]
    if taken:
        raise argparse.ArgumentTypeError("%s: set by this script (the arms, seeds, epochs and "
                                         "run folders); use its own flags" % ", ".join(taken))
    return flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--teacher-params", type=_existing("file"), required=True,
                   help="trained teacher SSD (.params from scripts/train_ssd.py)")
    p.add_argument("--dataset-root", type=_existing("directory"), required=True,
                   help="the generated dataset (scripts/make_synthetic_voc.py --root)")
    p.add_argument("--teacher", type=str, default="mobilenet1.0",
                   help="the teacher's backbone (the demo's)")
    p.add_argument("--student", type=str, default="mobilenet0.25",
                   help="the student's backbone (the demo's)")
    p.add_argument("--data-shape", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--critic-channels", type=int, default=64,
                   help="first-conv channels of each critic (the demo's)")
    p.add_argument("--epochs", type=int, default=6, help="stage-1 epochs of every run")
    p.add_argument("--seeds", type=_seeds, default=[233, 234, 235],
                   help="training seeds; each trains all three arms")
    p.add_argument("--num-images", type=int, default=64,
                   help="the first N test images the maps are compared on")
    p.add_argument("--eps", type=float, default=1e-6,
                   help="floor of the teacher's norms and standard deviations in denominators")
    p.add_argument("--stage1-flags", type=_stage1_flags, default=[],
                   help="more train_ssd_gan_kd.py flags for every run, one quoted string, e.g. "
                        "\"--critic-norm none --d-steps 5\" (one flag alone: "
                        "--stage1-flags=--no-hybridize)")
    p.add_argument("--out", type=str, default="logs/mechanism",
                   help="mechanism.md, mechanism.json and the runs' logs (logs/) go here")
    p.add_argument("--work-dir", type=str, default="",
                   help="run folders (checkpoints); default: a fresh temporary directory")
    p.add_argument("--keep", action="store_true",
                   help="keep the run folders (deleted at the end otherwise)")
    return p.parse_args(argv)


# -- metrics --------------------------------------------------------------------------------------
def moment_distance(student, teacher, eps=1e-6):
    """Per-channel first and second moments of two maps, compared relative to the teacher's
    spread.

    For each channel c, with the mean and (population) standard deviation taken over images and
    locations, ``d_c = |mean_s - mean_t| / std_t + |std_s - std_t| / std_t``; the result is the
    mean of ``d_c`` over channels. 0 when the channels' moments match; a channel whose student
    mean is one teacher standard deviation off adds 1, as does one whose spread is off by the
    teacher's. Insensitive to which location holds which value (a distribution comparison,
    what a critic can see), unlike :func:`~gankd_gluon.engine.diagnostics.cosine_length_distance`.

    Parameters
    ----------
    student, teacher : array-like, each (N, C, H, W)
        The student's adapted map (the teacher's channels) and the teacher's map of the same N
        images.
    eps : float
        Floor of ``std_t``: a channel the teacher holds constant on these images counts
        ``(|mean_s - mean_t| + std_s) / eps`` (see :func:`map_metrics`' ``constant_channels``).

    Returns
    -------
    float
    """
    s, t = np.asarray(student, np.float64), np.asarray(teacher, np.float64)
    if s.shape != t.shape or s.ndim != 4:
        raise ValueError("moment_distance: student %s, teacher %s: two (N, C, H, W) maps of one "
                         "shape" % (s.shape, t.shape))
    s = s.transpose(1, 0, 2, 3).reshape(s.shape[1], -1)
    t = t.transpose(1, 0, 2, 3).reshape(t.shape[1], -1)
    std_t = np.maximum(t.std(axis=1), eps)
    per_channel = (np.abs(s.mean(axis=1) - t.mean(axis=1)) + np.abs(s.std(axis=1) - t.std(axis=1))
                   ) / std_t
    return float(per_channel.mean())


def map_metrics(student_maps, teacher_maps, eps=1e-6):
    """Both metrics of the student's maps against the teacher's, map by map and averaged.

    Parameters
    ----------
    student_maps, teacher_maps : list of np.ndarray, map i (N, C_i, H_i, W_i)

    Returns
    -------
    dict
        ``cosine_length``, ``moment_distance``: the mean over maps (every map counts equally);
        ``per_map``: those two per map, and ``constant_channels``, how many of the teacher's
        channels are constant (std <= eps) on these images.
    """
    per_map = []
    for s, t in zip(student_maps, teacher_maps):
        cos = cosine_length_distance(mx.nd.array(s), mx.nd.array(t), eps)
        t_std = t.transpose(1, 0, 2, 3).reshape(t.shape[1], -1).std(axis=1)
        per_map.append({"cosine_length": float(cos.mean().asscalar()),
                        "moment_distance": moment_distance(s, t, eps),
                        "constant_channels": int((t_std <= eps).sum()),
                        "shape": list(t.shape[1:])})
    # the stage-1 monitor of the training logs, here over all test images (same mean over maps)
    overall = cosine_length_metric([mx.nd.array(s) for s in student_maps],
                                   [mx.nd.array(t) for t in teacher_maps],
                                   n=student_maps[0].shape[0], eps=eps)
    return {"cosine_length": float(overall.asscalar()),
            "moment_distance": float(np.mean([m["moment_distance"] for m in per_map])),
            "per_map": per_map}


def t_interval(values, level=0.95):
    """Mean and half-width of the two-sided ``level`` Student-t interval of the mean.

    Returns (mean, half, n); half is nan with fewer than two finite values."""
    from scipy import stats
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    if v.size < 2:
        return float(v[0]), float("nan"), 1
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean()), float(half), int(v.size)


# -- runs -----------------------------------------------------------------------------------------
def run_name(args, arm, seed, start=False):
    return "ssd_%d_%s_%s_synthetic_stage1_%s_s%d%s" % (args.data_shape, args.student,
                                                       args.teacher, arm, seed,
                                                       "_e0" if start else "")


def stage1_argv(args, arm, seed, save_dir, log_dir, start=False):
    """The exact ``train_ssd_gan_kd.py`` argv of one run (``start``: 0 epochs, the initial
    student)."""
    num_batches = len(get_dataset("synthetic", args.dataset_root, "train")) // args.batch_size
    return (["--dataset", "synthetic", "--dataset-root", args.dataset_root, "--gpus", "",
             "--data-shape", str(args.data_shape), "--batch-size", str(args.batch_size),
             "--pretrained-base", "none", "--augment", "flip", "--num-workers", "0",
             "--student", args.student, "--teacher", args.teacher,
             "--teacher-params", args.teacher_params, "--head", "teacher",
             "--critic-channels", str(args.critic_channels), "--stage", "1",
             # one log line per epoch, one validation (the loop validates the last epoch), the
             # final checkpoint only (its epoch and best checkpoints link the same files)
             "--log-interval", str(max(1, num_batches)), "--val-interval", "1000000",
             "--save-interval", "1000000", "--keep-last", "1", "--no-progress"]
            + list(args.stage1_flags) + ARMS[arm]
            + (["--gan-epochs", "0", "--save-initial"] if start
               else ["--gan-epochs", str(args.epochs)])
            + ["--seed", str(seed),
               "--save-dir", save_dir, "--log-dir", log_dir,
               "--save-prefix", run_name(args, arm, seed, start), "--overwrite"])


def train(script, argv):
    """One stage-1 run in this process; returns (final manifest path, wall seconds, error)."""
    run_args = script.parse_args(argv)
    log = os.path.join(run_args.log_dir, run_args.save_prefix + "_train.log")
    if os.path.exists(log):
        os.remove(log)      # logs are opened in append mode; every run here starts afresh
    tic = time.time()
    try:
        run_gankd(run_args, SSDPart())
    except FloatingPointError as err:     # a diverged run is a result, not a crash of the check
        return None, time.time() - tic, str(err)
    manifest = os.path.join(run_args.save_dir, run_args.save_prefix,
                            run_args.save_prefix + "-final.json")
    return manifest, time.time() - tic, None


def test_images(args):
    """The first ``--num-images`` test images, GluonCV's SSD validation transform: (N, 3, S, S)."""
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
    test = get_dataset("synthetic", args.dataset_root, "test")
    transform = SSDDefaultValTransform(args.data_shape, args.data_shape)
    n = min(args.num_images, len(test))
    return mx.nd.stack(*[transform(*test[i])[0] for i in range(n)])


def feature_maps(features, images, batch_size):
    """A feature block's maps of ``images`` in inference mode: numpy, map i (N, C_i, H_i, W_i)."""
    out = None
    for i in range(0, images.shape[0], batch_size):
        with autograd.predict_mode():
            maps = features(images[i:i + batch_size])
        maps = [m.asnumpy() for m in maps]
        out = [[m] for m in maps] if out is None else [o + [m] for o, m in zip(out, maps)]
    return [np.concatenate(o) for o in out]


def load_run(script, argv, manifest):
    """Teacher, student and critics of a run, the student (and critics) from its checkpoint."""
    run_args = script.parse_args(argv)
    ctx = [mx.cpu()]
    teacher, student, dnet, _ = build_gankd_models(run_args, dataset_classes("synthetic"), ctx)
    parts = read_checkpoint(manifest, ["student"], "final checkpoint")["parts"]
    blocks = {"student": student}
    if "dnet" in parts:
        blocks["dnet"] = dnet
    load_checkpoint(manifest, blocks, {}, ctx, flag="final checkpoint")
    return teacher, student, dnet if "dnet" in parts else None, run_args


def _params_of(manifest, part):
    folder = os.path.dirname(os.path.abspath(manifest))
    return {k: v.asnumpy() for k, v in mx.nd.load(
        os.path.join(folder, read_checkpoint(manifest, [part])["parts"][part])).items()}


def critic_change(start_manifest, end_manifest, dnet, clamp):
    """How far the critics moved from their initial weights.

    Returns
    -------
    dict
        ``learnable_from_clipped_start``: max |end - clip(start)| over the learnable parameters
        (0 when the critics never learned: the first critic step clips the initial weights,
        whatever the lr); ``learnable_from_start``: max |end - start|; ``moving_stats``: max
        |end - start| of BatchNorm's moving statistics (updated by every training-mode
        forward, unused by a training-mode critic).
    """
    start, end = _params_of(start_manifest, "dnet"), _params_of(end_manifest, "dnet")
    learnable = {k for k, p in dnet._collect_params_with_prefix().items() if p.grad_req != "null"}
    out = {"learnable_from_clipped_start": 0.0, "learnable_from_start": 0.0, "moving_stats": 0.0}
    for k in start:
        diff = np.abs(end[k] - start[k]).max()
        if k in learnable:
            out["learnable_from_start"] = max(out["learnable_from_start"], float(diff))
            out["learnable_from_clipped_start"] = max(
                out["learnable_from_clipped_start"],
                float(np.abs(end[k] - np.clip(start[k], *clamp)).max()))
        else:
            out["moving_stats"] = max(out["moving_stats"], float(diff))
    return out


def max_param_difference(manifest_a, manifest_b, part="student"):
    a, b = _params_of(manifest_a, part), _params_of(manifest_b, part)
    if set(a) != set(b):
        return float("inf")
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


# -- report ---------------------------------------------------------------------------------------
def summarise(per_seed, seeds):
    """Means, t-intervals and paired differences from the per-seed metrics.

    ``per_seed[row][seed]`` is :func:`map_metrics`' dict, or None for a failed run.
    """
    def values(row, metric, seed):
        m = per_seed.get(row, {}).get(seed)
        return None if m is None else m[metric]

    cells = {}
    for row in ("start",) + tuple(ARMS):
        cells[row] = {}
        for metric in METRICS:
            vals = [values(row, metric, s) for s in seeds]
            mean, half, n = t_interval(vals)
            cells[row][metric] = {"mean": mean, "ci95": half, "n": n, "per_seed": vals}
    diffs = {}
    for a, b in CONTRASTS:
        key = "%s - %s" % (a, b)
        diffs[key] = {}
        for metric in METRICS:
            vals = [None if values(a, metric, s) is None or values(b, metric, s) is None
                    else values(a, metric, s) - values(b, metric, s) for s in seeds]
            mean, half, n = t_interval(vals)
            diffs[key][metric] = {"mean": mean, "ci95": half, "n": n, "per_seed": vals}
    return cells, diffs


def _num(x, signed=False):
    if x is None or not np.isfinite(x):
        return "n/a"
    return ("%+.4f" if signed else "%.4f") % x


def _cell(c, signed=False):
    per = ", ".join(_num(v, signed) for v in c["per_seed"])
    half = "" if not np.isfinite(c["ci95"]) else " ± %.4f" % c["ci95"]
    return "%s%s (%s)" % (_num(c["mean"], signed), half, per)


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


REPORT = string.Template("""\
# Mechanism check: does the adversarial term move the student's maps toward the teacher's?

Written by `benchmarks/mechanism_check.py` (its docstring defines the arms and the metrics) at
commit `$commit`$dirty, $date. Stage 1 only, epochs per run: $epochs; seeds $seeds; teacher
`$teacher` (`$teacher_params`), student `$student`, $data_shape px, batch $batch_size, the teacher's
head, critics with $critic_channels base channels; extra flags: $extra. Maps compared on the first
$num_images test images of `$dataset_root`. Lower is closer to the teacher (0 = the teacher's
maps). Cells: mean over seeds ± 95% t-interval (per-seed values in seed order).

$main_table

## Paired differences (per seed: same initial student, same batches)

Negative `gan - frozen`: the critics that learned from the teacher moved the maps closer than the
same adversarial term through critics that never learned (no teacher information). Negative
`arm - start`: the arm moved toward the teacher during stage 1.

$diff_table

## Per map (mean over seeds)

$map_table

## Checks

- start students of the three arms identical per seed (max |difference| of any weight):
  $start_identical
- `frozen` critics, max |end - clip(initial)| over learnable weights (0 = never learned):
  $frozen_critics; `gan` critics for comparison: $gan_critics. BatchNorm moving statistics,
  updated by every training-mode forward and unused by a training-mode critic, moved up to
  $moving_stats.
- teacher channels constant on these images (std <= eps, per map): $constant_channels
$failures
## Cost

Stage-1 wall time per run (s, including model building, one validation and checkpoints):
$walls; the 0-epoch start runs: $start_walls. Median stage-1 epoch (s) from the logs' speeds:
$epoch_s. Whole check: $total_min min.
""")


def render(result):
    cells, diffs = result["summary"], result["differences"]
    seeds = result["settings"]["seeds"]
    main_rows = [[row] + [_cell(cells[row][m]) for m in METRICS] for row in cells]
    diff_rows = [[k] + [_cell(diffs[k][m], signed=True) for m in METRICS] for k in diffs]
    num_maps = len(next(iter(result["metrics"]["start"].values()))["per_map"])
    map_rows = []
    for metric in METRICS:
        for row, by_seed in result["metrics"].items():
            ok = [by_seed[str(s)] for s in seeds if by_seed.get(str(s)) is not None]
            map_rows.append([metric, row] + [
                _num(np.mean([m["per_map"][i][metric] for m in ok])) if ok else "n/a"
                for i in range(num_maps)])
    shapes = next(iter(result["metrics"]["start"].values()))["per_map"]
    checks = result["checks"]
    s = result["settings"]

    def critics(key, *arms):
        vals = [c[key] for a in arms for c in checks["critics"].get(a, {}).values()]
        return "%.3g" % max(vals) if vals else "n/a"
    failures = "".join("- **run failed**: %s seed %s: %s\n" % (f["arm"], f["seed"], f["error"])
                       for f in result["failures"])
    return REPORT.substitute(
        commit=result["git"]["commit"], dirty=" (with uncommitted changes)"
        if result["git"]["dirty"] else "", date=result["date"], epochs=s["epochs"],
        seeds=", ".join(str(x) for x in seeds), teacher=s["teacher"],
        teacher_params=s["teacher_params"], student=s["student"], data_shape=s["data_shape"],
        batch_size=s["batch_size"], critic_channels=s["critic_channels"],
        extra="`%s`" % " ".join(s["stage1_flags"]) if s["stage1_flags"] else "none",
        num_images=result["num_images"], dataset_root=s["dataset_root"],
        main_table=_table(["row"] + list(METRICS), main_rows),
        diff_table=_table(["paired difference"] + list(METRICS), diff_rows),
        map_table=_table(["metric", "row"] + ["map %d %s" % (i, "x".join(map(str, m["shape"])))
                                              for i, m in enumerate(shapes)], map_rows),
        start_identical=", ".join("seed %s: %s" % (k, "%.3g" % v) for k, v in
                                  checks["start_students_max_difference"].items()),
        frozen_critics=critics("learnable_from_clipped_start", "frozen"),
        gan_critics=critics("learnable_from_clipped_start", "gan"),
        moving_stats=critics("moving_stats", "gan", "frozen"),
        constant_channels=", ".join(str(m["constant_channels"]) for m in shapes),
        failures=failures,
        walls="; ".join("%s %s" % (k, ", ".join("%.0f" % w for w in v.values()))
                        for k, v in result["wall_s"]["train"].items()),
        epoch_s=", ".join("%s %.1f" % kv for kv in result["epoch_s"].items()),
        start_walls=", ".join("%.0f" % w for w in result["wall_s"]["start"].values()),
        total_min="%.1f" % (result["wall_s"]["total"] / 60))


def git_state():
    def git(*cmd):
        try:
            return subprocess.run(["git", "-C", ROOT] + list(cmd), capture_output=True,
                                  text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD") or "unknown", "dirty": bool(status)}


def log_epochs(log_path):
    """The epoch lines of a run's log (the project's parser), for their speeds."""
    from gankd_gluon.logs.parse import parse_log
    return parse_log(log_path).run(-1).epochs


# -- main -----------------------------------------------------------------------------------------
def main(args):
    tic = time.time()
    script = load_script("train_ssd_gan_kd.py")
    out = os.path.abspath(args.out)
    log_dir = os.path.join(out, "logs")
    os.makedirs(log_dir, exist_ok=True)
    work = os.path.abspath(args.work_dir) if args.work_dir else tempfile.mkdtemp(
        prefix="gankd_mechanism_")
    save_dir = os.path.join(work, "runs")
    images = test_images(args)
    num_train = len(get_dataset("synthetic", args.dataset_root, "train"))
    samples_per_epoch = num_train // args.batch_size * args.batch_size
    metrics = {row: {} for row in ("start",) + tuple(ARMS)}
    argvs = {arm: {} for arm in ARMS}
    walls = {"start": {}, "train": {arm: {} for arm in ARMS}}
    checks = {"start_students_max_difference": {}, "critics": {"gan": {}, "frozen": {}}}
    failures, epoch_times = [], {arm: [] for arm in ARMS}
    teacher_maps = None
    try:
        for seed in args.seeds:
            starts = {}
            for arm in ARMS:
                argv = stage1_argv(args, arm, seed, save_dir, log_dir, start=True)
                starts[arm], walls["start"]["%s_s%d" % (arm, seed)], _ = train(script, argv)
                argvs[arm]["start_s%d" % seed] = argv
            checks["start_students_max_difference"][str(seed)] = max(
                max_param_difference(starts["gan"], starts[a]) for a in ARMS)
            # the start row: the gan arm's initial student (the same in every arm, checked above)
            argv = argvs["gan"]["start_s%d" % seed]
            teacher, student, _, _ = load_run(script, argv, starts["gan"])
            if teacher_maps is None:
                teacher_maps = feature_maps(teacher.features, images, args.batch_size)
            metrics["start"][str(seed)] = map_metrics(
                feature_maps(student.features, images, args.batch_size), teacher_maps, args.eps)
            for arm in ARMS:
                argv = stage1_argv(args, arm, seed, save_dir, log_dir)
                argvs[arm]["s%d" % seed] = argv
                manifest, walls["train"][arm]["s%d" % seed], error = train(script, argv)
                if error is not None:
                    failures.append({"arm": arm, "seed": seed, "error": error})
                    metrics[arm][str(seed)] = None
                    continue
                _, student, dnet, run_args = load_run(script, argv, manifest)
                metrics[arm][str(seed)] = map_metrics(
                    feature_maps(student.features, images, args.batch_size), teacher_maps,
                    args.eps)
                if dnet is not None:
                    checks["critics"][arm][str(seed)] = critic_change(
                        starts[arm], manifest, dnet, (run_args.clamp_lower, run_args.clamp_upper))
                log = os.path.join(log_dir, run_args.save_prefix + "_train.log")
                epoch_times[arm] += [samples_per_epoch / e.speed for e in log_epochs(log)
                                     if e.speed]
    finally:
        if args.keep:
            print("run folders kept in %s" % save_dir, file=sys.stderr)
        elif not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(save_dir, ignore_errors=True)

    cells, diffs = summarise({row: {int(k): v for k, v in by.items()}
                              for row, by in metrics.items()}, args.seeds)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "git": git_state(),
        "command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "mxnet": mx.__version__},
        "settings": {k: v for k, v in vars(args).items()},
        "num_images": int(images.shape[0]), "metrics": metrics, "summary": cells,
        "differences": diffs, "checks": checks, "failures": failures, "argv": argvs,
        "epoch_s": {arm: float(np.median(v)) if v else float("nan")
                    for arm, v in epoch_times.items()},
        "wall_s": dict(walls, total=time.time() - tic)}
    with open(os.path.join(out, "mechanism.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    report = render(result)
    with open(os.path.join(out, "mechanism.md"), "w") as f:
        f.write(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
