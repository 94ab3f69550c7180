"""The CPU demo: one seed of the controlled study's regime, small enough for 15 minutes on 2
cores (``scripts/demo.py``).

The demo is the study (:mod:`gankd_gluon.experiments.study`) at a smaller scale and with one
seed, on the study's own machinery, read top to bottom in :func:`run_demo`:

1. the study's dataset (:func:`~.runs.ensure_dataset`: the easy generated set, a pool
   for the teacher) and the students' subset, its first ``K`` images
   (:func:`~.study.make_subset_root`);
2. the teacher (:func:`~.runs.train_teacher`, ``train_ssd.py``'s code), trained once on the pool and
   reused from the cache;
3. the arms ``none`` (the baseline: same schedule, head and adapters, no distillation) and
   ``gan`` (GAN-KD with ``train_ssd_gan_kd.py``'s own critics), with the argv of
   :meth:`~.study.StudyPlan.student_argv`: they differ only in the arm's flags
   (:data:`~.study.ARMS`); optionally the plain ``train_ssd.py`` student
   (:meth:`~.study.StudyPlan.plain_argv`) as a second, labelled row;
4. every exported final model scored with the project's VOC07 evaluation
   (:func:`~.runs.evaluate_exported`), drawn on the same test images (:func:`detections_figure`),
   the two students' losses read back from their logs (:func:`loss_curves_figure`);
5. ``results.md`` (:func:`write_results`) with the committed study's conclusion beside the
   demo's single-seed numbers (:func:`study_conclusion`).

:class:`Progress` prints "step k of n", the elapsed time and the time left, estimated from the
per-image costs measured on the reference machine (:data:`COSTS`) scaled by the speed seen so
far; :class:`RunWatcher` follows a training run through its log lines (epochs, validations, the
switch to stage 2) without changing them.
"""
import json
import logging
import math
import os
import re
import string
import time

import numpy as np

from .runs import (evaluate_exported, fresh_log, git_state, shell_command, teacher_cached,
                   train_teacher)

__all__ = ["DemoConfig", "DEMO_ARMS", "DEMO_OUTPUTS", "COSTS", "CLASS_LOOK", "LABEL_FONTSIZE",
           "FIGURE_DPI", "label_height_px", "holds_demo_results", "clear_demo_results",
           "gankd_argv", "plan_steps", "Progress", "RunWatcher", "draw_panel",
           "detections_figure", "loss_curves_figure", "log_summary",
           "study_conclusion", "write_results", "run_demo"]

#: the study's arms the demo runs (:data:`gankd_gluon.experiments.study.ARMS`)
DEMO_ARMS = ("none", "gan")
#: what a demo writes into its output folder (a folder holding one of these holds a demo's
#: results); the training logs are ``*_train.log`` there and in ``logs/``
DEMO_OUTPUTS = ("results.md", "results.json", "demo.log", "detections.png", "losses.png")
#: seconds per image on the reference machine (2 idle cores, 128 px, batch 16): a mobilenet1.0
#: teacher's training step (41 ms measured), a mobilenet0.25 student's stage-1 step with GAN-KD
#: (teacher and critics), the same without distillation (``--method none``: no teacher, no
#: critics), a stage-2 or plain step (18 ms measured), the evaluation of one test image (10 ms
#: measured), the generation of one image. The GAN-KD stage-1 step was measured at 37 ms with the
#: old critics (batch norm, no balancing); with train_ssd_gan_kd.py's default critics a full demo
#: on loaded cores ran it 2.75x slower than that while the teacher ran 1.8x slower than its
#: 41 ms, hence 0.037 x 2.75 / 1.8 = 0.057; ``--method none`` ran its stage 1 at the speed of
#: stage 2 there. :class:`Progress` scales them all by the speed it observes.
COSTS = {"teacher": 0.041, "stage1_gan": 0.057, "stage1_none": 0.020, "stage2": 0.018,
         "plain": 0.018, "eval": 0.010, "generate": 0.006, "figures": 10.0}
#: the five classes of the generated set as drawn (gankd_gluon/data/synthetic.py ``_STYLE``):
#: colour and texture of the object; the boxes in detections.png take the same colour
CLASS_LOOK = {"circle": ("red", "solid", (0.85, 0.10, 0.10)),
              "square": ("blue", "horizontal stripes", (0.10, 0.30, 0.95)),
              "triangle": ("green", "shading", (0.05, 0.60, 0.10)),
              "star": ("yellow", "dots", (0.95, 0.75, 0.00)),
              "cross": ("magenta", "diagonal stripes", (0.80, 0.10, 0.80))}
#: detections.png: dots per inch, and the label font size in points (9.5 pt at 100 dpi is
#: 13.2 px high: :func:`label_height_px`)
FIGURE_DPI = 100
LABEL_FONTSIZE = 9.5
TITLE_FONTSIZE = 11
CE, L1 = "train_student_ori_net_CrossEntropy", "train_student_ori_net_SmoothL1"


def label_height_px(fontsize_pt, dpi):
    """Height in pixels of text of ``fontsize_pt`` points drawn at ``dpi`` (1 pt = 1/72 inch)."""
    return fontsize_pt * dpi / 72.0


def last_wins(argv):
    """``argv`` without the earlier occurrences of a ``--flag value`` pair given again later
    (argparse keeps the last one, so the run is the same; the printed command is shorter).

    ``["--seed", "1", "--x", "--seed", "2"]`` -> ``["--x", "--seed", "2"]``. A flag followed by
    another flag (a switch) is never dropped.
    """
    argv = list(argv)
    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        pair = (tok.startswith("--") and i + 1 < len(argv)
                and not argv[i + 1].startswith("--"))
        if pair and tok in argv[i + 2:]:
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def holds_demo_results(out):
    """True when folder ``out`` holds a file a demo writes (:data:`DEMO_OUTPUTS`)."""
    return any(os.path.exists(os.path.join(out, name)) for name in DEMO_OUTPUTS)


