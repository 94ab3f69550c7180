"""Guards for long runs: non-finite losses, SIGTERM and SIGINT, and on-device running means.

The running means keep their sums on the device so the hot loop never waits on the host; the
one host read per update is the finiteness check, which must see the losses before the update
(STYLE.md habit 8, detectron2's ``FloatingPointError``).
"""
import math
import signal

import mxnet as mx
import numpy as np

__all__ = ["check_finite", "RunningMean", "StopFlag", "RunInterrupted"]


def check_finite(losses, epoch, batch):
    """Raise ``FloatingPointError`` if any loss holds NaN or Inf; call before ``trainer.step``.

    Parameters
    ----------
    losses : dict of str -> list of NDArray
        Each loss as one array per device (any shape). One host read for all of them.
    epoch, batch : int
        Where it happened, for the message.
    """
    names = list(losses)
    if not names:
        return
    sums = [mx.nd.concat(*[mx.nd.sum(l).reshape((1,)).as_in_context(mx.cpu()) for l in losses[n]],
                         dim=0).sum().reshape((1,)) for n in names]
    values = mx.nd.concat(*sums, dim=0).asnumpy()
    bad = [(n, v) for n, v in zip(names, values) if not np.isfinite(v)]
    if bad:
        raise FloatingPointError(
            "non-finite loss at epoch %d, batch %d, before the update: %s"
            % (epoch, batch, ", ".join("%s=%s" % (n, v) for n, v in bad)))


class RunningMean:
    """Mean over steps of a loss since the last reset, accumulated without a host read.

    ``get()`` returns nan when nothing was added since the reset, as MXNet's
    ``mx.metric.Loss.get()`` does: the published logs print the adversarial columns as nan in
    stage 2 for that reason (DESIGN.md sec. 5), and so do ours.
    """

    def __init__(self, name):
        self.name = name
        self.reset()

    def reset(self):
        self._sum = None
        self._count = 0

    def update(self, values):
        """Add one step's loss, given as per-device arrays whose elements sum to the step's
        total (GluonCV's per-sample SSD losses are already divided by the batch's positives)."""
        s = None
        for v in values:
            v = mx.nd.sum(v).as_in_context(mx.cpu())
            s = v if s is None else s + v
        self._sum = s if self._sum is None else self._sum + s
        self._count += 1

    def get(self):
        if self._count == 0:
            return self.name, float("nan")
        return self.name, float(self._sum.asscalar()) / self._count


class RunInterrupted(Exception):
    """Raised by the loop once the ``interrupted`` checkpoint of a stop request is saved; the
    entry point turns it into the exit code ``EXIT_INTERRUPTED`` (resumable).

    Parameters
    ----------
    signal_name : str
        ``SIGTERM`` or ``SIGINT``.
    path : str or None
        The manifest saved (None on a worker that does not write checkpoints).
    """

    def __init__(self, signal_name, path):
        super().__init__("stopped on %s; saved %s (continue with --resume %s)"
                         % (signal_name, path, path))
        self.signal_name = signal_name
        self.path = path


class StopFlag:
    """Turns SIGTERM and SIGINT (Ctrl-C) into a flag the loop reads after each step, so a run
    stopped by a scheduler or by hand finishes its step, saves and exits instead of dying
    mid-write."""

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.requested = None
        self._old = {}
        for s in signals:
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:     # not the main thread (e.g. under some test runners)
                pass

    def _handle(self, signum, _frame):
        self.requested = signal.Signals(signum).name

    def restore(self):
        for s, h in self._old.items():
            signal.signal(s, h)

    def __bool__(self):
        return self.requested is not None


def is_finite_number(x):
    """True for a finite float (a NaN mAP is never 'best')."""
    return x is not None and not (isinstance(x, float) and (math.isnan(x) or math.isinf(x)))
