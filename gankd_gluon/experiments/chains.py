"""The chain of commands that reproduces a table row (:func:`build_chain`).

A row's chain is the commands it needs, each one an existing script (``scripts/train_ssd.py``,
``train_ssd_gan_kd.py``, ``train_faster_rcnn.py``, ``train_faster_rcnn_gan_kd.py``,
``eval_voc.py``, ``eval_coco.py``, ``make_synthetic_voc.py``):

1. ``data``: only at ``scale='smoke'``: generate the tiny synthetic dataset;
2. ``teacher``: train the teacher, when GluonCV's model zoo has none that fits the row (always at
   smoke scale, where nothing downloads, and for Table 3, whose teacher was trained on VOC2007
   trainval only);
3. ``baseline`` + ``eval-baseline``: the student trained alone (the "-" row of its group; a
   distillation row runs it too, so its line can show the gain over our own baseline; the
   outputs are shared, so it runs once per group);
4. ``distill``: the distillation (stage 1 adversarial + stage 2 plain, one command);
5. ``eval``: the row's evaluation, written as JSON, read by the runner for ``logs/results.md``.

This module does not import MXNet: ``reproduce.py --list`` and ``--dry-run`` stay instant.
"""
import os
import shlex

from .recipes import (FRCNN_GANKD, FRCNN_PLAIN, FRCNN_SMOKE_DISTILL, FRCNN_SMOKE_OVERRIDES,
                      FRCNN_SMOKE_SIZES, FRCNN_TEACHER, GLUONCV_SSD_PLAIN, PAPER_SSD_GANKD, SMOKE,
                      SMOKE_OVERRIDES, zoo_teacher)

__all__ = ["Step", "build_chain", "run_names", "RECIPE_FLAGS", "REPO_ROOT"]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Step(object):
    """One command of a chain.

    Parameters
    ----------
    kind : str
        ``data``, ``teacher``, ``baseline``, ``eval-baseline``, ``distill``, ``eval``.
    script : str
        Path of the script, relative to the repository root (``scripts/train_ssd.py``).
    args : list of (str, str or None)
        Flags in order; None as a value is a flag without a value (``--no-progress``).
    outputs : dict
        What the runner checks to call the step complete: ``manifest`` (the final checkpoint
        manifest of a training run), ``files`` (further files the chain reads), ``eval_json``
        (an evaluation), ``dataset`` (root, num_train, num_test of the generated set).
    recipe : dict
        dest -> value of the settings a completed run must have been trained with (compared
        with the manifest's stored args before the step is skipped).
    """

    def __init__(self, kind, script, args, outputs, recipe=None, inputs=()):
        self.kind = kind
        self.script = script
        self.args = list(args)
        self.outputs = outputs
        self.recipe = dict(recipe or {})
        self.inputs = list(inputs)

    def argv(self):
        out = []
        for k, v in self.args:
            out.append(k)
            if v is not None:
                out.append(str(v))
        return out

    def get(self, flag, default=None):
        for k, v in self.args:
            if k == flag:
                return v
        return default

    def command(self, python="python"):
        """The command as a shell line, script path relative to the repository root."""
        return " ".join(shlex.quote(a) for a in [python, self.script] + self.argv())

    def __repr__(self):
        return "Step(%s: %s)" % (self.kind, self.command())


def _set(args, flag, value):
    """Replace ``flag``'s value in place, or append it."""
    for i, (k, _) in enumerate(args):
        if k == flag:
            args[i] = (k, value)
            return args
    args.append((flag, value))
    return args


def _merge(base, extra):
    args = list(base)
    for k, v in extra:
        _set(args, k, v)
    return args


def _dest(flag, detector="ssd"):
    """argparse ``dest`` of a flag (the Faster R-CNN scripts keep the published Namespace
    names: ``GAN_epochs``, ``lr_decay_GAN_epoch``, ``train_D_eopch``)."""
    special = {"--lrG": "lrG", "--lrD": "lrD", "--gan-epochs": "gan_epochs",
               "--train-D-eopch": "train_D_eopch"}
    if detector == "faster_rcnn":
        special.update({"--gan-epochs": "GAN_epochs", "--lr-decay-gan-epoch":
                        "lr_decay_GAN_epoch"})
    return special.get(flag, flag.lstrip("-").replace("-", "_"))