def clear_demo_results(out):
    """Remove what an earlier demo wrote into ``out`` (:data:`DEMO_OUTPUTS` and the training
    logs ``*_train.log`` in ``out`` and ``out/logs``), and nothing else. Returns the paths."""
    gone = []
    for folder in (out, os.path.join(out, "logs")):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and (name.endswith("_train.log") or
                                         (folder == out and name in DEMO_OUTPUTS)):
                os.remove(path)
                gone.append(path)
    return gone


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
# -- 2./3. training ------------------------------------------------------------------------------
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



# -- progress ------------------------------------------------------------------------------------
def _minutes(seconds):
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return "%.0f s" % seconds
    return "%.1f min" % (seconds / 60.0)


class Progress:
    """The demo's steps, each with a nominal cost in seconds (:data:`COSTS` times the work), and
    the estimate of the time left.

    Time left = (nominal seconds of the work not yet done) x (elapsed wall time / nominal seconds
    of the work done), the second factor once at least ``min_done`` nominal seconds are done
    (before that, 1: the reference machine's speed).

    Parameters
    ----------
    steps : list of (str, str, float)
        ``(key, label, nominal seconds)`` in order.
    say : callable
        Prints one line.
    clock : callable
        Seconds (``time.time``).
    """

    def __init__(self, steps, say, clock=time.time, min_done=10.0):
        self.steps = list(steps)
        self.index = {key: i for i, (key, _, _) in enumerate(self.steps)}
        self.nominal = {key: float(cost) for key, _, cost in self.steps}
        self.done = {key: 0.0 for key, _, _ in self.steps}
        self.say, self.clock, self.min_done = say, clock, min_done
        self.started = clock()
        self.current = None

    def elapsed(self):
        return self.clock() - self.started

    def rate(self):
        """Wall seconds per nominal second so far (1.0 until ``min_done`` is reached)."""
        done = sum(self.done.values())
        return self.elapsed() / done if done >= self.min_done else 1.0

    def left(self):
        """Estimated wall seconds to the end."""
        todo = sum(max(0.0, self.nominal[k] - self.done[k]) for k in self.nominal)
        return todo * self.rate()

    def status(self):
        return "elapsed %s, about %s left" % (_minutes(self.elapsed()), _minutes(self.left()))

    def where(self):
        k = self.index[self.current]
        return "step %d of %d" % (k + 1, len(self.steps))

    def begin(self, key, detail=""):
        """Announce step ``key``: ``step k of n: label (detail) | elapsed, left``."""
        self.current = key
        label = self.steps[self.index[key]][1]
        self.say("%s: %s%s | %s" % (self.where(), label, " (%s)" % detail if detail else "",
                                    self.status()))

    def advance(self, nominal_s):
        """Count ``nominal_s`` more nominal seconds done in the current step (capped at its
        nominal cost)."""
        key = self.current
        self.done[key] = min(self.nominal[key], self.done[key] + nominal_s)

    def finish(self, key, message=""):
        """Step ``key`` is done (the rest of its nominal cost counts as done)."""
        self.done[key] = self.nominal[key]
        if message:
            self.say("%s: %s | %s" % (self.where(), message, self.status()))

    def set_nominal(self, key, seconds):
        self.nominal[key] = float(seconds)


class RunWatcher(logging.Handler):
    """Follows one training run through the lines of its logger (``gankd``), without touching
    them: at each epoch line (``[Epoch E], Speed: ...``) it advances :class:`Progress` by the
    epoch's nominal cost and prints the epoch and the time left; at a validation it prints the
    mAP; when the run's second ``Start training from [Epoch 1]`` line comes after
    ``gan_epochs`` epochs (``train_ssd_gan_kd.py``'s stage 2) it announces the switch.

    Parameters
    ----------
    progress : Progress
    label : str
        The run's name in the messages.
    epoch_costs : list of float
        Nominal seconds of each epoch, in order (stage 1 then stage 2).
    val_cost : float
        Nominal seconds of one validation.
    gan_epochs : int
        Stage-1 epochs (0: a one-stage run).
    stage2 : str
        What stage 2 is, for the announcement.
    """

    EPOCH = re.compile(r"^\[Epoch (\d+)\], Speed: ([0-9.]+) samples/sec")
    MAP = re.compile(r"^mAP=([0-9.eE+-]+|nan)", re.M)

    def __init__(self, progress, label, epoch_costs, val_cost, gan_epochs=0, stage2=""):
        super().__init__(level=logging.INFO)
        self.progress, self.label = progress, label
        self.epoch_costs, self.val_cost = list(epoch_costs), val_cost
        self.gan_epochs, self.stage2 = gan_epochs, stage2
        self.epochs = self.starts = 0
        self.switched = False

    def _stage(self):
        return 1 if self.gan_epochs and self.epochs <= self.gan_epochs else 2

    def emit(self, record):
        try:
            msg = record.getMessage()
            p = self.progress
            if msg.startswith("Start training from [Epoch"):
                self.starts += 1
                if self.gan_epochs and self.epochs >= self.gan_epochs and not self.switched:
                    self.switched = True
                    p.say("%s, %s: stage 1 done (%d epochs); stage 2 begins: %s | %s"
                          % (p.where(), self.label, self.epochs, self.stage2, p.status()))
                return
            m = self.EPOCH.match(msg)
            if m:
                self.epochs += 1
                if self.epochs <= len(self.epoch_costs):
                    p.advance(self.epoch_costs[self.epochs - 1])
                stage = (" (stage %d)" % self._stage()) if self.gan_epochs else ""
                p.say("%s, %s: epoch %d of %d%s done, %.1f images/s | %s"
                      % (p.where(), self.label, self.epochs, len(self.epoch_costs), stage,
                         float(m.group(2)), p.status()))
                return
            m = self.MAP.search(msg)
            if m and "Validation" in msg:
                p.advance(self.val_cost)
                p.say("%s, %s: validation mAP %.4f after epoch %d"
                      % (p.where(), self.label, float(m.group(1)), self.epochs))
        except Exception:        # progress lines must never stop a training run
            pass

    def __enter__(self):
        logging.getLogger("gankd").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("gankd").removeHandler(self)
        return False


