"""Parse GAN-KD training logs: the two published logs and every log this project writes.

The authors' published logs (:mod:`gankd_gluon.logs.published`) are messy real artifacts, and
each mess is handled on purpose:

- **Restarts.** Every ``Namespace(...)`` line opens a new :class:`Run` (the Faster R-CNN log has
  45). Inside a run the epoch counter may restart (SSD: stage 1 runs epochs 1..221, then stage 2
  counts from 1 again); a counter that goes down opens a new :class:`Segment`.
- **Stage 2.** ``Loss_D``, ``Loss_G``, ``Loss_D_real`` and ``Loss_D_fake`` print ``nan`` in
  stage 2 because MXNet's ``Loss`` metric reports nan when it was never updated (mxnet 1.9.1
  ``mxnet/metric.py``, ``EvalMetric.get``: nan when ``num_inst == 0``). A segment in which those
  columns are nan throughout is a *plain* stage and the columns are listed in
  :attr:`Segment.not_computed`; they are not a divergence. In the Faster
  R-CNN log stage 2 has no counter restart: the columns turn nan at an epoch boundary (after
  ``GAN_epochs``), which splits the segment there.
- **Divergence.** A value that turns nan/inf after finite values inside one segment (and is not
  such a stage switch) is a :class:`Divergence`.
- **Timer glitches.** The SSD epoch lines report ``Speed: 455747.803 samples/sec``. Speeds more
  than :data:`OUTLIER_FACTOR` times away from the segment's median batch speed are listed in
  :attr:`Segment.speed_outliers` and left out of :attr:`Segment.median_speed`.
- **Separators.** ``Loss_D=-13.622. Loss_G=3.784.  Loss_D_real=...`` (SSD) and
  ``RPN_Conf=0.185,RPN_SmoothL1=...`` (Faster R-CNN) are read by one metric tokenizer; unknown
  metric names are kept. Our stage-1 lines append monitors after the published columns
  (``cosine_length_loss_metric``, ``W_0``...; ``gankd_gluon/engine/diagnostics.py``), which
  stage 2 does not print (:attr:`Segment.absent`).
- **Validation** is a block: ``[Epoch E] <title>Validation: ``, ``classname=AP`` lines, ``mAP=x``.

Lines that match no known kind are counted in :attr:`ParsedLog.unreadable_count`, with the
first :data:`MAX_EXAMPLES` kept as examples; they are never silently skipped. Blank lines are
ignored.
"""
import ast
import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional

__all__ = [
    "ADVERSARIAL_METRICS", "BatchRecord", "EpochRecord", "ValidationRecord", "BestMapRecord",
    "NewBestRecord", "EventRecord", "Segment", "Divergence", "UnreadableLine", "Run",
    "ParsedLog", "parse_log", "parse_lines", "parse_namespace", "stitch_runs",
]

#: Columns computed only in the adversarial stage (the critic and generator terms).
ADVERSARIAL_METRICS = ("Loss_D", "Loss_G", "Loss_D_real", "Loss_D_fake")
#: A speed this many times above or below the segment median is a timer glitch.
OUTLIER_FACTOR = 10.0
#: How many unreadable lines are kept verbatim as examples.
MAX_EXAMPLES = 10

_NUM = r"[-+]?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
_BATCH = re.compile(r"^\[Epoch (\d+)\]\[Batch (\d+)\], Speed: (%s) samples/sec,(.*)$" % _NUM)
_SSD_EPOCH = re.compile(r"^\[Epoch (\d+)\], Speed: (%s) samples/sec,(.*)$" % _NUM)
_FRCNN_EPOCH = re.compile(r"^\[Epoch (\d+)\] Training cost: (%s),(.*)$" % _NUM)
_VAL_HEAD = re.compile(r"^\[Epoch (\d+)\] ([^\[\]=]*Validation):$")
_AP = re.compile(r"^([^=\[\]]+)=(%s)$" % _NUM)
# our mAP line for a metric other than VOC07's: mAP=0.21 (COCO AP@[.5:.95])
_MAP_METRIC = re.compile(r"^mAP=(%s) \((.+)\)$" % _NUM)
_BEST_MAP = re.compile(r"^best_map is (%s)$" % _NUM)
_NEW_BEST = re.compile(r"^\[Epoch (\d+)\] mAP (%s) higher than current best \[(%s)\] "
                       r"saving to (.+)$" % (_NUM, _NUM))
