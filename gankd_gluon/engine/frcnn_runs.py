"""The Faster R-CNN part of the training runs (:mod:`.runs`, paper Table 3): GAN-KD and the
other distillation methods (``train_faster_rcnn_gan_kd.py``), plain training of the teacher and
the baselines (``train_faster_rcnn.py``). The scripts parse arguments with the flags added here
and call ``runs.run_gankd(args, FasterRCNNPart())`` or ``runs.run_plain(args,
FasterRCNNPart())``; what the runs need to know of Faster R-CNN is :class:`FasterRCNNPart`'s.

Defaults are the published log's (``published_logs/faster_rcnn_resnet50_resnet101_v1b_g_d_voc_
train.log``, last ``Namespace`` line), and ``dest`` names are its Namespace fields wherever the
setting exists there (``GAN_epochs``, ``Teacher_param_path``, ``train_D_eopch``, ...). Epochs
count as in that log and in GluonCV's ``train_faster_rcnn.py``: from 0, through both stages.
With ``GAN_epochs=26, epochs=38`` epochs 0..26 are adversarial and 27..37 plain (the log's
``Loss_G`` turns nan at epoch 27), and ``lr_decay_epoch='32,36'`` / ``lr_decay_GAN_epoch='5,20'``
are epochs of that count at whose start the learning rate drops (GluonCV's
``epoch >= step``; the log's ``[Epoch 5] Set GAN learning rate`` lines).
"""
import warnings

import mxnet as mx
from mxnet import autograd

from ..data.datasets import add_dataset_args, add_train_years_arg, get_splits
from ..logs.format import FRCNN_LINES
from ..models.critics import DNet
from ..models.export_meta import build_meta
from ..models.faster_rcnn import (BACKBONES, STUDENT, TEACHER, ZOO_SETTINGS, MapAdapter,
                                  _check_settings, build_faster_rcnn, build_teacher,
                                  feature_channels, initialize_params, map_size)
from ..models.ssd import export_detector
from .diagnostics import diagnostic_columns
from .frcnn_steps import (FRCNN_OUTPUT_TERMS, GAN_COLUMNS, LOSS_COLUMNS, METRIC_COLUMNS,
                          DeviceSeeds, FasterRCNNAdapter, FasterRCNNStep, split_sharded)
from .checkpoint import deployable_exporter
from .methods import KDObjective, add_method_args, method_name, parse_method
from .args import (add_critic_args, add_distributed_args, add_run_args, check_critic_args,
                   check_run_args, dist_workers, check_teacher_classes, check_weights_file)
from ..usage import (UsageError, epoch_list, fraction, nonnegative_float, nonnegative_int,
                     positive_float, positive_int)
from ..data.loaders import get_frcnn_train_loader
from .runs import Distillation, StageNumbers
from .steps import GANStep

__all__ = ["FasterRCNNPart", "add_frcnn_common_args", "add_frcnn_gankd_args",
           "frcnn_settings", "frcnn_teacher_statistics",
           "check_frcnn_plain_args", "check_frcnn_gankd_args"]


