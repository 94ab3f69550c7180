"""The paper's table rows as experiments: one :class:`Row` per row of Tables 1, 2 and 3, and the
chain of commands that reproduces it (:func:`build_chain`).

Counting the rows (Hong, Yu, Fan, "GAN-Knowledge Distillation for one-stage Object Detection",
arXiv:1906.08467, 2019, https://arxiv.org/abs/1906.08467: Sec. 4.2, Tables 1-3):

* Table 1 (VOC07 test, SSD512): 3 students (MobileNetV1, MobileNetV2, ResNet18) x 4 rows each
  (no teacher "-", VGG16, ResNet50, ResNet101) = 12;
* Table 2 (COCO val2017, SSD512, teacher ResNet50): 3 students (MobileNetV1, MobileNetV1_0.75,
  MobileNetV2) x 2 rows ("-" and ResNet50; the "-" cells of the VGG16 / ResNet101 lines were not
  run by the authors and are no rows) = 6;
* Table 3 (VOC07 test, Faster R-CNN, teacher ResNet101): 3 pairs (RoI pooling, RoIAlign,
  fine-grained imitation) x 2 rows ("-" and distilled) = 6. The teacher's own 74.8 is in the
  caption, not a row: it is a step of the distillation rows' chain.

12 + 6 + 6 = 24 rows.

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

Every training command spells out the paper's settings, rather than relying on the scripts'
defaults, so ``reproduce.py --dry-run`` shows the recipe and a change of a default cannot change
a reproduction silently. ``Row.settings`` lists what sets a row apart from the others (student,
teacher, dataset, RoI mode, method, and the baselines' schedule, where the scripts' defaults are
the distillation's).

This module does not import MXNet: ``reproduce.py --list`` and ``--dry-run`` stay instant.
"""
import json
import os
import shlex

__all__ = ["Row", "Step", "ROWS", "TABLES", "get_row", "rows_of", "build_chain", "zoo_teacher",
           "SMOKE", "PAPER_SSD_GANKD", "GLUONCV_SSD_PLAIN", "run_names", "effective_settings",
           "estimate_hours", "REPO_ROOT"]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(REPO_ROOT, "scripts")

TABLES = {
    1: "Table 1: SSD512 on VOC2007 test (VOC07 11-point mAP), trained on VOC07+12 trainval",
    2: "Table 2: SSD512 on COCO val2017 (mAP@[.5:.95]), trained on train2017, teacher ResNet50",
    3: "Table 3: Faster R-CNN on VOC2007 test, trained on VOC2007 trainval, teacher ResNet101 "
       "(74.8, caption)",
}

# ------------------------------------------------------------------------------------- recipes
# Paper sec. 4.1: "All models used adam with 0.0005 learning rate in the first phase and SGD with
# 0.0005 weight decay and 0.9 momentum in the second phase. The first stage trains epochs is 180
# and the second stage epochs is 90." Two GTX 1080 Ti (sec. 4). The stage-2 lr (0.001, GluonCV's
# SSD default), beta1 0.5 and the clamps are the published log's; the paper gives no batch size:
# 32 is GluonCV's SSD default and, over two GPUs, the published log's 16 per GPU (64 on 4 GPUs).
# Stage 2 has no lr decay in the paper (the published log's '80,100' belonged to its 340-epoch run).
PAPER_SSD_GANKD = [
    ("--method", "gan"), ("--head", "teacher"), ("--stage", "both"),
    ("--data-shape", "512"), ("--batch-size", "32"),
    ("--gan-epochs", "180"), ("--lrG", "0.0005"), ("--lrD", "0.0005"), ("--beta1", "0.5"),
    ("--clamp-lower", "-0.03"), ("--clamp-upper", "0.03"),
    ("--epochs", "90"), ("--lr", "0.001"), ("--momentum", "0.9"), ("--wd", "0.0005"),
    ("--lr-decay-epoch", ""), ("--seed", "233"),
]
# The "-" rows and the teachers the zoo lacks: GluonCV's train_ssd.py recipe (its defaults:
# SGD lr 0.001, momentum 0.9, wd 0.0005, batch 32, 240 epochs, decay x0.1 after 160 and 200).
# The paper gives no schedule for its baselines; its MobileNetV1 numbers (75.4 VOC, 21.7 COCO)
# are the GluonCV model zoo's ssd_512_mobilenet1.0_{voc,coco}, trained with this recipe.
GLUONCV_SSD_PLAIN = [
    ("--optimizer", "sgd"), ("--data-shape", "512"), ("--batch-size", "32"),
    ("--epochs", "240"), ("--lr", "0.001"), ("--momentum", "0.9"), ("--wd", "0.0005"),
    ("--lr-decay", "0.1"), ("--lr-decay-epoch", "160,200"), ("--seed", "233"),
]

