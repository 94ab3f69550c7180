"""Command-line flags every training script shares: where a run writes, how it resumes, which
devices and seeds it uses (:func:`add_run_args`), and the WGAN critics' settings
(:func:`add_critic_args`). SSD and Faster R-CNN differ only in the defaults they pass, each
cited where the caller passes it; ``dest`` names are the published logs' Namespace fields.
"""
import argparse
import os

from ..usage import (UsageError, check_devices, fraction, gpu_list, nonnegative_float,
                     nonnegative_int, positive_float, positive_int)

__all__ = ["add_distributed_args", "add_run_args", "add_critic_args", "pretrained_base_arg", "check_run_args",
           "check_critic_args", "check_weights_file", "check_teacher_classes", "dist_workers"]


def dist_workers(args):
    """Workers of a distributed job as its launcher announces them (``DMLC_NUM_WORKER`` of
    ``scripts/launch_dist.py``, ``HOROVOD_SIZE`` of ``horovodrun``), else 1."""
    if getattr(args, "horovod", False):
        name = "HOROVOD_SIZE"
    elif getattr(args, "kvstore", "").startswith("dist"):
        name = "DMLC_NUM_WORKER"
    else:
        return 1
    try:
        return max(1, int(os.environ.get(name, "1")))
    except ValueError:
        return 1


def add_distributed_args(parser):
    """The flags of a multi-machine run, the same for every detector: ``--kvstore``,
    ``--horovod`` (GluonCV's flag) and ``--watchdog-timeout``."""
    parser.add_argument("--kvstore", type=str, default="device",
                        choices=("device", "local", "dist_sync", "dist_device_sync"),
                        help="MXNet kvstore: device (one machine, GluonCV's default) or "
                             "dist_sync / dist_device_sync (several machines; start the job with "
                             "scripts/launch_dist.py)")
    parser.add_argument("--horovod", action="store_true",
                        help="distribute with Horovod instead of the kvstore (GluonCV's flag): "
                             "one process per device, started by horovodrun; needs Horovod "
                             "built with MXNet (README)")
    parser.add_argument("--watchdog-timeout", type=positive_float, default=600.0,
                        help="distributed runs: exit when no step completes for this many "
                             "seconds (a dead peer otherwise hangs the job for ever)")
    return parser


def check_run_args(args):
    """The checks every training script shares: a run name without '/', log and checkpoint
    folders that are not files, a ``--resume`` manifest that exists, devices
    that exist, a global batch that gives every device of every worker at least one image
    (the intervals and counts are checked by their argparse types). The split names left at
    their defaults are set to the ``--dataset``'s (:func:`~..data.datasets.resolve_split_args`),
    so the checkpoint records, and a resume compares, the files read.

    Returns
    -------
    int
        The number of devices of this process.

    Raises
    ------
    UsageError
        Naming the flag (see :func:`check_devices`).
    """
    from ..data.datasets import resolve_split_args
    resolve_split_args(args)
    prefix = getattr(args, "save_prefix", "")
    if "/" in prefix or os.sep in prefix or prefix in (".", ".."):
        raise UsageError("--save-prefix %s: a run name, without '/' (the folders are --log-dir "
                         "and --save-dir)" % prefix)
    for flag, path in (("--log-dir", getattr(args, "log_dir", None)),
                       ("--save-dir", getattr(args, "save_dir", None))):
        if path and os.path.exists(path) and not os.path.isdir(path):
            raise UsageError("%s %s: a file, not a folder" % (flag, path))
    resume = getattr(args, "resume", "")
    if resume and resume != "auto" and not os.path.isfile(resume):
        raise UsageError("--resume %s: no such checkpoint manifest (give a <run>-<tag>.json of "
                         "<save-dir>/<run>/, or 'auto')" % resume)
    devices = check_devices(args, one_per_process=getattr(args, "horovod", False))
    workers = dist_workers(args)
    if args.batch_size % workers:
        raise UsageError("--batch-size %d does not split evenly over the job's %d workers"
                         % (args.batch_size, workers))
    if args.batch_size // workers < devices:
        raise UsageError("--batch-size %d gives %d image(s) per worker for %d devices: give at "
                         "least one image per device (--batch-size %d or more, or fewer "
                         "devices with --gpus / --cpu-devices)"
                         % (args.batch_size, args.batch_size // workers, devices,
                            devices * workers))
    return devices


