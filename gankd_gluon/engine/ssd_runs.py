"""The SSD part of the training runs (:mod:`.runs`): GAN-KD (``train_ssd_gan_kd.py``) and
plain SSD training (``train_ssd.py``). The scripts parse arguments with the flags added here
and call ``runs.run_gankd(args, SSDPart())`` or ``runs.run_plain(args, SSDPart())``; what the
runs need to know of SSD is :class:`SSDPart`'s.

Defaults follow the paper (Sec. 4.1) and, where the paper is silent, the published log
(``published_logs/ssd_512_mobilenet1_0_resnet50_v1_voc_g_d_new_train.log``); each flag's help says
which.
"""
import argparse
import warnings

import mxnet as mx
from gluoncv.loss import SSDMultiBoxLoss
from mxnet import autograd

from ..data.datasets import (add_dataset_args, add_train_years_arg, dataset_metric_kind,
                             get_splits)
from ..eval.coco import COCO_METRIC, coco_validation
from ..data.loaders import get_ssd_train_loader
from ..eval.voc import evaluate_detector, get_eval_loader, predict_detections
from ..logs.format import SSD_LINES
from ..models.critics import DNet
from ..models.export_meta import build_meta
from ..models.ssd import (STUDENTS, TEACHERS, build_ssd, build_student, build_teacher,
                          deployable, export_detector, feature_channels, initialize_new_params,
                          split_ssd, teacher_layout)
from .args import (add_critic_args, add_distributed_args, add_run_args, check_critic_args,
                   check_run_args, check_teacher_classes, check_weights_file)
from ..usage import (UsageError, epoch_list, fraction, multiple_of_32, nonnegative_float,
                     nonnegative_int, positive_float, positive_int)
from .checkpoint import deployable_exporter
from .diagnostics import diagnostic_columns
from .methods import KDObjective, add_method_args, method_name, parse_method
from .runs import Distillation, StageNumbers, get_contexts
from .steps import SSD_OUTPUT_TERMS, GANStep, SSDAdapter, SSDStep, split_batch

__all__ = ["SSDPart", "add_common_args", "add_gankd_args", "get_contexts",
           "build_gankd_models", "make_dnet", "teacher_statistics", "check_plain_args",
           "check_gankd_args", "SSD_NETWORKS"]

GAN_COLUMNS = ["Loss_D", "Loss_G", "Loss_D_real", "Loss_D_fake"]
DET_COLUMNS = [("train_student_ori_net_CrossEntropy", "CrossEntropy"),
               ("train_student_ori_net_SmoothL1", "SmoothL1")]


SSD_CRITIC_NORM = "lipschitz"
SSD_CRITIC_NORM_HELP = (
    "lipschitz (default): each map standardised with the teacher's frozen per-channel "
    "statistics, gain-bounded convs clipped at the clamp, scores in units of their running "
    "spread; batch: WGAN's reference DCGAN critic (BatchNorm after every conv but the first, "
    "clipped with the weights); none: no normalisation, whose outputs grow with the "
    "feature scale (models/critics.py)")