# Trained SSD512 teachers in GluonCV's model zoo (gluoncv 0.10.5
# gluoncv/model_zoo/model_store.py, the ssd_512_* entries); train_ssd_gan_kd.py
# downloads them when --teacher-params is not given.
ZOO_SSD_TEACHERS = {("vgg16_atrous", "voc"), ("resnet50_v1", "voc"), ("resnet101_v2", "voc"),
                    ("resnet50_v1", "coco")}

# --scale smoke: the same chain on the generated dataset, on the CPU, with nothing downloaded.
# 4 training images in one batch of 4 (2 per CPU context): 1 iteration per epoch and stage
# (Faster R-CNN: 2, batch 2), which exercises every step, checkpoint and resume as well as more
# would; each further iteration of a VGG16 row at 320 px costs about 10 s on 2 CPU cores.
SMOKE = {
    "num_train": 4, "num_test": 4, "seed": 0,
    "data_shape": 128,
    # the VGG16-atrous SSD's last extra layer has a 4x4 kernel: 320 is its smallest input
    # (models/ssd.py teacher_layout)
    "data_shape_vgg": 320,
    "batch_size": 4, "epochs": 1, "gan_epochs": 1,
    # two CPU contexts stand in for the two GPUs: the batch is split the same way
    "cpu_devices": 2,
}
# --keep-last 1: the newest epoch checkpoint is all a resume needs; 24 rows of full-size nets
# otherwise keep GBs of older ones on the test machine's disk
SMOKE_OVERRIDES = [("--num-workers", "0"), ("--augment", "flip"), ("--pretrained-base", "none"),
                   ("--log-interval", "1"), ("--lr-decay-epoch", ""), ("--keep-last", "1")]

