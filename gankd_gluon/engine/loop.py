"""The stage/epoch loop shared by every SSD training script: logging in the published format,
validation, checkpoints, exact resume, SIGTERM/SIGINT and NaN handling.

A run is a list of :class:`Stage` s (GAN-KD: the adversarial stage 1, then plain stage 2; plain
SSD training: one stage). The loop knows nothing of GANs: a stage brings its step function, its
trainers, its learning-rate schedule and the log columns it computes.
"""
import json
import math
import random
import sys
import time

import mxnet as mx
import numpy as np

from ..data.loaders import close_loaders
from ..logs.format import (SSD_LINES, format_interrupted, format_interrupted_saved,
                           format_lr_change, format_namespace, format_resumed, format_start,
                           format_validation)
from .checkpoint import (RUN_SETTINGS, check_run_folder, claim_run_folder, compare_settings,
                         load_checkpoint, prune_checkpoints, save_checkpoint, select_resume)
from .methods import method_settings
from ..models.weights import CheckpointError, read_checkpoint
from .guards import (FaultSwitch, InputWatch, RunInterrupted, RunningMean, StopFlag,
                     check_weights, update_signature)
from .steps import split_batch

__all__ = ["Stage", "Run", "step_lr", "StepSchedule", "seed_everything", "average_device_copies",
           "open_run", "RunStart"]


def _num_samples(data):
    """Images in a batch's first element: one array, or one array per device (GluonCV's
    ``FasterRCNNTrainBatchify`` shards the batch itself)."""
    if isinstance(data, (list, tuple)):
        return sum(d.shape[0] for d in data)
    return data.shape[0]


# the flags whose values shape the networks' parameters (named when a --resume is refused)
_NETWORK_SETTINGS = ("student", "teacher", "network", "data_shape", "dataset", "head",
                     "critic_norm", "critic_channels", "roi_mode", "short", "max_size", "method")


def average_device_copies(blocks):
    """Set every device's copy of each untrained parameter (``grad_req='null'``: BatchNorm
    moving mean and variance, frozen parts) to their mean over the devices.

    Each device updates its own BatchNorm moving statistics from its slice of the batch, while
    ``save_parameters`` and ``export`` write the mean of the copies (``Parameter._reduce``,
    MXNet 1.9.1). Validating after this scores the weights that are written to disk. It does
    not change what later saves write: the moving-average update
    ``r <- m * r + (1 - m) * batch_stat`` is linear, so the mean over devices evolves the
    same whether or not the copies were averaged before. Trained weights are not touched: the
    same update on every device keeps their copies equal.

    Parameters
    ----------
    blocks : dict of str -> Block
    """
    for block in blocks.values():
        for param in block.collect_params().values():
            if param.grad_req != "null" or param._data is None:   # pylint: disable=protected-access
                continue
            copies = param.list_data()
            if len(copies) < 2:
                continue
            mean = mx.nd.add_n(*[c.as_in_context(copies[0].context) for c in copies]) \
                / len(copies)
            for c in copies:
                mean.copyto(c)


def seed_everything(seed):
    """Seed MXNet, numpy and Python; the loop reseeds at every epoch start with
    ``seed + 1000 * stage + epoch`` so a resumed run replays the same shuffles and augmentations
    (exactly, with ``num_workers=0``: worker processes keep RNG states of their own)."""
    mx.random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def step_lr(base_lr, epoch, decay, decay_epochs, convention="after"):
    """GluonCV's step schedule: ``base * decay**k``, k the decay epochs reached by ``epoch``.

    The two GluonCV training scripts count a decay epoch differently, and each published log
    (and each script's flags here) follows its own:

    - ``"after"`` (``scripts/detection/ssd/train_ssd.py``, 1-based epochs): the rate decays
      *after* each listed epoch, ``epoch > s``; GluonCV's 0-based ``epoch >= step`` written on
      1-based epochs;
    - ``"at"`` (``scripts/detection/faster_rcnn/train_faster_rcnn.py``, 0-based epochs as
      logged): the rate decays *from* each listed epoch on, ``epoch >= s`` (``while lr_steps
      and epoch >= lr_steps[0]``).

    Source: GluonCV, dmlc/gluon-cv, https://github.com/dmlc/gluon-cv (v0.10).
    """
    if convention == "after":
        return base_lr * decay ** sum(1 for s in decay_epochs if epoch > s)
    if convention == "at":
        return base_lr * decay ** sum(1 for s in decay_epochs if epoch >= s)
    raise ValueError("convention %r: use 'after' or 'at'" % (convention,))