def add_common_args(parser):
    """Flags shared by plain SSD and GAN-KD training. ``dest`` names are the published log's
    Namespace fields wherever that setting exists (the authors' published SSD log,
    :mod:`gankd_gluon.logs.published`)."""
    add_dataset_args(parser)
    add_train_years_arg(parser, None, "VOC layout: the VOC<year> folders whose trainval is "
                        "read for training; default 2007,2012 for voc (the paper's VOC07+12), "
                        "2007 for synthetic; 2007 for a dataset with VOC2007 only")
    parser.add_argument("--data-shape", type=multiple_of_32, default=512,
                        help="input size; 512 as SSD512 in the paper's tables")
    parser.add_argument("--batch-size", type=positive_int, default=32,
                        help="global batch over all devices; 32 is GluonCV's SSD default (the paper "
                             "does not state it; the published log ran 64 on 4 GPUs)")
    parser.add_argument("--num-workers", "-j", dest="num_workers", type=nonnegative_int,
                        default=4,
                        help="DataLoader workers (GluonCV's default; the published log used 16-32)")
    parser.add_argument("--augment", choices=("default", "flip"), default="default",
                        help="'default' is GluonCV's SSD augmentation (the paper's); 'flip' is "
                             "resize + flip only, for small CPU runs")
    parser.add_argument("--epochs", type=nonnegative_int, default=90,
                        help="plain-training epochs (GAN-KD: stage 2; paper: 90)")
    parser.add_argument("--lr", type=positive_float, default=0.001,
                        help="SGD learning rate of plain training (GluonCV SSD, published log)")
    parser.add_argument("--lr-decay", type=positive_float, default=0.1,
                        help="step decay factor (published log); GAN-KD: of both stages")
    parser.add_argument("--lr-decay-epoch", type=epoch_list, default="",
                        help="epochs after which the SGD lr decays (80: epochs 1-80 at --lr, "
                             "81 on decayed); paper: none; the published log used '80,100'")
    parser.add_argument("--momentum", type=fraction, default=0.9, help="SGD momentum (paper)")
    parser.add_argument("--wd", type=nonnegative_float, default=0.0005,
                        help="SGD weight decay (paper)")
    add_distributed_args(parser)
    parser.set_defaults(hybridize=True)    # on the parser: the help shows no "(default: True)"
    parser.add_argument("--no-hybridize", dest="hybridize", action="store_false",
                        default=argparse.SUPPRESS,
                        help="run the networks imperatively (slower; for debugging), not as "
                             "hybridized graphs")
    parser.add_argument("--save-initial", action="store_true",
                        help="with no epoch to train (--epochs 0, and --gan-epochs 0 for "
                             "GAN-KD): save and export the network as it starts (initialised, or "
                             "loaded by --init-from) instead of refusing the run")
    # SSD's published log: save_interval=10, epochs counted from 1
    add_run_args(parser, save_interval=10, start_epoch=1,
                 prefix_example="ssd_512_mobilenet1.0_resnet50_v1_voc_gankd")
    return parser


def add_gankd_args(parser):
    """Flags of the GAN-KD stages (paper Sec. 3.2, 4.1; published log)."""
    parser.add_argument("--student", type=str, default="mobilenet1.0",
                        help="student backbone: mobilenet1.0, mobilenet0.75, mobilenetv2_1.0, "
                             "resnet18_v1 (Tables 1, 2)")
    parser.add_argument("--teacher", type=str, default="resnet50_v1",
                        help="teacher SSD backbone: vgg16_atrous, resnet50_v1, resnet101_v2")
    parser.add_argument("--teacher-params", type=str, default=None,
                        help="local .params of the trained teacher SSD (a GluonCV zoo file or "
                             "one from train_ssd.py); default: download from GluonCV's zoo")
    parser.add_argument("--head", choices=("teacher", "student"), default="teacher",
                        help="teacher: the student's maps feed the teacher's trained SSD head "
                             "(paper Sec. 3.1, Fig. 1); student: a head of the student's own (the "
                             "published SSD log's loss names, train_student_ori_net_*, hint at "
                             "this one)")
    parser.add_argument("--stage", choices=("1", "2", "both"), default="both",
                        help="1 adversarial, 2 plain SSD training, both in one command")
    parser.add_argument("--gan-epochs", type=nonnegative_int, default=180,
                        help="stage-1 epochs (paper: 180; the published log ran 221)")
    # the published log's step: [Epoch 179][Batch 199] CrossEntropy=1.655 Loss_D=-0.016, then
    # [Epoch 180][Batch 99] 1.592 -0.049 (the first 100 batches of 180 already changed),
    # [Epoch 180][Batch 199] 1.577 -0.052, [Epoch 181][Batch 199] 1.517 -0.055
    parser.add_argument("--gan-lr-decay-epoch", type=epoch_list, default="",
                        help="stage-1 epochs after which both Adam rates (--lrG and --lrD) "
                             "decay by --lr-decay, counted as --lr-decay-epoch (179: epochs "
                             "1-179 at the base rates, 180 on decayed); paper: none. The "
                             "published log's rates drop from its epoch 180 on and stage 1 ends "
                             "at 221: its recipe is --gan-epochs 221 --gan-lr-decay-epoch 179 "
                             "(the log does not show the factor; its lr_decay 0.1 is assumed)")
    parser.add_argument("--init-from", type=str, default="", metavar="MANIFEST",
                        help="start the student from the weights of a checkpoint manifest "
                             "(.json) written by this script, e.g. <save-dir>/<run>/<run>-final"
                             ".json of a --stage 1 run, to run --stage 2 on its own (with "
                             "--stage 1 or both, stage 1 starts from them). Weights only: "
                             "optimizers, epochs and best mAP start afresh; --resume continues "
                             "a run instead and is refused with this flag. Use another "
                             "--save-prefix than the manifest's run")
    add_critic_args(parser, critic_norm=SSD_CRITIC_NORM, critic_norm_help=SSD_CRITIC_NORM_HELP)
    add_method_args(parser)
    return parser