# Faster R-CNN (Table 3). Distillation: the published Faster R-CNN log's Namespace
# (gankd_gluon/logs/published.py names the file), which
# train_faster_rcnn_gan_kd.py takes as its defaults; epochs count from 0 over both stages (0..26
# adversarial, 27..37 plain). Batch 4 as in the log (there 1 per GPU on 4 GPUs; here 2 per GPU
# on the paper's two), so its lr 0.0001 applies unchanged.
FRCNN_GANKD = [
    ("--stage", "both"), ("--batch-size", "4"), ("--gan-epochs", "26"), ("--epochs", "38"),
    ("--lrG", "0.0005"), ("--lrD", "0.0005"), ("--beta1", "0.5"),
    ("--lr-decay-gan-epoch", "5,20"), ("--train-D-eopch", "2"),
    ("--clamp-lower", "-0.03"), ("--clamp-upper", "0.03"),
    ("--lr", "0.0001"), ("--momentum", "0.9"), ("--wd", "0.0005"), ("--lr-decay", "0.1"),
    ("--lr-decay-epoch", "32,36"), ("--seed", "233"),
]
# The '-' rows: the same data and schedule as the distillation's stage 2, plain SGD
# (train_faster_rcnn.py's defaults), so the rows differ only in the distillation.
FRCNN_PLAIN = [
    ("--optimizer", "sgd"), ("--batch-size", "4"), ("--epochs", "38"), ("--lr", "0.0001"),
    ("--momentum", "0.9"), ("--wd", "0.0005"), ("--lr-decay", "0.1"),
    ("--lr-decay-epoch", "32,36"), ("--seed", "233"),
]
# The teacher (74.8 in Table 3's caption, VOC2007 trainval only; the zoo's
# faster_rcnn_resnet101_v1d_voc is trained on VOC07+12, so it is trained here): GluonCV's
# train_faster_rcnn.py VOC recipe (20 epochs, SGD lr 0.001, decay x0.1 at epochs 14 and 20,
# wd 5e-4); the paper gives none.
FRCNN_TEACHER = [
    ("--optimizer", "sgd"), ("--batch-size", "4"), ("--epochs", "20"), ("--lr", "0.001"),
    ("--momentum", "0.9"), ("--wd", "0.0005"), ("--lr-decay", "0.1"),
    ("--lr-decay-epoch", "14,20"), ("--seed", "233"),
]
# --scale smoke for Faster R-CNN: the tiny sizes of tests/test_frcnn_train.py (96 px, 8 RoIs),
# one epoch per stage (epoch 0 adversarial, epoch 1 plain), no critic warm-up.
FRCNN_SMOKE_SIZES = [
    ("--short", "96"), ("--max-size", "96"), ("--num-sample", "8"), ("--roi-size", "7"),
    ("--rpn-train-pre-nms", "256"), ("--rpn-train-post-nms", "64"),
    ("--rpn-test-pre-nms", "128"), ("--rpn-test-post-nms", "8")]
FRCNN_SMOKE_OVERRIDES = [
    ("--epochs", "1"), ("--batch-size", "2"), ("--num-workers", "0"),
    ("--pretrained-base", "none"), ("--log-interval", "1"), ("--lr-decay-epoch", ""),
    ("--keep-last", "1")]
FRCNN_SMOKE_DISTILL = [("--gan-epochs", "0"), ("--epochs", "2"), ("--train-D-eopch", "0"),
                       ("--lr-decay-gan-epoch", ""), ("--critic-channels", "16")]

# ---------------------------------------------------------------------------- wall-time model
# Published speeds on four GTX 1080 Ti (the authors' published logs, gankd_gluon/logs/published.py:
# the SSD log's Speed lines, the Faster R-CNN log's Training cost lines). Two GPUs are
# assumed to run at half these rates (same 16 images per GPU).
SPEED_4GPU = {"ssd_stage1": 35.0, "ssd_stage2": 57.0,          # samples/s
              "frcnn_stage1": 5011 / 830.0, "frcnn_stage2": 5011 / 463.0}   # 830 s / 463 s epochs
# VOC07+12 trainval; COCO train2017 images with boxes; VOC2007 trainval (Table 3)
TRAIN_IMAGES = {"voc": 16551, "coco": 117266, "voc07": 5011}
TEST_IMAGES = {"voc": 4952, "coco": 5000, "voc07": 4952}