# settings that decide what a finished run is; a completed run with other values is not reused
RECIPE_FLAGS = ("--network", "--student", "--teacher", "--method", "--dataset", "--data-shape",
                "--batch-size", "--epochs", "--gan-epochs", "--lr", "--lrG", "--lrD",
                "--lr-decay-epoch", "--momentum", "--wd", "--optimizer", "--roi-mode", "--seed",
                "--head", "--stage", "--short", "--lr-decay-gan-epoch", "--train-D-eopch",
                "--critic-channels")


def _recipe(args, detector="ssd"):
    return {_dest(k, detector): v for k, v in args if k in RECIPE_FLAGS}


def run_names(row, scale="full"):
    """Run names (``--save-prefix``) of the row's teacher, baseline and distilled student."""
    dataset, shape = _dataset_and_shape(row, scale)
    s_shape = shape(row.student, None)
    if row.detector == "ssd":
        names = {"baseline": "ssd_%d_%s_%s_baseline" % (s_shape, row.student, dataset)}
        if row.teacher:
            names["teacher"] = "ssd_%d_%s_%s_teacher" % (shape(row.teacher, None), row.teacher,
                                                        dataset)
            names["distill"] = "ssd_%d_%s_%s_%s_%s" % (
                shape(row.student, row.teacher), row.student, row.teacher, dataset,
                "gankd" if row.method == "gan" else row.method)
    else:
        roi = row.roi_mode
        names = {"baseline": "faster_rcnn_%s_%s_%s_baseline" % (row.student, roi, dataset)}
        if row.teacher:
            names["teacher"] = "faster_rcnn_%s_%s_teacher" % (row.teacher, dataset)
            names["distill"] = "faster_rcnn_%s_%s_%s_%s_%s" % (
                row.student, roi, row.teacher, dataset,
                "gankd" if row.method == "gan" else row.method)
    return names


def _dataset_and_shape(row, scale):
    """(dataset name for the scripts, shape(net_a, net_b) -> data shape of a run)."""
    if scale == "smoke":
        dataset = "synthetic_coco" if row.dataset == "coco" else "synthetic"

        def shape(a, b):
            vgg = "vgg16_atrous" in (a, b)
            return SMOKE["data_shape_vgg"] if vgg else SMOKE["data_shape"]
        return dataset, shape
    return row.dataset, lambda a, b: 512


def _layout(work_dir, name):
    ck = os.path.normpath(os.path.join(work_dir, "checkpoints"))
    logs = os.path.normpath(os.path.join(work_dir, "logs"))
    return {"save_dir": ck, "log_dir": logs, "prefix": os.path.join(ck, name, name),
            "log": os.path.join(logs, name + "_train.log")}


def _train_common(work_dir, name, gpus):
    lay = _layout(work_dir, name)
    return [("--gpus", gpus), ("--save-prefix", name), ("--save-dir", lay["save_dir"]),
            ("--log-dir", lay["log_dir"]), ("--resume", "auto")]


def _smoke_args(args, data_root, dataset, shape, gpus):
    args = _merge(args, [("--dataset", dataset), ("--dataset-root", data_root),
                         ("--data-shape", str(shape)), ("--batch-size", str(SMOKE["batch_size"])),
                         ("--epochs", str(SMOKE["epochs"]))] + SMOKE_OVERRIDES)
    if any(k == "--gan-epochs" for k, _ in args):          # a distillation
        _set(args, "--gan-epochs", str(SMOKE["gan_epochs"]))
        _set(args, "--critic-channels", str(SMOKE["critic_channels"]))
    if not gpus:
        _set(args, "--cpu-devices", str(SMOKE["cpu_devices"]))
    return args + [("--no-progress", None)]


