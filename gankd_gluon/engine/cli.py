"""Exit codes and messages shared by the command-line entry points."""
import logging
import sys

__all__ = ["run_main", "UsageError", "InputFileError", "EXIT_OK", "EXIT_FAULT", "EXIT_USAGE",
           "EXIT_INTERRUPTED"]

# The exit-code table every script follows (README, "Exit codes").
EXIT_OK = 0            # done
EXIT_FAULT = 1         # a runtime fault, e.g. a non-finite loss; nothing saved is corrupt
EXIT_USAGE = 2         # bad arguments or input: one line on stderr, nothing written
EXIT_INTERRUPTED = 3   # stopped by SIGTERM/SIGINT after saving `interrupted`; resumable


class UsageError(ValueError):
    """Bad arguments or input a user can fix: :func:`run_main` prints the message as one
    ``error:`` line and returns :data:`EXIT_USAGE`; a script's ``parse_args`` turns it into
    ``parser.error``. The message names the flag, or the file and line."""


class InputFileError(UsageError, FileNotFoundError):
    """An input file or folder named on the command line does not exist (exit 2)."""


def run_main(main, args):
    """Run ``main(args)``; turn the errors a user can fix into one clear line and an exit code.

    Returns 0 on success, 1 on a non-finite loss (the message names the loss, epoch and
    batch), 2 on bad arguments or input (:class:`UsageError`: flags, malformed result files),
    missing or unsafe data, missing weights, a refused checkpoint or a distributed setup that
    cannot start (Horovod not installed, two engines asked for).
    """
    from ..data.checks import DatasetNotFoundError, UnsafeInputError
    from ..logs.format import format_stopping
    from ..models.ssd import WeightsNotFoundError
    from .checkpoint import CheckpointError
    from .distributed import DistributedSetupError
    try:
        main(args)
    except FloatingPointError as err:
        logging.getLogger("gankd").error(format_stopping(err))
        print("error: %s" % err, file=sys.stderr)
        return EXIT_FAULT
    except (DatasetNotFoundError, UnsafeInputError, WeightsNotFoundError,
            CheckpointError, DistributedSetupError, UsageError) as err:
        print("error: %s" % _one_line(err), file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _one_line(err):
    """The message of ``err`` on one line (a user reads one line; a log parser too)."""
    return " ".join(str(err).split("\n"))