def check_weights_file(flag, path, export=False):
    """A weights file named on the command line exists (None: the zoo's, checked when
    downloaded); with ``export``, an export's prefix (``PREFIX-0000.params`` exists) too."""
    if path is None or os.path.isfile(path):
        return
    if not export:
        raise UsageError("%s %s: no such file" % (flag, path))
    if not os.path.isfile(path + "-0000.params"):
        raise UsageError("%s %s: no such file (nor %s-0000.params, an export's weights)"
                         % (flag, path, path))


def check_teacher_classes(flag, path, dataset, classes):
    """A teacher whose weights name their classes (an export's ``-meta.json``, a checkpoint's
    manifest) predicts the classes the data will be read with: checked before the data is read
    where those are known from the flags (the VOC layout: ``--classes`` or the kind's default
    names); a COCO json names its own, checked once it is read.

    Raises
    ------
    UsageError
        One line naming both class lists and the ``--classes`` that would fit.
    """
    from ..data.datasets import dataset_classes, dataset_metric_kind
    from ..models.export_meta import class_mismatch, trained_classes
    if path is None or dataset_metric_kind(dataset) != "voc":
        return
    params = path if os.path.isfile(path) else path + "-0000.params"
    theirs = trained_classes(params) if os.path.isfile(params) else None
    ours = dataset_classes(dataset, classes)
    if theirs is not None and list(theirs) != list(ours):
        raise UsageError(class_mismatch(flag, path, theirs, ours))


def check_critic_args(args, adversarial=False):
    """Refuse critic settings that cannot train.

    * ``--clamp-lower`` not below ``--clamp-upper``: WGAN weight clipping to an empty interval
      would set every critic weight to one value.
    * A global ``--batch-size`` of 1 with ``--critic-norm lipschitz`` when the run has an
      adversarial stage (``adversarial``): the default critics divide their scores by the
      spread of one critic step's scores over its real and fake samples, over all devices and
      machines. With one image a side that spread is half the distance between the two
      scores, so every normalised score is +-1 whatever the maps (``Loss_G`` a constant 1)
      and the student's adversarial gradient grows as the inverse of its distance to the
      teacher instead of fading: measured on a 1x1-map critic, its norm went 2.9, 12.5, 125,
      1250 as the student's map came within 1, 0.1, 0.01, 0.001 of the teacher's, and stayed
      below 6.5 at a batch of 2 and 1.6 at 4. A batch of 2 or more, or ``--critic-norm none``
      (no score normalisation), trains.

    Parameters
    ----------
    args : argparse.Namespace
        ``clamp_lower``, ``clamp_upper``, ``critic_norm``, ``batch_size`` (global).
    adversarial : bool
        Whether the run trains a stage with the adversarial term (``gan`` in ``--method`` and
        a stage 1 to run).

    Raises
    ------
    UsageError
        One line naming the flags.
    """
    if not args.clamp_lower < args.clamp_upper:
        raise UsageError("--clamp-lower %g must be below --clamp-upper %g"
                         % (args.clamp_lower, args.clamp_upper))
    if adversarial and args.critic_norm == "lipschitz" and args.batch_size < 2:
        raise UsageError("--batch-size %d with --critic-norm lipschitz: the critics divide "
                         "their scores by the spread of one step's real and fake scores, "
                         "which at one image a side makes the adversarial gradient grow as "
                         "the student nears the teacher; use a global --batch-size of 2 or "
                         "more (or --critic-norm none; to resume a run of batch 1 after its "
                         "stage 1: --stage 2 --allow-changed stage)" % args.batch_size)


def pretrained_base_arg(value):
    """``--pretrained-base``: ``zoo`` (download ImageNet weights), ``none``, or a local file."""
    if value == "zoo":
        return True
    if value == "none":
        return False
    if not os.path.isfile(value):
        raise argparse.ArgumentTypeError("--pretrained-base %s: no such file (use zoo, none or "
                                         "a .params file)" % value)
    return value