def _ssd_chain(row, scale, gpus, work_dir, data_root, checkpoint, baseline):
    smoke = scale == "smoke"
    dataset, shape = _dataset_and_shape(row, scale)
    names = run_names(row, scale)
    steps = []

    def plain(kind, network, name):
        args = [("--network", network), ("--dataset", dataset)] + GLUONCV_SSD_PLAIN
        args = _merge(args, [("--data-shape", str(shape(network, None)))])
        args += [("--pretrained-base", "zoo")] + _train_common(work_dir, name, gpus)
        if smoke:
            args = _smoke_args(args, data_root, dataset, shape(network, None), gpus)
        lay = _layout(work_dir, name)
        return Step(kind, "scripts/train_ssd.py", args,
                    {"manifest": lay["prefix"] + "-final.json",
                     "files": [lay["prefix"] + "-%s-net-symbol.json" % checkpoint,
                               lay["prefix"] + "-%s-net-0000.params" % checkpoint]},
                    _recipe(args))

    def evaluate(kind, name, exported, net_shape):
        out = os.path.normpath(os.path.join(work_dir, "eval", "%s-%s.json" % (name, checkpoint)))
        script = "scripts/eval_coco.py" if row.dataset == "coco" else "scripts/eval_voc.py"
        args = [("--dataset", dataset)]
        if smoke:
            args.append(("--dataset-root", data_root))
        args += [("--symbol", exported), ("--data-shape", str(net_shape)),
                 ("--gpus", gpus), ("--out", out), ("--no-progress", None)]
        return Step(kind, script, args, {"eval_json": out},
                    inputs=[exported + "-symbol.json", exported + "-0000.params"])

    teacher_params = None
    if row.teacher and (smoke or not zoo_teacher(row)):
        step = plain("teacher", row.teacher, names["teacher"])
        # the best validation checkpoint, as GluonCV's scripts keep a teacher (*_best.params)
        teacher_params = _layout(work_dir, names["teacher"])["prefix"] + "-best.net.params"
        step.outputs["files"] = [teacher_params]
        steps.append(step)
    if row.is_baseline or baseline:
        b = names["baseline"]
        steps.append(plain("baseline", row.student, b))
        exported = _layout(work_dir, b)["prefix"] + "-%s-net" % checkpoint
        steps.append(evaluate("eval" if row.is_baseline else "eval-baseline", b, exported,
                              shape(row.student, None)))
    if row.teacher:
        d = names["distill"]
        d_shape = shape(row.student, row.teacher)
        args = [("--student", row.student), ("--teacher", row.teacher),
                ("--dataset", dataset)] + PAPER_SSD_GANKD
        args = _merge(args, [("--data-shape", str(d_shape))])
        args += [("--pretrained-base", "zoo")] + _train_common(work_dir, d, gpus)
        if teacher_params:
            args.append(("--teacher-params", teacher_params))
        if smoke:
            args = _smoke_args(args, data_root, dataset, d_shape, gpus)
        lay = _layout(work_dir, d)
        exported = lay["prefix"] + "-%s-student" % checkpoint
        steps.append(Step("distill", "scripts/train_ssd_gan_kd.py", args,
                          {"manifest": lay["prefix"] + "-final.json",
                           "files": [exported + "-symbol.json", exported + "-0000.params"]},
                          _recipe(args), inputs=[teacher_params] if teacher_params else []))
        steps.append(evaluate("eval", d, exported, d_shape))
    return steps


