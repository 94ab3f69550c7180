"""The controlled study of GAN-KD: arms that differ only in the distillation term, paired seeds,
confidence intervals (``scripts/study_gankd.py``).

Design (the questions a referee asks of a distillation result):

- every arm is ``train_ssd_gan_kd.py`` with the same teacher, student, head (the teacher's),
  adapters, schedule (stage 1 then stage 2), data and evaluation; arms differ only in
  ``--method`` (:data:`ARMS`): ``none`` the same-schedule control, ``hint`` Hints-A as the
  positive control (Chen, Choi, Yu, Han, Chandraker, "Learning Efficient Object Detection Models
  with Knowledge Distillation", NIPS 2017, https://papers.nips.cc/paper/6676-learning-
  efficient-object-detection-models-with-knowledge-distillation), ``gan`` the
  method (Hong, Yu, Fan, "GAN-Knowledge Distillation for one-stage Object Detection",
  arXiv:1906.08467, 2019, https://arxiv.org/abs/1906.08467), ``gan-frozen`` (``--lrD 0``: critics
  frozen at their random initialisation, an adversarial term carrying no teacher information)
  as the negative control;
- paired seeds: ``--seed s`` seeds the initialisation and, at every epoch start, the data order
  and augmentation (``seed + 1000 * stage + epoch``,
  :func:`gankd_gluon.engine.loop.seed_everything`),
  so one seed gives every arm the same start and the same batches;
- the teacher trains once on the whole pool of training images and is cached; the students
  train on its first ``K`` images (:func:`make_subset_root`), so the teacher knows more than
  the students' labels say (Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural
  Network", NIPS Deep Learning Workshop 2014, https://arxiv.org/abs/1503.02531);
- a gate before any student run: the teacher must reach ``--gate-teacher-map`` and exceed the
  plain student on the subset by ``--gate-margin``;
- statistics (:func:`study_statistics`): per-arm mean and standard deviation, paired differences
  with a percentile-bootstrap 95% interval over seeds (Efron, Tibshirani, "An Introduction to the
  Bootstrap", Chapman & Hall, 1993) and the paired t-test (``scipy.stats.ttest_rel``); the
  evaluation noise is a bootstrap over test images of the teacher's VOC07 mAP
  (:func:`bootstrap_map`), scored with GluonCV's metric.

A killed study continues: a run whose final checkpoint was written with the very same settings
is reused (:func:`gankd_gluon.experiments.runs.finished_with`), not trained again.
"""
import json
import math
import os
import shlex
import string
import time

import numpy as np

__all__ = ["ARMS", "DEFAULT_ARMS", "COMPARISONS", "bootstrap_mean_ci", "paired_t_test",
           "arm_summary", "study_statistics", "recompute_statistics", "bootstrap_map",
           "make_subset_root", "check_gate", "eta_seconds", "run_study", "write_report",
           "final_distance", "distance_by_arm", "finish_report", "missing_runs"]

#: arm -> the flags that make it (appended to the shared argv).
ARMS = {
    "none": ["--method", "none"],
    "hint": ["--method", "hints-a"],
    "gan": ["--method", "gan"],
    "gan-frozen": ["--method", "gan", "--lrD", "0"],
    "chen": ["--method", "chen"],
    "ko": ["--method", "ko"],
    "gan-batch": ["--method", "gan", "--critic-norm", "batch"],
}
DEFAULT_ARMS = ("none", "hint", "gan", "gan-frozen")
#: paired differences the report gives, (a, b) for ``a - b``
COMPARISONS = (("hint", "none"), ("gan", "none"), ("gan", "gan-frozen"))


class StudyError(Exception):
    """The study cannot go on (the gate failed); the message names the numbers."""