class Row(object):
    """One row of the paper's Tables 1-3.

    Parameters
    ----------
    table : int
        1, 2 or 3.
    index : int
        1-based position in the table, top to bottom.
    detector : {'ssd', 'faster_rcnn'}
    student : str
        Student backbone as the scripts name it (``mobilenet1.0``, ``resnet50_v1b``, ...).
    teacher : str or None
        Teacher backbone; None for a "-" row (the student trained alone).
    method : str
        ``none`` for "-" rows, ``gan`` (the paper), ``fgfi`` (Wang et al. 2019, Table 3).
    dataset : {'voc', 'coco', 'voc07'}
        voc: VOC07+12 trainval / VOC07 test; voc07: VOC2007 trainval / test; coco: train2017 /
        val2017.
    paper_map : float
        The paper's number (percent).
    paper_gain : float or None
        The paper's gain over its "-" row, in brackets in the tables.
    settings : dict
        What sets the row apart, flag -> value (see the module docstring).
    roi_mode : str or None
        Faster R-CNN RoI mode (``pool`` or ``align``).
    variant : str or None
        Table 3's line pair, named after the student's column: ``pool``, ``align``, ``fgfi``.
    note : str
    """

    def __init__(self, table, index, detector, student, teacher, method, dataset, paper_map,
                 paper_gain=None, settings=None, roi_mode=None, variant=None, note=""):
        self.table = table
        self.index = index
        self.detector = detector
        self.student = student
        self.teacher = teacher
        self.method = method
        self.dataset = dataset
        self.paper_map = paper_map
        self.paper_gain = paper_gain
        self.settings = dict(settings or {})
        self.roi_mode = roi_mode
        self.variant = variant
        self.note = note

    @property
    def is_baseline(self):
        return self.teacher is None

    @property
    def key(self):
        """Row name after the table: ``mobilenet1.0_resnet50_v1``, ``mobilenet1.0_baseline``."""
        student = "%s_%s" % (self.student, self.variant) if self.variant else self.student
        return "%s_%s" % (student, self.teacher or "baseline")

    @property
    def name(self):
        """``table1_mobilenet1.0_resnet50_v1``: the name of the row's script."""
        return "table%d_%s" % (self.table, self.key)

    @property
    def script(self):
        return "scripts/experiments/%s.sh" % self.name

    def paper_text(self):
        if self.paper_gain is None:
            return "%.1f" % self.paper_map
        return "%.1f (%+.1f)" % (self.paper_map, self.paper_gain)

    def settings_text(self):
        return " ".join("%s %s" % (k, v) for k, v in self.settings.items())

    def __repr__(self):
        return "Row(table=%d, index=%d, %s)" % (self.table, self.index, self.key)


def _t1():
    # (mAP, gain in brackets) as printed; the printed gains of MobileNetV2 and ResNet18 are not
    # all mAP minus the "-" row (77.2 - 75.9 = 1.3, printed +1.4): both are kept as printed
    numbers = {"mobilenet1.0": ((75.4, None), (77.3, 1.9), (77.6, 2.2), (77.6, 2.2)),
               "mobilenetv2_1.0": ((75.9, None), (77.2, 1.4), (77.7, 1.7), (77.5, 1.5)),
               "resnet18_v1": ((74.8, None), (77.2, 2.6), (77.6, 2.8), (77.3, 2.7))}
    out = []
    for student, cells in numbers.items():
        for teacher, (m, gain) in zip((None, "vgg16_atrous", "resnet50_v1", "resnet101_v2"),
                                      cells):
            if teacher:
                settings = {"--student": student, "--teacher": teacher}
            else:
                settings = {"--network": student, "--epochs": 240, "--lr-decay-epoch": "160,200"}
            out.append(Row(1, len(out) + 1, "ssd", student, teacher,
                           "gan" if teacher else "none", "voc", m, gain, settings))
    return out


def _t2():
    out = []
    for student, base, kd, gain in (("mobilenet1.0", 21.7, 25.4, 3.7),
                                    ("mobilenet0.75", 18.0, 23.0, 5.0),
                                    ("mobilenetv2_1.0", 22.0, 24.6, 2.6)):
        out.append(Row(2, len(out) + 1, "ssd", student, None, "none", "coco", base,
                       settings={"--network": student, "--dataset": "coco", "--epochs": 240,
                                 "--lr-decay-epoch": "160,200"}))
        out.append(Row(2, len(out) + 1, "ssd", student, "resnet50_v1", "gan", "coco", kd, gain,
                       settings={"--student": student, "--teacher": "resnet50_v1",
                                 "--dataset": "coco"}))
    return out


