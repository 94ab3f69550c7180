"""The CPU demo: the whole GAN-KD method at a small scale, teacher vs baseline vs distilled student.

``scripts/demo.py`` is the entry point; this module holds the steps so that they can be reused
(and read top to bottom):

1. :func:`ensure_dataset` generates the synthetic shapes set once (cached);
2. :func:`train_teacher` trains the teacher with ``run_plain`` (``train_ssd.py``) once and
   reuses it from the cache on later runs;
3. the baseline student is trained with ``run_plain`` (``train_ssd.py --network <student>``)
   and the GAN-KD student with ``run_gankd`` (``train_ssd_gan_kd.py``, stage 1 + stage 2) for
   the same total number of epochs over the same data;
4. the three exported final models are evaluated with the project's VOC07 evaluation
   (:func:`gankd_gluon.eval.voc.evaluate_detector`), drawn on the same test images with
   GluonCV's ``plot_bbox`` (:func:`detections_figure`), and the GAN-KD log is read back with the
   project's parser for the loss curves (:func:`loss_curves_figure`);
5. :func:`write_results` writes ``results.md``.

The training runs are the package functions the scripts call, given a ``Namespace`` made by the
scripts' own ``parse_args(argv)``, so every default is the scripts' default and the logs are the
scripts' logs.
"""
import json
import math
import os
import shutil
import time

import numpy as np

__all__ = ["DemoConfig", "ensure_dataset", "train_teacher", "train_baseline", "train_gankd",
           "evaluate_exported", "detections_figure", "loss_curves_figure", "log_summary",
           "write_results", "run_demo"]

GAN_METRICS = ("Loss_D", "Loss_G", "Loss_D_real", "Loss_D_fake")
CE_GAN, L1_GAN = "train_student_ori_net_CrossEntropy", "train_student_ori_net_SmoothL1"


class DemoConfig:
    """Everything the demo runs with, from ``scripts/demo.py``'s arguments.

    Parameters
    ----------
    args : argparse.Namespace
        ``scripts/demo.py`` arguments.
    plain_parse_args, gankd_parse_args : callable
        ``parse_args(argv)`` of ``scripts/train_ssd.py`` and ``scripts/train_ssd_gan_kd.py``.
    """

    def __init__(self, args, plain_parse_args, gankd_parse_args):
        self.args = args
        self.plain_parse_args = plain_parse_args
        self.gankd_parse_args = gankd_parse_args
        self.out = os.path.abspath(args.out)
        self.cache = os.path.abspath(args.cache)
        self.data_root = os.path.join(self.cache, "synthetic_s%d_n%d_%d" % (
            args.data_seed, args.num_train, args.num_test))
        # the cache key says everything the teacher depends on
        self.teacher_prefix = "ssd_%d_%s_synthetic_teacher_e%d_s%d_n%d" % (
            args.data_shape, args.teacher, args.teacher_epochs, args.seed, args.num_train)
        self.teacher_dir = os.path.join(self.cache, "teacher")
        self.runs_dir = os.path.join(self.cache, "runs")     # student checkpoints (rewritten)
        self.baseline_prefix = "ssd_%d_%s_synthetic_baseline" % (args.data_shape, args.student)
        self.gankd_prefix = "ssd_%d_%s_%s_synthetic_gankd" % (args.data_shape, args.student,
                                                              args.teacher)

    def common_argv(self):
        """Flags both students and the teacher share: data, scale, CPU, logging."""
        a = self.args
        argv = ["--dataset", "synthetic", "--dataset-root", self.data_root, "--gpus", "",
                "--data-shape", str(a.data_shape), "--batch-size", str(a.batch_size),
                "--pretrained-base", "none", "--augment", a.augment,
                "--num-workers", str(a.num_workers), "--log-interval", str(a.log_interval),
                "--val-interval", str(a.val_interval), "--save-interval", "100000",
                "--keep-last", "1", "--seed", str(a.seed)]
        if not a.progress:
            argv.append("--no-progress")
        return argv

    @property
    def teacher_params(self):
        return os.path.join(self.teacher_dir, self.teacher_prefix,
                            self.teacher_prefix + "-final.net.params")

    def exported(self, which):
        """Prefix of the exported final model (``HybridBlock.export``) of a run."""
        if which == "teacher":
            return os.path.join(self.teacher_dir, self.teacher_prefix,
                                self.teacher_prefix + "-final-net")
        if which == "baseline":
            return os.path.join(self.runs_dir, self.baseline_prefix,
                                self.baseline_prefix + "-final-net")
        return os.path.join(self.runs_dir, self.gankd_prefix, self.gankd_prefix + "-final-student")

    def log_path(self, which):
        prefix = {"teacher": self.teacher_prefix, "baseline": self.baseline_prefix,
                  "gankd": self.gankd_prefix}[which]
        return os.path.join(self.out, prefix + "_train.log")