class StepSchedule:
    """``Stage.lrs`` of trainers that share one step schedule (:func:`step_lr`), each from its
    own base rate; logs GluonCV's ``[Epoch E] Set <what> learning rate to x`` when the rates
    change (GluonCV's training scripts write that line at each decay), E the logged epoch.

    Parameters
    ----------
    bases : dict of str -> float
        Trainer name -> base learning rate.
    decay : float
        Factor per decay epoch passed.
    decay_epochs : list of int
        Epochs after which the rates decay (``[179]``: epochs 1..179 at the base rates,
        180 on at ``base * decay``).
    logger : logging.Logger or None
    what : str
        ``GAN`` for the adversarial stage: ``Set GAN learning rate to x``.
    offset : int
        Added to the loop's epoch (1-based within the run) to give the logged epoch, which
        ``decay_epochs`` count (the stage's ``epoch_offset``: -1 for the Faster R-CNN logs'
        0-based epochs).
    convention : str
        ``after`` (SSD) or ``at`` (Faster R-CNN), :func:`step_lr`.
    """

    def __init__(self, bases, decay, decay_epochs, logger=None, what="", offset=0,
                 convention="after"):
        self.bases = dict(bases)
        self.decay = decay
        self.decay_epochs = list(decay_epochs)
        self.logger = logger
        self.what = what
        self.offset = offset
        self.convention = convention
        step_lr(1.0, 0, 1.0, [], convention)      # a bad convention fails here, not at epoch 1
        self._last = None

    def __call__(self, epoch):
        shown = epoch + self.offset
        lrs = {k: step_lr(b, shown, self.decay, self.decay_epochs, self.convention)
               for k, b in self.bases.items()}
        # the first epoch of a run logs only a rate other than the base (a resumed run)
        if self.logger is not None and lrs != (self.bases if self._last is None else self._last):
            for lr in sorted(set(lrs.values()), reverse=True):
                self.logger.info(format_lr_change(shown, lr, self.what))
        self._last = lrs
        return lrs


class RunStart:
    """What :func:`open_run` decided: the checkpoint to resume from (None: from scratch), the
    lines to log about it, the kind of run, and the run folder's lock (taken by
    :meth:`claim`, held while this object lives)."""

    def __init__(self, path=None, notes=(), kind=None, prefix=None, overwrite=False):
        self.path = path
        self.notes = list(notes)
        self.kind = kind
        self.prefix = prefix
        self.overwrite = overwrite
        self.lock = None

    def claim(self):
        """Lock the run folder (:func:`~.checkpoint.claim_run_folder`): the run's first write,
        after every check a user can act on."""
        if self.prefix is not None and self.lock is None:
            self.lock = claim_run_folder(self.prefix, self.path is not None, self.overwrite)
        return self