# ------------------------------------------------------------------------------------------
# arguments
# ------------------------------------------------------------------------------------------
def add_frcnn_common_args(parser):
    """Flags shared by plain Faster R-CNN training and GAN-KD."""
    add_dataset_args(parser)
    add_train_years_arg(parser, (2007,), "VOC kinds: trainval years read for training; 2007 "
                        "as in the paper's Table 3 (VOC2007 trainval, VOC2007 test); "
                        "'2007,2012' for VOC07+12")
    parser.add_argument("--roi-mode", choices=("pool", "align"), default="align",
                        help="RoI pooling or RoIAlign (Table 3 has a row for each; GluonCV's "
                             "presets use align)")
    parser.add_argument("--batch-size", type=positive_int, default=4,
                        help="global batch (published log: 4, one image on each of 4 GPUs); "
                             "must split evenly over the devices")
    parser.add_argument("--num-workers", "-j", dest="num_workers", type=nonnegative_int, default=4,
                        help="DataLoader workers (published log: 2-4)")
    parser.add_argument("--epochs", type=positive_int, default=38,
                        help="all epochs, counted from 0 over both stages (published log)")
    parser.add_argument("--lr", type=positive_float, default=0.0001,
                        help="SGD learning rate of plain training / stage 2 (published log)")
    parser.add_argument("--lr-decay", type=positive_float, default=0.1,
                        help="step decay factor (published log)")
    parser.add_argument("--lr-decay-epoch", type=epoch_list, default="32,36",
                        help="epochs at whose start the SGD lr decays (published log)")
    parser.add_argument("--momentum", type=fraction, default=0.9, help="SGD momentum (published)")
    parser.add_argument("--wd", type=nonnegative_float, default=0.0005,
                        help="SGD weight decay (published)")
    parser.add_argument("--clip-gradient", type=positive_float, default=5.0,
                        help="SGD gradient clipping, as GluonCV's train_faster_rcnn.py")
    parser.add_argument("--disable-hybridization", action="store_true",
                        help="run imperatively (published Namespace field)")
    add_distributed_args(parser)
    # the published Faster R-CNN log: save_interval=1, epochs counted from 0
    add_run_args(parser, save_interval=1, start_epoch=0,
                 prefix_example="faster_rcnn_resnet50_v1b_resnet101_v1d_voc_gankd_align")
    group = parser.add_argument_group(
        "sizes", "GluonCV's preset values by default (the published run's); lower them only "
                 "for CPU demos on small images: RoIs through layer4 dominate the cost")
    group.add_argument("--short", type=positive_int, default=ZOO_SETTINGS["short"],
                       help="input short side (GluonCV resize_short_within)")
    group.add_argument("--max-size", type=positive_int, default=ZOO_SETTINGS["max_size"],
                       help="input long-side cap")
    group.add_argument("--num-sample", type=positive_int, default=ZOO_SETTINGS["num_sample"],
                       help="RoIs sampled per image for the RCNN head in training")
    group.add_argument("--roi-size", type=positive_int, default=ZOO_SETTINGS["roi_size"],
                       help="RoI pooling output side")
    for key in ("rpn_train_pre_nms", "rpn_train_post_nms", "rpn_test_pre_nms",
                "rpn_test_post_nms"):
        group.add_argument("--" + key.replace("_", "-"), type=positive_int,
                           default=ZOO_SETTINGS[key],
                           help="RPN proposals kept (%s)" % key.replace("_", " "))
    return parser


def add_frcnn_gankd_args(parser):
    """Flags of the distillation stages (published Namespace names)."""
    parser.add_argument("--student", type=str, default=STUDENT,
                        help="student backbone (faster_rcnn_<student>_voc; Table 3: "
                             "resnet50_v1b)")
    parser.add_argument("--teacher", type=str, default=TEACHER,
                        help="teacher backbone (faster_rcnn_<teacher>_voc; Table 3: "
                             "resnet101_v1d)")
    parser.add_argument("--teacher-params", "--Teacher-param-path", dest="Teacher_param_path",
                        type=str, default=None,
                        help="local .params of the trained teacher (a GluonCV zoo file or "
                             "the .net.params of scripts/train_faster_rcnn.py); default: "
                             "GluonCV's zoo file (published log: "
                             "faster_rcnn_resnet101_v1d_voc_best.params)")
    parser.add_argument("--stage", choices=("1", "2", "both"), default="both",
                        help="1 adversarial, 2 plain, both in one command")
    parser.add_argument("--gan-epochs", "--GAN-epochs", dest="GAN_epochs", type=nonnegative_int,
                        default=26,
                        help="last adversarial epoch (published log: 26, so epochs 0..26 "
                             "are stage 1 and the log's Loss_G turns nan at epoch 27)")
    parser.add_argument("--train-D-eopch", "--train-d-epochs", dest="train_D_eopch",
                        type=nonnegative_int,
                        default=2,
                        help="critic warm-up (published Namespace spelling 'eopch'): in the "
                             "first N stage-1 epochs the critic learns from every batch but "
                             "the student's objective has no adversarial term yet (Loss_G is "
                             "still measured and logged). The published run's epochs 0-1 "
                             "took ~640 s against ~830 s for later stage-1 epochs, as a student "
                             "step without the backward through the critic would")
    parser.add_argument("--lr-decay-GAN-epoch", "--lr-decay-gan-epoch",
                        dest="lr_decay_GAN_epoch", type=epoch_list, default="5,20",
                        help="epochs at whose start both stage-1 Adam lrs decay (published "
                             "log)")
    parser.add_argument("--gan-lr-decay", type=positive_float, default=None,
                        help="stage-1 decay factor; default --lr-decay. The published log's "
                             "only such lines, '[Epoch 5] Set GAN learning rate to 0.00025' "
                             "then '... 0.000125', show halvings, which its Namespace "
                             "(lr_decay=0.1) does not explain; 0.5 reproduces them")
    add_critic_args(parser, critic_norm="lipschitz", balance_interval=0, critic_norm_help=(
        "lipschitz (default, as SSD's): teacher-standardised input, gain-bounded convs, score "
        "scale (models/critics.py); batch: WGAN's reference DCGAN critic, blind with Faster "
        "R-CNN's 1-2 images per device (batch statistics over so few values); none: no "
        "normalisation. One critic: --critic-balance-interval has nothing to balance"))
    add_method_args(parser, "frcnn")
    return parser


