"""Exit codes and messages shared by the command-line entry points."""
import logging
import signal
import sys
import traceback

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

    Returns 0 on success, 1 on a non-finite loss, input, weight or optimizer state (the
    message names it, the epoch and batch), a checkpoint write that failed (the path and the
    free space) or a log that cannot be written, 2 on bad arguments or input
    (:class:`UsageError`: flags, malformed result files; a malformed ``GANKD_FAULT``), missing,
    unsafe or unusable data (no usable image, a split file that is not text, class names that do
    not fit the annotations), missing weights, a refused checkpoint, settings that disagree with an
    export's metadata, or a distributed setup that cannot start (Horovod not installed, two
    engines asked for), 3 after SIGTERM/SIGINT once
    ``interrupted`` is saved, 130 on SIGINT (Ctrl-C) outside the training loop, with one line
    and no traceback.

    A worker of a ``dist_*`` kvstore job does not return: it ends at once with that code
    (:func:`~.distributed.exit_now`), or 1 after the traceback of any other error, since the
    interpreter's normal exit would wait for the other workers for ever.
    """
    from .distributed import exit_now, kvstore_job_running
    try:
        code = _run_main(main, args)
    except SystemExit as err:
        if not kvstore_job_running():
            raise
        exit_now(err.code if isinstance(err.code, int) else EXIT_FAULT,
                 None if isinstance(err.code, int) or err.code is None else str(err.code))
    except BaseException:       # pylint: disable=broad-except
        if not kvstore_job_running():
            raise
        traceback.print_exc()
        exit_now(EXIT_FAULT)
    if code != EXIT_OK and kvstore_job_running():
        exit_now(code)
    return code


def _run_main(main, args):
    from ..data.checks import DataError, DatasetNotFoundError, UnsafeInputError
    from ..data.classes import ClassListError
    from ..logs.format import format_stopping
    from ..models.export_meta import ExportMetaError
    from ..models.ssd import WeightsNotFoundError
    from .checkpoint import CheckpointError, CheckpointWriteError
    from .distributed import DistributedSetupError
    from .guards import FaultSwitchError, RunInterrupted
    from ..logs.format import LogWriteError
    try:
        main(args)
    except RunInterrupted as err:
        print(str(err), file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        # Ctrl-C outside the training loop (building the networks, evaluating): nothing to save
        print("stopped by SIGINT outside the training loop; nothing saved",
              file=sys.stderr)
        return 128 + signal.SIGINT
    except LogWriteError as err:
        print("error: %s" % err, file=sys.stderr)
        return EXIT_FAULT
    except FloatingPointError as err:
        logging.getLogger("gankd").error(format_stopping(err))
        print("error: %s" % err, file=sys.stderr)
        return EXIT_FAULT
    except CheckpointWriteError as err:
        logging.getLogger("gankd").error("error: %s" % _one_line(err))
        print("error: %s" % _one_line(err), file=sys.stderr)
        return EXIT_FAULT
    except (FaultSwitchError, DatasetNotFoundError, UnsafeInputError, DataError, ClassListError,
            WeightsNotFoundError, CheckpointError, DistributedSetupError, ExportMetaError, UsageError) as err:
        print("error: %s" % _one_line(err), file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _one_line(err):
    """The message of ``err`` on one line (a user reads one line; a log parser too)."""
    return " ".join(str(err).split("\n"))
