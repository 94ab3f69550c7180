"""Command-line usage every package shares: the exit-code table, the errors a user can fix,
and the argparse value types.

This module sits under every package of gankd_gluon (it imports none of them): evaluation,
the log tools and the training engine all raise :class:`UsageError` and parse their flags with
these types. :func:`gankd_gluon.engine.cli.run_main` turns the errors into exit codes.
"""
import argparse
import math

__all__ = ["UsageError", "InputFileError", "EXIT_OK", "EXIT_FAULT", "EXIT_USAGE",
           "EXIT_INTERRUPTED", "positive_int", "nonnegative_int", "positive_float",
           "nonnegative_float", "fraction", "unit_interval", "multiple_of_32", "epoch_list",
           "gpu_list", "parse_checked", "check_devices"]

# The exit-code table every script follows (README, "Exit codes"; engine/cli.py's run_main).
EXIT_OK = 0            # done
EXIT_FAULT = 1         # a runtime fault, e.g. a non-finite loss; nothing saved is corrupt
EXIT_USAGE = 2         # bad arguments or input: one line on stderr, nothing written
EXIT_INTERRUPTED = 3   # stopped by SIGTERM/SIGINT after saving `interrupted`; resumable


class UsageError(ValueError):
    """Bad arguments or input a user can fix: :func:`gankd_gluon.engine.cli.run_main` prints
    the message as one ``error:`` line and returns :data:`EXIT_USAGE`; a script's ``parse_args``
    turns it into ``parser.error``. The message names the flag, or the file and line."""


class InputFileError(UsageError, FileNotFoundError):
    """An input file or folder named on the command line does not exist (exit 2)."""


def _number(value, kind):
    try:
        return kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not %s" % (value, "an integer" if kind is int
                                                           else "a number")) from None


def positive_int(value):
    """An integer flag that must be at least 1 (argparse names the flag in the error)."""
    number = _number(value, int)
    if number < 1:
        raise argparse.ArgumentTypeError("%s: must be at least 1" % value)
    return number


def nonnegative_int(value):
    """An integer flag that must be at least 0 (argparse names the flag in the error)."""
    number = _number(value, int)
    if number < 0:
        raise argparse.ArgumentTypeError("%s: must be at least 0" % value)
    return number


def positive_float(value):
    """A finite number above 0 (a learning rate, a decay factor, a timeout)."""
    number = _number(value, float)
    if not 0 < number < math.inf:
        raise argparse.ArgumentTypeError("%s: must be a finite number above 0" % value)
    return number


def nonnegative_float(value):
    """A finite number of at least 0 (a weight decay, a loss weight)."""
    number = _number(value, float)
    if not 0 <= number < math.inf:
        raise argparse.ArgumentTypeError("%s: must be a finite number of at least 0" % value)
    return number


def fraction(value):
    """A number in [0, 1) (a momentum, Adam's beta1)."""
    number = _number(value, float)
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError("%s: must be in [0, 1)" % value)
    return number


def unit_interval(value):
    """A number in [0, 1] (a balance of two terms, e.g. Chen et al.'s mu)."""
    number = _number(value, float)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError("%s: must be in [0, 1]" % value)
    return number


def multiple_of_32(value):
    """An SSD input side: a positive multiple of 32 (the backbones' largest stride)."""
    number = _number(value, int)
    if number < 32 or number % 32:
        raise argparse.ArgumentTypeError("%s: must be a positive multiple of 32" % value)
    return number


def epoch_list(value):
    """A learning-rate schedule: comma-separated epochs of at least 0, kept as the string (the
    published Namespace prints ``lr_decay_epoch='80,100'``); '' for none."""
    try:
        epochs = [int(e) for e in value.split(",") if e.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a comma-separated list of epochs (e.g. "
                                         "'80,100', or '' for none)" % value) from None
    if any(e < 0 for e in epochs):
        raise argparse.ArgumentTypeError("%r: epochs are at least 0" % value)
    return value


def gpu_list(value):
    """``--gpus``: comma-separated distinct GPU ids of at least 0, kept as the string; '' is
    the CPU. Whether the GPUs exist is :func:`check_devices`'s question."""
    ids = [g.strip() for g in value.split(",") if g.strip()]
    if not all(g.isdigit() for g in ids):
        raise argparse.ArgumentTypeError("%r is not a comma-separated list of GPU ids (e.g. "
                                         "'0,1', or '' for the CPU)" % value)
    if len(set(int(g) for g in ids)) != len(ids):
        raise argparse.ArgumentTypeError("%r names a GPU twice" % value)
    return value


def parse_checked(parser, argv, *checks):
    """``parser.parse_args(argv)``, then each ``check(args)``; a :class:`UsageError` of a
    check becomes ``parser.error`` (usage, one ``error:`` line on stderr, exit 2), before the
    script builds or writes anything.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    argv : list of str or None
        None reads ``sys.argv[1:]``.
    *checks : callable
        ``check(args)``, raising :class:`UsageError` for a value it refuses.

    Returns
    -------
    argparse.Namespace
    """
    args = parser.parse_args(argv)
    try:
        for check in checks:
            check(args)
    except UsageError as err:
        parser.error(str(err))
    return args


def _num_gpus():
    import mxnet as mx
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:      # a CUDA build without a driver
        return 0


def check_devices(args, one_per_process=False):
    """The number of devices one process runs on, from ``--gpus`` and ``--cpu-devices``.

    Parameters
    ----------
    args : argparse.Namespace
        ``gpus`` (a :func:`gpu_list` string) and optionally ``cpu_devices``.
    one_per_process : bool
        Horovod: each process takes one device of the list.

    Returns
    -------
    int

    Raises
    ------
    UsageError
        ``--gpus`` names a GPU that MXNet does not see (``mx.context.num_gpus()``), e.g. the
        default ``0,1`` on a machine without GPUs; ``--cpu-devices`` below 1.
    """
    gpus = [int(g) for g in args.gpus.split(",") if g.strip()]
    if gpus:
        available = _num_gpus()
        if max(gpus) >= available:
            raise UsageError("--gpus %s: this machine has %d GPU(s) visible to MXNet (GPUs need "
                             "the mxnet-cu112 build and CUDA 11.2); --gpus '' runs on the CPU"
                             % (args.gpus, available))
        return 1 if one_per_process else len(gpus)
    cpus = getattr(args, "cpu_devices", 1)
    if cpus < 1:
        raise UsageError("--cpu-devices %d: must be at least 1" % cpus)
    return 1 if one_per_process else cpus