#: Backbones an SSD can be built on (``--network`` of train_ssd.py)
SSD_NETWORKS = tuple(sorted(set(TEACHERS) | set(STUDENTS)))


def _check_layout(network, flag, args):
    try:
        teacher_layout(network, args.data_shape, "coco" if args.dataset == "coco" else "voc")
    except ValueError as err:
        raise UsageError("%s %s: %s" % (flag, network, err)) from None


def check_plain_args(args):
    """Refuse ``train_ssd.py`` arguments that cannot train, before anything is built or
    written: an unknown ``--network``, ``--epochs 0`` without ``--save-initial``, and
    :func:`~.args.check_run_args`.

    Raises
    ------
    UsageError
        One line naming the flag (and, for a name, the valid ones).
    """
    if args.network not in SSD_NETWORKS:
        raise UsageError("--network %s: choose one of %s" % (args.network,
                                                             ", ".join(SSD_NETWORKS)))
    _check_layout(args.network, "--network", args)
    if args.epochs < 1 and not args.save_initial:
        raise UsageError("--epochs %d: nothing to train (--save-initial saves the network "
                         "as it starts)" % args.epochs)
    check_run_args(args)


def check_gankd_args(args):
    """Refuse ``train_ssd_gan_kd.py`` arguments that cannot train, before anything is built or
    written: unknown ``--student``/``--teacher``, a ``--data-shape`` the teacher's layout
    cannot take, a stage without epochs (unless ``--save-initial``), an empty clipping
    interval, a global batch of 1 for the default critics in stage 1, a ``--teacher-params`` that is neither a file nor an export's prefix, and
    :func:`~.args.check_run_args`.

    Raises
    ------
    UsageError
        One line naming the flag (and, for a name, the valid ones).
    """
    if args.student not in STUDENTS:
        raise UsageError("--student %s: choose one of %s" % (args.student, ", ".join(STUDENTS)))
    if args.teacher not in SSD_NETWORKS:       # the tables' teachers, or any SSD of train_ssd.py
        raise UsageError("--teacher %s: choose one of %s" % (args.teacher,
                                                             ", ".join(SSD_NETWORKS)))
    _check_layout(args.teacher, "--teacher", args)
    check_weights_file("--teacher-params", args.teacher_params, export=True)   # file or prefix
    check_teacher_classes("--teacher-params", args.teacher_params, args.dataset,
                          getattr(args, "classes", None))
    epochs = {"1": args.gan_epochs, "2": args.epochs,
              "both": args.gan_epochs + args.epochs}[args.stage]
    if epochs < 1 and not args.save_initial:
        given = {"1": "--stage 1 --gan-epochs 0", "2": "--stage 2 --epochs 0",
                 "both": "--epochs 0 --gan-epochs 0"}[args.stage]
        raise UsageError("%s: nothing to train (--save-initial saves the student as it starts)"
                         % given)
    check_critic_args(args, adversarial="gan" in parse_method(args.method)
                      and args.stage in ("1", "both") and args.gan_epochs > 0)
    check_run_args(args)


def _decay_epochs(value):
    return [int(e) for e in value.split(",") if e.strip()]