_SAVING = re.compile(r"^\[Epoch (\d+)\] Saving parameters to (.+)$")
_LR = re.compile(r"^\[Epoch (\d+)\] Set (?:(.+) )?learning rate to (%s)$" % _NUM)
_START = re.compile(r"^Start training from \[Epoch (\d+)\]$")
# Lines our trainer writes besides the published kinds (gankd_gluon/engine/loop.py, cli.py).
_RESUMED = re.compile(r"^Resumed from (.+) \(stage (\d+), epoch (\d+) done\)$")
_INTERRUPTED = re.compile(r"^Stopping on (.+) after \[Epoch (\d+)\]\[Batch (\d+)\]; saving$")
_SAVED = re.compile(r"^Saved (.+); continue with --resume (.+)$")
_DATA = re.compile(r"^data: (.+)$")
_STOPPED = re.compile(r"^stopping: (.*)$")
_NAMESPACE = re.compile(r"^Namespace\((.*)$")
# One metric: optional comma/space separator, name=value, optional trailing '.' (SSD style).
_METRIC = re.compile(r"\s*,?\s*([A-Za-z_][\w\-/]*)=(%s)\.?" % _NUM)


def _finite(value):
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
        finite = [v for v in self.validations if _finite(v.mean_ap)]
        return max(finite, key=lambda v: v.mean_ap) if finite else None

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


@dataclass
class ParsedLog:
    """The result of :func:`parse_log`."""
    path: str
    n_lines: int
    runs: List[Run]
    unreadable_count: int = 0
    unreadable_examples: List[UnreadableLine] = field(default_factory=list)

    @property
    def kind(self):
        """``'ssd'``, ``'frcnn'`` or ``'unknown'``: the most common kind among the runs."""
        kinds = [r.kind for r in self.runs if r.kind != "unknown"]
        if not kinds:
            return "unknown"
        return max(set(kinds), key=kinds.count)

    @property
    def n_validations(self):
        return sum(len(r.validations) for r in self.runs)

    def run(self, k=-1):
        """Return run ``k``: 1-based (``run(45)``), or negative from the end (``run(-1)``).

        Raises
        ------
        IndexError
            With a message naming how many runs the log has.
        """
        n = len(self.runs)
        if k == 0 or not -n <= k <= n:
            raise IndexError("%s has %d run(s); run %d does not exist (runs count from 1, "
                             "negative from the end)" % (self.path, n, k))
        return self.runs[k - 1] if k > 0 else self.runs[k]

    def whole_run(self):
        """The last run as one whole: the last block not opened by a resume, and the blocks
        that resume it (:func:`stitch_runs`); None for a log without runs."""
        return stitch_runs(self.runs) if self.runs else None

    def describe_unreadable(self):
        """One line saying how many lines were unreadable, with the first example."""
        if not self.unreadable_count:
            return "%s: all %d lines read" % (self.path, self.n_lines)
        first = self.unreadable_examples[0]
        return ("%s: %d unreadable line(s) of %d (first: line %d, %s: %r)"
                % (self.path, self.unreadable_count, self.n_lines, first.line_no, first.reason,
                   first.text[:120]))