def _check_sizes(args):
    try:
        _check_settings(frcnn_settings(args))
    except ValueError as err:
        raise UsageError(str(err)) from None


def _check_frcnn_devices(args):
    devices = check_run_args(args) * dist_workers(args)
    if args.batch_size % devices:
        raise UsageError("--batch-size %d does not split evenly over %d devices (Faster R-CNN "
                         "builds its RoI sampler for a fixed per-device batch)"
                         % (args.batch_size, devices))


def check_frcnn_plain_args(args):
    """Refuse ``train_faster_rcnn.py`` arguments that cannot train, before anything is built
    or written: an unknown ``--network``, RPN sizes the input cannot supply, a batch that does
    not split evenly over the devices, GPUs the machine lacks (:func:`~.args.check_run_args`).

    Raises
    ------
    UsageError
        One line naming the flag (and, for a name, the valid ones).
    """
    if args.network not in BACKBONES:
        raise UsageError("--network %s: choose one of %s" % (args.network, ", ".join(BACKBONES)))
    _check_sizes(args)
    _check_frcnn_devices(args)


def check_frcnn_gankd_args(args):
    """Refuse ``train_faster_rcnn_gan_kd.py`` arguments that cannot train, before anything is
    built or written: unknown ``--student``/``--teacher``, a stage without epochs (epochs
    count from 0 over both stages), an empty clipping interval, a global batch of 1 for
    the default critics in stage 1 (:func:`~.args.check_critic_args`), and the checks of
    :func:`check_frcnn_plain_args`.

    Raises
    ------
    UsageError
        One line naming the flag (and, for a name, the valid ones).
    """
    for flag, name in (("--student", args.student), ("--teacher", args.teacher)):
        if name not in BACKBONES:
            raise UsageError("%s %s: choose one of %s" % (flag, name, ", ".join(BACKBONES)))
    check_weights_file("--teacher-params", args.Teacher_param_path)
    check_teacher_classes("--teacher-params", args.Teacher_param_path, args.dataset,
                          getattr(args, "classes", None))
    if getattr(args, "monitor_teacher", False):
        raise UsageError("--monitor-teacher: SSD only (train_ssd_gan_kd.py); a Faster R-CNN "
                         "student's adapter is trained only by a distillation term, so its "
                         "distance to the teacher means nothing under --method none")
    if args.stage in ("2", "both") and args.epochs - (args.GAN_epochs + 1) < 1:
        raise UsageError("--epochs %d leaves no plain epoch after --gan-epochs %d (epochs "
                         "count from 0 over both stages: stage 1 is 0..%d)"
                         % (args.epochs, args.GAN_epochs, args.GAN_epochs))
    check_critic_args(args, adversarial="gan" in parse_method(args.method, "frcnn")
                      and args.stage in ("1", "both"))
    _check_sizes(args)
    _check_frcnn_devices(args)


def frcnn_settings(args):
    """The :data:`~gankd_gluon.models.faster_rcnn.ZOO_SETTINGS` given on the command line."""
    return {k: getattr(args, k) for k in ZOO_SETTINGS}


def _steps(text):
    return sorted(int(e) for e in text.split(",") if e.strip())


# ------------------------------------------------------------------------------------------
# data and evaluation
# ------------------------------------------------------------------------------------------
def _per_device_batch(args, ctx):
    """Images per device: the global batch over all devices of all workers."""
    devices = dist_workers(args) * len(ctx)
    if args.batch_size % devices:
        raise ValueError("--batch-size %d does not split evenly over %d devices (Faster R-CNN "
                         "builds its RoI sampler for a fixed per-device batch)"
                         % (args.batch_size, devices))
    return args.batch_size // devices


def _datasets(args):
    """Train and test splits, loaded before anything is written (a data error: one line,
    exit 2, no log)."""
    return get_splits(args.dataset, args.dataset_root, getattr(args, "classes", None),
                      args.train_years, getattr(args, "train_split", None),
                      getattr(args, "val_split", None))