# -- 1. data -----------------------------------------------------------------------------------
def ensure_dataset(root, seed, num_train, num_test, say=print):
    """Generate the synthetic set under ``root`` unless it is already complete there."""
    from ..data.synthetic import make_synthetic_voc
    sets = os.path.join(root, "VOCdevkit", "VOC2007", "ImageSets", "Main")

    def count(split):
        path = os.path.join(sets, split + ".txt")
        if not os.path.isfile(path):
            return -1
        with open(path) as f:
            return sum(1 for line in f if line.strip())
    if count("trainval") == num_train and count("test") == num_test:
        say("dataset: cached at %s" % root)
        return False
    tic = time.time()
    make_synthetic_voc(root, seed=seed, num_train=num_train, num_test=num_test)
    say("dataset: generated %d train + %d test images at %s in %.1f s"
        % (num_train, num_test, root, time.time() - tic))
    return True


# -- 2./3. training ------------------------------------------------------------------------------
def _fresh_log(path):
    """Logs are opened in append mode; a demo run starts its logs afresh."""
    if os.path.exists(path):
        os.remove(path)


def train_teacher(cfg, say=print):
    """Train the teacher with ``run_plain`` unless the cache has it.

    Returns
    -------
    dict
        ``cached`` (bool), ``wall_s`` (training wall time of the run that made it), ``log``.
    """
    a = cfg.args
    cached_log = os.path.join(cfg.teacher_dir, cfg.teacher_prefix + "_train.log")
    meta_path = os.path.join(cfg.teacher_dir, cfg.teacher_prefix + ".demo.json")
    if os.path.isfile(cfg.teacher_params) and os.path.isfile(cfg.exported("teacher")
                                                             + "-symbol.json"):
        say("teacher: cached, %s" % cfg.teacher_params)
        meta = json.load(open(meta_path)) if os.path.isfile(meta_path) else {}
        info = {"cached": True, "wall_s": meta.get("wall_s", float("nan")),
                "argv": meta.get("argv", [])}
    else:
        argv = ["--network", a.teacher, "--optimizer", "adam", "--lr", str(a.lr),
                "--epochs", str(a.teacher_epochs), "--save-prefix", cfg.teacher_prefix, "--overwrite",
                "--save-dir", cfg.teacher_dir, "--log-dir", cfg.teacher_dir] + cfg.common_argv()
        _fresh_log(cached_log)
        say("teacher: training %s for %d epochs (train_ssd.py %s)"
            % (a.teacher, a.teacher_epochs, " ".join(argv)))
        from ..engine.ssd_runs import run_plain
        tic = time.time()
        run_plain(cfg.plain_parse_args(argv))
        info = {"cached": False, "wall_s": time.time() - tic, "argv": argv}
        with open(meta_path, "w") as f:
            json.dump(info, f)
    shutil.copyfile(cached_log, cfg.log_path("teacher"))
    info["log"] = cfg.log_path("teacher")
    return info