def open_run(args, prefix, kind, is_root=True, claim=True):
    """Decide where the run starts and claim its folder, before anything is written.

    ``--resume auto`` takes the newest valid checkpoint (epoch, ``interrupted``, ``best``,
    ``final``; :func:`~.checkpoint.select_resume`) and notes which it skipped and why, or that
    there was none and where it looked; a named ``--resume`` manifest must be valid. The
    settings that define the run (:data:`~.checkpoint.RUN_SETTINGS`, and the weights the
    ``--method``'s terms read: :func:`~.methods.method_settings`) must equal the
    checkpoint's, except those named in ``--allow-changed`` (noted for the log). Without
    ``--resume``, a folder holding an earlier run's checkpoints is refused unless
    ``--overwrite``; a folder another live run holds is refused. Distributed workers other
    than rank 0 (``is_root`` False) read only.

    Parameters
    ----------
    args : argparse.Namespace
        Uses ``resume``, ``overwrite``, ``allow_changed``.
    prefix : str
        ``<save-dir>/<run>/<run>``.
    kind : dict
        The kind of run (detector, networks, classes, data shape, method, stage).
    claim : bool
        Lock the folder now; False leaves it to ``RunStart.claim()`` (after later checks).

    Returns
    -------
    RunStart

    Raises
    ------
    CheckpointError
        One line naming the flag and the file, before anything is written.
    """
    FaultSwitch.from_env()           # a GANKD_FAULT that does not parse stops here
    resume = getattr(args, "resume", "")
    overwrite = getattr(args, "overwrite", False)
    if is_root and not resume:       # an earlier run's folder: refused before any write
        check_run_folder(prefix, overwrite)
    notes, path = [], resume or None
    foreign = [k for k in ("detector", "classes") if k in kind]
    if resume == "auto":
        path, notes = select_resume(prefix, None, kind, foreign)
    elif resume:
        read_checkpoint(resume, None, "--resume", kind, foreign)
    if path:
        with open(path) as f:
            saved = json.load(f)
        # the method's own weights too: resuming `--method chen` with another --kd-gamma
        # would otherwise train on under the old name
        keys = RUN_SETTINGS + tuple(method_settings(getattr(args, "method", None)))
        refused, accepted = compare_settings(saved.get("args"), vars(args),
                                             _allowed(getattr(args, "allow_changed", "")), keys)
        if refused:
            raise CheckpointError("--resume %s: this run's settings differ from the "
                                  "checkpoint's: %s; resume with the same flags, or name them "
                                  "in --allow-changed (e.g. --allow-changed %s) if that is "
                                  "intended" % (path, ", ".join(refused), ",".join(
                                      r.split()[0][2:] for r in refused)))
        notes.extend("--resume: changed on purpose (--allow-changed): %s" % a
                     for a in accepted)
    for line in notes:
        if is_root:
            print(line, file=sys.stderr)
    start = RunStart(path, notes, kind, prefix if is_root else None, overwrite)
    return start.claim() if claim else start


def _allowed(value):
    return [v for v in (value or "").split(",") if v.strip()]


class Stage:
    """One training stage.

    Parameters
    ----------
    number : int
        1 (adversarial) or 2 (plain), printed in checkpoints and the report.
    epochs : int
        Epochs of this stage; the epoch counter restarts at 1 in every stage, as in the
        published SSD log (stage 2 restarts at epoch 1 after epoch 221).
    step : callable
        ``step(*device_batch, epoch=E, batch=B)`` -> dict of per-device losses, where
        ``device_batch`` is the loader batch split over the devices by ``split``.
    trainers : dict of str -> gluon.Trainer
    lrs : callable
        ``lrs(epoch)`` -> dict trainer name -> learning rate for that epoch.
    columns : list of (str, str or None)
        Log column name and the step's loss key; None = not computed in this stage (printed as
        nan, as the published logs' stage-2 lines, :mod:`gankd_gluon.logs.published`).
    split : callable
        ``split(batch, ctx)`` -> list of per-device lists, one per batch element
        (default: :func:`~.steps.split_batch`, even over the devices).
    epoch_offset : int
        Added to the stage's epoch counter in the log lines only. The published Faster R-CNN
        log counts epochs from 0 and does not restart in stage 2 (0..26 adversarial, 27..37
        plain): stage 1 prints with offset -1, stage 2 with the number of stage-1 epochs - 1.
    epoch_columns : list of str or None
        Columns printed on the end-of-epoch line (default: all). The published Faster R-CNN
        epoch line has the losses but not the accuracy/L1 columns of its batch lines.
    """

    def __init__(self, number, epochs, step, trainers, lrs, columns, split=split_batch,
                 epoch_offset=0, epoch_columns=None):
        self.split = split
        self.epoch_offset = epoch_offset
        self.epoch_columns = epoch_columns
        self.number = number
        self.epochs = epochs
        self.step = step
        self.trainers = trainers
        self.lrs = lrs
        self.columns = columns