def _validator(net, val, args, ctx):
    """``validate()`` -> (class names, APs, mAP[, metric]): VOC07 for VOC kinds, COCO
    AP@[.5:.95] (pycocotools) for COCO kinds."""
    from ..data.datasets import dataset_metric_kind
    from ..eval.coco import COCO_METRIC, coco_validation
    from ..eval.frcnn import evaluate_frcnn, predict_frcnn_dataset
    classes = list(val.classes)
    coco = dataset_metric_kind(args.dataset) == "coco"

    def validate():
        if coco:
            detections, _ = predict_frcnn_dataset(net, val, ctx, args.short, args.max_size,
                                                  num_workers=0, progress=args.progress)
            net._gankd_hybrid = None              # pylint: disable=protected-access
            names, values = coco_validation(detections, val, classes)
            return names[:-1], values[:-1], values[-1], COCO_METRIC
        names, values = evaluate_frcnn(net, val, ctx, classes, args.short, args.max_size,
                                       num_workers=0, progress=args.progress)
        net._gankd_hybrid = None                  # pylint: disable=protected-access
        return names[:-1], values[:-1], values[-1]
    return validate


def _student(args, backbone, classes, ctx, per_device):
    net = build_faster_rcnn(backbone, classes, args.roi_mode, per_device,
                            pretrained_base=args.pretrained_base, **frcnn_settings(args))
    _ = net.target_generator          # built lazily by GluonCV; its constants must follow ctx
    initialize_params(net, ctx[0])
    if dist_workers(args) * len(ctx) > 1:
        # the heads' Dense layers initialise at their first forward: with more than one
        # device, here (inference, no random sampling), so that the kvstore or Horovod can
        # start every worker from rank 0's weights before the first step, and one process on
        # several devices starts from the same; one device keeps GluonCV's order (at the
        # first training step)
        with warnings.catch_warnings(), autograd.predict_mode():
            warnings.simplefilter("ignore", UserWarning)
            net(mx.nd.zeros((1, 3, args.short, args.short), ctx=ctx[0]))
    net.collect_params().reset_ctx(ctx)
    # GluonCV trains only collect_train_params() (no conv1/layer1, no BatchNorm)
    net.collect_params().setattr("grad_req", "null")
    with warnings.catch_warnings():
        # the '.*rpn' pattern also matches the RPN's anchor constant, which stays 'null'
        warnings.simplefilter("ignore", UserWarning)
        net.collect_train_params().setattr("grad_req", "write")
    return net


def _exporter(net, prefix, args, ctx, what):
    def write(path_prefix):
        with warnings.catch_warnings():       # see evaluate_frcnn: hook and unused constants
            warnings.simplefilter("ignore", UserWarning)
            export_detector(net, path_prefix, args.short, ctx[0])
        net._gankd_hybrid = None                  # pylint: disable=protected-access
    meta = build_meta("faster_rcnn", net.classes, {"short": args.short,
                                                   "max_size": args.max_size}, args)
    return deployable_exporter(write, prefix, what, meta=meta)


def _columns(gan):
    cols = [(c, c) for c in LOSS_COLUMNS + METRIC_COLUMNS]
    return cols + [(c, c if gan else None) for c in GAN_COLUMNS]


# ------------------------------------------------------------------------------------------
# runs
# ------------------------------------------------------------------------------------------
def frcnn_teacher_statistics(teacher, dataset, short, max_size, ctx, count=16):
    """Per-channel mean and standard deviation of the teacher's stride-16 map over the first
    ``count`` images of ``dataset`` (GluonCV's Faster R-CNN validation transform: short side
    ``short``, long side at most ``max_size``), the critic's frozen standardisation
    (:func:`~gankd_gluon.models.critics.channel_stats`). Deterministic.

    Returns [(mean (C,), std (C,))] NDArray on the CPU."""
    from gluoncv.data.transforms.presets.rcnn import FasterRCNNDefaultValTransform
    from ..models.critics import channel_stats
    transform = FasterRCNNDefaultValTransform(short, max_size)
    maps = []
    for i in range(min(count, len(dataset))):
        x = transform(*dataset[i])[0].expand_dims(0).as_in_context(ctx)
        maps.append(teacher.features(x).copyto(mx.cpu()))
    return channel_stats([maps])