def _split_top_level(text):
    """Split ``a=1, b='x,y', c=[1, 2]`` at the commas outside quotes and brackets."""
    parts, depth, quote, start, i = [], 0, None, 0, 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_namespace(line):
    """Parse a ``Namespace(a=1, b='x')`` line into a dict.

    Values are read with ``ast.literal_eval``; a value that is not a literal (``<function
    ...>``) is kept as its source text. A truncated line gives the settings read so far.

    Returns
    -------
    settings : dict
    complete : bool
        False when the closing parenthesis is missing or a field has no ``=``.
    """
    match = _NAMESPACE.match(line.strip())
    if not match:
        raise ValueError("not a Namespace line: %r" % line[:80])
    body = match.group(1)
    complete = body.endswith(")")
    if complete:
        body = body[:-1]
    settings = {}
    for part in _split_top_level(body):
        key, sep, value = part.partition("=")
        if not sep or not key.strip().isidentifier():
            complete = False
            continue
        try:
            settings[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            settings[key.strip()] = value.strip()
    return settings, complete


def _parse_metrics(tail):
    """Read ``name=value`` items of either separator style; None if anything is left over."""
    metrics, pos = {}, 0
    while tail[pos:].strip():
        match = _METRIC.match(tail, pos)
        if not match:
            return None
        metrics[match.group(1)] = float(match.group(2))
        pos = match.end()
    return metrics


class _Parser:
    """Line-by-line state machine behind :func:`parse_lines`."""

    def __init__(self, source):
        self.log = ParsedLog(path=source, n_lines=0, runs=[])
        self.pending_val = None  # (ValidationRecord, header line text) while inside a block

    # -- bookkeeping -------------------------------------------------------------------------
    def unreadable(self, line_no, text, reason):
        self.log.unreadable_count += 1
        if len(self.log.unreadable_examples) < MAX_EXAMPLES:
            self.log.unreadable_examples.append(UnreadableLine(line_no, text, reason))

    def run(self, line_no):
        if not self.log.runs:
            # Lines before any Namespace header (a log whose first lines were lost).
            self.log.runs.append(Run(index=1, line_no=line_no, header=None, settings={}))
        return self.log.runs[-1]

    def close_validation(self, reason):
        val, header = self.pending_val
        self.pending_val = None
        self.unreadable(val.line_no, header, "validation block %s after %d class line(s), "
                        "no mAP line" % (reason, len(val.aps)))

    # -- one line ----------------------------------------------------------------------------
    def feed(self, line_no, raw):
        line = raw.strip()
        if self.pending_val is not None:
            match = _MAP_METRIC.match(line)
            if match:
                val = self.pending_val[0]
                val.mean_ap, val.metric = float(match.group(1)), match.group(2)
                self.run(line_no).validations.append(val)
                self.pending_val = None
                return
            match = _AP.match(line)
            if match:
                val = self.pending_val[0]
                name, value = match.group(1).strip(), float(match.group(2))
                if name == "mAP":
                    val.mean_ap = value
                    self.run(line_no).validations.append(val)
                    self.pending_val = None
                else:
                    val.aps[name] = value
                return
            self.close_validation("interrupted at line %d" % line_no)
        if not line:
            return
        self.read_line(line_no, line)

    def read_line(self, line_no, line):
        if line.startswith("Namespace("):
            settings, complete = parse_namespace(line)
            self.log.runs.append(Run(index=len(self.log.runs) + 1, line_no=line_no,
                                     header=line, settings=settings))
            if not complete:
                self.unreadable(line_no, line, "Namespace line truncated (settings partly read)")
            return
        match = _BATCH.match(line)
        if match:
            metrics = _parse_metrics(match.group(4))
            if metrics is None:
                self.unreadable(line_no, line, "batch line with unreadable metrics")
                return
            style = "frcnn" if match.group(4).startswith(" ") else "ssd"
            self.run(line_no).batches.append(BatchRecord(
                line_no, int(match.group(1)), int(match.group(2)), float(match.group(3)),
                metrics, style))
            return
        for pattern, is_cost in ((_SSD_EPOCH, False), (_FRCNN_EPOCH, True)):
            match = pattern.match(line)
            if match:
                metrics = _parse_metrics(match.group(3))
                if metrics is None:
                    self.unreadable(line_no, line, "epoch line with unreadable metrics")
                    return
                value = float(match.group(2))
                self.run(line_no).epochs.append(EpochRecord(
                    line_no, int(match.group(1)), metrics,
                    speed=None if is_cost else value, cost=value if is_cost else None))
                return
        match = _VAL_HEAD.match(line)
        if match:
            val = ValidationRecord(line_no, int(match.group(1)), match.group(2), {},
                                   float("nan"))
            self.pending_val = (val, line)
            return
        match = _BEST_MAP.match(line)
        if match:
            run = self.run(line_no)
            value = float(match.group(1))
            last = run.validations[-1] if run.validations else None
            if last is not None and last.logged_best is None:
                last.logged_best = value
            run.best_maps.append(BestMapRecord(line_no, value, last.epoch if last else None))
            return
        match = _NEW_BEST.match(line)
        if match:
            self.run(line_no).new_bests.append(NewBestRecord(
                line_no, int(match.group(1)), float(match.group(2)), float(match.group(3)),
                match.group(4)))
            return
        match = _SAVING.match(line)
        if match:
            self.run(line_no).events.append(EventRecord(
                line_no, int(match.group(1)), "saving", match.group(2), line))
            return
        match = _LR.match(line)
        if match:
            self.run(line_no).events.append(EventRecord(
                line_no, int(match.group(1)), "lr", float(match.group(3)), line,
                detail=match.group(2) or ""))
            return
        match = _START.match(line)
        if match:
            run = self.run(line_no)
            epoch = int(match.group(1))
            if run.start_epoch is None:
                run.start_epoch = epoch
            run.events.append(EventRecord(line_no, epoch, "start", epoch, line))
            return
        match = _RESUMED.match(line)
        if match:
            self.run(line_no).events.append(EventRecord(
                line_no, None, "resumed", match.group(1), line,
                detail="stage %s, epoch %s done" % (match.group(2), match.group(3))))
            return
        match = _INTERRUPTED.match(line)
        if match:
            self.run(line_no).events.append(EventRecord(
                line_no, int(match.group(2)), "interrupted", match.group(1), line,
                detail=match.group(3)))
            return
        match = _SAVED.match(line)
        if match:
            self.run(line_no).events.append(EventRecord(line_no, None, "saved", match.group(1),
                                                        line))
            return
        match = _STOPPED.match(line)
        if match:
            self.run(line_no).events.append(EventRecord(line_no, None, "stopped",
                                                        match.group(1), line))
            return
        match = _DATA.match(line)
        if match:
            self.run(line_no).events.append(EventRecord(line_no, None, "data", match.group(1),
                                                        line))
            return
        self.unreadable(line_no, line, _guess_reason(line))

    def finish(self, n_lines):
        if self.pending_val is not None:
            self.close_validation("truncated at end of file")
        self.log.n_lines = n_lines
        for run in self.log.runs:
            _segment_run(run)
            run.kind = _run_kind(run)
        return self.log


def _guess_reason(line):
    if "\x00" in line or "\ufffd" in line:
        return "binary or undecodable bytes"
    if line.startswith("[Epoch"):
        return "epoch line of unknown form (truncated?)"
    if _AP.match(line):
        return "name=value line outside a validation block"
    return "unknown line kind"


def _run_kind(run):
    """Tell the detector from the line shapes, falling back to the settings."""
    if any(e.cost is not None for e in run.epochs) or any(b.style == "frcnn"
                                                           for b in run.batches):
        return "frcnn"
    if (run.batches or any(e.speed is not None for e in run.epochs)
            or any("StudentNet" in v.title for v in run.validations)):
        return "ssd"
    hint = " ".join(str(run.settings.get(k, "")) for k in ("save_prefix", "network",
                                                           "model", "name")).lower()
    if "rcnn" in hint:
        return "frcnn"
    if "ssd" in hint:
        return "ssd"
    return "unknown"


def _metric_records(items):
    return [rec for rec in items if isinstance(rec, (BatchRecord, EpochRecord))]


def _plain_tail_start(records):
    """Index of the first record from which every adversarial column is nan or missing.

    Returns ``None`` when no record has an adversarial column at all, ``len(records)`` when
    the last record still has a finite one.
    """
    if not any(name in rec.metrics for rec in records for name in ADVERSARIAL_METRICS):
        return None
    start = len(records)
    for i in range(len(records) - 1, -1, -1):
        if any(_finite(records[i].metrics.get(name)) for name in ADVERSARIAL_METRICS):
            break
        start = i
    return start


def _is_stage_switch(records, start):
    """A nan tail is stage 2, not a divergence, when it begins with an epoch's first line and
    the detection losses stay finite there."""
    first, before = records[start], records[start - 1]
    if first.epoch == before.epoch:
        return False
    others = [v for k, v in first.metrics.items() if k not in ADVERSARIAL_METRICS]
    return all(_finite(v) for v in others)


def _split_counter(items):
    """Split a run's timeline where the epoch counter goes down or a new ``Start training``
    line follows training lines (our trainer writes one per stage, so a stage 2 that starts
    at the same epoch number as stage 1 ended is still found)."""
    chunks, prev = [], None
    for rec in items:
        is_start = isinstance(rec, EventRecord) and rec.kind == "start"
        trained = bool(chunks) and any(not isinstance(r, EventRecord) for r in chunks[-1][1])
        if not chunks:
            chunks.append(("run start", []))
        elif is_start and trained:
            chunks.append(("new 'Start training from [Epoch %d]' line" % rec.epoch, []))
        elif not is_start and rec.epoch < prev and not _opened_by_start(chunks[-1][1]):
            chunks.append(("epoch counter restarts (%d -> %d)" % (prev, rec.epoch), []))
        chunks[-1][1].append(rec)
        prev = rec.epoch
    return chunks


def _opened_by_start(items):
    """True while a chunk holds only its opening ``Start training`` line."""
    return bool(items) and all(isinstance(r, EventRecord) and r.kind == "start" for r in items)


def _segment_run(run):
    """Fill ``run.segments``, ``run.divergences`` and each record's segment/stage/epoch."""
    pieces = []
    for reason, items in _split_counter(run.timeline()):
        if all(isinstance(rec, EventRecord) for rec in items):
            continue  # header-only start (the run stopped before its first logged batch)
        records = _metric_records(items)
        start = _plain_tail_start(records)
        if start is not None and 0 < start < len(records) and _is_stage_switch(records, start):
            switch_epoch = records[start].epoch
            cut = next(i for i, rec in enumerate(items) if rec.epoch >= switch_epoch)
            pieces.append((reason, items[:cut]))
            pieces.append(("adversarial columns turn nan from epoch %d" % switch_epoch,
                           items[cut:]))
        else:
            pieces.append((reason, items))

    all_names = run.metric_names
    offset, last_global = 0, None
    for index, (reason, items) in enumerate(pieces):
        if last_global is not None and not reason.startswith("adversarial"):
            offset = last_global + 1 - items[0].epoch
        records = _metric_records(items)
        adversarial = any(_finite(rec.metrics.get(name)) for rec in records
                          for name in ADVERSARIAL_METRICS)
        stage = 1 if adversarial else 2
        seg = Segment(index=index, stage=stage, kind="adversarial" if adversarial else "plain",
                      reason=reason, first_line=items[0].line_no, last_line=items[-1].line_no,
                      first_epoch=items[0].epoch, last_epoch=items[-1].epoch,
                      first_global_epoch=items[0].epoch + offset,
                      last_global_epoch=items[-1].epoch + offset)
        for rec in items:
            rec.segment, rec.stage, rec.global_epoch = index, stage, rec.epoch + offset
        _fill_segment_stats(seg, items, records, all_names)
        _find_divergences(run, seg, records)
        _check_gan_epochs(run, seg, reason)
        run.segments.append(seg)
        last_global = seg.last_global_epoch


def _fill_segment_stats(seg, items, records, all_names):
    seg.n_batch_lines = sum(isinstance(r, BatchRecord) for r in records)
    seg.n_epoch_lines = sum(isinstance(r, EpochRecord) for r in records)
    seg.n_validations = sum(isinstance(r, ValidationRecord) for r in items)
    present = {}
    for rec in records:
        for name, value in rec.metrics.items():
            present.setdefault(name, []).append(value)
    seg.not_computed = [n for n, vals in present.items() if not any(_finite(v) for v in vals)]
    seg.absent = [n for n in all_names if n not in present] if records else []
    batch_speeds = [r.speed for r in records if isinstance(r, BatchRecord)
                    and _finite(r.speed)]
    all_speeds = [(r.line_no, r.speed) for r in records if r.speed is not None]
    reference = batch_speeds or [s for _, s in all_speeds if _finite(s)]
    if reference:
        median = statistics.median(reference)
        seg.speed_outliers = [(ln, s) for ln, s in all_speeds
                              if not _finite(s) or median <= 0
                              or not median / OUTLIER_FACTOR <= s <= median * OUTLIER_FACTOR]
        outlier_lines = {ln for ln, _ in seg.speed_outliers}
        kept = [r.speed for r in records if isinstance(r, BatchRecord) and _finite(r.speed)
                and r.line_no not in outlier_lines]
        if not kept:
            kept = [s for ln, s in all_speeds if ln not in outlier_lines]
        if kept:
            seg.median_speed = statistics.median(kept)
    costs = [r.cost for r in records if isinstance(r, EpochRecord) and _finite(r.cost)]
    if costs:
        seg.median_epoch_cost = statistics.median(costs)


def _find_divergences(run, seg, records):
    """Flag the first non-finite value of each metric that was finite earlier in the segment."""
    seen_finite, flagged = set(), set()
    for rec in records:
        for name, value in rec.metrics.items():
            if _finite(value):
                seen_finite.add(name)
            elif name in seen_finite and name not in flagged:
                flagged.add(name)
                run.divergences.append(Divergence(
                    rec.line_no, rec.epoch, getattr(rec, "batch", None), name, value,
                    seg.index, seg.stage))


def _check_gan_epochs(run, seg, reason):
    """Note whether an in-counter switch agrees with a ``GAN_epochs``-like setting."""
    if not reason.startswith("adversarial columns"):
        return
    for key, value in run.settings.items():
        if key.lower() == "gan_epochs" and isinstance(value, int):
            # The published Faster R-CNN run trains epochs 0..26 adversarially with
            # GAN_epochs=26 and prints nan from epoch 27: the switch comes at GAN_epochs + 1.
            expected = value + 1
            agree = "agrees with" if seg.first_epoch == expected else "does NOT agree with"
            seg.notes.append("switch at epoch %d %s %s=%d" % (seg.first_epoch, agree, key,
                                                               value))


def parse_lines(lines, source="<lines>"):
    """Parse an iterable of log lines (with or without newlines).

    Parameters
    ----------
    lines : iterable of str
    source : str
        Name used in messages.

    Returns
    -------
    ParsedLog
    """
    parser = _Parser(source)
    n_lines = 0
    for n_lines, line in enumerate(lines, start=1):
        parser.feed(n_lines, line.rstrip("\r\n"))
    return parser.finish(n_lines)


def parse_log(path):
    """Parse a training log file.

    Undecodable bytes are replaced (and the lines holding them counted as unreadable), so a
    corrupted file gives a count, not a traceback.

    Parameters
    ----------
    path : str

    Returns
    -------
    ParsedLog

    Raises
    ------
    OSError
        When the file cannot be opened.
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        return parse_lines(handle, source=str(path))


def _resumed_from(run):
    """``(stage, epoch done)`` of a block's ``Resumed from`` line, or None."""
    for event in run.events:
        if event.kind == "resumed":
            match = re.match(r"stage (\d+), epoch (\d+) done", event.detail)
            return int(match.group(1)), int(match.group(2))
    return None


def _first_stage(run, resumed):
    """The stage number of a block's first segment.

    A fresh block starts at the stage its settings say (``--stage 2``, or a run without
    adversarial stage, starts at 2; our trainer numbers a plain run's only stage 2). A resumed
    block continues stage S when its first epoch follows the checkpoint's (``E + 1``; Faster
    R-CNN logs print epochs from 0), else it starts the next stage.
    """
    if resumed is None:
        gan = any(k.lower() == "gan_epochs" for k in run.settings)
        return 2 if (not gan or str(run.settings.get("stage")) == "2") else 1
    stage, done = resumed
    first = next((rec.epoch for rec in run.timeline() if not isinstance(rec, EventRecord)),
                 None)
    if first is None:
        return stage
    shift = 1 if run.kind == "frcnn" else 0
    return stage if first + shift == done + 1 else stage + 1


def stitch_runs(runs):
    """Join a run that was resumed any number of times into one :class:`Run`.

    Each ``Namespace`` line opens a block (:class:`Run`). The whole run is the last block not
    opened by a resume (a ``Resumed from`` line) with every block after it. Records are keyed
    by (stage, epoch); a block replaces the epochs of earlier blocks from its first key on
    (a run interrupted after epoch 7 and resumed from its epoch-5 checkpoint keeps epochs 1-5
    of the first block and 6- of the second). ``Start training`` lines of resumed blocks are
    left out (a resume is not a stage boundary); the resume points are kept in
    :attr:`Run.resume_points`.

    Parameters
    ----------
    runs : list of Run
        The blocks of one log, in file order (``ParsedLog.runs``).

    Returns
    -------
    Run
        ``index`` is that of the last block, ``blocks`` the indices joined; segments and
        cumulative epochs computed afresh. The blocks are not changed.
    """
    import dataclasses
    start = max(i for i, r in enumerate(runs) if i == 0 or _resumed_from(r) is None)
    blocks = runs[start:]
    kept, resumes = [], []
    for n, block in enumerate(blocks):
        resumed = _resumed_from(block) if n else None
        base = _first_stage(block, resumed)
        timeline = block.timeline()
        trained = [rec.line_no for rec in timeline if not isinstance(rec, EventRecord)]
        opening = trained[0] if trained else float("inf")
        # the Start line a resume writes is not a stage boundary; later ones are
        items = [rec for rec in timeline
                 if not (n and isinstance(rec, EventRecord) and rec.kind == "start"
                         and rec.line_no < opening)]
        records = [((base + rec.segment, rec.epoch), rec) for rec in items]
        if not records:
            if n:
                resumes.append((len(kept), block.index))      # a resume that did nothing
            continue
        first = min(key for key, rec in records if not isinstance(rec, EventRecord)) \
            if any(not isinstance(rec, EventRecord) for _, rec in records) else records[0][0]
        if n:
            kept = [(key, rec) for key, rec in kept if key < first]
            resumes.append((len(kept), block.index))
        kept += records
    last = blocks[-1]
    whole = Run(index=last.index, line_no=blocks[0].line_no, header=last.header,
                settings=dict(last.settings), start_epoch=blocks[0].start_epoch)
    whole.blocks = [b.index for b in blocks]
    copies = [dataclasses.replace(rec) for _, rec in kept]
    for rec in copies:
        if isinstance(rec, BatchRecord):
            whole.batches.append(rec)
        elif isinstance(rec, EpochRecord):
            whole.epochs.append(rec)
        elif isinstance(rec, ValidationRecord):
            whole.validations.append(rec)
        elif isinstance(rec, NewBestRecord):
            whole.new_bests.append(rec)
        else:
            whole.events.append(rec)
    kept_lines = {rec.line_no for rec in whole.validations}
    for block in blocks:
        whole.events += [dataclasses.replace(e) for e in block.events if e.epoch is None]
        # a "best_map is" line belongs to the validation just before it
        whole.best_maps += [dataclasses.replace(b) for b in block.best_maps
                            if any(v.line_no < b.line_no and v.line_no in kept_lines
                                   and v.epoch == b.epoch for v in block.validations)]
    _segment_run(whole)
    whole.kind = _run_kind(whole)
    for position, index in resumes:
        reached = copies[position - 1].global_epoch if position else 0
        whole.resume_points.append((reached, index))
    return whole