class Run:
    """Runs stages over a loader, validating and checkpointing.

    Parameters
    ----------
    args : argparse.Namespace
        Logged as the ``Namespace(...)`` line and stored in every checkpoint. Uses
        ``batch_size, log_interval, val_interval, save_interval, seed, resume``.
    logger : logging.Logger
    train_loader : iterable of (data, cls_targets, box_targets)
    ctx : list of Context
    blocks : dict of str -> Block
        Everything a checkpoint holds (student, critics, ...).
    validate : callable or None
        ``validate()`` -> (class names, APs, mAP) of the deployable model, or (..., metric)
        naming a metric other than VOC07 mAP@0.5 (e.g. ``'COCO AP@[.5:.95]'``), which the
        log's mAP line then names; ``best`` follows the mAP either way.
    prefix : str
        Checkpoint path prefix.
    keep_last : int
        Epoch checkpoints kept (``best`` and ``final`` are always kept).
    before_epoch : callable or None
        Called at each epoch start (e.g. to re-hybridize a net that was traced for validation).
    val_title : str
        ``StudentNet Validation`` (published GAN-KD log) or ``Validation`` (GluonCV scripts).
    lines : LogLines
        The line kinds of the published SSD or Faster R-CNN log
        (:data:`~gankd_gluon.logs.format.SSD_LINES`, :data:`~gankd_gluon.logs.format.FRCNN_LINES`).
    is_root : bool
        False on distributed workers other than rank 0: they train in lockstep but neither
        validate nor write checkpoints, and do not stop on SIGTERM/SIGINT: rank 0 saves
        ``interrupted`` and exits, and the launcher then ends them (a worker stopping on its
        own, one step apart from rank 0, would leave rank 0 waiting for its gradients).
    watchdog : StepWatchdog or None
        Told after every step (and before long pauses) that the run is alive.
    reduce : callable or None
        ``reduce(name, value)`` -> the value summed over distributed workers, applied to the
        logged losses at log intervals only (each worker holds its share of the global loss).
    export : callable or None
        ``export(prefix)`` (``checkpoint.deployable_exporter``): the deployable model (symbol +
        params) the ``best`` and ``final`` checkpoints name, written before their manifests.
    start : RunStart or None
        From :func:`open_run`: the checkpoint to resume from, the lines to log about it, the
        run folder's lock, the kind of run recorded in every manifest. None: ``args.resume``
        is loaded as given (no run-folder checks).
    """

    def __init__(self, args, logger, train_loader, ctx, blocks, validate, prefix, keep_last=3,
                 before_epoch=None, export=None, val_title="StudentNet Validation",
                 lines=SSD_LINES, is_root=True, watchdog=None, reduce=None, start=None):
        self.args = args
        self.logger = logger
        self.loader = train_loader
        self.ctx = ctx
        self.blocks = blocks
        self.validate = validate
        self.prefix = prefix
        self.keep_last = keep_last
        self.before_epoch = before_epoch
        self.export = export
        self.val_title = val_title
        self.lines = lines
        self.is_root = is_root
        self.watchdog = watchdog
        self.reduce = reduce
        self.start = start if start is not None else RunStart(args.resume or None)
        self.start.claim()
        self.faults = FaultSwitch.from_env()
        self.inputs = InputWatch()
        self.best_map = float("nan")
        # the checkpoint manifest (and the one with an export) written since the last
        # training step, if any: a save with nothing trained since names its files again
        self._unchanged = None
        self._unchanged_export = None
        # trainer name -> (update_signature, manifest) of its states' last save
        self._states_saved = {}

    # ------------------------------------------------------------------ checkpoints
    def _all_trainers(self, stages):
        out = {}
        for st in stages:
            for name, tr in st.trainers.items():
                out["s%d_%s" % (st.number, name)] = tr
        return out

    def _save(self, stages, tag, stage, epoch, completed, export=False):
        if not self.is_root:
            return None
        if self.watchdog is not None:
            self.watchdog.pause()
        trainers = self._all_trainers(stages)
        same_as = self._unchanged_export if export and self._unchanged_export else \
            self._unchanged
        if same_as is None:
            # (a save with no step since the last one names what that save checked)
            check_weights(self.blocks, trainers, "before saving %s at stage %d, epoch %d"
                          % (tag, stage, epoch))
        state = {"stage": stage, "epoch": epoch, "epoch_completed": completed,
                 "best_map": None if math.isnan(self.best_map) else self.best_map,
                 "args": vars(self.args)}
        # optimizer states of trainers that have not stepped since they were last saved (a
        # finished stage's) name that save's file instead of being written again
        signatures = {name: update_signature(t) for name, t in trainers.items()}
        reuse = {"trainer:" + name: self._states_saved[name][1]
                 for name, sig in signatures.items()
                 if name in self._states_saved and self._states_saved[name][0] == sig}
        path = save_checkpoint(self.prefix, tag, self.blocks, trainers, state, same_as=same_as,
                               export=self.export if export else None, kind=self.start.kind,
                               reuse=reuse)
        self._states_saved = {name: (sig, path) for name, sig in signatures.items()
                              if sig is not None}
        self._unchanged = path
        if export:
            self._unchanged_export = path
        return path

    def _resume(self, stages):
        path = self.start.path
        if path is None:
            return stages[0].number, 1
        # a refusal names the settings that shape the networks and differ from the checkpoint's
        # run (e.g. a run started before a default changed)
        settings = {k: v for k, v in vars(self.args).items() if k in _NETWORK_SETTINGS}
        state = load_checkpoint(path, self.blocks, self._all_trainers(stages), self.ctx,
                                settings=settings)
        if state.get("best_map") is not None:
            self.best_map = float(state["best_map"])
        stage, epoch = int(state["stage"]), int(state["epoch"])
        if not state.get("epoch_completed", True):
            # interrupted mid-epoch (SIGTERM): the weights keep the partial epoch's updates and
            # the epoch starts again from its first batch
            epoch -= 1
        self.logger.info(format_resumed(path, stage, epoch))
        numbers = [s.number for s in stages]
        idx = numbers.index(stage) if stage in numbers else 0
        if epoch >= stages[idx].epochs and idx + 1 < len(stages):
            return stages[idx + 1].number, 1
        return stage, epoch + 1

    def _inject(self, st, epoch, i, batch):
        """The ``GANKD_FAULT`` switch (guards.py): the batch, poisoned where it says so, and a
        function that disarms a gradient fault after the step (or None)."""
        if not self.faults.hits(st.number, epoch, i):
            return batch, None
        if self.faults.place == "gradient":
            return batch, self.faults.wrap_step(next(iter(st.trainers.values())))
        return self.faults.poison(batch), None

    def _values(self, metrics):
        values = [m.get() for m in metrics]
        if self.reduce is not None:
            values = [(n, self.reduce(n, v)) for n, v in values]
        return values

    # ------------------------------------------------------------------ the loop
    def fit(self, stages):
        """Train all stages; returns the best mAP (nan if never validated).

        Raises
        ------
        RunInterrupted
            After SIGTERM or SIGINT, once the ``interrupted`` checkpoint is saved (checked
            after each step).
        """
        args = self.args
        self.logger.info(format_namespace(args))
        for line in self.start.notes:
            self.logger.info(line)
        start_stage, start_epoch = self._resume(stages)
        stop = StopFlag()
        try:
            for st in stages:
                if st.number < start_stage:
                    continue
                first = start_epoch if st.number == start_stage else 1
                self.logger.info(format_start(first + st.epoch_offset))
                for epoch in range(first, st.epochs + 1):
                    self._epoch(stages, st, epoch, stop)
            self._save(stages, "final", stages[-1].number, stages[-1].epochs, True,
                       export=self.export is not None)
        finally:
            stop.restore()
            if self.watchdog is not None:
                self.watchdog.stop()
        return self.best_map

    def _epoch(self, stages, st, epoch, stop):
        """One epoch; raises :class:`RunInterrupted` when a stop was requested (checkpoint
        already written)."""
        args = self.args
        shown = epoch + st.epoch_offset      # the epoch number the log lines print
        seed_everything(args.seed + 1000 * st.number + epoch)
        self._unchanged = self._unchanged_export = None       # this epoch trains
        for name, lr in st.lrs(epoch).items():
            st.trainers[name].set_learning_rate(lr)
        if self.before_epoch is not None:
            self.before_epoch()
        metrics = [RunningMean(col) for col, _ in st.columns]
        from tqdm import tqdm
        bar = tqdm(total=len(self.loader), desc="stage %d epoch %d" % (st.number, epoch),
                   unit="batch", leave=False, disable=not getattr(args, "progress", True))
        tic = btic = time.time()
        seen = seen_since_log = 0
        self.inputs.reset()
        for i, batch in enumerate(self.loader):
            batch, disarm = self._inject(st, epoch, i, batch)
            device_batch = st.split(batch, self.ctx)
            self.inputs.update(device_batch[0], i)      # on the device; read at log intervals
            try:
                losses = st.step(*device_batch, epoch=epoch, batch=i)
            except FloatingPointError:
                self.inputs.check(shown)                # a bad input explains the bad loss
                raise
            finally:
                if disarm is not None:
                    disarm()
            if self.watchdog is not None:
                self.watchdog.beat()
            for m, (_, key) in zip(metrics, st.columns):
                if key is not None:
                    m.update(losses[key])
            n = _num_samples(batch[0])
            seen += n
            seen_since_log += n
            bar.update(1)
            if args.log_interval and (i + 1) % args.log_interval == 0:
                self.inputs.check(shown)
                speed = seen_since_log / max(time.time() - btic, 1e-9)
                self.logger.info(self.lines.batch(shown, i, speed, self._values(metrics)))
                btic, seen_since_log = time.time(), 0
            if stop and self.is_root:
                bar.close()
                self.inputs.check(shown)
                self.logger.info(format_interrupted(stop.requested, shown, i))
                path = self._save(stages, "interrupted", st.number, epoch, False)
                self.logger.info(format_interrupted_saved(path))
                # a SIGTERM to the process group killed the loaders' workers too: stop their
                # pools now, before the DataLoaders' own teardown could wait for ever
                close_loaders()
                raise RunInterrupted(stop.requested, path)
        bar.close()
        self.inputs.check(shown)
        if self.is_root:
            # a model with NaN/Inf weights is neither validated for best nor saved
            check_weights(self.blocks, self._all_trainers(stages),
                          "after stage %d, epoch %d" % (st.number, epoch))
        cost = time.time() - tic
        speed = seen / max(cost, 1e-9)
        epoch_metrics = self._values(metrics)
        if st.epoch_columns is not None:
            epoch_metrics = [m for m in epoch_metrics if m[0] in st.epoch_columns]
        self.logger.info(self.lines.epoch(shown, speed, cost, epoch_metrics))
        last = epoch == st.epochs
        if self.validate is not None and self.is_root and (epoch % args.val_interval == 0
                                                            or last):
            if self.watchdog is not None:
                self.watchdog.pause()
            # score the BatchNorm statistics that a save writes, not each device's own
            average_device_copies(self.blocks)
            # (names, aps, mAP) or, for a metric other than VOC07 mAP@0.5, (..., metric name)
            names, aps, mean_ap, *metric = self.validate()
            self.logger.info(format_validation(shown, names, aps, mean_ap, title=self.val_title,
                                               metric=metric[0] if metric else None))
            # a NaN mAP is never "best"
            if np.isfinite(mean_ap) and not (mean_ap <= self.best_map):
                previous = 0 if math.isnan(self.best_map) else self.best_map   # GluonCV: [0]
                self.best_map = mean_ap
                path = self._save(stages, "best", st.number, epoch, True,
                                  export=self.export is not None)
                if self.lines.new_best is not None:
                    self.logger.info(self.lines.new_best(shown, mean_ap, previous, path))
            if self.lines.best_so_far is not None:
                self.logger.info(self.lines.best_so_far(self.best_map))
        if epoch % args.save_interval == 0 or last:
            self._save(stages, "epoch-s%d-e%04d" % (st.number, epoch), st.number, epoch, True)
            if self.is_root:
                prune_checkpoints(self.prefix, self.keep_last)
