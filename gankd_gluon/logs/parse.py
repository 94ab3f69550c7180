"""Parse GAN-KD training logs: the two published logs and every log this project writes.

Reading a log takes three modules, one job each:

- :mod:`.lines` reads each line into a record (a table of (pattern, handler) pairs, one per
  line kind) and opens a :class:`Run` at every ``Namespace(...)`` line;
- :mod:`.segments` splits each run where its epoch counter restarts or its stage changes,
  finds divergences and timer glitches, and joins resumed blocks (:func:`stitch_runs`);
- :mod:`.records` holds the dataclasses they fill.

This module puts them together (:func:`parse_log`, :func:`parse_lines`, :class:`ParsedLog`)
and keeps every public name of the three importable from here.

Lines that match no known kind are counted in :attr:`ParsedLog.unreadable_count`, with the
first :data:`MAX_EXAMPLES` kept as examples; they are never silently skipped. Blank lines are
ignored.
"""
from dataclasses import dataclass, field
from typing import List

from .lines import MAX_EXAMPLES, parse_namespace, read_lines
from .records import (BatchRecord, BestMapRecord, Divergence, EpochRecord, EventRecord,
                      NewBestRecord, Run, Segment, UnreadableLine, ValidationRecord)
from .segments import ADVERSARIAL_METRICS, OUTLIER_FACTOR, run_kind, segment_run, stitch_runs

__all__ = [
    "ADVERSARIAL_METRICS", "BatchRecord", "EpochRecord", "ValidationRecord", "BestMapRecord",
    "NewBestRecord", "EventRecord", "Segment", "Divergence", "UnreadableLine", "Run",
    "ParsedLog", "parse_log", "parse_lines", "parse_namespace", "stitch_runs",
    "OUTLIER_FACTOR", "MAX_EXAMPLES",
]


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
    readout = read_lines(lines)
    for run in readout.runs:
        segment_run(run)
        run.kind = run_kind(run)
    return ParsedLog(path=source, n_lines=readout.n_lines, runs=readout.runs,
                     unreadable_count=readout.unreadable_count,
                     unreadable_examples=readout.unreadable_examples)


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
