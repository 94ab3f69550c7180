"""Exit codes and messages shared by the command-line entry points."""
import logging
import sys

__all__ = ["run_main", "EXIT_OK", "EXIT_FAULT", "EXIT_USAGE", "EXIT_INTERRUPTED"]

# The exit-code table every script follows (README, "Exit codes").
EXIT_OK = 0            # done
EXIT_FAULT = 1         # a runtime fault, e.g. a non-finite loss; nothing saved is corrupt
EXIT_USAGE = 2         # bad arguments or input: one line on stderr, nothing written
EXIT_INTERRUPTED = 3   # stopped by SIGTERM/SIGINT after saving `interrupted`; resumable


def run_main(main, args):
    """Run ``main(args)``; turn the errors a user can fix into one clear line and an exit code.

    Returns 0 on success, 1 on a non-finite loss (the message names the loss, epoch and
    batch), 2 on missing or unsafe data, missing weights, a refused checkpoint, settings that
    disagree with an export's metadata, or a
    distributed setup that cannot start (Horovod not installed, two engines asked for).
    """
    from ..data.checks import DatasetNotFoundError, UnsafeInputError
    from ..logs.format import format_stopping
    from ..models.export_meta import ExportMetaError
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
            CheckpointError, DistributedSetupError, ExportMetaError) as err:
        print("error: %s" % err, file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