def add_run_args(parser, save_interval, start_epoch, prefix_example):
    """Logging, checkpoints, resume, seed, devices, ImageNet weights, progress bar.

    Parameters
    ----------
    save_interval : int
        Default epochs between epoch checkpoints (each published log's own value).
    start_epoch : int
        First epoch number of the published Namespace (SSD counts from 1, Faster R-CNN from 0).
    prefix_example : str
        A default run name, for the help text.
    """
    parser.add_argument("--gpus", type=gpu_list, default="0,1",
                        help="GPU ids; the paper used two GPUs. '' runs on the CPU")
    parser.add_argument("--cpu-devices", type=positive_int, default=1,
                        help="with --gpus '': split each batch over this many CPU contexts "
                             "(exercises the multi-device path without a GPU)")
    parser.add_argument("--log-interval", type=nonnegative_int, default=100,
                        help="batches between log lines (published logs); 0: epoch lines only")
    parser.add_argument("--val-interval", type=positive_int, default=1,
                        help="epochs between validations (published logs)")
    parser.add_argument("--save-interval", type=positive_int, default=save_interval,
                        help="epochs between epoch checkpoints (published log)")
    parser.add_argument("--keep-last", type=nonnegative_int, default=3,
                        help="epoch checkpoints kept; best and final are always kept")
    parser.add_argument("--save-prefix", type=str, default="",
                        help="run name; default says what ran, e.g. " + prefix_example)
    parser.add_argument("--log-dir", type=str, default="logs",
                        help="the log goes to <log-dir>/<save-prefix>_train.log")
    parser.add_argument("--save-dir", type=str, default="checkpoints",
                        help="checkpoints go to <save-dir>/<save-prefix>/")
    parser.add_argument("--resume", type=str, default="",
                        help="checkpoint manifest (.json) to resume from exactly; 'auto' picks "
                             "the newest valid checkpoint of this run, an interrupted one "
                             "included (none: starts from scratch, saying where it looked)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh under a --save-prefix whose folder holds an earlier "
                             "run's checkpoints, deleting them (without it the run stops)")
    parser.add_argument("--allow-changed", type=str, default="", metavar="FLAGS",
                        help="with --resume: settings that may differ from the checkpoint's "
                             "run, comma-separated (e.g. 'lr,epochs'); the log records them. "
                             "Any other difference in networks, classes, data shape, method, "
                             "schedule, learning rates or batch stops the run")
    parser.add_argument("--start-epoch", type=int, default=start_epoch,
                        help="kept for the published Namespace; the epoch comes from --resume")
    parser.add_argument("--seed", type=int, default=233, help="random seed (published logs)")
    parser.add_argument("--pretrained-base", type=pretrained_base_arg, default="zoo",
                        help="ImageNet weights of the backbone: 'zoo' (GluonCV download, as the "
                             "paper), a local .params file of the ImageNet network, or 'none'")
    # the default lives on the parser, not the flag: ArgumentDefaultsHelpFormatter would print
    # the flag's "(default: True)", which reads as "no progress bar by default"
    parser.set_defaults(progress=True)
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        default=argparse.SUPPRESS,
                        help="no progress bars (they are shown by default)")
    return parser


def add_critic_args(parser, critic_norm, critic_norm_help, balance_interval=50):
    """The WGAN critics and their Adam (published logs: lrD 0.0005, beta1 0.5, clamp +-0.03 for
    SSD; the Faster R-CNN log's clamp is +-0.01 and its caller overrides the defaults).

    Parameters
    ----------
    critic_norm : str
        Default ``--critic-norm`` (see :mod:`gankd_gluon.models.critics`).
    critic_norm_help : str
        Why that default, for the help text.
    """
    from ..models.critics import NORMS    # imports MXNet: only the scripts that train
    # 0 is allowed: frozen critics (or a frozen student) are a control of the mechanism check
    parser.add_argument("--lrD", "--lr-d", dest="lrD", type=nonnegative_float, default=0.0005,
                        help="critic Adam lr (paper, published logs)")
    parser.add_argument("--lrG", "--lr-g", dest="lrG", type=nonnegative_float, default=0.0005,
                        help="student Adam lr in stage 1 (paper, published logs)")
    parser.add_argument("--beta1", type=fraction, default=0.5, help="Adam beta1 (published logs)")
    parser.add_argument("--clamp-lower", type=float, default=-0.03,
                        help="WGAN critic weight clipping (published SSD log)")
    parser.add_argument("--clamp-upper", type=float, default=0.03,
                        help="WGAN critic weight clipping (published SSD log)")
    parser.add_argument("--d-steps", type=positive_int, default=1,
                        help="critic steps per student step (paper: 1, they alternate)")
    parser.add_argument("--critic-channels", type=positive_int, default=128,
                        help="channels of each critic's first conv (doubled per downsampling)")
    parser.add_argument("--critic-norm", choices=NORMS, default=critic_norm,
                        help=critic_norm_help)
    parser.add_argument("--critic-balance-interval", type=nonnegative_int,
                        default=balance_interval,
                        help="every N batches of an epoch (and at its first), weight the "
                             "critics (any --critic-norm) so that each map gives the same share "
                             "of the adversarial gradient reaching the student's backbone (0: "
                             "the paper's unweighted sum of the critics; the published form is "
                             "--critic-norm batch --critic-balance-interval 0)")
    return parser