# -- 4. evaluation and pictures -------------------------------------------------------------------
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



def _class_colors(classes):
    """Box colour of each class index: the object's own colour (:data:`CLASS_LOOK`)."""
    fallback = ("tab:red", "tab:blue", "tab:green", "tab:olive", "tab:purple", "tab:brown")
    return {i: CLASS_LOOK[c][2] if c in CLASS_LOOK else fallback[i % len(fallback)]
            for i, c in enumerate(classes)}


def draw_panel(ax, img, boxes, ids, scores, classes, colors, thresh):
    """GluonCV's ``plot_bbox`` on ``ax``, then each label moved inside its box's top edge
    (``plot_bbox`` writes it above the box, where it leaves the image and runs into the panel
    title), clipped to the image, at :data:`LABEL_FONTSIZE` on an opaque background.

    Parameters
    ----------
    img : np.ndarray, (H, W, 3) uint8
    boxes : np.ndarray, (N, 4) float, pixels ``x1, y1, x2, y2``
    ids : np.ndarray, (N,) class indices (negative: none)
    scores : np.ndarray (N,) or None (ground truth: no scores)

    Returns
    -------
    list of matplotlib.text.Text
        The labels drawn.
    """
    from gluoncv.utils.viz import plot_bbox
    before = len(ax.texts)
    plot_bbox(img, np.array(boxes, dtype=np.float64), scores=scores, labels=ids, thresh=thresh,
              class_names=classes, colors=colors, ax=ax, linewidth=2.0, fontsize=LABEL_FONTSIZE)
    labels = list(ax.texts[before:])
    kept = [i for i in range(len(boxes))
            if (scores is None or scores[i] >= thresh) and ids[i] >= 0]
    for text, i in zip(labels, kept):
        cls = int(ids[i])
        x1, y1 = float(boxes[i][0]), float(boxes[i][1])
        name = classes[cls] if cls < len(classes) else str(cls)
        text.set_text(name if scores is None else "%s %.2f" % (name, scores[i]))
        text.set_position((max(x1, 0.0) + 2, max(y1, 0.0) + 2))
        text.set_verticalalignment("top")
        text.set_color("black" if name == "star" else "white")
        text.set_bbox(dict(facecolor=colors[cls], alpha=0.85, edgecolor="none", pad=1.0))
        text.set_clip_on(True)
        # where a label that would run past the image's right edge is right-aligned instead
        text.demo_right_x = min(float(boxes[i][2]), img.shape[1] - 1.0) - 2
    return labels


def _overlaps(a, b):
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


