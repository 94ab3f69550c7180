"""The line parser: each line of a training log read into a record of :mod:`.records`.

One table, :data:`LINE_KINDS`, pairs the pattern of each line kind with its handler; the first
pattern that matches reads the line. The line kinds are those :mod:`gankd_gluon.logs.format`
writes, as the authors' published logs print them (:mod:`gankd_gluon.logs.published`):

- **Runs.** Every ``Namespace(...)`` line opens a new :class:`Run` (the Faster R-CNN log has
  45). Lines before the first one go to an implicit run with ``header=None``.
- **Separators.** ``Loss_D=-13.622. Loss_G=3.784.  Loss_D_real=...`` (SSD) and
  ``RPN_Conf=0.185,RPN_SmoothL1=...`` (Faster R-CNN) are read by one metric tokenizer; unknown
  metric names are kept.
- **Validation** is a block: ``[Epoch E] <title>Validation: ``, ``classname=AP`` lines, ``mAP=x``
  (or ``mAP=x (<metric>)`` for a metric other than VOC07's).

Lines that match no known kind are counted in :attr:`LineReadout.unreadable_count`, with the
first :data:`MAX_EXAMPLES` kept as examples; they are never silently skipped. Blank lines are
ignored.
"""
import ast
import re
from dataclasses import dataclass, field
from typing import List

from .records import (BatchRecord, BestMapRecord, EpochRecord, EventRecord, NewBestRecord, Run,
                      UnreadableLine, ValidationRecord)

__all__ = ["MAX_EXAMPLES", "LINE_KINDS", "LineReadout", "read_lines", "parse_namespace"]

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
_NAMESPACE_START = re.compile(r"^Namespace\(")   # the line kind (parse_namespace reads it)
# One metric: optional comma/space separator, name=value, optional trailing '.' (SSD style).
_METRIC = re.compile(r"\s*,?\s*([A-Za-z_][\w\-/]*)=(%s)\.?" % _NUM)


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



@dataclass
class LineReadout:
    """What :func:`read_lines` read: the runs (not yet segmented) and the unreadable lines."""
    n_lines: int
    runs: List[Run]
    unreadable_count: int = 0
    unreadable_examples: List[UnreadableLine] = field(default_factory=list)