def _t3():
    out = []
    groups = (("pool", 67.0, 73.8, 6.8, "gan"), ("align", 71.7, 74.0, 2.3, "gan"),
              ("fgfi", 69.0, 72.0, 3.0, "fgfi"))
    for group, base, kd, gain, method in groups:
        roi = "align" if group == "fgfi" else group
        note = ""
        if group == "fgfi":
            note = ("the paper's 69.0 / 72.0 are Wang et al.'s own numbers; here the '-' row is "
                    "our RoIAlign baseline (the same run as row 3)")
        out.append(Row(3, len(out) + 1, "faster_rcnn", "resnet50_v1b", None, "none", "voc07",
                       base, roi_mode=roi, variant=group, note=note,
                       settings={"--roi-mode": roi}))
        out.append(Row(3, len(out) + 1, "faster_rcnn", "resnet50_v1b", "resnet101_v1d", method,
                       "voc07", kd, gain, roi_mode=roi, variant=group, note=note,
                       settings={"--roi-mode": roi, "--method": method}))
    return out


ROWS = _t1() + _t2() + _t3()


def rows_of(table=None):
    """All rows, or those of one table."""
    return [r for r in ROWS if table is None or r.table == int(table)]


def get_row(table, row):
    """A row by table and 1-based index, or by key (``mobilenet1.0_resnet50_v1``) or name."""
    candidates = rows_of(table)
    text = str(row)
    if text.isdigit():
        for r in candidates:
            if r.index == int(text):
                return r
    else:
        for r in candidates:
            if text in (r.key, r.name):
                return r
    raise KeyError("Table %s has no row %r; rows: %s" % (
        table, row, ", ".join("%d=%s" % (r.index, r.key) for r in candidates)))


def zoo_teacher(row):
    """True when GluonCV's model zoo holds a trained teacher for the row (downloaded)."""
    if row.detector == "ssd":
        return (row.teacher, row.dataset) in ZOO_SSD_TEACHERS
    # faster_rcnn_resnet101_v1d_voc is trained on VOC07+12; Table 3's teacher on VOC07 only
    return False


# ------------------------------------------------------------------------------------- steps
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
                "--head", "--stage", "--short", "--lr-decay-gan-epoch", "--train-D-eopch")


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
    if any(k == "--gan-epochs" for k, _ in args):
        _set(args, "--gan-epochs", str(SMOKE["gan_epochs"]))
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