# -- statistics (pure) ----------------------------------------------------------------------------
def bootstrap_mean_ci(values, n_boot, seed, level=0.95):
    """Percentile-bootstrap confidence interval of the mean.

    ``np.random.RandomState(seed).randint(0, n, size=(n_boot, n))`` draws the resamples; the
    interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles (numpy's linear
    interpolation) of their means. Efron, Tibshirani, "An Introduction to the Bootstrap",
    Chapman & Hall, 1993, ch. 13.

    Parameters
    ----------
    values : sequence of float, length n >= 1
    n_boot : int
        Number of resamples.
    seed : int
        Seed of the resampling, stated in the report.
    level : float

    Returns
    -------
    (float, float)
        Lower and upper bound.
    """
    values = np.asarray(values, dtype=np.float64)
    idx = np.random.RandomState(seed).randint(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def paired_t_test(a, b):
    """Paired t-test of ``a - b`` (``scipy.stats.ttest_rel``), two-sided.

    Parameters
    ----------
    a, b : sequence of float, length n >= 2, paired by seed

    Returns
    -------
    (float, float)
        t statistic ``mean(d) / (std(d, ddof=1) / sqrt(n))`` and its p-value (nan when every
        difference is the same).
    """
    from scipy import stats
    res = stats.ttest_rel(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return float(res.statistic), float(res.pvalue)


def arm_summary(values):
    """Mean and sample standard deviation (ddof 1; nan for one value) of an arm's mAPs."""
    values = np.asarray(values, dtype=np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return {"n": int(len(values)), "mean": float(values.mean()), "std": std}


def study_statistics(arms, n_boot, boot_seed, comparisons=COMPARISONS):
    """Every number of the report's tables from the per-arm, per-seed final mAPs.

    Parameters
    ----------
    arms : dict
        ``{arm: {seed (str): final mAP}}`` as in ``results.json``.
    n_boot, boot_seed : int
        Bootstrap resamples and seed (:func:`bootstrap_mean_ci`).
    comparisons : sequence of (str, str)
        ``(a, b)`` pairs; those with an arm missing are left out.

    Returns
    -------
    dict
        ``arms``: ``{arm: {n, mean, std}}``; ``differences``: list of ``{a, b, seeds, diffs,
        mean, ci_low, ci_high, t, p}`` over the seeds both arms ran.
    """
    out = {"arms": {arm: arm_summary(list(runs.values())) for arm, runs in arms.items()
                    if runs},
           "differences": []}
    for a, b in comparisons:
        if a not in arms or b not in arms:
            continue
        seeds = sorted(set(arms[a]) & set(arms[b]), key=int)
        if len(seeds) < 2:
            continue
        va = [arms[a][s] for s in seeds]
        vb = [arms[b][s] for s in seeds]
        diffs = [x - y for x, y in zip(va, vb)]
        lo, hi = bootstrap_mean_ci(diffs, n_boot, boot_seed)
        t, p = paired_t_test(va, vb)
        out["differences"].append({"a": a, "b": b, "seeds": seeds, "diffs": diffs,
                                   "mean": float(np.mean(diffs)), "ci_low": lo, "ci_high": hi,
                                   "t": t, "p": p})
    return out


def recompute_statistics(path):
    """:func:`study_statistics` from a ``results.json`` alone (its bootstrap settings included).

    Raises
    ------
    KeyError
        The file lacks ``arms`` or ``bootstrap``.
    """
    with open(path) as f:
        res = json.load(f)
    return study_statistics(res["arms"], res["bootstrap"]["samples"], res["bootstrap"]["seed"])


def positive_control_shows(stats, min_effect):
    """True when ``hint - none`` is at least ``min_effect`` and its interval excludes zero."""
    for d in stats["differences"]:
        if (d["a"], d["b"]) == ("hint", "none"):
            return d["mean"] >= min_effect and d["ci_low"] > 0
    return False


def bootstrap_map(detections, ground_truth, class_names, n_boot, seed):
    """VOC07 mAP of test sets resampled image by image: the evaluation noise of one model.

    Each resample draws ``I`` images with replacement (``RandomState(seed).randint(0, I, I)``),
    keeps their ground truth and detections (a drawn twice image counts twice, under its own
    id) and scores them with :func:`gankd_gluon.eval.voc.score_detections` (GluonCV's
    ``VOC07MApMetric``).

    Parameters
    ----------
    detections : gankd_gluon.eval.results.DetectionSet
    ground_truth : gankd_gluon.eval.results.GroundTruth
    class_names : sequence of str
    n_boot, seed : int

    Returns
    -------
    np.ndarray, (n_boot,)
        mAP of each resample.
    """
    from ..eval.results import DetectionSet, GroundTruth
    from ..eval.voc import score_detections
    num = len(ground_truth)
    per_image = [np.flatnonzero(detections.image_index == i) for i in range(num)]
    rng = np.random.RandomState(seed)
    maps = np.empty(n_boot)
    for k in range(n_boot):
        draw = rng.randint(0, num, size=num)
        ids = ["%d" % j for j in range(num)]
        gt = GroundTruth(ids, [ground_truth.boxes[i] for i in draw],
                         [ground_truth.labels[i] for i in draw],
                         [ground_truth.difficult[i] for i in draw])
        rows = [per_image[i] for i in draw]
        index = np.concatenate([np.full(len(r), j) for j, r in enumerate(rows)] + [[]])
        sel = np.concatenate(rows + [np.zeros(0, np.int64)]).astype(np.int64)
        dets = DetectionSet(ids, index, detections.labels[sel], detections.scores[sel],
                            detections.boxes[sel])
        maps[k] = score_detections(dets, gt, class_names)[1][-1]
    return maps


def check_gate(teacher_map, plain_map, min_teacher, margin):
    """The gate before the student runs: None when passed, else the message naming the numbers."""
    problems = []
    if not teacher_map >= min_teacher:
        problems.append("teacher mAP %.4f < --gate-teacher-map %.2f" % (teacher_map, min_teacher))
    if not teacher_map >= plain_map + margin:
        problems.append("teacher mAP %.4f < plain student mAP %.4f + --gate-margin %.2f"
                        % (teacher_map, plain_map, margin))
    if not problems:
        return None
    return ("gate failed: %s. Train the teacher longer (--teacher-epochs), change the regime "
            "(--difficulty, --num-train, --student-images), or pass --no-gate"
            % "; ".join(problems))


def eta_seconds(walls, remaining):
    """Time left: mean wall time of the runs trained so far times the runs left (nan if none)."""
    return float(np.mean(walls)) * remaining if walls else float("nan")


# -- data -----------------------------------------------------------------------------------------
def make_subset_root(pool_root, subset_root, k):
    """A VOC tree whose ``trainval`` is the first ``k`` training images of ``pool_root``.

    Images and annotations are links to the pool's folders and ``test`` is the pool's, so the
    students see exactly the pool's first ``k`` images and are evaluated on the same test set
    as the teacher.

    Raises
    ------
    ValueError
        ``k`` is not in ``[1, pool size]``.
    """
    src = os.path.join(pool_root, "VOCdevkit", "VOC2007")
    dst = os.path.join(subset_root, "VOCdevkit", "VOC2007")
    with open(os.path.join(src, "ImageSets", "Main", "trainval.txt")) as f:
        ids = [line.strip() for line in f if line.strip()]
    if not 1 <= k <= len(ids):
        raise ValueError("--student-images %d is outside [1, %d] (the pool)" % (k, len(ids)))
    os.makedirs(os.path.join(dst, "ImageSets", "Main"), exist_ok=True)
    for folder in ("JPEGImages", "Annotations"):
        link = os.path.join(dst, folder)
        if not os.path.islink(link):
            os.symlink(os.path.relpath(os.path.join(src, folder), dst), link)
    with open(os.path.join(dst, "ImageSets", "Main", "trainval.txt"), "w") as f:
        f.write("".join(i + "\n" for i in ids[:k]))
    with open(os.path.join(src, "ImageSets", "Main", "test.txt")) as f:
        test = f.read()
    with open(os.path.join(dst, "ImageSets", "Main", "test.txt"), "w") as f:
        f.write(test)
    return subset_root


# -- runs -----------------------------------------------------------------------------------------
class StudyPlan:
    """Paths and argv of every run, from ``scripts/study_gankd.py``'s arguments.

    Parameters
    ----------
    cfg : gankd_gluon.experiments.demo.DemoConfig
        Scale, pair, schedule, teacher cache (the demo's flags).
    study : argparse.Namespace
        The study's own flags (``name``, ``arms``, ``seeds``, ``student_images``, ``difficulty``,
        gate and statistics settings).
    """

    def __init__(self, cfg, study):
        a = cfg.args
        self.cfg, self.study = cfg, study
        # the demo's cache keys do not know the difficulty: a study's data and teacher are keyed
        # by it too, so a study never reuses the demo's teacher of the default set
        cfg.data_root = os.path.join(cfg.cache, "synthetic_%s_s%d_n%d_%d" % (
            study.difficulty, a.data_seed, a.num_train, a.num_test))
        if not cfg.teacher_prefix.endswith("_" + study.difficulty):
            cfg.teacher_prefix += "_" + study.difficulty
        self.subset_root = cfg.data_root + "_first%d" % study.student_images
        self.logs_dir = os.path.join(cfg.out, "logs")

    def prefix(self, arm, seed):
        a = self.cfg.args
        return "ssd_%d_%s_%s_study_%s_%s_s%d" % (a.data_shape, a.student, a.teacher,
                                                 self.study.name, arm, seed)

    def plain_prefix(self):
        a = self.cfg.args
        return "ssd_%d_%s_study_%s_plain_s%d" % (a.data_shape, a.student, self.study.name,
                                                 self.study.seeds[0])

    def student_argv(self, arm, seed):
        """Shared flags (same for every arm), then the arm's own (:data:`ARMS`)."""
        a, cfg = self.cfg.args, self.cfg
        return (["--student", a.student, "--teacher", a.teacher, "--teacher-params",
                 cfg.teacher_params, "--head", a.head, "--gan-epochs", str(a.gan_epochs),
                 "--epochs", str(a.student_epochs - a.gan_epochs), "--lrG", str(a.lr_g),
                 "--lrD", str(a.lr_d), "--lr", str(a.stage2_lr), "--d-steps", str(a.d_steps),
                 "--critic-channels", str(a.critic_channels),
                 # the student-teacher distance is logged for every arm, the control included
                 "--monitor-teacher",
                 "--save-prefix", self.prefix(arm, seed), "--overwrite", "--save-dir",
                 cfg.runs_dir, "--log-dir", self.logs_dir] + cfg.common_argv()
                + ["--dataset-root", self.subset_root, "--seed", str(seed)] + ARMS[arm])

    def plain_argv(self):
        """``train_ssd.py`` of the student backbone on the subset, the students' total epochs."""
        a, cfg = self.cfg.args, self.cfg
        return (["--network", a.student, "--optimizer", a.baseline_optimizer, "--lr", str(a.lr),
                 "--epochs", str(a.student_epochs), "--save-prefix", self.plain_prefix(),
                 "--overwrite", "--save-dir", cfg.runs_dir, "--log-dir", self.logs_dir]
                + cfg.common_argv()
                + ["--dataset-root", self.subset_root, "--seed", str(self.study.seeds[0])])

    def log(self, prefix):
        return os.path.join(self.logs_dir, prefix + "_train.log")


def _train_or_reuse(plan, prefix, argv, parse, run, say, label):
    """Train one run unless it finished earlier with the same settings; returns wall s or None.
    A run trained again replaces what its folder holds (``--overwrite`` in every argv)."""
    from .runs import finished_with
    run_args = parse(argv)
    log = plan.log(prefix)
    if finished_with(plan.cfg, prefix, run_args, log, argv):
        say("%s: reused, finished earlier with the same settings (%s)" % (label, log))
        return None
    if os.path.exists(log):
        os.remove(log)
    say("%s: training, %s" % (label, shlex.join(argv)))     # pasteable: --gpus 
    tic = time.time()
    run(run_args)
    return time.time() - tic


def run_study(cfg, study, command, say=print):
    """The whole study; returns the ``results.json`` dict. See the module docstring.

    Raises
    ------
    StudyError
        The gate failed (the message names the teacher's and the plain student's mAP).
    """
    from ..data.datasets import get_dataset
    from .runs import (ensure_dataset, evaluate_exported, git_state, train_teacher,
                       train_ssd_gankd as run_gankd, train_ssd_plain as run_plain)
    a = cfg.args
    plan = StudyPlan(cfg, study)
    os.makedirs(plan.logs_dir, exist_ok=True)
    ensure_dataset(cfg.data_root, a.data_seed, a.num_train, a.num_test, say=say,
                   difficulty=study.difficulty)
    make_subset_root(cfg.data_root, plan.subset_root, study.student_images)
    test = get_dataset("synthetic", cfg.data_root, "test")

    teacher = train_teacher(cfg, say)
    collect = {}
    names, values = evaluate_exported(cfg.exported("teacher"), test, a.data_shape,
                                      a.batch_size, collect=collect)
    teacher_map = values[-1]
    say("teacher: mAP %.4f; evaluation noise: %d bootstrap resamples of the %d test images"
        % (teacher_map, study.eval_bootstrap, len(test)))
    boot = bootstrap_map(collect["detections"], collect["ground_truth"], names[:-1],
                         study.eval_bootstrap, study.bootstrap_seed)
    noise = {"std": float(boot.std(ddof=1)) if len(boot) > 1 else float("nan"),
             "ci_low": float(np.percentile(boot, 2.5)),
             "ci_high": float(np.percentile(boot, 97.5)),
             "samples": int(study.eval_bootstrap), "num_test_images": len(test)}
    say("teacher: evaluation noise: std %.4f mAP" % noise["std"])

    wall = _train_or_reuse(plan, plan.plain_prefix(), plan.plain_argv(), cfg.plain_parse_args,
                           run_plain, say, "plain student")
    plain_map = evaluate_exported(os.path.join(cfg.runs_dir, plan.plain_prefix(),
                                               plan.plain_prefix() + "-final-net"),
                                  test, a.data_shape, a.batch_size)[1][-1]
    say("plain student (train_ssd.py, first %d images): mAP %.4f%s"
        % (study.student_images, plain_map, "" if wall is None else " in %.0f s" % wall))
    gate = check_gate(teacher_map, plain_map, study.gate_teacher_map, study.gate_margin)
    if gate and not study.no_gate:
        raise StudyError(gate)
    if gate:
        say("%s -- going on (--no-gate)" % gate)

    res = {"name": study.name, "command": command, "git": git_state(),
           "arms": {arm: {} for arm in study.arms}, "teacher_map": teacher_map,
           "student_plain_map": plain_map, "eval_noise": noise,
           "bootstrap": {"samples": study.bootstrap_samples, "seed": study.bootstrap_seed},
           "min_effect": study.min_effect, "gate": {"passed": gate is None,
                                                    "message": gate or ""},
           "student_images": study.student_images, "difficulty": study.difficulty,
           "num_train": a.num_train, "num_test": a.num_test, "logs": {},
           "teacher_wall_s": teacher["wall_s"], "wall_s": {},
           "plan": {"arms": list(study.arms), "seeds": [str(x) for x in study.seeds]}}
    runs = [(seed, arm) for seed in study.seeds for arm in study.arms]   # seed-major: paired
    walls = []
    for k, (seed, arm) in enumerate(runs):
        prefix = plan.prefix(arm, seed)
        label = "run %d of %d: arm %s, seed %d" % (k + 1, len(runs), arm, seed)
        say("%s (time left about %s)" % (label, _minutes(eta_seconds(walls, len(runs) - k))))
        wall = _train_or_reuse(plan, prefix, plan.student_argv(arm, seed), cfg.gankd_parse_args,
                               run_gankd, say, label)
        if wall is not None:
            walls.append(wall)
        value = evaluate_exported(os.path.join(cfg.runs_dir, prefix, prefix + "-final-student"),
                                  test, a.data_shape, a.batch_size)[1][-1]
        res["arms"][arm][str(seed)] = value
        res["logs"].setdefault(arm, {})[str(seed)] = os.path.relpath(plan.log(prefix), cfg.out)
        res["wall_s"].setdefault(arm, {})[str(seed)] = wall
        say("%s: mAP %.4f%s (time left about %s)" % (
            label, value, " reused" if wall is None else " in %.0f s" % wall,
            _minutes(eta_seconds(walls, len(runs) - k - 1))))
        _write_json(res, os.path.join(cfg.out, "results.json"))
    finish_report(cfg.out, say)
    return res


def finish_report(out_dir, say=print):
    """Report, plots and the mechanism check's distances from ``<out_dir>/results.json`` as it
    stands: at the end of a study, or (``study_gankd.py --report-only``) of a study stopped
    part way, whose report then says which runs it lacks.

    Returns
    -------
    dict
        The results with ``distance`` (:func:`distance_by_arm`) added and written back.

    Raises
    ------
    FileNotFoundError
        No ``results.json`` in ``out_dir`` (no student run finished yet).
    """
    path = os.path.join(out_dir, "results.json")
    with open(path) as f:
        res = json.load(f)
    res["distance"] = distance_by_arm(res, out_dir)
    _write_json(res, path)
    stats = study_statistics(res["arms"], res["bootstrap"]["samples"], res["bootstrap"]["seed"])
    figures = {"map": map_figure(res, os.path.join(out_dir, "map_per_arm.png")),
               "diagnostics": diagnostics_figure(res, out_dir,
                                                 os.path.join(out_dir, "diagnostics.png"))}
    write_report(res, stats, figures, os.path.join(out_dir, "report.md"))
    say("wrote %s" % os.path.join(out_dir, "report.md"))
    return res


def missing_runs(res):
    """``[(arm, seed)]`` the plan has and ``results.json`` lacks (a study stopped part way);
    without a recorded plan, the seeds some arm ran and another did not."""
    plan = res.get("plan") or {}
    arms = plan.get("arms") or list(res["arms"])
    seeds = plan.get("seeds") or sorted({s for runs in res["arms"].values() for s in runs},
                                        key=int)
    return [(arm, s) for s in seeds for arm in arms if s not in res["arms"].get(arm, {})]


def _minutes(seconds):
    return "?" if math.isnan(seconds) else "%.1f min" % (seconds / 60.0)


def _write_json(res, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


# -- plots ----------------------------------------------------------------------------------------
def _figure(w, h):
    from ..logs.plots import new_figure
    return new_figure(w, h)


def map_figure(res, path):
    """Final mAP of every run as a point per seed, the arm's mean as a bar; the teacher and the
    plain student as lines."""
    fig = _figure(1.6 + 1.4 * len(res["arms"]), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for i, (arm, runs) in enumerate(res["arms"].items()):
        vals = [runs[s] for s in sorted(runs, key=int)]
        if not vals:
            continue
        xs = i + np.linspace(-0.15, 0.15, len(vals))
        ax.plot(xs, vals, "o", color="tab:blue", markersize=6)
        ax.hlines(np.mean(vals), i - 0.3, i + 0.3, color="black", linewidth=2)
    ax.axhline(res["teacher_map"], color="tab:green", linestyle="--", label="teacher")
    ax.axhline(res["student_plain_map"], color="tab:red", linestyle=":",
               label="plain student (train_ssd.py)")
    ax.set_xticks(range(len(res["arms"])))
    ax.set_xticklabels(list(res["arms"]), fontsize=12)
    ax.set_ylabel("final VOC07 mAP (points: seeds, bar: mean)", fontsize=11)
    ax.legend(fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def diagnostic_series(log_path):
    """Stage-1 per-epoch ``cosine_length_loss_metric`` and ``W_i`` columns of one run's log.

    Returns
    -------
    dict
        ``{column: (epochs list, values list)}``, finite values only.
    """
    from ..engine.diagnostics import COSINE_LENGTH
    from ..logs.parse import parse_log
    run = parse_log(log_path).run(-1)
    out = {}
    for rec in run.epochs:
        # only stage-1 lines carry these columns; the parser's stage guess is not used, since
        # it reads a line whose adversarial columns are nan (--method none) as stage 2
        for name, value in rec.metrics.items():
            if (name == COSINE_LENGTH or name.startswith("W_")) and value is not None \
                    and math.isfinite(value):
                out.setdefault(name, ([], []))
                out[name][0].append(rec.global_epoch)
                out[name][1].append(value)
    return out


def final_distance(log_path):
    """The student-teacher distance ``cosine_length_loss_metric`` of a run's last stage-1
    epoch line (the mean over that epoch's batches), or None when the log has none (a run
    without the teacher, ``--method none`` without ``--monitor-teacher``)."""
    from ..engine.diagnostics import COSINE_LENGTH
    series = diagnostic_series(log_path).get(COSINE_LENGTH)
    return series[1][-1] if series and series[1] else None


def distance_by_arm(res, out_dir):
    """``{arm: {seed: final stage-1 distance}}`` from the runs' logs (:func:`final_distance`),
    runs without the column left out: the mechanism check's numbers (a working distillation
    brings the student's maps closer to the teacher's than the control does: lower is closer).
    """
    out = {}
    for arm, logs in res["logs"].items():
        for seed, rel in logs.items():
            value = final_distance(os.path.join(out_dir, rel))
            if value is not None:
                out.setdefault(arm, {})[seed] = value
    return out


def diagnostics_figure(res, out_dir, path):
    """Per arm (mean over seeds), over stage-1 epochs: the student-teacher distance
    ``cosine_length_loss_metric`` and each critic's separation ``W_i``."""
    per_arm = {}
    for arm, logs in res["logs"].items():
        for rel in logs.values():
            for name, (xs, ys) in diagnostic_series(os.path.join(out_dir, rel)).items():
                for x, y in zip(xs, ys):
                    per_arm.setdefault(name, {}).setdefault(arm, {}).setdefault(x, []).append(y)
    names = sorted(per_arm, key=lambda n: (n != "cosine_length_loss_metric", n))
    fig = _figure(5.0 * min(3, max(1, len(names))), 3.6 * max(1, math.ceil(len(names) / 3.0)))
    colours = dict(zip(ARMS, ("tab:gray", "tab:green", "tab:orange", "tab:purple", "tab:blue",
                              "tab:brown", "tab:red")))
    for i, name in enumerate(names):
        ax = fig.add_subplot(max(1, math.ceil(len(names) / 3.0)), min(3, len(names)), i + 1)
        for arm, by_epoch in per_arm[name].items():
            xs = sorted(by_epoch)
            ax.plot(xs, [np.mean(by_epoch[x]) for x in xs], "o-", color=colours.get(arm),
                    label=arm)
        ax.set_title(name + (" (student-teacher distance)" if name.startswith("cos")
                             else " (critic separation)"), fontsize=11)
        ax.set_xlabel("stage-1 epoch", fontsize=10)
        ax.legend(fontsize=9)
        ax.grid(alpha=0.3)
    if not names:
        fig.text(0.5, 0.5, "no stage-1 diagnostics in the logs", ha="center", fontsize=12)
    fig.tight_layout()
    fig.savefig(path)
    return path


# -- report ---------------------------------------------------------------------------------------
REPORT = string.Template("""\
# GAN-KD study `$name`

**Minimum meaningful effect: $min_effect mAP.** A difference smaller than this is treated as no
effect, whatever its p-value.

**Evaluation noise:** the teacher's VOC07 mAP over $boot_n bootstrap resamples of the
$num_test test images (seed $boot_seed) has standard deviation **$noise_std** (95% range
$noise_lo to $noise_hi): a single model's score moves this much with the test images alone.

$partial## Regime

Teacher mAP **$teacher_map** (trained on all $num_train training images); plain student
(`train_ssd.py`, the first $student_images images) **$plain_map**. $gate

## Final mAP per arm

| arm | flags | seeds | mean | std |
|---|---|---|---|---|
$arm_rows

## Paired differences (same seed: same initialisation and data order)

95% intervals: percentile bootstrap over seeds, $n_boot resamples, bootstrap seed $boot_seed.
p: paired t-test (`scipy.stats.ttest_rel`, two-sided).

| difference | seeds | mean | 95% CI | t | p |
|---|---|---|---|---|---|
$diff_rows

$verdict

![final mAP per arm](map_per_arm.png)

## Diagnostics over stage 1

Mean over seeds per arm: `cosine_length_loss_metric` (student-teacher feature distance,
independent of the critics) and each critic's separation `W_i` (mean D_i(student) - mean
D_i(teacher)), read from the training logs with `gankd_gluon.logs.parse`.

![diagnostics](diagnostics.png)

### Mechanism check: the student-teacher distance at the end of stage 1

`cosine_length_loss_metric` of each run's last stage-1 epoch (every arm runs the teacher,
`--monitor-teacher`; lower is closer to the teacher). If the critics carry the teacher's
knowledge, `gan` ends closer than `none` and than `gan-frozen` (negative differences).

| arm | seeds | mean | std |
|---|---|---|---|
$distance_arm_rows

| difference | seeds | mean | 95% CI | t | p |
|---|---|---|---|---|---|
$distance_diff_rows

## Reproduce

```
$command
```

Code: commit `$commit`$dirty. `results.json` holds every final mAP; the tables above
recompute from it with `gankd_gluon.experiments.study.recompute_statistics`.
""")


def _f(x, spec="%.4f"):
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else spec % x


def verdict(stats, min_effect):
    """The report's conclusion: a ranking only when the positive control shows."""
    diffs = {(d["a"], d["b"]): d for d in stats["differences"]}
    if ("hint", "none") not in diffs:
        return ("**The positive control (`hint - none`) has fewer than 2 paired seeds, so "
                "nothing is concluded about the regime's sensitivity.**")
    if not positive_control_shows(stats, min_effect):
        d = diffs[("hint", "none")]
        return ("**The regime is not sensitive:** the positive control `hint - none` is %s "
                "(95%% CI %s to %s), not at least %s with an interval above zero. The study "
                "does not rank the methods." % (_f(d["mean"]), _f(d["ci_low"]),
                                                 _f(d["ci_high"]), _f(min_effect, "%.2f")))
    lines = ["**The positive control shows** (`hint - none` %s, 95%% CI %s to %s)."
             % (_f(diffs[("hint", "none")]["mean"]), _f(diffs[("hint", "none")]["ci_low"]),
                _f(diffs[("hint", "none")]["ci_high"]))]
    for key in (("gan", "none"), ("gan", "gan-frozen")):
        if key in diffs:
            d = diffs[key]
            meaningful = d["mean"] >= min_effect and d["ci_low"] > 0
            lines.append("`%s - %s`: %s (95%% CI %s to %s): %s." % (
                key[0], key[1], _f(d["mean"]), _f(d["ci_low"]), _f(d["ci_high"]),
                "a meaningful gain" if meaningful else "no meaningful gain"))
    return " ".join(lines)


def _diff_rows(stats):
    return "\n".join("| %s - %s | %s | %s | %s to %s | %s | %s |" % (
        d["a"], d["b"], ",".join(d["seeds"]), _f(d["mean"]), _f(d["ci_low"]),
        _f(d["ci_high"]), _f(d["t"], "%.3f"), _f(d["p"], "%.3g"))
        for d in stats["differences"]) or "| (no pair of arms with 2 common seeds) | | | | | |"


def _partial_notice(res):
    missing = missing_runs(res)
    if not missing:
        return ""
    return ("**A partial study: %d planned run(s) did not run** (%s). The tables below use the "
            "runs that finished; the same command continues the study and rewrites this "
            "report.\n\n" % (len(missing), ", ".join("%s seed %s" % m for m in missing)))


def write_report(res, stats, figures, path):
    """``report.md`` from ``results.json``'s dict and :func:`study_statistics` (the distance
    table from ``res['distance']``, with the same bootstrap settings)."""
    arm_rows = "\n".join("| %s | `%s` | %d | %s | %s |" % (
        arm, " ".join(ARMS[arm]), s["n"], _f(s["mean"]), _f(s["std"]))
        for arm, s in stats["arms"].items())
    diff_rows = _diff_rows(stats)
    dist = study_statistics(res.get("distance", {}), res["bootstrap"]["samples"],
                            res["bootstrap"]["seed"],
                            comparisons=COMPARISONS + (("gan", "hint"),))
    distance_arm_rows = "\n".join("| %s | %d | %s | %s |" % (
        arm, s["n"], _f(s["mean"]), _f(s["std"])) for arm, s in dist["arms"].items()) \
        or "| (no run logged the distance) | | | |"
    gate = res["gate"]
    text = REPORT.substitute(
        name=res["name"], min_effect=_f(res["min_effect"], "%.3f"),
        boot_n=res["eval_noise"]["samples"], num_test=res["eval_noise"]["num_test_images"],
        boot_seed=res["bootstrap"]["seed"], noise_std=_f(res["eval_noise"]["std"]),
        noise_lo=_f(res["eval_noise"]["ci_low"]), noise_hi=_f(res["eval_noise"]["ci_high"]),
        teacher_map=_f(res["teacher_map"]), num_train=res["num_train"],
        student_images=res["student_images"], plain_map=_f(res["student_plain_map"]),
        gate="The gate passed." if gate["passed"] else
        "**The gate did not pass; the study ran with --no-gate.** %s." % gate["message"],
        arm_rows=arm_rows, diff_rows=diff_rows, n_boot=res["bootstrap"]["samples"],
        distance_arm_rows=distance_arm_rows, distance_diff_rows=_diff_rows(dist),
        partial=_partial_notice(res),
        verdict=verdict(stats, res["min_effect"]), command=res["command"],
        commit=res["git"]["commit"],
        dirty=(" (with local changes in: %s)" % ", ".join(res["git"]["dirty"])
               if res["git"]["dirty"] else ", clean working tree"))
    with open(path, "w") as f:
        f.write(text)
    return path