def baseline_argv(cfg):
    a = cfg.args
    return (["--network", a.student, "--optimizer", a.baseline_optimizer, "--lr",
             str(a.lr), "--epochs", str(a.student_epochs), "--save-prefix", cfg.baseline_prefix,
             "--overwrite",
             "--save-dir", cfg.runs_dir, "--log-dir", cfg.out] + cfg.common_argv())


def gankd_argv(cfg):
    a = cfg.args
    return (["--student", a.student, "--teacher", a.teacher, "--teacher-params",
             cfg.teacher_params, "--head", a.head, "--gan-epochs", str(a.gan_epochs),
             "--epochs", str(a.student_epochs - a.gan_epochs), "--lrG", str(a.lr_g),
             "--lrD", str(a.lr_d), "--lr", str(a.stage2_lr), "--d-steps", str(a.d_steps),
             "--critic-channels", str(a.critic_channels), "--critic-norm", a.critic_norm,
             # the demo's committed results ran the critics' plain sum (the published form);
             # the study that reruns it decides its critics
             "--critic-balance-interval", "0",
             "--save-prefix", cfg.gankd_prefix, "--overwrite",
             "--save-dir", cfg.runs_dir, "--log-dir", cfg.out] + cfg.common_argv())


def train_baseline(cfg, say=print):
    """The '-' row: ``run_plain`` of the student backbone, ``student_epochs`` epochs."""
    from ..engine.ssd_runs import run_plain
    argv = baseline_argv(cfg)
    _fresh_log(cfg.log_path("baseline"))
    say("baseline: train_ssd.py %s" % " ".join(argv))
    tic = time.time()
    run_plain(cfg.plain_parse_args(argv))
    return {"wall_s": time.time() - tic, "argv": argv, "log": cfg.log_path("baseline")}


def train_gankd(cfg, say=print):
    """GAN-KD: ``run_gankd``, stage 1 (``gan_epochs``) then stage 2 (the rest of the budget)."""
    from ..engine.ssd_runs import run_gankd
    argv = gankd_argv(cfg)
    _fresh_log(cfg.log_path("gankd"))
    say("GAN-KD: train_ssd_gan_kd.py %s" % " ".join(argv))
    tic = time.time()
    run_gankd(cfg.gankd_parse_args(argv))
    return {"wall_s": time.time() - tic, "argv": argv, "log": cfg.log_path("gankd")}


# -- 4. evaluation and pictures -------------------------------------------------------------------
def evaluate_exported(prefix, dataset, data_shape, batch_size, num_workers=0, collect=None):
    """VOC07 mAP of an exported detector on ``dataset`` (the project's evaluation).

    Returns
    -------
    names : list of str (classes + 'mAP'), values : list of float
    """
    import mxnet as mx
    from ..eval.detector import import_symbol_detector
    from ..eval.voc import evaluate_detector, get_eval_loader
    net = import_symbol_detector(prefix, [mx.cpu()])
    loader = get_eval_loader(dataset, data_shape, batch_size, num_workers)
    return evaluate_detector(net, loader, [mx.cpu()], list(dataset.classes), progress=False,
                             collect=collect)


def _predict(net, img, data_shape):
    """Detections of one image (H, W, 3) uint8 in original pixels: ids, scores, boxes."""
    import mxnet as mx
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
    h, w = img.shape[:2]
    x, _ = SSDDefaultValTransform(data_shape, data_shape)(img, np.zeros((1, 6)))
    ids, scores, boxes = [o[0].asnumpy() for o in net(x.expand_dims(0).as_in_context(mx.cpu()))]
    boxes = boxes.copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, data_shape) * (w / float(data_shape))
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, data_shape) * (h / float(data_shape))
    return ids[:, 0], scores[:, 0], boxes


