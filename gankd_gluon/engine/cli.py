"""How every command-line entry point ends: :func:`run_main` turns the errors a user can fix
into one line and an exit code of the table in :mod:`gankd_gluon.usage`."""
import logging
import os
import signal
import sys
import traceback

from ..usage import EXIT_FAULT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["run_main"]


def run_main(main, args):
    """Run ``main(args)``; turn the errors a user can fix into one clear line and an exit code.

    Returns 0 on success, 1 on a non-finite loss, input, weight or optimizer state (the
    message names it, the epoch and batch), a checkpoint write that failed (the path and the
    free space) or a log that cannot be written, 2 on bad arguments or input
    (:class:`~gankd_gluon.usage.UsageError`: flags, malformed result files; a malformed
    ``GANKD_FAULT``), missing, unsafe or unusable data (no usable image, a split file that is not text, class names that do
    not fit the annotations), missing weights, a refused checkpoint, settings that disagree with an
    export's metadata, or a distributed setup that cannot start (Horovod not installed, two
    engines asked for), 3 after SIGTERM/SIGINT once
    ``interrupted`` is saved, 130 on SIGINT (Ctrl-C) and 143 on SIGTERM outside the training
    loop, with one line and no traceback.

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
    from .checkpoint import CheckpointWriteError
    from ..models.weights import CheckpointError
    from .distributed import DistributedSetupError
    from .guards import FaultSwitchError, RunInterrupted
    from ..logs.format import LogWriteError
    restore = _sigterm_ends_with_one_line()
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
    finally:
        restore()
    return EXIT_OK


def _stop_now(signum, _frame):
    """SIGTERM outside the training loop: the line, then the exit, at once. Not an exception
    raised like KeyboardInterrupt: the handler can run inside a ``__del__`` (MXNet's arrays,
    a DataLoader's, during ``gc.collect``), where Python prints an exception and drops it, and
    the run went on to the end. Outside the loop there is nothing to save or close (the loop's
    own handler saves; the loaders' workers end when their pipes close)."""
    sys.stderr.write("stopped by %s outside the training loop; nothing saved\n"
                     % signal.Signals(signum).name)
    sys.stderr.flush()
    os._exit(128 + signum)          # pylint: disable=protected-access


def _sigterm_ends_with_one_line():
    """While ``main`` runs, SIGTERM left at its default ends the process with one line and
    128 + 15 (:func:`_stop_now`), as Ctrl-C ends with 130 (the training loop's handler takes
    over inside the loop and puts this one back); returns the function that restores the
    default."""
    import threading
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None
    signal.signal(signal.SIGTERM, _stop_now)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _one_line(err):
    """The message of ``err`` on one line (a user reads one line; a log parser too)."""
    return " ".join(str(err).split("\n"))