def _frcnn_chain(row, scale, gpus, work_dir, data_root, checkpoint, baseline):
    """Table 3. The evaluation is ``eval_voc.py --checkpoint`` on the checkpoint the row
    evaluates: its Faster R-CNN mode (GluonCV's aspect-keeping short-side resize at the run's
    own sizes, VOC07 metric on the test split) gives the training run's validation mAP
    (``tests/test_eval_frcnn_cli.py``)."""
    smoke = scale == "smoke"
    dataset = "synthetic" if smoke else "voc"
    names = run_names(row, scale)
    steps = []

    def finish(args, distill=False):
        if smoke:
            args = _merge(args, [("--dataset-root", data_root)] + FRCNN_SMOKE_OVERRIDES
                          + (FRCNN_SMOKE_DISTILL if distill else []) + FRCNN_SMOKE_SIZES)
            if not gpus:
                _set(args, "--cpu-devices", str(SMOKE["cpu_devices"]))
            args.append(("--no-progress", None))
        return args

    def plain(kind, network, name, roi_mode, recipe):
        args = [("--network", network), ("--roi-mode", roi_mode), ("--dataset", dataset),
                ("--train-years", "2007")] + recipe
        args += [("--pretrained-base", "zoo")] + _train_common(work_dir, name, gpus)
        args = finish(args)
        lay = _layout(work_dir, name)
        return Step(kind, "scripts/train_faster_rcnn.py", args,
                    {"manifest": lay["prefix"] + "-final.json",
                     "files": [lay["prefix"] + "-%s.json" % checkpoint]},
                    _recipe(args, "faster_rcnn"))

    def evaluate(kind, name):
        out = os.path.normpath(os.path.join(work_dir, "eval", "%s-%s.json" % (name, checkpoint)))
        source = _layout(work_dir, name)["prefix"] + "-%s.json" % checkpoint
        args = [("--dataset", dataset)]
        if smoke:
            args.append(("--dataset-root", data_root))
        args += [("--checkpoint", source), ("--gpus", gpus), ("--out", out),
                 ("--no-progress", None)]
        return Step(kind, "scripts/eval_voc.py", args, {"eval_json": out}, inputs=[source])

    teacher_params = None
    if row.teacher:
        step = plain("teacher", row.teacher, names["teacher"], "align", FRCNN_TEACHER)
        teacher_params = _layout(work_dir, names["teacher"])["prefix"] + "-best.net.params"
        step.outputs["files"] = [teacher_params]
        steps.append(step)
    if row.is_baseline or baseline:
        b = names["baseline"]
        steps.append(plain("baseline", row.student, b, row.roi_mode, FRCNN_PLAIN))
        steps.append(evaluate("eval" if row.is_baseline else "eval-baseline", b))
    if row.teacher:
        d = names["distill"]
        args = [("--student", row.student), ("--teacher", row.teacher),
                ("--roi-mode", row.roi_mode), ("--method", row.method),
                ("--dataset", dataset), ("--train-years", "2007")] + FRCNN_GANKD
        args += [("--pretrained-base", "zoo")] + _train_common(work_dir, d, gpus)
        args.append(("--teacher-params", teacher_params))
        args = finish(args, distill=True)
        lay = _layout(work_dir, d)
        steps.append(Step("distill", "scripts/train_faster_rcnn_gan_kd.py", args,
                          {"manifest": lay["prefix"] + "-final.json",
                           "files": [lay["prefix"] + "-%s.json" % checkpoint]},
                          _recipe(args, "faster_rcnn"), inputs=[teacher_params]))
        steps.append(evaluate("eval", d))
    return steps


def build_chain(row, scale="full", gpus=None, work_dir=".", checkpoint="best", baseline=True):
    """The commands that reproduce ``row``.

    Parameters
    ----------
    row : Row
    scale : {'full', 'smoke'}
        full: the paper's data and schedule; smoke: the generated dataset, tiny epochs, small
        inputs, CPU, no downloads (a teacher is trained in the chain).
    gpus : str or None
        ``--gpus`` of every command; None: ``'0,1'`` (the paper's two GPUs), ``''`` at smoke.
    work_dir : str
        Checkpoints go to ``<work_dir>/checkpoints``, logs to ``<work_dir>/logs``, evaluations
        to ``<work_dir>/eval``, the generated dataset to ``<work_dir>/data``.
    checkpoint : {'best', 'final'}
        Which exported model is evaluated (and, for trained teachers, always ``best``).
    baseline : bool
        Distillation rows: include the baseline and its evaluation (shared with the "-" row).

    Returns
    -------
    list of Step
    """
    if scale not in ("full", "smoke"):
        raise ValueError("scale must be 'full' or 'smoke', got %r" % scale)
    if checkpoint not in ("best", "final"):
        raise ValueError("checkpoint must be 'best' or 'final', got %r" % checkpoint)
    if gpus is None:
        gpus = "" if scale == "smoke" else "0,1"
    data_root = None
    steps = []
    if scale == "smoke":
        data_root = os.path.normpath(os.path.join(work_dir, "data", "synthetic_smoke_%d_%d" % (
            SMOKE["num_train"], SMOKE["num_test"])))
        steps.append(Step("data", "scripts/make_synthetic_voc.py",
                          [("--root", data_root), ("--seed", str(SMOKE["seed"])),
                           ("--num-train", str(SMOKE["num_train"])),
                           ("--num-test", str(SMOKE["num_test"]))],
                          {"dataset": (data_root, SMOKE["num_train"], SMOKE["num_test"])}))
    if row.detector == "ssd":
        steps += _ssd_chain(row, scale, gpus, work_dir, data_root, checkpoint, baseline)
    else:
        steps += _frcnn_chain(row, scale, gpus, work_dir, data_root, checkpoint, baseline)
    return steps