def detections_figure(prefixes, titles, dataset, indices, data_shape, path, thresh=0.3,
                      max_boxes=8):
    """Ground truth and each model's detections on the same test images, a legend of the
    classes and their colours; labels :data:`LABEL_FONTSIZE` pt at :data:`FIGURE_DPI`.

    Parameters
    ----------
    prefixes : list of str
        Exported detectors (``import_symbol_detector`` prefixes), one column each.
    titles : list of str
        Column titles, one per prefix.
    dataset : test dataset (items ``(img (H, W, 3) uint8, label (M, 6))``)
    indices : list of int
        Which test images (rows).
    path : str
        PNG to write.
    thresh : float
        Score threshold for drawing.
    max_boxes : int
        At most this many detections drawn per panel (the highest scores).

    Returns
    -------
    dict
        ``path``, ``dpi``, ``label_fontsize``, ``title_fontsize``, ``label_px`` (from the
        font size and dpi), ``measured_label_px`` (smallest rendered label height),
        ``labels`` (count), ``label_title_overlaps`` (rendered labels that overlap a title or
        the legend: 0), ``labels_outside`` (rendered labels reaching outside their image: 0).
    """
    import mxnet as mx
    from matplotlib.patches import Patch
    from ..logs.plots import new_figure
    from ..eval.detector import import_symbol_detector
    classes = list(dataset.classes)
    colors = _class_colors(classes)
    nets = [import_symbol_detector(p, [mx.cpu()]) for p in prefixes]
    ncols, nrows = 1 + len(nets), len(indices)
    legend_in = 0.75
    fig = new_figure(3.3 * ncols, 3.3 * nrows + legend_in, dpi=FIGURE_DPI)
    canvas = fig.canvas
    labels, axes_of = [], []
    for r, idx in enumerate(indices):
        img, label = dataset[idx]
        label = np.asarray(label)
        img_np = img.asnumpy()
        ax = fig.add_subplot(nrows, ncols, r * ncols + 1)
        drawn = draw_panel(ax, img_np, label[:, :4], label[:, 4], None, classes, colors, 0)
        labels += drawn
        axes_of += [ax] * len(drawn)
        if r == 0:
            ax.set_title("ground truth", fontsize=TITLE_FONTSIZE)
        ax.set_ylabel("test image %d" % idx, fontsize=TITLE_FONTSIZE - 1)
        for c, net in enumerate(nets):
            ids, scores, boxes = _predict(net, img, data_shape)
            order = np.argsort(-scores)[:max_boxes]
            ax = fig.add_subplot(nrows, ncols, r * ncols + 2 + c)
            drawn = draw_panel(ax, img_np, boxes[order], ids[order], scores[order], classes,
                               colors, thresh)
            labels += drawn
            axes_of += [ax] * len(drawn)
            if r == 0:
                ax.set_title(titles[c], fontsize=TITLE_FONTSIZE)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(facecolor=colors[i], edgecolor="black",
                     label="%s (%s, %s)" % ((c,) + CLASS_LOOK[c][:2]) if c in CLASS_LOOK else c)
               for i, c in enumerate(classes)]
    legend = fig.legend(handles=handles, loc="upper center", ncol=min(len(classes), 5),
                        fontsize=TITLE_FONTSIZE - 1, frameon=False,
                        title="the %d object classes (box colour = object colour); scores >= "
                              "%.2f, at most %d boxes per image" % (len(classes), thresh,
                                                                    max_boxes),
                        title_fontsize=TITLE_FONTSIZE - 1)
    top = 1.0 - (legend_in + 0.1) / (3.3 * nrows + legend_in)
    fig.tight_layout(rect=(0, 0, 1, top))
    canvas.draw()
    renderer = canvas.get_renderer()
    for text, ax in zip(labels, axes_of):
        if text.get_window_extent(renderer).x1 > ax.get_window_extent(renderer).x1:
            text.set_horizontalalignment("right")
            text.set_x(text.demo_right_x)
    canvas.draw()
    blockers = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    blockers.append(legend.get_window_extent(renderer))
    overlaps = outside = 0
    heights = []
    for text, ax in zip(labels, axes_of):
        box = text.get_window_extent(renderer)
        frame = ax.get_window_extent(renderer)
        heights.append(box.height)
        overlaps += any(_overlaps(box, b) for b in blockers)
        outside += (box.y1 > frame.y1 + 0.5 or box.x0 < frame.x0 - 0.5
                    or box.x1 > frame.x1 + 0.5)
    fig.savefig(path)
    return {"path": path, "dpi": FIGURE_DPI, "label_fontsize": LABEL_FONTSIZE,
            "title_fontsize": TITLE_FONTSIZE,
            "label_px": label_height_px(LABEL_FONTSIZE, FIGURE_DPI),
            "measured_label_px": float(min(heights)) if heights else None,
            "labels": len(labels), "label_title_overlaps": int(overlaps),
            "labels_outside": int(outside)}


def loss_curves_figure(runs, gan_epochs, path):
    """The students' training curves per epoch, read back from their logs: detection losses
    (CrossEntropy, SmoothL1) of each run, the GAN-KD critics' ``Loss_D`` and ``Loss_G`` (stage 1),
    and the validation mAP.

    Parameters
    ----------
    runs : dict
        ``{label: log_summary dict}`` (:func:`log_summary`), e.g. the baseline and GAN-KD runs.
    gan_epochs : int
        Stage-1 length (a dashed line marks the switch to stage 2).
    """
    from ..logs.plots import new_figure
    fig = new_figure(12, 8, dpi=FIGURE_DPI)
    palette = ("tab:blue", "tab:orange", "tab:gray", "tab:green")
    critic_colour = {"Loss_D": "tab:red", "Loss_G": "tab:purple"}
    colour = {label: palette[i % len(palette)] for i, label in enumerate(runs)}

    def series(summary, name):
        pts = [(e, m[name]) for e, _, m, _ in summary["epochs"]
               if m.get(name) is not None and math.isfinite(m[name])]
        return [p[0] for p in pts], [p[1] for p in pts]

    last = max([e for s in runs.values() for e, _, _, _ in s["epochs"]] + [1])
    panels = [("CrossEntropy (SSD class loss)", [(lb, CE, "-") for lb in runs]
               + [(lb, "CrossEntropy", "-") for lb in runs]),
              ("SmoothL1 (SSD box loss)", [(lb, L1, "-") for lb in runs]
               + [(lb, "SmoothL1", "-") for lb in runs]),
              ("critics (stage 1 of the GAN-KD run)",
               [(lb, "Loss_D", "-") for lb in runs] + [(lb, "Loss_G", "--") for lb in runs])]
    for i, (title, lines) in enumerate(panels):
        ax = fig.add_subplot(2, 2, i + 1)
        for run, name, style in lines:
            x, y = series(runs[run], name)
            if x:
                ax.plot(x, y, style, color=critic_colour.get(name, colour[run]), marker="o",
                        markersize=3,
                        label="%s: %s" % (run, name.replace("train_student_ori_net_", "")))
        if not ax.lines:
            ax.text(0.5, 0.5, "not logged", ha="center", transform=ax.transAxes, fontsize=11)
        ax.set_title(title, fontsize=12)
        ax.set_xlabel("epoch (stage 2 counted on after stage 1)", fontsize=10)
        ax.set_xlim(0.5, last + 0.5)
        ax.axvline(gan_epochs + 0.5, color="gray", linestyle=":", linewidth=1)
        ax.tick_params(labelsize=10)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=10)
    ax = fig.add_subplot(2, 2, 4)
    for run, summary in runs.items():
        v = summary["validations"]
        ax.plot([e for e, _, _ in v], [m for _, _, m in v], "o-", color=colour[run], label=run)
    ax.axvline(gan_epochs + 0.5, color="gray", linestyle=":", linewidth=1,
               label="stage 1 -> stage 2")
    ax.set_title("validation mAP (VOC07, test set)", fontsize=12)
    ax.set_xlabel("epoch", fontsize=10)
    ax.set_xlim(0.5, last + 0.5)
    ax.tick_params(labelsize=10)
    ax.legend(fontsize=10)
    ax.grid(alpha=0.3)
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



