"""Exit codes and messages shared by the command-line entry points."""
import logging
import sys

__all__ = ["run_main"]


def run_main(main, args):
    """Run ``main(args)``; turn the errors a user can fix into one clear line and an exit code.

    Returns 0 on success, 1 on a non-finite loss (the message names the loss, epoch and
    batch), 2 on missing or unsafe data, missing weights, a refused checkpoint or a
    distributed setup that cannot start (Horovod not installed, two engines asked for).
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
        return 1
    except (DatasetNotFoundError, UnsafeInputError, WeightsNotFoundError,
            CheckpointError, DistributedSetupError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    return 0
