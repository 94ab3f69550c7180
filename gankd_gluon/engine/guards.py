"""Guards for long runs: non-finite losses, inputs, weights and optimizer states, SIGTERM and
SIGINT, on-device running means, and the fault-injection switch the tests use.

The running means keep their sums on the device so the hot loop never waits on the host; the
one host read per update is the finiteness check, which must see the losses before the update
(detectron2's ``FloatingPointError``, Wu et al., Detectron2, 2019,
https://github.com/facebookresearch/detectron2). Input batches are checked on the device and
read at log intervals (:class:`InputWatch`); weights and optimizer states before every save
(:func:`check_weights`).

Fault injection (tests; documented in the README): ``GANKD_FAULT=PLACE:EPOCH:BATCH[:STAGE]``
makes batch BATCH (from 0) of epoch EPOCH (the loop's epoch within a stage, from 1; of every
stage unless STAGE is given: GAN-KD's are 1 and 2, plain training's is 2) carry a fault at
PLACE: ``input`` (a NaN pixel in the images), ``loss`` (NaN regression targets, so a loss
turns NaN) or ``gradient`` (a NaN gradient on the first trained parameter, the loss finite).
``GANKD_FAULT=kill-save:N`` kills the process at the N-th step of its checkpoint saves
(:mod:`.checkpoint`).
"""
import math
import os
import signal

import mxnet as mx
import numpy as np

__all__ = ["check_finite", "RunningMean", "StopFlag", "RunInterrupted", "check_weights",
           "first_non_finite", "trainer_state_arrays", "InputWatch", "FaultSwitch",
           "FaultSwitchError", "update_signature"]


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
    stage 2 for that reason (mxnet 1.9.1 ``mxnet/metric.py``, ``EvalMetric.get``: nan when
    ``num_inst == 0``), and so do ours.
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


# ------------------------------------------------------------------ weights and states
def first_non_finite(named):
    """The name of the first array holding NaN or Inf, or None; one host read for all.

    Parameters
    ----------
    named : list of (str, NDArray)
        Arrays of any shape, on any devices.
    """
    named = [(n, a) for n, a in named if a is not None and a.size > 0]
    if not named:
        return None
    # GPU arrays: a flag each on the device, one read for all; CPU arrays: numpy reads them in
    # place, 10x faster than MXNet's CPU reductions (49 MB: 0.16 s against 2 s)
    flags = [None if a.context.device_type == "cpu" else
             mx.nd.contrib.isfinite(a.astype("float32", copy=False)).min().reshape((1,))
             .as_in_context(mx.cpu()) for _, a in named]
    device = [f for f in flags if f is not None]
    ok = iter(mx.nd.concat(*device, dim=0).asnumpy() if device else [])
    for (name, a), f in zip(named, flags):
        finite = np.isfinite(a.asnumpy()).all() if f is None else next(ok) >= 1
        if not finite:
            return name
    return None


def _state_arrays(state):
    if isinstance(state, mx.nd.NDArray):
        return [state]
    if isinstance(state, (list, tuple)):
        return [a for s in state for a in _state_arrays(s)]
    return []


def trainer_state_arrays(trainers):
    """``(name, array)`` of every optimizer state array of ``trainers`` (dict name -> Trainer),
    named ``<trainer>:<parameter>[i]``, on every device's updater. States kept on a distributed
    kvstore's servers are not visible here and are not listed."""
    out = []
    for tname, trainer in trainers.items():
        params = getattr(trainer, "_params", [])
        updaters = list(getattr(trainer, "_updaters", None) or [])
        kv = getattr(trainer, "_kvstore", None)
        if getattr(trainer, "_update_on_kvstore", False) and getattr(kv, "_updater", None):
            updaters = [kv._updater]          # a local kvstore updates (and keeps the states)
        for updater in updaters:
            for index, state in sorted(getattr(updater, "states", {}).items()):
                pname = params[index].name if index < len(params) else str(index)
                for i, a in enumerate(_state_arrays(state)):
                    out.append(("optimizer state %s:%s[%d]" % (tname, pname, i), a))
    return out


def update_signature(trainer):
    """A value that moves with what ``Trainer.save_states`` writes for ``trainer`` (the
    optimizer, its update counts and each parameter's state), so that a save can name an
    earlier file of those states while it stays equal.

    The states change when the trainer updates a parameter (every update adds one to that
    parameter's count on that device: the counts are summed over all devices) and the
    optimizer's settings change with its hyperparameters (learning rate, weight decay, the
    gradient scale ``step`` sets, ...: every number, string or flag among its attributes).
    ``load_states`` replaces the states without necessarily moving either: take a signature
    after loading, never before.

    Parameters
    ----------
    trainer : mxnet.gluon.Trainer

    Returns
    -------
    tuple or None
        ``(id(trainer), updates, settings)``; None where the states are not visible here
        (kept on a distributed kvstore's servers, ``update_on_kvstore`` with ``dist_*``),
        which never equals a recorded signature.
    """
    opt = getattr(trainer, "_optimizer", None)
    counts = getattr(opt, "_all_index_update_counts", None)
    if counts is None and getattr(opt, "_index_update_count", None) is not None:
        counts = {0: opt._index_update_count}
    kv = getattr(trainer, "_kvstore", None)
    if counts is None or (getattr(trainer, "_update_on_kvstore", False)
                          and "dist" in str(getattr(kv, "type", ""))):
        return None
    updates = sum(sum(c.values()) for c in counts.values())
    settings = tuple(sorted((k, v) for k, v in vars(opt).items()
                            if isinstance(v, (bool, int, float, str)) or v is None))
    return (id(trainer), updates, settings)