def teacher_statistics(teacher_features, dataset, data_shape, ctx, count=64, batch=16):
    """Per-channel mean and standard deviation of the teacher's maps over the first ``count``
    images of ``dataset`` (GluonCV's SSD validation transform: resize, no augmentation), the
    frozen statistics the critics standardise both sides with (:func:`critics.channel_stats`).
    Deterministic: every distributed worker computes the same values from the same images.

    Returns list of (mean (C_i,), std (C_i,)) NDArray on the CPU."""
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
    from ..models.critics import channel_stats
    transform = SSDDefaultValTransform(data_shape, data_shape)
    count = min(count, len(dataset))
    chunks = []
    for i in range(0, count, batch):
        x = mx.nd.stack(*[transform(*dataset[j])[0] for j in range(i, min(i + batch, count))])
        chunks.append([m.copyto(mx.cpu()) for m in teacher_features(x.as_in_context(ctx))])
    maps = [mx.nd.concat(*[c[k] for c in chunks], dim=0) for k in range(len(chunks[0]))]
    return channel_stats(maps)


def load_data(args):
    """The run's train and test splits (``--dataset``, ``--classes``, ``--train-years``,
    ``--train-split``, ``--val-split``), loaded before anything is written: a data error stops
    the run with one line and no log."""
    return get_splits(args.dataset, args.dataset_root, getattr(args, "classes", None),
                      getattr(args, "train_years", None), getattr(args, "train_split", None),
                      getattr(args, "val_split", None))


def _validator(net, val, args, ctx):
    """``validate()`` -> (class names, APs, mAP, metric): VOC07 mAP@0.5 for VOC kinds, COCO
    AP@[.5:.95] through pycocotools for COCO kinds (the paper's Table 2), so that ``best``
    follows the dataset's own metric."""
    loader = get_eval_loader(val, args.data_shape, args.batch_size, args.num_workers)
    classes = list(val.classes)
    coco = dataset_metric_kind(args.dataset) == "coco"

    def validate():
        if coco:
            detections, _ = predict_detections(net, loader, ctx, num_images=len(val),
                                               progress=args.progress)
            names, values = coco_validation(detections, val, classes)
            return names[:-1], values[:-1], values[-1], COCO_METRIC
        names, values = evaluate_detector(net, loader, ctx, classes, progress=args.progress)
        return names[:-1], values[:-1], values[-1]
    return validate


def build_gankd_models(args, classes, ctx, teacher=None):
    """Teacher (frozen), deployable student and D-Net for ``args`` on ``ctx``.

    Returns
    -------
    teacher : SSD, student : SSD, dnet : DNet, layout : SSDLayout
    """
    dataset_kind = "coco" if args.dataset == "coco" else "voc"
    layout = teacher_layout(args.teacher, args.data_shape, dataset_kind)
    with warnings.catch_warnings():
        # GluonCV's FeatureExpander infers its symbol's types without the input's: harmless
        # (float32 input), and it would precede every one-line error of a refused run
        warnings.filterwarnings("ignore", "Cannot decide type", UserWarning)
        if teacher is None:
            teacher = build_teacher(args.teacher, classes, layout, dataset_kind,
                                    args.teacher_params, ctx=ctx[0])
        t_channels = feature_channels(teacher.features, args.data_shape, layout.num_maps)
        student = build_student(args.student, teacher, t_channels, layout, classes,
                                head=args.head, pretrained_base=args.pretrained_base, ctx=ctx[0])
    with autograd.predict_mode():
        maps = teacher.features(mx.nd.zeros((1, 3, args.data_shape, args.data_shape), ctx=ctx[0]))
    dnet = make_dnet(args, maps)
    dnet.collect_params().reset_ctx(ctx[0])
    for block in (teacher, student, dnet):
        block.collect_params().reset_ctx(ctx)
    return teacher, student, dnet, layout


