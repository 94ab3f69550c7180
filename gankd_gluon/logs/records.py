"""The records a training log is read into: one dataclass per line kind, and the run.

:mod:`gankd_gluon.logs.lines` fills them line by line, :mod:`gankd_gluon.logs.segments` sets
each record's segment, stage and cumulative epoch, and :mod:`gankd_gluon.logs.parse` returns
them in a :class:`gankd_gluon.logs.parse.ParsedLog`. The line kinds are those of the two
training logs Hong, Yu, Fan published with "GAN-Knowledge Distillation for one-stage Object
Detection" (2019, https://arxiv.org/abs/1906.08467, in
https://github.com/p517332051/GAN-Knowledge-Distillation-SSD) and the lines our trainer adds
(:mod:`gankd_gluon.logs.format`).
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

__all__ = ["BatchRecord", "EpochRecord", "ValidationRecord", "BestMapRecord", "NewBestRecord",
           "EventRecord", "Segment", "Divergence", "UnreadableLine", "Run", "finite"]


def finite(value):
    """True for a number that is neither None, nan nor +-inf."""
    return value is not None and math.isfinite(value)


@dataclass
class BatchRecord:
    """One ``[Epoch E][Batch B], Speed: ...`` line.

    ``style`` is ``'ssd'`` (``samples/sec,Loss_D=``) or ``'frcnn'`` (``samples/sec, RPN_...``).
    ``segment``, ``stage`` and ``global_epoch`` are filled once the run is segmented;
    ``global_epoch`` keeps counting across counter restarts (SSD stage-2 epoch 1 is 222).
    """
    line_no: int
    epoch: int
    batch: int
    speed: float
    metrics: Dict[str, float]
    style: str
    segment: int = 0
    stage: int = 0
    global_epoch: int = 0


@dataclass
class EpochRecord:
    """An end-of-epoch line: SSD ``[Epoch E], Speed: ...`` (``speed`` set) or Faster R-CNN
    ``[Epoch E] Training cost: T, ...`` (``cost`` in seconds set)."""
    line_no: int
    epoch: int
    metrics: Dict[str, float]
    speed: Optional[float] = None
    cost: Optional[float] = None
    segment: int = 0
    stage: int = 0
    global_epoch: int = 0


@dataclass
class ValidationRecord:
    """A validation block: per-class AP (in log order), mAP, and the ``best_map is`` value
    printed right after it, if any."""
    line_no: int
    epoch: int
    title: str
    aps: Dict[str, float]
    mean_ap: float
    logged_best: Optional[float] = None
    segment: int = 0
    stage: int = 0
    global_epoch: int = 0
    #: the metric the mAP line names (``'COCO AP@[.5:.95]'``); None: VOC07 mAP@0.5
    metric: Optional[str] = None


@dataclass
class BestMapRecord:
    """A ``best_map is x`` line (SSD); ``epoch`` is that of the validation it follows."""
    line_no: int
    value: float
    epoch: Optional[int] = None


@dataclass
class NewBestRecord:
    """``[Epoch E] mAP x higher than current best [y] saving to path`` (Faster R-CNN)."""
    line_no: int
    epoch: int
    current_map: float
    previous_best: float
    path: str
    segment: int = 0
    stage: int = 0
    global_epoch: int = 0


@dataclass
class EventRecord:
    """Other known lines.

    ``kind`` and what ``value``/``detail`` hold:

    - ``'saving'``: ``[Epoch E] Saving parameters to PATH`` (value: path);
    - ``'lr'``: ``[Epoch E] Set [GAN ]learning rate to X`` (value: rate, detail: ``'GAN'``);
    - ``'start'``: ``Start training from [Epoch E]``; a second one in a run opens a segment
      (our trainer writes one per stage, the published SSD log only one per run);
    - ``'resumed'``: ``Resumed from PATH (stage S, epoch E done)`` (value: path, no epoch);
    - ``'interrupted'``: ``Stopping on SIGNAL after [Epoch E][Batch B]; saving`` (value:
      signal, detail: batch);
    - ``'saved'``: ``Saved PATH; continue with --resume PATH`` (value: path, no epoch);
    - ``'stopped'``: ``stopping: MESSAGE``, a run ended by an error such as a non-finite loss
      (value: message, no epoch);
    - ``'data'``: ``data: ...``, what loading a split skipped or repaired (value: the text, no
      epoch).

    Events without an epoch (``epoch is None``) are not part of :meth:`Run.timeline`.
    """
    line_no: int
    epoch: Optional[int]
    kind: str
    value: object
    text: str
    detail: str = ""
    segment: int = 0
    stage: int = 0
    global_epoch: int = 0


@dataclass
class Divergence:
    """A metric that turned nan/inf after finite values within one segment."""
    line_no: int
    epoch: int
    batch: Optional[int]
    metric: str
    value: float
    segment: int
    stage: int


@dataclass
class Segment:
    """A stretch of one run with one epoch counter and one stage.

    Attributes
    ----------
    index : int
        0-based position in the run.
    stage : int
        1 for an adversarial stage (some adversarial column finite), 2 for a plain one.
    kind : str
        ``'adversarial'`` or ``'plain'``.
    reason : str
        Why the segment starts here: ``'run start'``, ``'epoch counter restarts (221 -> 1)'``,
        or ``'adversarial columns turn nan from epoch 27'``.
    first_epoch, last_epoch : int
        Epoch numbers as printed; ``first_global_epoch``/``last_global_epoch`` count on across
        restarts.
    not_computed : list of str
        Columns that are nan in every line of the segment (never updated; not a divergence).
    absent : list of str
        Columns the run prints elsewhere but this segment never prints.
    median_speed : float
        Median samples/sec of the batch lines, outliers excluded (nan if none).
    speed_outliers : list of (int, float)
        ``(line_no, speed)`` of batch or epoch lines judged timer glitches.
    median_epoch_cost : float
        Median ``Training cost`` seconds (Faster R-CNN; nan if none).
    """
    index: int
    stage: int
    kind: str
    reason: str
    first_line: int
    last_line: int
    first_epoch: int
    last_epoch: int
    first_global_epoch: int
    last_global_epoch: int
    n_batch_lines: int = 0
    n_epoch_lines: int = 0
    n_validations: int = 0
    not_computed: List[str] = field(default_factory=list)
    absent: List[str] = field(default_factory=list)
    median_speed: float = float("nan")
    speed_outliers: List[tuple] = field(default_factory=list)
    median_epoch_cost: float = float("nan")
    notes: List[str] = field(default_factory=list)

    @property
    def label(self):
        """Short human label, e.g. ``'stage 2 (plain), epochs 1-4'``."""
        return "stage %d (%s), epochs %d-%d" % (self.stage, self.kind, self.first_epoch,
                                               self.last_epoch)


@dataclass
class UnreadableLine:
    """A line no rule could read, with the reason."""
    line_no: int
    text: str
    reason: str


@dataclass
class Run:
    """Everything between one ``Namespace(...)`` line and the next.

    ``index`` is 1-based as people count runs ("run 45 of 45"). A log that starts without a
    ``Namespace`` line gets an implicit run with ``header=None`` and empty settings.
    """
    index: int
    line_no: int
    header: Optional[str]
    settings: Dict[str, object]
    start_epoch: Optional[int] = None
    batches: List[BatchRecord] = field(default_factory=list)
    epochs: List[EpochRecord] = field(default_factory=list)
    validations: List[ValidationRecord] = field(default_factory=list)
    best_maps: List[BestMapRecord] = field(default_factory=list)
    new_bests: List[NewBestRecord] = field(default_factory=list)
    events: List[EventRecord] = field(default_factory=list)
    segments: List[Segment] = field(default_factory=list)
    divergences: List[Divergence] = field(default_factory=list)
    kind: str = "unknown"
    #: a whole run (:func:`stitch_runs`): the blocks it joins (their ``index``) and, per resume,
    #: ``(cumulative epoch reached before it, block index)``
    blocks: List[int] = field(default_factory=list)
    resume_points: List[tuple] = field(default_factory=list)

    @property
    def metric_names(self):
        """All metric names printed in this run, in first-seen order."""
        names = {}
        for rec in self.batches + self.epochs:
            for name in rec.metrics:
                names.setdefault(name, None)
        return list(names)

    @property
    def final_validation(self):
        """The last validation record, or None."""
        return self.validations[-1] if self.validations else None

    @property
    def best_validation(self):
        """The validation with the highest mAP (first of ties), or None."""
        scored = [v for v in self.validations if finite(v.mean_ap)]
        return max(scored, key=lambda v: v.mean_ap) if scored else None

    @property
    def logged_best_map(self):
        """The best mAP the log itself states last (``best_map is`` or a new-best line).

        In the SSD log this is the best of stage 2 only (0.78201), not the maximum in the run
        (0.78271 at stage-1 epoch 221); reports show both.
        """
        candidates = [(b.line_no, b.value) for b in self.best_maps]
        candidates += [(b.line_no, b.current_map) for b in self.new_bests]
        return max(candidates)[1] if candidates else None

    @property
    def n_epochs_trained(self):
        """Epochs with any line, counted across counter restarts."""
        if not self.segments:
            return 0
        return sum(s.last_global_epoch - s.first_global_epoch + 1 for s in self.segments)

    @property
    def stop_messages(self):
        """Messages of ``stopping: ...`` lines (a run ended by an error), in order."""
        return [e.value for e in self.events if e.kind == "stopped"]

    def timeline(self):
        """All records that carry an epoch, in file order."""
        items = (self.batches + self.epochs + self.validations + self.new_bests
                 + [e for e in self.events if e.epoch is not None])
        return sorted(items, key=lambda rec: rec.line_no)