def detections_figure(prefixes, titles, dataset, indices, data_shape, path, thresh=0.3):
    """Ground truth and each model's detections on the same test images, with GluonCV's
    ``plot_bbox`` (Agg canvas).

    Parameters
    ----------
    prefixes : list of str
        Exported detectors (``import_symbol_detector`` prefixes).
    titles : list of str
        Column titles, one per prefix.
    dataset : test dataset (items ``(img (H, W, 3) uint8, label (M, 6))``)
    indices : list of int
        Which test images (rows).
    path : str
        PNG to write.
    thresh : float
        Score threshold for drawing.
    """
    import matplotlib
    matplotlib.use("Agg")
    import mxnet as mx
    from gluoncv.utils.viz import plot_bbox
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from ..eval.detector import import_symbol_detector
    classes = list(dataset.classes)
    colors = {i: c for i, c in enumerate(("tab:red", "tab:blue", "tab:green", "tab:orange",
                                          "tab:purple"))}
    nets = [import_symbol_detector(p, [mx.cpu()]) for p in prefixes]
    ncols = 1 + len(nets)
    fig = Figure(figsize=(3.0 * ncols, 3.1 * len(indices)), dpi=64)
    FigureCanvasAgg(fig)
    for r, idx in enumerate(indices):
        img, label = dataset[idx]
        label = np.asarray(label)
        img_np = img.asnumpy()
        ax = fig.add_subplot(len(indices), ncols, r * ncols + 1)
        plot_bbox(img_np, label[:, :4], labels=label[:, 4], class_names=classes, colors=colors,
                  ax=ax, linewidth=1.5, fontsize=7)
        ax.set_title("ground truth" if r == 0 else "", fontsize=9)
        ax.set_ylabel("test image %d" % idx, fontsize=8)
        for c, net in enumerate(nets):
            ids, scores, boxes = _predict(net, img, data_shape)
            ax = fig.add_subplot(len(indices), ncols, r * ncols + 2 + c)
            plot_bbox(img_np, boxes, scores=scores, labels=ids, thresh=thresh,
                      class_names=classes, colors=colors, ax=ax, linewidth=1.5, fontsize=7)
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    return path


def log_summary(path, data_shape_samples):
    """What the demo reads back from a training log with the project's parser.

    Parameters
    ----------
    path : str
    data_shape_samples : int
        Samples per epoch (loader batches x batch size), to turn samples/s into s/epoch.

    Returns
    -------
    dict
        ``epochs``: list of (cumulative epoch, stage, metrics dict, s/epoch);
        ``validations``: list of (cumulative epoch, stage, mAP); ``unreadable``: count;
        ``n_lines``; ``s_per_epoch``: {stage: median s/epoch}.
    """
    from ..logs.parse import parse_log
    parsed = parse_log(path)
    run = parsed.run(-1)
    epochs = []
    per_stage = {}
    for rec in run.epochs:
        sec = data_shape_samples / rec.speed if rec.speed else float("nan")
        epochs.append((rec.global_epoch, rec.stage, dict(rec.metrics), sec))
        per_stage.setdefault(rec.stage, []).append(sec)
    vals = [(v.global_epoch, v.stage, v.mean_ap) for v in run.validations]
    return {"epochs": epochs, "validations": vals, "unreadable": parsed.unreadable_count,
            "n_lines": parsed.n_lines, "segments": [s.label for s in run.segments],
            "s_per_epoch": {k: float(np.median(v)) for k, v in per_stage.items()}}