# -- 5. report -----------------------------------------------------------------------------------
def _fmt(x, spec="%.3f"):
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else spec % x


def study_conclusion(path):
    """The committed study's conclusion, recomputed from its ``results.json``.

    Parameters
    ----------
    path : str
        ``logs/study/<name>/results.json`` of ``scripts/study_gankd.py``.

    Returns
    -------
    dict or None
        None when there is no such file; else ``path``, ``stats``
        (:func:`~.study.recompute_statistics`), ``verdict`` (:func:`~.study.verdict` at the
        study's ``min_effect``), ``min_effect``, ``eval_noise``, ``teacher_map``,
        ``student_plain_map``, ``num_test``, ``student_images``, ``num_train``; or ``path`` and
        ``error`` (one line) when the file cannot be read as a study's results.
    """
    from .study import recompute_statistics, verdict
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            res = json.load(f)
        stats = recompute_statistics(path)
        return {"path": path, "stats": stats, "verdict": verdict(stats, res["min_effect"]),
                "min_effect": res["min_effect"], "eval_noise": res.get("eval_noise", {}),
                "teacher_map": res.get("teacher_map"),
                "student_plain_map": res.get("student_plain_map"),
                "num_test": res.get("num_test"), "student_images": res.get("student_images"),
                "num_train": res.get("num_train")}
    except (OSError, ValueError, KeyError, TypeError) as err:
        return {"path": path, "error": "%s: %s" % (type(err).__name__, err)}


def _repo_relative(path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.abspath(path)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else path


DISTRACTORS = {
    "easy": "The easy set has no unlabelled distractors: every shape on the smooth, "
            "low-saturation background is one of the five classes and is labelled.",
    "default": "The default set draws unlabelled distractors that no model should box: thin "
               "lines and small grey ellipses on the background of smooth, low-saturation "
               "colour blobs.",
}


#: The report's text, with ``string.Template`` fields (``$name``) for the numbers and tables
RESULTS_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates",
                                "demo_results.md")


def md_table(header, rows):
    """A markdown table: a header row, its rule, then one line per row (cells as given)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _study_text(res):
    """The committed study's conclusion (or why there is none), markdown."""
    sc = res["study"]
    if sc is None:
        return ("No committed study found (looked for `%s`). Run `python scripts/study_gankd.py` "
                "for several seeds, controls and confidence intervals."
                % _repo_relative(res["study_path"]))
    if "error" in sc:
        return ("The committed study's results could not be read (`%s`: %s)."
                % (_repo_relative(sc["path"]), sc["error"]))
    arms = md_table(["arm", "seeds", "mean mAP", "std"],
                    [[arm, "%d" % s["n"], _fmt(s["mean"], "%.4f"), _fmt(s["std"], "%.4f")]
                     for arm, s in sc["stats"]["arms"].items()])
    differences = "\n".join(
        "- `%s - %s`: %s mAP (95%% CI %s to %s, %d paired seeds, p %s)" % (
            d["a"], d["b"], _fmt(d["mean"], "%+.4f"), _fmt(d["ci_low"], "%.4f"),
            _fmt(d["ci_high"], "%.4f"), len(d["seeds"]), _fmt(d["p"], "%.3g"))
        for d in sc["stats"]["differences"])
    return ("From `%s` (recomputed with `gankd_gluon.experiments.study.recompute_statistics`; "
            "the full report is `report.md` beside it): teacher %s mAP, students on the first %s "
            "of %s images, %s test images, minimum meaningful effect %s mAP.\n\n%s\n\n%s\n\n%s"
            % (_repo_relative(sc["path"]), _fmt(sc["teacher_map"]), sc["student_images"],
               sc["num_train"], sc["num_test"], _fmt(sc["min_effect"], "%.3f"), arms,
               differences, sc["verdict"]))


def _noise_text(res, num_test):
    """How much the numbers move: machine, seed, and the committed study's noise, markdown."""
    sc = res["study"]
    noise = (sc or {}).get("eval_noise") or {}
    none_std = ((sc or {}).get("stats") or {}).get("arms", {}).get("none", {}).get("std")
    text = ("These numbers vary from machine to machine and from seed to seed: another CPU, "
            "thread count or library build changes the floating-point order of training, and "
            "another `--seed` changes the initialisation and the data order.")
    if noise.get("std") is not None:
        text += (" The committed study measured an evaluation noise of %s mAP (standard "
                 "deviation of the teacher's mAP over %s bootstrap resamples of its %s test "
                 "images; this run's %d test images make it larger)"
                 % (_fmt(noise["std"], "%.4f"), noise.get("samples"),
                    noise.get("num_test_images"), num_test))
        if none_std is not None and math.isfinite(none_std):
            text += (" and a seed-to-seed standard deviation of %s mAP for the baseline arm"
                     % _fmt(none_std, "%.4f"))
        text += "."
    else:
        text += " No committed study measurement of the noise is available."
    return text + (" A single-seed difference between the two students says little on its own; "
                   "the study's paired seeds and intervals do.")