def make_dnet(args, maps, stats=None):
    """The D-Net of ``args`` (``--critic-*`` flags) for the teacher's ``maps`` (list of
    (B, C_i, H_i, W_i)), initialised on the CPU with its shapes materialised; ``stats`` (per map
    (mean (C,), std (C,))) are the teacher's channel statistics the critics standardise with."""
    dnet = DNet([m.shape[2] for m in maps], base_channels=args.critic_channels,
                norm=args.critic_norm, channels=[m.shape[1] for m in maps],
                clamp=max(abs(args.clamp_lower), abs(args.clamp_upper)))
    dnet.initialize(ctx=mx.cpu())
    dnet(*[m.as_in_context(mx.cpu()) for m in maps])
    if stats is not None:
        dnet.set_teacher_stats(stats)
    return dnet


def _anchors(net, data_shape, ctx):
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, data_shape, data_shape), ctx=ctx))
    return anchors.as_in_context(mx.cpu())


def _kind(args, classes, **networks):
    """The kind of run every manifest records (a checkpoint of another kind is refused)."""
    return dict(networks, detector="ssd", classes=list(classes), data_shape=args.data_shape)


def _ssd_exporter(net, prefix, args, ctx, what):
    """Exports ``<prefix>-<tag>-<what>``: a student with its adapters folded into its head
    (``models.ssd.fold_adapters``, the size of a plain student), and its ``-meta.json``."""
    meta = build_meta("ssd", net.classes, {"data_shape": args.data_shape}, args)
    return deployable_exporter(
        lambda p: export_detector(deployable(net, ctx[0]), p, args.data_shape, ctx[0]),
        prefix, what, meta=meta)