def loss_curves_figure(gankd, baseline, gan_epochs, path):
    """GAN-KD losses per epoch (Loss_D with its real/fake parts, Loss_G, CE, SmoothL1), the
    baseline's CE and SmoothL1 beside them, and the validation mAP of both runs.

    Parameters
    ----------
    gankd, baseline : dict
        :func:`log_summary` of the two runs.
    gan_epochs : int
        Stage-1 length (a dashed line marks the switch to stage 2).
    """
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 7.5), dpi=80)
    FigureCanvasAgg(fig)

    def series(summary, name):
        pts = [(e, m[name]) for e, _, m, _ in summary["epochs"]
               if name in m and m[name] is not None and math.isfinite(m[name])]
        return [p[0] for p in pts], [p[1] for p in pts]

    panels = [("Loss_D = Loss_D_real - Loss_D_fake (critic)", [("gankd", "Loss_D", "-"),
                                                              ("gankd", "Loss_D_real", ":"),
                                                              ("gankd", "Loss_D_fake", "--")]),
              ("Loss_G (adversarial term, mean D(student))", [("gankd", "Loss_G", "-")]),
              ("CrossEntropy (SSD conf loss)", [("gankd", CE_GAN, "-"),
                                                ("baseline", "CrossEntropy", "-")]),
              ("SmoothL1 (SSD loc loss)", [("gankd", L1_GAN, "-"),
                                           ("baseline", "SmoothL1", "-")])]
    colors = {"gankd": "tab:orange", "baseline": "tab:blue"}
    runs = {"gankd": gankd, "baseline": baseline}
    last = max([e for e, _, _, _ in gankd["epochs"]] + [e for e, _, _, _ in baseline["epochs"]]
               + [1])
    for i, (title, lines) in enumerate(panels):
        ax = fig.add_subplot(3, 2, i + 1)
        ax.set_xlim(0.5, last + 0.5)
        for run, name, style in lines:
            x, y = series(runs[run], name)
            label = ("GAN-KD " if run == "gankd" else "baseline ") + name.replace(
                "train_student_ori_net_", "")
            ax.plot(x, y, style, color=colors[run], marker="o", markersize=2.5, linewidth=1.2,
                    label=label)
        ax.axvline(gan_epochs + 0.5, color="gray", linestyle="--", linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    ax = fig.add_subplot(3, 1, 3)
    ax.set_xlim(0.5, last + 0.5)
    for run in ("baseline", "gankd"):
        v = runs[run]["validations"]
        ax.plot([e for e, _, _ in v], [m for _, _, m in v], "o-", color=colors[run],
                label="GAN-KD student" if run == "gankd" else "baseline student")
    ax.axvline(gan_epochs + 0.5, color="gray", linestyle="--", linewidth=1,
               label="GAN-KD stage 1 -> stage 2")
    ax.set_title("validation mAP (VOC07, test set)", fontsize=9)
    ax.set_xlabel("epoch (GAN-KD: stage-2 epochs counted on after stage 1)", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


# -- 5. report -----------------------------------------------------------------------------------
def _fmt(x, spec="%.3f"):
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else spec % x


def write_results(cfg, res, path):
    """``results.md`` from the numbers gathered by :func:`run_demo`."""
    a = cfg.args
    t, b, g = res["map"]["teacher"], res["map"]["baseline"], res["map"]["gankd"]
    diff = g - b
    if diff > 0.005:
        verdict = ("GAN-KD beat the baseline by %+.3f mAP at this scale (one seed; see the "
                   "notes on noise)." % diff)
    elif diff < -0.005:
        verdict = ("GAN-KD did NOT beat the baseline at this scale: %+.3f mAP (one seed)."
                   % diff)
    else:
        verdict = "GAN-KD and the baseline are level at this scale (%+.3f mAP, one seed)." % diff
    def rel(x):
        return "%.3f mAP %s" % (abs(x), "above" if x >= 0 else "below")
    teacher_note = ("the teacher is %s the baseline student and %s the GAN-KD student"
                    % (rel(t - b), rel(t - g)))
    sg, sb, st = res["logs"]["gankd"], res["logs"]["baseline"], res["logs"]["teacher"]
    lines = []
    w = lines.append
    w("# GAN-KD demo: small-scale analog on the generated shapes dataset")
    w("")
    w("Written by `scripts/demo.py` (%s). A **small-scale analog** of the paper's setting, not "
      "its numbers: the paper distils a ResNet50 SSD512 into a MobileNet SSD512 on VOC with "
      "ImageNet weights and GPUs; here everything trains from scratch on a 2-core CPU, so the "
      "pair is a wide MobileNet teacher over a thin MobileNet student at %d px (Ko & Yoo's "
      "\"wider teacher\"; GLUONCV_FACTS.md sec. 10 and `NOTES.md` give the measurements behind "
      "the choice). Every part of the method runs unchanged: split teacher (frozen), "
      "mirrored student with 1x1 adapters and the teacher's SSD head (`--head %s`), one WGAN "
      "critic per map, stage 1 (adversarial, Adam) then stage 2 (plain SSD, SGD), the "
      "published log format, checkpoints and the VOC07 evaluation."
      % (time.strftime("%Y-%m-%d %H:%M", time.localtime(res["started"])), a.data_shape, a.head))
    w("")
    w("## Command")
    w("")
    w("```")
    w(res["command"])
    w("```")
    w("")
    w("Wall time of this run: **%.1f min** (%s). Load average at start / end: %s / %s "
      "(2 cores; other jobs were %srunning on the machine)."
      % (res["wall_s"] / 60.0, "teacher from the cache" if res["teacher"]["cached"]
         else "teacher trained in this run", " ".join("%.1f" % x for x in res["load_start"]),
         " ".join("%.1f" % x for x in res["load_end"]),
         "" if max(res["load_start"][0], res["load_end"][0]) > 2.5 else "not "))
    w("")
    w("Code: commit `%s`%s." % (res["git"]["commit"], " (with local changes in: %s)"
                                  % ", ".join(res["git"]["dirty"]) if res["git"]["dirty"]
                                  else ", clean working tree"))
    w("")
    w("## Results (VOC07 11-point mAP at IoU 0.5, %d test images)" % a.num_test)
    w("")
    w("| model | backbone | training (epochs of %d images, batch %d) | mAP | s / epoch | "
      "training wall time |" % (a.num_train, a.batch_size))
    w("|---|---|---|---|---|---|")
    w("| teacher | %s | plain SSD (`train_ssd.py`), Adam lr %g, %d epochs | **%s** | %s | "
      "%s%s |" % (a.teacher, a.lr, a.teacher_epochs, _fmt(t), _fmt(st["s_per_epoch"].get(2),
                                                                    "%.1f"),
                  _fmt(res["teacher"]["wall_s"] / 60.0, "%.1f min"),
                  " (cached; time of the run that trained it)" if res["teacher"]["cached"]
                  else ""))
    w("| baseline student | %s | plain SSD (`train_ssd.py`), %s lr %g, %d epochs | **%s** | "
      "%s | %.1f min |" % (a.student, a.baseline_optimizer.capitalize(), a.lr,
                          a.student_epochs, _fmt(b), _fmt(sb["s_per_epoch"].get(2), "%.1f"),
                          res["baseline"]["wall_s"] / 60.0))
    w("| GAN-KD student | %s (+ adapters, teacher's head) | stage 1: %d epochs adversarial "
      "(Adam lrG %g, lrD %g, beta1 0.5, critic channels %d, critic norm %s, d-steps %d); "
      "stage 2: %d epochs "
      "plain SSD (SGD lr %g) | **%s** | stage 1: %s, stage 2: %s | %.1f min |"
      % (a.student, a.gan_epochs, a.lr_g, a.lr_d, a.critic_channels, a.critic_norm, a.d_steps,
         a.student_epochs - a.gan_epochs, a.stage2_lr, _fmt(g),
         _fmt(sg["s_per_epoch"].get(1), "%.1f"), _fmt(sg["s_per_epoch"].get(2), "%.1f"),
         res["gankd"]["wall_s"] / 60.0))
    w("")
    w("**%s** For scale: %s." % (verdict, teacher_note))
    if res.get("after_stage1") is not None:
        w("After stage 1 alone (epoch %d) the GAN-KD student had %s mAP." % (
            a.gan_epochs, _fmt(res["after_stage1"])))
    w("")
    w("mAP is that of the exported final model of each run (`<prefix>-final-{net,student}`, "
      "loaded with `gluon.SymbolBlock.imports`, no project code in the model), scored by "
      "`gankd_gluon.eval.voc.evaluate_detector`; it equals the last validation in each log. "
      "s / epoch is the training loop alone (from the logs' epoch speed, %d samples per "
      "epoch); the wall time includes validation every %d epochs, checkpoints and export."
      % (res["samples_per_epoch"], a.val_interval))
    w("")
    w("Per-class AP:")
    w("")
    names = res["class_names"]
    w("| model | " + " | ".join(names) + " |")
    w("|---|" + "---|" * len(names))
    for key, label in (("teacher", "teacher"), ("baseline", "baseline"), ("gankd", "GAN-KD")):
        w("| %s | " % label + " | ".join(_fmt(v) for v in res["aps"][key]) + " |")
    w("")
    w("## Detections on the same test images")
    w("")
    w("GluonCV `plot_bbox`, scores >= %.1f drawn; first column is the ground truth."
      % a.draw_thresh)
    w("")
    w("![detections](%s)" % os.path.basename(res["figures"]["detections"]))
    w("")
    w("## Loss curves of the GAN-KD run")
    w("")
    w("Per epoch, read back from the training logs with `gankd_gluon.logs.parse.parse_log` "
      "(the dashed line is the switch from stage 1 to stage 2; in stage 2 the adversarial "
      "columns print `nan`, as in the published log, and are not drawn). The baseline's "
      "detection losses are drawn beside the GAN-KD student's.")
    w("")
    w("![losses](%s)" % os.path.basename(res["figures"]["losses"]))
    w("")
    w("| epoch | stage | Loss_D | Loss_G | Loss_D_real | Loss_D_fake | CE | SmoothL1 | "
      "baseline CE | baseline SmoothL1 |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    base_by_epoch = {e: m for e, _, m, _ in sb["epochs"]}
    for e, stage, m, _ in sg["epochs"]:
        bm = base_by_epoch.get(e, {})
        w("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            e, stage, _fmt(m.get("Loss_D")), _fmt(m.get("Loss_G")), _fmt(m.get("Loss_D_real")),
            _fmt(m.get("Loss_D_fake")), _fmt(m.get(CE_GAN)), _fmt(m.get(L1_GAN)),
            _fmt(bm.get("CrossEntropy")), _fmt(bm.get("SmoothL1"))))
    w("")
    w("## Logs")
    w("")
    for key, label in (("teacher", "teacher"), ("baseline", "baseline student"),
                       ("gankd", "GAN-KD student")):
        s = res["logs"][key]
        w("- %s: `%s` (%d lines, %d unreadable by the parser; segments: %s)" % (
            label, os.path.basename(res[key]["log"]), s["n_lines"], s["unreadable"],
            "; ".join(s["segments"])))
    w("- the demo's own messages: `demo.log`")
    w("")
    w("The logs use the published log's line format; the parser reads them with the "
      "regular expressions it reads "
      "`published_logs/ssd_512_mobilenet1_0_resnet50_v1_voc_g_d_new_train.log` with.")
    w("")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def _git_state():
    """Commit and locally modified tracked files of the checkout the demo runs from."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def git(*cmd):
        try:
            return subprocess.run(("git",) + cmd, cwd=root, capture_output=True, text=True,
                                  timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no")
             .splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or "unknown", "dirty": dirty}


def run_demo(args, plain_parse_args, gankd_parse_args, command):
    """The whole demo; returns the numbers written to ``results.md``.

    Parameters
    ----------
    args : argparse.Namespace
        ``scripts/demo.py`` arguments.
    plain_parse_args, gankd_parse_args : callable
        The training scripts' ``parse_args(argv)``.
    command : str
        The command line, for ``results.md``.
    """
    if not 0 < args.gan_epochs < args.student_epochs:
        raise ValueError("--gan-epochs must be between 1 and --student-epochs - 1 (stage 2 "
                         "needs at least one epoch), got %d of %d"
                         % (args.gan_epochs, args.student_epochs))
    started = time.time()
    load_start = os.getloadavg()
    cfg = DemoConfig(args, plain_parse_args, gankd_parse_args)
    os.makedirs(cfg.out, exist_ok=True)
    demo_log = open(os.path.join(cfg.out, "demo.log"), "w")

    def say(msg):
        line = "[demo %6.1f s] %s" % (time.time() - started, msg)
        print(line, flush=True)
        demo_log.write(line + "\n")
        demo_log.flush()

    say("command: %s" % command)
    ensure_dataset(cfg.data_root, args.data_seed, args.num_train, args.num_test, say)
    res = {"started": started, "command": command, "load_start": load_start,
           "git": _git_state()}
    res["teacher"] = train_teacher(cfg, say)
    say("teacher: done (%.1f min)" % (res["teacher"]["wall_s"] / 60.0))
    res["baseline"] = train_baseline(cfg, say)
    say("baseline: done (%.1f min)" % (res["baseline"]["wall_s"] / 60.0))
    res["gankd"] = train_gankd(cfg, say)
    say("GAN-KD: done (%.1f min)" % (res["gankd"]["wall_s"] / 60.0))

    from ..data.datasets import get_dataset
    test = get_dataset("synthetic", cfg.data_root, "test")
    train = get_dataset("synthetic", cfg.data_root, "train")
    res["samples_per_epoch"] = (len(train) // args.batch_size) * args.batch_size
    res["map"], res["aps"] = {}, {}
    for key in ("teacher", "baseline", "gankd"):
        names, values = evaluate_exported(cfg.exported(key), test, args.data_shape,
                                          args.batch_size)
        res["class_names"] = names[:-1]
        res["aps"][key] = values[:-1]
        res["map"][key] = values[-1]
        say("%s: mAP %.4f (%s)" % (key, values[-1], cfg.exported(key)))
    res["logs"] = {k: log_summary(res[k]["log"], res["samples_per_epoch"])
                   for k in ("teacher", "baseline", "gankd")}
    stage1_vals = [m for e, s, m in res["logs"]["gankd"]["validations"] if s == 1]
    res["after_stage1"] = stage1_vals[-1] if stage1_vals else None
    indices = [int(i) for i in args.draw_images.split(",")]
    res["figures"] = {
        "detections": detections_figure(
            [cfg.exported(k) for k in ("teacher", "baseline", "gankd")],
            ["teacher %s (mAP %.3f)" % (args.teacher, res["map"]["teacher"]),
             "baseline %s (mAP %.3f)" % (args.student, res["map"]["baseline"]),
             "GAN-KD %s (mAP %.3f)" % (args.student, res["map"]["gankd"])],
            test, indices, args.data_shape, os.path.join(cfg.out, "detections.png"),
            thresh=args.draw_thresh),
        "losses": loss_curves_figure(res["logs"]["gankd"], res["logs"]["baseline"],
                                     args.gan_epochs, os.path.join(cfg.out, "losses.png")),
    }
    res["wall_s"] = time.time() - started
    res["load_end"] = os.getloadavg()
    path = write_results(cfg, res, os.path.join(cfg.out, "results.md"))
    with open(os.path.join(cfg.out, "results.json"), "w") as f:
        json.dump({k: res[k] for k in ("map", "aps", "class_names", "wall_s", "command",
                                       "after_stage1", "samples_per_epoch", "load_start",
                                       "load_end")}
                  | {"s_per_epoch": {k: v["s_per_epoch"] for k, v in res["logs"].items()},
                     "train_wall_s": {k: res[k]["wall_s"] for k in ("teacher", "baseline",
                                                                     "gankd")},
                     "teacher_cached": res["teacher"]["cached"]}, f, indent=2)
    say("wrote %s (total %.1f min)" % (path, res["wall_s"] / 60.0))
    demo_log.close()
    return res