# --------------------------------------------------------------------------- what a row means
def effective_settings(row, steps):
    """Human-readable lines: the settings the row's distillation (or baseline) trains with,
    as they follow from its commands (batch per device, optimizers, epochs, data shape)."""
    lines = []
    for st in steps:
        if st.kind not in ("teacher", "baseline", "distill"):
            continue
        gpus = [g for g in (st.get("--gpus") or "").split(",") if g.strip()]
        if gpus:
            devices = "%d GPU(s) (%s)" % (len(gpus), ",".join(gpus))
            n = len(gpus)
        else:
            n = int(st.get("--cpu-devices", "1"))
            devices = "%d CPU context(s)" % n
        batch = int(st.get("--batch-size"))
        per = "%d per device" % (batch // n) if batch % n == 0 else \
            "split %s" % "+".join(str(batch // n + (1 if i < batch % n else 0)) for i in range(n))
        size = ("data shape %s" % st.get("--data-shape") if st.get("--data-shape") else
                "short side %s, max %s" % (st.get("--short", "600"), st.get("--max-size", "1000")))
        head = "%s (%s): %s, global batch %d over %s, %s" % (
            st.kind, st.get("--save-prefix"), size, batch, devices, per)
        lines.append(head)
        if st.kind == "distill" and st.script.endswith("train_ssd_gan_kd.py"):
            lines.append("  stage 1: Adam lr %s (D and G: lrD %s, lrG %s), beta1 %s, %s epochs, "
                         "WGAN clip [%s, %s]" % (st.get("--lrG"), st.get("--lrD"),
                                                 st.get("--lrG"), st.get("--beta1"),
                                                 st.get("--gan-epochs"), st.get("--clamp-lower"),
                                                 st.get("--clamp-upper")))
            lines.append("  stage 2: SGD lr %s, momentum %s, wd %s, %s epochs, lr decay: %s"
                         % (st.get("--lr"), st.get("--momentum"), st.get("--wd"),
                            st.get("--epochs"), st.get("--lr-decay-epoch") or "none"))
        elif st.kind == "distill":
            lines.append("  stage 1 (epochs 0-%s): Adam lrG %s, lrD %s, beta1 %s, decay at [%s], "
                         "critic warm-up %s epochs, WGAN clip [%s, %s]"
                         % (st.get("--gan-epochs"), st.get("--lrG"), st.get("--lrD"),
                            st.get("--beta1"), st.get("--lr-decay-gan-epoch"),
                            st.get("--train-D-eopch"), st.get("--clamp-lower"),
                            st.get("--clamp-upper")))
            lines.append("  stage 2 (to epoch %d): SGD lr %s, momentum %s, wd %s, x%s at [%s]"
                         % (int(st.get("--epochs")) - 1, st.get("--lr"), st.get("--momentum"),
                            st.get("--wd"), st.get("--lr-decay"), st.get("--lr-decay-epoch")))
        elif st.script.endswith(("train_ssd.py", "train_faster_rcnn.py")):
            lines.append("  %s lr %s, momentum %s, wd %s, %s epochs, lr x%s after epochs [%s]"
                         % (st.get("--optimizer").upper(), st.get("--lr"), st.get("--momentum"),
                            st.get("--wd"), st.get("--epochs"), st.get("--lr-decay"),
                            st.get("--lr-decay-epoch")))
    return lines


def estimate_hours(row, gpus=2, baseline=True):
    """Estimated wall time of a row's training steps on ``gpus`` GTX 1080 Ti, in hours, from
    the published speeds on four (:data:`SPEED_4GPU`, assumed linear in the number of GPUs)
    and the epochs of the row's own commands (:func:`build_chain`).

    Stage-1 epochs run at the distillation speed, plain epochs (stage 2, baselines, teachers)
    at the plain speed; every epoch validates once on the test split, taken as forward only at
    3x the plain training rate. The published speeds are those of the MobileNetV1 / ResNet50
    SSD and the ResNet50 / ResNet101 Faster R-CNN; heavier networks (VGG16 or ResNet101
    teachers, the ResNet101 Faster R-CNN teacher) take longer.

    Returns
    -------
    dict : step kind -> hours (``teacher``, ``baseline``, ``distill``; only the steps run).
    """
    scale = gpus / 4.0
    kind = "ssd" if row.detector == "ssd" else "frcnn"
    n = TRAIN_IMAGES[row.dataset]
    s1 = SPEED_4GPU[kind + "_stage1"] * scale
    s2 = SPEED_4GPU[kind + "_stage2"] * scale
    val = TEST_IMAGES[row.dataset] / (3 * s2)
    out = {}
    for st in build_chain(row, "full", baseline=baseline):
        if st.kind not in ("teacher", "baseline", "distill"):
            continue
        epochs = int(st.get("--epochs"))
        adversarial = 0
        if st.kind == "distill":
            if row.detector == "ssd":       # --gan-epochs stage-1 epochs, then --epochs
                adversarial = int(st.get("--gan-epochs"))
            else:                           # epochs 0..GAN_epochs of --epochs in all
                adversarial = int(st.get("--gan-epochs")) + 1
                epochs -= adversarial
        seconds = adversarial * (n / s1 + val) + epochs * (n / s2 + val)
        out[st.kind] = seconds / 3600.0
    return out


def read_eval_map(path):
    """mAP (percent) from an ``eval_voc.py`` / ``eval_coco.py`` ``--out`` JSON; nan if null."""
    with open(path) as f:
        value = json.load(f)["ap"]["mAP"]
    return float("nan") if value is None else 100.0 * float(value)