def write_results(cfg, res, path):
    """``results.md`` from the numbers gathered by :func:`run_demo`, through
    :data:`RESULTS_TEMPLATE`."""
    a = cfg.args
    m = res["map"]
    dirty = res["git"]["dirty"]
    cached = res["teacher"]["cached"]
    if not cached and not dirty:
        reference = ("This run can serve as the committed reference (`logs/demo/`): it trained "
                     "the teacher and ran from a clean working tree.")
    else:
        reference = "Not a reference run for `logs/demo/`: that needs %s." % " and ".join(
            x for x in ("an empty cache (the teacher was cached here)" if cached else "",
                        "a clean working tree" if dirty else "") if x)
    map_rows = []
    for key, label, what in res["rows"]:
        wall = res["train_wall_s"].get(key)
        map_rows.append([label, what, "**%s**" % _fmt(m[key]),
                         _fmt(None if wall is None else wall / 60.0, "%.1f min")
                         + (" (cached: the run that trained it)"
                            if key == "teacher" and cached else "")])
    names = res["class_names"]
    base = {e: mm for e, _, mm, _ in res["logs"]["none"]["epochs"]}
    curves = []
    for e, stage, mm, _ in res["logs"]["gan"]["epochs"]:
        bm = base.get(e, {})
        curves.append(["%d" % e, "%d" % stage] + [
            _fmt(v) for v in (bm.get(CE), bm.get(L1), mm.get(CE), mm.get(L1),
                              mm.get("Loss_D"), mm.get("Loss_G"))])
    fig = res["figures"]["detections"]
    fields = dict(
        started=time.strftime("%Y-%m-%d %H:%M", time.localtime(res["started"])),
        teacher=a.teacher, num_train=a.num_train, difficulty=res["difficulty"],
        data_shape=a.data_shape, student=a.student, student_images=a.student_images,
        gan_epochs=a.gan_epochs, stage2_epochs=a.student_epochs - a.gan_epochs, head=a.head,
        seed=a.seed, command=res["command"], wall_min="%.1f" % (res["wall_s"] / 60.0),
        teacher_source="teacher from the cache" if cached else "teacher trained in this run",
        load_start=" ".join("%.1f" % x for x in res["load_start"]),
        load_end=" ".join("%.1f" % x for x in res["load_end"]), cores=os.cpu_count() or 0,
        commit=res["git"]["commit"],
        tree=" (with local changes in: %s)" % ", ".join(dirty) if dirty
        else ", clean working tree",
        reference=reference, num_test=a.num_test,
        map_table=md_table(["model", "training", "mAP", "wall time"], map_rows),
        difference="%+.3f" % (m["gan"] - m["none"]), teacher_map=_fmt(m["teacher"]),
        teacher_gap=_fmt(m["teacher"] - m["none"]),
        ap_table=md_table(["model"] + list(names),
                          [[label] + [_fmt(v) for v in res["aps"][key]]
                           for key, label, _ in res["rows"]]),
        study=_study_text(res), noise=_noise_text(res, a.num_test),
        draw_images=a.draw_images, draw_thresh="%.2f" % a.draw_thresh,
        max_boxes=res["max_boxes"],
        class_looks="; ".join("**%s** %s, %s" % ((c,) + CLASS_LOOK[c][:2]) for c in names
                              if c in CLASS_LOOK),
        distractors=DISTRACTORS[res["difficulty"]],
        label_fontsize="%.1f" % fig["label_fontsize"], dpi=fig["dpi"],
        label_px="%.1f" % fig["label_px"], label_overlaps=fig["label_title_overlaps"],
        labels=fig["labels"],
        curve_table=md_table(["epoch", "stage", "baseline CE", "baseline SmoothL1", "GAN-KD CE",
                              "GAN-KD SmoothL1", "Loss_D", "Loss_G"], curves),
        log_list="\n".join("- %s: `%s` (%d lines, %d unreadable by the parser)" % (
            label, os.path.relpath(res["log_paths"][key], cfg.out),
            res["logs"][key]["n_lines"], res["logs"][key]["unreadable"])
            for key, label, _ in res["rows"]))
    with open(RESULTS_TEMPLATE) as f:
        text = string.Template(f.read()).substitute(fields)
    with open(path, "w") as f:
        f.write(text)
    return path


def _val_count(epochs, interval):
    """Validations of a stage of ``epochs`` epochs (every ``interval`` and the last)."""
    return epochs // interval + (1 if epochs % interval else 0) if epochs else 0


