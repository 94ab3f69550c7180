"""Command-line flags every training script shares: where a run writes, how it resumes, which
devices and seeds it uses (:func:`add_run_args`), and the WGAN critics' settings
(:func:`add_critic_args`). SSD and Faster R-CNN differ only in the defaults they pass, each
cited where the caller passes it; ``dest`` names are the published logs' Namespace fields.
"""
import argparse
import os

from ..models.critics import NORMS

__all__ = ["add_run_args", "add_critic_args", "pretrained_base_arg", "positive_int",
           "nonnegative_int"]


def positive_int(value):
    """An integer flag that must be at least 1 (argparse names the flag in the error)."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("%s: must be at least 1" % value)
    return number


def nonnegative_int(value):
    """An integer flag that must be at least 0 (argparse names the flag in the error)."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("%s: must be at least 0" % value)
    return number


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
    parser.add_argument("--gpus", type=str, default="0,1",
                        help="GPU ids; the paper used two GPUs. '' runs on the CPU")
    parser.add_argument("--cpu-devices", type=int, default=1,
                        help="with --gpus '': split each batch over this many CPU contexts "
                             "(exercises the multi-device path without a GPU)")
    parser.add_argument("--log-interval", type=int, default=100,
                        help="batches between log lines (published logs)")
    parser.add_argument("--val-interval", type=int, default=1,
                        help="epochs between validations (published logs)")
    parser.add_argument("--save-interval", type=int, default=save_interval,
                        help="epochs between epoch checkpoints (published log)")
    parser.add_argument("--keep-last", type=int, default=3,
                        help="epoch checkpoints kept; best and final are always kept")
    parser.add_argument("--save-prefix", type=str, default="",
                        help="run name; default says what ran, e.g. " + prefix_example)
    parser.add_argument("--log-dir", type=str, default="logs",
                        help="the log goes to <log-dir>/<save-prefix>_train.log")
    parser.add_argument("--save-dir", type=str, default="checkpoints",
                        help="checkpoints go to <save-dir>/<save-prefix>/")
    parser.add_argument("--resume", type=str, default="",
                        help="checkpoint manifest (.json) to resume from exactly; 'auto' picks "
                             "the newest epoch checkpoint of this run")
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
    parser.add_argument("--lrD", "--lr-d", dest="lrD", type=float, default=0.0005,
                        help="critic Adam lr (paper, published logs)")
    parser.add_argument("--lrG", "--lr-g", dest="lrG", type=float, default=0.0005,
                        help="student Adam lr in stage 1 (paper, published logs)")
    parser.add_argument("--beta1", type=float, default=0.5, help="Adam beta1 (published logs)")
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