class _LineReader:
    """Line-by-line state machine behind :func:`read_lines`: the open run, and the validation
    block being read (its class lines and ``mAP`` line end it)."""

    def __init__(self):
        self.out = LineReadout(n_lines=0, runs=[])
        self.pending_val = None  # (ValidationRecord, header line text) while inside a block

    # -- bookkeeping -------------------------------------------------------------------------
    def unreadable(self, line_no, text, reason):
        self.out.unreadable_count += 1
        if len(self.out.unreadable_examples) < MAX_EXAMPLES:
            self.out.unreadable_examples.append(UnreadableLine(line_no, text, reason))

    def run(self, line_no):
        if not self.out.runs:
            # Lines before any Namespace header (a log whose first lines were lost).
            self.out.runs.append(Run(index=1, line_no=line_no, header=None, settings={}))
        return self.out.runs[-1]

    def event(self, line_no, epoch, kind, value, line, detail=""):
        self.run(line_no).events.append(EventRecord(line_no, epoch, kind, value, line,
                                                    detail=detail))

    def close_validation(self, reason):
        val, header = self.pending_val
        self.pending_val = None
        self.unreadable(val.line_no, header, "validation block %s after %d class line(s), "
                        "no mAP line" % (reason, len(val.aps)))

    def end_validation(self, line_no):
        self.run(line_no).validations.append(self.pending_val[0])
        self.pending_val = None

    # -- one line ----------------------------------------------------------------------------
    def feed(self, line_no, raw):
        line = raw.strip()
        if self.pending_val is not None:
            for pattern, handler in _VALIDATION_KINDS:
                match = pattern.match(line)
                if match:
                    handler(self, line_no, match)
                    return
            self.close_validation("interrupted at line %d" % line_no)
        if not line:
            return
        for pattern, handler in LINE_KINDS:
            match = pattern.match(line)
            if match:
                handler(self, line_no, line, match)
                return
        self.unreadable(line_no, line, _guess_reason(line))

    def finish(self, n_lines):
        if self.pending_val is not None:
            self.close_validation("truncated at end of file")
        self.out.n_lines = n_lines
        return self.out

    # -- inside a validation block: handler(reader, line_no, match) ---------------------------
    def _map_metric(self, line_no, match):
        val = self.pending_val[0]
        val.mean_ap, val.metric = float(match.group(1)), match.group(2)
        self.end_validation(line_no)

    def _class_ap(self, line_no, match):
        val = self.pending_val[0]
        name, value = match.group(1).strip(), float(match.group(2))
        if name == "mAP":
            val.mean_ap = value
            self.end_validation(line_no)
        else:
            val.aps[name] = value

    # -- one handler per line kind: handler(reader, line_no, line, match) ---------------------
    def _namespace(self, line_no, line, match):
        settings, complete = parse_namespace(line)
        self.out.runs.append(Run(index=len(self.out.runs) + 1, line_no=line_no, header=line,
                                 settings=settings))
        if not complete:
            self.unreadable(line_no, line, "Namespace line truncated (settings partly read)")

    def _batch(self, line_no, line, match):
        metrics = _parse_metrics(match.group(4))
        if metrics is None:
            self.unreadable(line_no, line, "batch line with unreadable metrics")
            return
        style = "frcnn" if match.group(4).startswith(" ") else "ssd"
        self.run(line_no).batches.append(BatchRecord(
            line_no, int(match.group(1)), int(match.group(2)), float(match.group(3)),
            metrics, style))

    def _epoch(self, line_no, line, match, is_cost):
        metrics = _parse_metrics(match.group(3))
        if metrics is None:
            self.unreadable(line_no, line, "epoch line with unreadable metrics")
            return
        value = float(match.group(2))
        self.run(line_no).epochs.append(EpochRecord(
            line_no, int(match.group(1)), metrics,
            speed=None if is_cost else value, cost=value if is_cost else None))

    def _ssd_epoch(self, line_no, line, match):
        self._epoch(line_no, line, match, is_cost=False)

    def _frcnn_epoch(self, line_no, line, match):
        self._epoch(line_no, line, match, is_cost=True)

    def _validation_head(self, line_no, line, match):
        val = ValidationRecord(line_no, int(match.group(1)), match.group(2), {}, float("nan"))
        self.pending_val = (val, line)

    def _best_map(self, line_no, line, match):
        run = self.run(line_no)
        value = float(match.group(1))
        last = run.validations[-1] if run.validations else None
        if last is not None and last.logged_best is None:
            last.logged_best = value
        run.best_maps.append(BestMapRecord(line_no, value, last.epoch if last else None))

    def _new_best(self, line_no, line, match):
        self.run(line_no).new_bests.append(NewBestRecord(
            line_no, int(match.group(1)), float(match.group(2)), float(match.group(3)),
            match.group(4)))

    def _saving(self, line_no, line, match):
        self.event(line_no, int(match.group(1)), "saving", match.group(2), line)

    def _lr(self, line_no, line, match):
        self.event(line_no, int(match.group(1)), "lr", float(match.group(3)), line,
                   detail=match.group(2) or "")

    def _start(self, line_no, line, match):
        run = self.run(line_no)
        epoch = int(match.group(1))
        if run.start_epoch is None:
            run.start_epoch = epoch
        run.events.append(EventRecord(line_no, epoch, "start", epoch, line))

    def _resumed(self, line_no, line, match):
        self.event(line_no, None, "resumed", match.group(1), line,
                   detail="stage %s, epoch %s done" % (match.group(2), match.group(3)))

    def _interrupted(self, line_no, line, match):
        self.event(line_no, int(match.group(2)), "interrupted", match.group(1), line,
                   detail=match.group(3))

    def _saved(self, line_no, line, match):
        self.event(line_no, None, "saved", match.group(1), line)

    def _stopped(self, line_no, line, match):
        self.event(line_no, None, "stopped", match.group(1), line)

    def _data(self, line_no, line, match):
        self.event(line_no, None, "data", match.group(1), line)


#: Inside a validation block: the mAP line with a metric name, then ``name=AP`` (``mAP=x``
#: ends the block). Any other line interrupts the block and is read as a line of its own.
_VALIDATION_KINDS = (
    (_MAP_METRIC, _LineReader._map_metric),
    (_AP, _LineReader._class_ap),
)

#: (pattern, handler) per line kind, tried in order; the first match reads the line.
LINE_KINDS = (
    (_NAMESPACE_START, _LineReader._namespace),
    (_BATCH, _LineReader._batch),
    (_SSD_EPOCH, _LineReader._ssd_epoch),
    (_FRCNN_EPOCH, _LineReader._frcnn_epoch),
    (_VAL_HEAD, _LineReader._validation_head),
    (_BEST_MAP, _LineReader._best_map),
    (_NEW_BEST, _LineReader._new_best),
    (_SAVING, _LineReader._saving),
    (_LR, _LineReader._lr),
    (_START, _LineReader._start),
    (_RESUMED, _LineReader._resumed),
    (_INTERRUPTED, _LineReader._interrupted),
    (_SAVED, _LineReader._saved),
    (_STOPPED, _LineReader._stopped),
    (_DATA, _LineReader._data),
)


def _guess_reason(line):
    if "\x00" in line or "\ufffd" in line:
        return "binary or undecodable bytes"
    if line.startswith("[Epoch"):
        return "epoch line of unknown form (truncated?)"
    if _AP.match(line):
        return "name=value line outside a validation block"
    return "unknown line kind"


def read_lines(lines):
    """Read an iterable of log lines (with or without newlines) into runs of records.

    Parameters
    ----------
    lines : iterable of str

    Returns
    -------
    LineReadout
        The runs in file order (records filled; segments, stages and cumulative epochs not
        yet: :func:`gankd_gluon.logs.segments.segment_run`), the number of lines, and the
        unreadable lines (count and the first :data:`MAX_EXAMPLES`).
    """
    reader = _LineReader()
    n_lines = 0
    for n_lines, line in enumerate(lines, start=1):
        reader.feed(n_lines, line.rstrip("\r\n"))
    return reader.finish(n_lines)