class SSDPart:
    """What the runs of :mod:`.runs` need to know of SSD (:func:`~.runs.run_gankd`,
    :func:`~.runs.run_plain`; the list of methods is in :mod:`.runs`' docstring).

    Epochs count from 1 and restart at 1 in stage 2, as the published SSD log; the rates decay
    *after* each listed epoch (GluonCV's ``train_ssd.py``). The student's maps feed the
    critics and the distillation terms through :class:`~.steps.SSDAdapter`; every loss is
    divided by the global batch and the global positive count (:class:`~.steps.Normalizer`),
    so the same update is made on one device, several, or several machines.
    """

    key = "ssd"
    output_terms = SSD_OUTPUT_TERMS
    lines = SSD_LINES
    val_titles = ("StudentNet Validation", "Validation")
    convention = "after"
    split = staticmethod(split_batch)
    # the settings that shape the student's parameters (named in an --init-from mismatch)
    network_settings = ("student", "teacher", "data_shape", "dataset")

    def prepare_gankd(self, args):
        """Nothing to complete: ``parse_args`` checked everything (:func:`check_gankd_args`)."""

    def prepare_plain(self, args):
        """Nothing to complete: ``parse_args`` checked everything (:func:`check_plain_args`)."""

    def load_data(self, args):
        return load_data(args)

    def gankd_name(self, args, parts):
        return "ssd_%d_%s_%s_%s_%s" % (args.data_shape, args.student, args.teacher,
                                       args.dataset, method_name(parts))

    def plain_name(self, args):
        return "ssd_%d_%s_%s" % (args.data_shape, args.network, args.dataset)

    def kind(self, args, classes, **networks):
        return _kind(args, classes, **networks)

    def build_gankd(self, args, classes, ctx, parts):
        """Teacher, student, critics (``gan``), then the other terms' objective, in this order
        (their random initialisation); the teacher's and student's parts hybridized."""
        teacher, student, dnet, layout = build_gankd_models(args, classes, ctx)
        objective = None
        if parts - {"gan"}:
            t_channels = feature_channels(teacher.features, args.data_shape, layout.num_maps)
            objective = KDObjective(parts, args, t_channels, ctx, "ssd", SSD_OUTPUT_TERMS)
        if "gan" not in parts:
            dnet = None
        s_features, s_head = split_ssd(student)
        t_features, t_head = split_ssd(teacher)
        if args.hybridize:
            for b in (t_features, t_head, s_features, s_head, dnet,
                      objective.blocks if objective else None):
                if b is not None:
                    b.hybridize()
        g_params = student.collect_params()
        blocks = {}
        if objective is not None and objective.params():
            g_params.update(objective.params())     # hint adaptation layers learn too
            blocks["kd"] = objective.blocks
        if dnet is not None:
            blocks["dnet"] = dnet
        return Distillation(student, teacher, dnet, objective, blocks, g_params, layout=layout,
                            halves=(s_features, s_head, t_features, t_head),
                            need_teacher=bool(parts) or getattr(args, "monitor_teacher", False))

    def build_plain(self, args, classes, ctx):
        dataset_kind = "coco" if args.dataset == "coco" else "voc"
        layout = teacher_layout(args.network, args.data_shape, dataset_kind)
        net = build_ssd(args.network, layout, classes, pretrained_base=args.pretrained_base)
        initialize_new_params(net, ctx[0])
        net.collect_params().reset_ctx(ctx)
        # hybridized by before_epoch: the loader's anchors come from an imperative forward
        # first, which completes the deferred initialisation layer by layer (a hybridized
        # first forward initialises the same parameters in another order, other values)
        return net

    def train_loader(self, args, net, ctx, env, train):
        """GluonCV's SSD training loader with the network's anchors; each distributed worker
        reads only its slice of every global batch."""
        return get_ssd_train_loader(train, _anchors(net, args.data_shape, ctx[0]),
                                    args.data_shape, args.batch_size,
                                    num_workers=args.num_workers, augment=args.augment,
                                    shard=(env.num_workers, env.rank))

    def trainable(self, net):
        return net.collect_params()

    def sgd(self, args):
        return {"learning_rate": args.lr, "wd": args.wd, "momentum": args.momentum}

    def numbering(self, args):
        return {1: StageNumbers(args.gan_epochs, 0, args.lr_decay,
                                _decay_epochs(args.gan_lr_decay_epoch)),
                2: self.plain_numbering(args)}

    def plain_numbering(self, args):
        return StageNumbers(args.epochs, 0, args.lr_decay, _decay_epochs(args.lr_decay_epoch))

    def gan_step(self, models, trainers, args, norm, numbers):
        s_features, s_head, t_features, t_head = models.extra["halves"]
        objective = models.objective
        detector = SSDAdapter(
            t_features if models.extra["need_teacher"] else None, s_features, s_head,
            SSDMultiBoxLoss(),
            teacher_head=t_head if objective and objective.needs_teacher_head else None,
            norm=norm)
        return GANStep(detector, models.dnet, trainers["G"], trainers.get("D"),
                       clamp=(args.clamp_lower, args.clamp_upper), d_steps=args.d_steps,
                       objective=objective, balance_interval=args.critic_balance_interval)

    def plain_step(self, net, trainer, args, norm, numbers):
        return SSDStep(net, trainer, SSDMultiBoxLoss(), norm)

    def gankd_columns(self, models, parts):
        """The published columns, the method's terms, then the monitors (nan where not
        computed, :mod:`.diagnostics`); the epoch line prints them all."""
        dnet, objective = models.dnet, models.objective
        gan_cols = [(c, c if dnet is not None else None) for c in GAN_COLUMNS]
        kd_cols = [(c, c) for c in objective.term_names()] if objective else []
        diag_cols = diagnostic_columns(models.extra["layout"].num_maps,
                                       models.extra["need_teacher"], dnet is not None)
        return gan_cols + DET_COLUMNS + kd_cols + diag_cols, None

    def stage2_columns(self):
        return [(c, None) for c in GAN_COLUMNS] + DET_COLUMNS, None

    def plain_columns(self):
        return [("CrossEntropy", "CrossEntropy"), ("SmoothL1", "SmoothL1")], None

    def teacher_statistics(self, models, train, args, ctx):
        return teacher_statistics(models.teacher.features, train, args.data_shape, ctx)

    def validator(self, net, val, args, ctx):
        return _validator(net, val, args, ctx)

    def exporter(self, net, prefix, args, ctx, what):
        return _ssd_exporter(net, prefix, args, ctx, what)

    def before_epoch(self, net, args):
        def rehybridize():
            # validation traces the network in inference mode; trace it again for training
            if args.hybridize:
                net.hybridize()
        return rehybridize