def check_weights(blocks, trainers, when):
    """Raise ``FloatingPointError`` naming the first parameter (any device's copy) or optimizer
    state holding NaN or Inf; call before validating for ``best`` and before every save with a
    training step since the last check (a save with none names what an earlier save checked).

    Parameters
    ----------
    blocks : dict of str -> Block
    trainers : dict of str -> gluon.Trainer
    when : str
        Where the loop is, for the message (``before saving best at stage 1, epoch 3``).
    """
    named = []
    for bname, block in blocks.items():
        for pname, param in block._collect_params_with_prefix().items():
            if param._data is None:
                continue
            named.extend(("parameter %s:%s" % (bname, pname), d) for d in param.list_data())
    named.extend(trainer_state_arrays(trainers))
    bad = first_non_finite(named)
    if bad is not None:
        raise FloatingPointError("non-finite values in %s %s; nothing saved, the previous "
                                 "checkpoints are intact" % (bad, when))


class InputWatch:
    """The first batch of an epoch whose input images hold NaN or Inf, tracked on the device
    (no host read per batch) and read by :meth:`check` at log intervals and before saves."""

    def __init__(self):
        self._first = None       # NDArray (1,) on the CPU: 0, or 1 + the first bad batch

    def reset(self):
        self._first = None

    def update(self, data, batch):
        """``data``: the batch's images, one array or one per device."""
        arrays = data if isinstance(data, (list, tuple)) else [data]
        # the sum of an image batch is finite unless a pixel is NaN/Inf (normalised pixels
        # cannot overflow float32): one reduction, 3x cheaper than isfinite().min() on the CPU
        ok = [mx.nd.contrib.isfinite(mx.nd.sum(a)).reshape((1,)).as_in_context(mx.cpu())
              for a in arrays]
        bad = (1 - mx.nd.concat(*ok, dim=0).min()).reshape((1,)) * (batch + 1)
        self._first = bad if self._first is None else mx.nd.where(self._first > 0,
                                                                  self._first, bad)

    def check(self, epoch):
        """Raise ``FloatingPointError`` if a batch since the reset had non-finite input."""
        if self._first is None:
            return
        first = int(self._first.asscalar())
        if first:
            raise FloatingPointError("non-finite input image at epoch %d, batch %d (NaN or Inf "
                                     "pixels in the data); nothing saved after it"
                                     % (epoch, first - 1))


class FaultSwitchError(ValueError):
    """``GANKD_FAULT`` does not parse (exit 2)."""


class FaultSwitch:
    """The ``GANKD_FAULT`` switch (module docstring): faults injected into one batch."""
    PLACES = ("input", "loss", "gradient")

    def __init__(self, spec):
        self.place = None
        if not spec or spec.startswith("kill-save:"):
            if spec and not spec[len("kill-save:"):].isdigit():
                raise FaultSwitchError("GANKD_FAULT=%s: expected kill-save:N" % spec)
            return
        fields = spec.split(":")
        if (len(fields) not in (3, 4) or fields[0] not in self.PLACES
                or not all(f.isdigit() for f in fields[1:])):
            raise FaultSwitchError("GANKD_FAULT=%s: expected PLACE:EPOCH:BATCH[:STAGE] with "
                                   "PLACE one of %s, or kill-save:N"
                                   % (spec, ", ".join(self.PLACES)))
        self.place = fields[0]
        self.epoch, self.batch = int(fields[1]), int(fields[2])
        self.stage = int(fields[3]) if len(fields) == 4 else None

    @classmethod
    def from_env(cls):
        return cls(os.environ.get("GANKD_FAULT", ""))

    def hits(self, stage, epoch, batch):
        return (self.place is not None and (epoch, batch) == (self.epoch, self.batch)
                and self.stage in (None, stage))

    def poison(self, batch):
        """The batch with the fault of an ``input`` or ``loss`` place (a copy)."""
        batch = list(batch)
        index = 0 if self.place == "input" else len(batch) - 1
        target = batch[index]
        if isinstance(target, (list, tuple)):
            batch[index] = [_nan_first(target[0])] + list(target[1:])
        else:
            batch[index] = _nan_first(target)
        return batch

    def wrap_step(self, trainer):
        """Arm ``trainer`` (``gradient`` place): its next ``step`` first sets the gradient of
        its first trained parameter to NaN. Returns a function that disarms it."""
        original = trainer.step

        def step(*args, **kwargs):
            param = next(p for p in trainer._params if p.grad_req != "null")
            for g in param.list_grad():
                g[:] = float("nan")
            return original(*args, **kwargs)
        trainer.step = step
        return lambda: trainer.__dict__.pop("step", None)


def _nan_first(array):
    out = array.copy()
    flat = out.reshape((-1,))
    flat[0] = float("nan")
    return out