def plan_steps(a, cached):
    """The demo's steps and their nominal costs (:data:`COSTS` times the work, scaled by the
    pixels of ``--data-shape`` relative to 128 px).

    Parameters
    ----------
    a : argparse.Namespace
        ``scripts/demo.py`` arguments.
    cached : bool
        The teacher is in the cache (its step costs nothing).

    Returns
    -------
    steps : list of (key, label, nominal seconds)
        For :class:`Progress`.
    costs : dict
        ``{run: [nominal seconds of each epoch]}`` for ``teacher``, ``none``, ``gan``,
        ``plain`` (stage 1 then stage 2), for :class:`RunWatcher`.
    val : float
        Nominal seconds of one validation (or evaluation) on the test set.
    """
    scale = (a.data_shape / 128.0) ** 2
    e1, e2 = a.gan_epochs, a.student_epochs - a.gan_epochs
    k_seen = (a.student_images // a.batch_size) * a.batch_size     # the loader drops the rest
    pool_seen = (a.num_train // a.batch_size) * a.batch_size
    val = a.num_test * COSTS["eval"] * scale

    def per_epoch(n, cost, epochs):
        return [n * cost * scale] * epochs
    costs = {"teacher": per_epoch(pool_seen, COSTS["teacher"], a.teacher_epochs),
             "none": per_epoch(k_seen, COSTS["stage1_none"], e1)
             + per_epoch(k_seen, COSTS["stage2"], e2),
             "gan": per_epoch(k_seen, COSTS["stage1_gan"], e1)
             + per_epoch(k_seen, COSTS["stage2"], e2),
             "plain": per_epoch(k_seen, COSTS["plain"], a.student_epochs)}
    vals = {"teacher": _val_count(a.teacher_epochs, a.val_interval),
            "none": _val_count(e1, a.val_interval) + _val_count(e2, a.val_interval),
            "plain": _val_count(a.student_epochs, a.val_interval)}
    vals["gan"] = vals["none"]
    models = 1 + len(DEMO_ARMS) + (1 if a.plain_student else 0)
    steps = [("dataset", "dataset (%s set: %d training + %d test images; students: the first %d)"
              % (a.difficulty, a.num_train, a.num_test, a.student_images),
              (a.num_train + a.num_test) * COSTS["generate"]),
             ("teacher", "teacher %s on %d images, %d epochs" % (a.teacher, a.num_train,
                                                                 a.teacher_epochs),
              0.0 if cached else sum(costs["teacher"]) + vals["teacher"] * val),
             ("none", "baseline student (--method none): %d + %d epochs on %d images"
              % (e1, e2, a.student_images), sum(costs["none"]) + vals["none"] * val),
             ("gan", "GAN-KD student (--method gan): %d + %d epochs on %d images"
              % (e1, e2, a.student_images), sum(costs["gan"]) + vals["gan"] * val)]
    if a.plain_student:
        steps.append(("plain", "plain train_ssd.py student: %d epochs on %d images"
                      % (a.student_epochs, a.student_images),
                      sum(costs["plain"]) + vals["plain"] * val))
    steps += [("evaluation", "evaluation of %d models on %d test images" % (models, a.num_test),
               models * val),
              ("figures", "figures and results.md", COSTS["figures"])]
    return steps, costs, val


def run_demo(args, plain_parse_args, gankd_parse_args, command):
    """The whole demo; returns the numbers written to ``results.md`` and ``results.json``.

    Parameters
    ----------
    args : argparse.Namespace
        ``scripts/demo.py`` arguments (checked there: ``--out`` holds no demo's results unless
        ``--overwrite``).
    plain_parse_args, gankd_parse_args : callable
        The training scripts' ``parse_args(argv)``.
    command : str
        The command line, for ``results.md``.
    """
    import argparse
    from .study import StudyPlan
    started = time.time()
    load_start = os.getloadavg()
    cfg = DemoConfig(args, plain_parse_args, gankd_parse_args)
    study = argparse.Namespace(name="demo", seeds=[args.seed], arms=list(DEMO_ARMS),
                               student_images=args.student_images, difficulty=args.difficulty)
    plan = StudyPlan(cfg, study)      # the study's data root, teacher key, argv and log paths
    if args.overwrite:
        clear_demo_results(cfg.out)
    os.makedirs(plan.logs_dir, exist_ok=True)
    demo_log = open(os.path.join(cfg.out, "demo.log"), "w")
    try:
        return _run_demo(cfg, plan, command, demo_log, started, load_start)
    finally:
        demo_log.close()


def _run_demo(cfg, plan, command, demo_log, started, load_start):
    """:func:`run_demo`'s steps, its messages to the terminal and ``demo_log``."""
    from ..data.datasets import get_dataset
    from .runs import ensure_dataset, train_ssd_gankd as run_gankd, train_ssd_plain as run_plain
    from .study import make_subset_root
    args = cfg.args
    plain_parse_args, gankd_parse_args = cfg.plain_parse_args, cfg.gankd_parse_args

    def say(msg):
        line = "[demo] %s" % msg
        print(line, flush=True)
        demo_log.write(line + "\n")
        demo_log.flush()

    a = args
    cached = teacher_cached(cfg)
    steps, costs, val = plan_steps(a, cached)
    e1, e2 = a.gan_epochs, a.student_epochs - a.gan_epochs
    models = ["teacher"] + list(DEMO_ARMS) + (["plain"] if a.plain_student else [])
    progress = Progress(steps, say)
    say("command: %s" % command)
    say("output: %s; cache: %s" % (cfg.out, cfg.cache))
    say("estimated time on 2 idle cores: %s (%s)" % (
        _minutes(sum(c for _, _, c in steps)),
        "teacher from the cache" if cached else "teacher trained in this run"))

    res = {"started": started, "command": command, "load_start": load_start,
           "git": git_state(), "difficulty": a.difficulty, "seed": a.seed,
           "commands": {}, "argv": {}, "train_wall_s": {}, "log_paths": {}, "step_wall_s": {},
           "study_path": a.study_results, "max_boxes": 8}
    res["study"] = study_conclusion(a.study_results)

    # 1. data
    tic = time.time()
    progress.begin("dataset")
    ensure_dataset(cfg.data_root, a.data_seed, a.num_train, a.num_test,
                   say=lambda msg: say("dataset: " + msg.split("dataset: ", 1)[-1]),
                   difficulty=a.difficulty)
    make_subset_root(cfg.data_root, plan.subset_root, a.student_images)
    progress.finish("dataset")
    res["step_wall_s"]["dataset"] = time.time() - tic

    # 2. teacher
    tic = time.time()
    progress.begin("teacher", "cached" if cached else "")
    with RunWatcher(progress, "teacher", costs["teacher"], val):
        res["teacher"] = train_teacher(cfg, say)
    res["argv"]["teacher"] = res["teacher"].get("argv", [])
    res["commands"]["teacher"] = shell_command("train_ssd.py", res["argv"]["teacher"])
    res["train_wall_s"]["teacher"] = res["teacher"]["wall_s"]
    res["log_paths"]["teacher"] = res["teacher"]["log"]
    progress.finish("teacher", "teacher %s" % ("taken from the cache" if cached else
                                                "trained in %s" % _minutes(time.time() - tic)))
    res["step_wall_s"]["teacher"] = time.time() - tic

    # 3. students
    stage2 = "%d epochs of plain SSD training (SGD lr %g)" % (e2, a.stage2_lr)
    runs = [(arm, "GAN-KD student" if arm == "gan" else "baseline student",
             "train_ssd_gan_kd.py", plan.prefix(arm, a.seed),
             last_wins(plan.student_argv(arm, a.seed)),
             gankd_parse_args, run_gankd, e1) for arm in DEMO_ARMS]
    if a.plain_student:
        runs.append(("plain", "plain student", "train_ssd.py", plan.plain_prefix(),
                     last_wins(plan.plain_argv()), plain_parse_args, run_plain, 0))
    for key, label, script, prefix, argv, parse, run, gan_epochs in runs:
        progress.begin(key)
        res["argv"][key] = argv
        res["commands"][key] = shell_command(script, argv)
        say("%s: %s" % (label, res["commands"][key]))
        run_args = parse(argv)
        log = plan.log(prefix)
        fresh_log(log)
        tic = time.time()
        with RunWatcher(progress, label, costs[key], val, gan_epochs, stage2):
            run(run_args)
        res["train_wall_s"][key] = res["step_wall_s"][key] = time.time() - tic
        res["log_paths"][key] = log
        progress.finish(key, "%s trained in %s" % (label, _minutes(res["train_wall_s"][key])))

    # 4. evaluation
    tic = time.time()
    progress.begin("evaluation")
    test = get_dataset("synthetic", cfg.data_root, "test")
    exported = {"teacher": cfg.exported("teacher")}
    for key, _, _, prefix, _, _, _, _ in runs:
        exported[key] = os.path.join(cfg.runs_dir, prefix, prefix + (
            "-final-net" if key == "plain" else "-final-student"))
    res["map"], res["aps"] = {}, {}
    labels = {"teacher": "teacher", "none": "baseline student (--method none)",
              "gan": "GAN-KD student (--method gan)", "plain": "plain student (train_ssd.py)"}
    for key in models:
        names, values = evaluate_exported(exported[key], test, a.data_shape, a.batch_size)
        res["class_names"] = names[:-1]
        res["aps"][key], res["map"][key] = values[:-1], values[-1]
        progress.advance(val)
        say("%s: evaluation: %s: mAP %.4f" % (progress.where(), labels[key], values[-1]))
    progress.finish("evaluation")
    res["step_wall_s"]["evaluation"] = time.time() - tic

    # 5. figures and results
    tic = time.time()
    progress.begin("figures")
    samples = {"teacher": (a.num_train // a.batch_size) * a.batch_size}
    k_seen = (a.student_images // a.batch_size) * a.batch_size
    res["logs"] = {k: log_summary(res["log_paths"][k], samples.get(k, k_seen)) for k in models}
    res["rows"] = [
        ("teacher", "teacher (%s)" % a.teacher,
         "`train_ssd.py` on all %d pool images, %d epochs, Adam lr %g"
         % (a.num_train, a.teacher_epochs, a.lr)),
        ("none", "baseline student (`--method none`)",
         "`train_ssd_gan_kd.py --method none`, %s, first %d images: stage 1 %d epochs (Adam "
         "lr %g, no distillation term), stage 2 %d epochs (SGD lr %g); teacher's head, adapters"
         % (a.student, a.student_images, e1, a.lr_g, e2, a.stage2_lr)),
        ("gan", "GAN-KD student (`--method gan`)",
         "the same argv with `--method gan`: the critics' adversarial term in stage 1 (lrD %g, "
         "critic channels %d, the script's default critics)" % (a.lr_d, a.critic_channels))]
    if a.plain_student:
        res["rows"].append(
            ("plain", "plain student (`train_ssd.py`; for scale: another schedule)",
             "`train_ssd.py --network %s`, first %d images, %d epochs, %s lr %g, its own head, "
             "no adapters" % (a.student, a.student_images, a.student_epochs,
                              a.baseline_optimizer.capitalize(), a.lr)))
    indices = [int(i) for i in a.draw_images.split(",")]
    res["figures"] = {
        "detections": detections_figure(
            [exported[k] for k in ("teacher",) + DEMO_ARMS],
            ["teacher %s\nmAP %.3f" % (a.teacher, res["map"]["teacher"]),
             "baseline (--method none)\nmAP %.3f" % res["map"]["none"],
             "GAN-KD (--method gan)\nmAP %.3f" % res["map"]["gan"]],
            test, indices, a.data_shape, os.path.join(cfg.out, "detections.png"),
            thresh=a.draw_thresh, max_boxes=res["max_boxes"]),
        "losses": loss_curves_figure({"baseline (--method none)": res["logs"]["none"],
                                      "GAN-KD (--method gan)": res["logs"]["gan"]},
                                     e1, os.path.join(cfg.out, "losses.png"))}
    res["wall_s"] = time.time() - started
    res["load_end"] = os.getloadavg()
    res["step_wall_s"]["figures"] = time.time() - tic
    path = write_results(cfg, res, os.path.join(cfg.out, "results.md"))
    study = res["study"]
    with open(os.path.join(cfg.out, "results.json"), "w") as f:
        json.dump({"map": res["map"], "aps": res["aps"], "class_names": res["class_names"],
                   "wall_s": res["wall_s"], "command": command, "commands": res["commands"],
                   "argv": res["argv"], "train_wall_s": res["train_wall_s"],
                   "step_wall_s": res["step_wall_s"], "teacher_cached": res["teacher"]["cached"],
                   "load_start": load_start, "load_end": res["load_end"],
                   "difficulty": a.difficulty, "seed": a.seed, "git": res["git"],
                   "figures": res["figures"],
                   "study": None if study is None else
                   {k: study.get(k) for k in ("path", "verdict", "error")}},
                  f, indent=2)
    progress.finish("figures", "wrote %s (total %s)" % (path, _minutes(res["wall_s"])))
    return res