def _kind(args, classes, **networks):
    """The kind of run every manifest records (a checkpoint of another kind is refused)."""
    return dict(networks, detector="faster_rcnn", classes=list(classes),
                roi_mode=args.roi_mode, short=args.short)


class FasterRCNNPart:
    """What the runs of :mod:`.runs` need to know of Faster R-CNN (:func:`~.runs.run_gankd`,
    :func:`~.runs.run_plain`; the list of methods is in :mod:`.runs`' docstring).

    Epochs count from 0 through both stages, as the published log and GluonCV's
    ``train_faster_rcnn.py``, and the rates decay *at* each listed epoch (module docstring).
    Stage 1 is :class:`~.steps.GANStep` over :class:`~.frcnn_steps.FasterRCNNAdapter` with the
    critic warm-up ``train_D_eopch``; stage 2 and plain training are GluonCV's step
    (:class:`~.frcnn_steps.FasterRCNNStep`), SGD with gradient clipping over
    ``collect_train_params()``.
    """

    key = "frcnn"
    output_terms = FRCNN_OUTPUT_TERMS
    lines = FRCNN_LINES
    val_titles = ("Validation", "Validation")
    convention = "at"
    split = staticmethod(split_sharded)
    network_settings = ("student", "teacher", "roi_mode", "short", "max_size", "dataset")

    def __init__(self):
        self._seeds = None       # DeviceSeeds of this run's steps (None: not yet decided)

    def _device_seeds(self, net, norm):
        """One :class:`~.frcnn_steps.DeviceSeeds` for the run's steps when the job has more
        than one device; None with one device (its draws stay those of the loop's seed)."""
        if self._seeds is None:
            local = len(next(iter(net.collect_params().values())).list_ctx())
            env = norm.env
            workers, rank = (env.num_workers, env.rank) if env is not None else (1, 0)
            self._seeds = DeviceSeeds(rank * local) if workers * local > 1 else False
        return self._seeds or None

    def prepare_gankd(self, args):
        """Fill the defaults that follow other flags (FGFI's weights, the stage-1 decay factor)
        and check the flags: also for callers that skip ``parse_args`` (exit 2)."""
        from ..losses.fgfi import FGFI_LAMBDA, FGFI_PSI
        args.fgfi_lambda = FGFI_LAMBDA if args.fgfi_lambda is None else args.fgfi_lambda
        args.fgfi_psi = FGFI_PSI if args.fgfi_psi is None else args.fgfi_psi
        if args.gan_lr_decay is None:
            args.gan_lr_decay = args.lr_decay
        check_frcnn_gankd_args(args)

    def prepare_plain(self, args):
        """Check the flags: also for callers that skip ``parse_args`` (exit 2)."""
        check_frcnn_plain_args(args)

    def load_data(self, args):
        return _datasets(args)

    def gankd_name(self, args, parts):
        return "faster_rcnn_%s_%s_%s_%s_%s" % (args.student, args.teacher, args.dataset,
                                               method_name(parts), args.roi_mode)

    def plain_name(self, args):
        return "faster_rcnn_%s_%s_%s" % (args.network, args.dataset, args.roi_mode)

    def kind(self, args, classes, **networks):
        return _kind(args, classes, **networks)

    def build_gankd(self, args, classes, ctx, parts):
        """The student, then for stage 1 the teacher (when a term needs it), the map adapter,
        the critic (``gan``) and the other terms' objective, in this order (their random
        initialisation)."""
        hybridize = not args.disable_hybridization
        student = _student(args, args.student, classes, ctx, _per_device_batch(args, ctx))
        teacher = dnet = objective = adapter = None
        g_params = student.collect_train_params()
        blocks = {}
        if args.stage in ("1", "both"):
            t_channels = s_channels = feature_channels(student)
            if parts:
                teacher = build_teacher(args.teacher, classes, args.Teacher_param_path, ctx[0],
                                        **frcnn_settings(args))
                teacher.collect_params().reset_ctx(ctx)
                if hybridize:
                    teacher.hybridize()
                t_channels = feature_channels(teacher)
            adapter = MapAdapter(s_channels, t_channels)
            adapter.initialize(ctx=ctx)
            if adapter.collect_params().keys():
                g_params.update(adapter.collect_params())
                blocks["adapter"] = adapter
            if "gan" in parts:
                # the critic's depth is set for the smallest map (short side / 16); larger
                # maps keep some spatial extent, which the critic's global mean averages
                dnet = DNet([map_size(args.short)], base_channels=args.critic_channels,
                            norm=args.critic_norm, channels=[t_channels],
                            clamp=max(abs(args.clamp_lower), abs(args.clamp_upper)))
                dnet.initialize(ctx=ctx)
                if hybridize:
                    dnet.hybridize()
                blocks["dnet"] = dnet
            if parts - {"gan"}:
                objective = KDObjective(parts, args, [t_channels], ctx, "frcnn",
                                        FRCNN_OUTPUT_TERMS)
                if objective.params() is not None:
                    g_params.update(objective.params())
                    blocks["kd"] = objective.blocks
        return Distillation(student, teacher, dnet, objective, blocks, g_params,
                            adapter=adapter, need_teacher=bool(parts))

    def build_plain(self, args, classes, ctx):
        return _student(args, args.network, classes, ctx, _per_device_batch(args, ctx))

    def train_loader(self, args, net, ctx, env, train):
        """GluonCV's Faster R-CNN training loader; each distributed worker reads only its
        slice of every global batch, in one shard per device."""
        return get_frcnn_train_loader(train, net, args.batch_size, len(ctx), args.short,
                                      args.max_size, args.num_workers,
                                      shard=(env.num_workers, env.rank))

    def trainable(self, net):
        """GluonCV trains only ``collect_train_params()`` (no conv1/layer1, no BatchNorm)."""
        return net.collect_train_params()

    def sgd(self, args):
        return {"learning_rate": args.lr, "wd": args.wd, "momentum": args.momentum,
                "clip_gradient": args.clip_gradient}

    def numbering(self, args):
        """Stage 1 is epochs 0..GAN_epochs, stage 2 GAN_epochs+1..epochs-1 (one count)."""
        stage1 = args.GAN_epochs + 1
        return {1: StageNumbers(stage1, -1, args.gan_lr_decay, _steps(args.lr_decay_GAN_epoch)),
                2: StageNumbers(args.epochs - stage1, args.GAN_epochs, args.lr_decay,
                                _steps(args.lr_decay_epoch))}

    def plain_numbering(self, args):
        return StageNumbers(args.epochs, -1, args.lr_decay, _steps(args.lr_decay_epoch))

    def gan_step(self, models, trainers, args, norm, numbers):
        adapter = FasterRCNNAdapter(models.teacher, models.student, models.extra["adapter"],
                                    not args.disable_hybridization, norm=norm,
                                    seeds=self._device_seeds(models.student, norm))
        return GANStep(adapter, models.dnet, trainers["G"], trainers.get("D"),
                       clamp=(args.clamp_lower, args.clamp_upper), d_steps=args.d_steps,
                       objective=models.objective, warmup_epochs=args.train_D_eopch,
                       epoch_offset=numbers.offset)

    def plain_step(self, net, trainer, args, norm, numbers):
        return FasterRCNNStep(net, trainer, not args.disable_hybridization, numbers.offset,
                              norm=norm, seeds=self._device_seeds(net, norm))

    def gankd_columns(self, models, parts):
        """The published columns, then the method's terms and the monitors (nan where not
        computed, :mod:`.diagnostics`), on the batch and the epoch lines; the epoch line
        leaves out GluonCV's four metrics, as published."""
        extra = [(c, c) for c in models.objective.term_names()] if models.objective else []
        extra += diagnostic_columns(1, models.extra["need_teacher"], models.dnet is not None)
        return (_columns(models.dnet is not None) + extra,
                list(LOSS_COLUMNS + GAN_COLUMNS) + [c for c, _ in extra])

    def stage2_columns(self):
        return _columns(False), list(LOSS_COLUMNS + GAN_COLUMNS)

    def plain_columns(self):
        return [(c, c) for c in LOSS_COLUMNS + METRIC_COLUMNS], list(LOSS_COLUMNS)

    def teacher_statistics(self, models, train, args, ctx):
        return frcnn_teacher_statistics(models.teacher, train, args.short, args.max_size, ctx)

    def validator(self, net, val, args, ctx):
        return _validator(net, val, args, ctx)

    def exporter(self, net, prefix, args, ctx, what):
        return _exporter(net, prefix, args, ctx, what)

    def before_epoch(self, net, args):
        def start_epoch():
            # validation traced the network for inference: the step traces it again
            net._gankd_hybrid = None              # pylint: disable=protected-access
            if self._seeds:
                self._seeds.new_epoch()           # right after the loop's per-epoch seed
        return start_epoch
