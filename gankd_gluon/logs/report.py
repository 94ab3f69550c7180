"""Compare two parsed training logs: markdown report, three PNG plots, an exit status.

:func:`compare_logs` is what ``scripts/compare_logs.py`` runs: it reads both logs
(:mod:`.parse`), takes the numbers (:mod:`.numbers`), draws the figures (:mod:`.plots`) and
writes ``report.md`` from the templates of :mod:`.markdown`. :func:`summarize_log` is the
one-file summary the gallery shows (:mod:`.markdown`).

Conventions
-----------
- A run is picked by its 1-based index in the file (``-1`` = last, the default).
- Epochs are shown as printed, and also "cumulative": the count goes on across counter
  restarts, so the published SSD stage-2 epoch 1 is cumulative epoch 222. Plots use the
  cumulative count; batch lines sit between the previous epoch's end and their own.
- "Best mAP" is the maximum over the run's validations; the value the log states itself
  (``best_map is``, or the last ``higher than current best`` line) is shown beside it,
  because in the published SSD log they differ (0.78201 stated, 0.78271 at stage-1 epoch 221).
"""
import os
from dataclasses import dataclass, field
from typing import List, Optional

from ..usage import EXIT_FAULT, EXIT_OK, EXIT_USAGE
from .markdown import (DIAGNOSTICS_NOTE, KIND_NAMES, compare_report, gate_message,
                       not_comparable_message, summarize_log)
from .numbers import (DIAGNOSTICS, epoch_end_values, epochs_to_fraction, loss_panels,
                      map_drop_gate, settings_diff)
from .parse import parse_log
from .plots import PLOTS, plot_losses, plot_map, plot_per_class_ap

__all__ = ["CompareResult", "compare_logs", "summarize_log", "settings_diff",
           "epochs_to_fraction", "epoch_end_values", "loss_panels", "plot_losses", "plot_map",
           "plot_per_class_ap", "EXIT_OK", "EXIT_MAP_DROP", "EXIT_UNREADABLE", "KIND_NAMES",
           "DIAGNOSTICS", "DIAGNOSTICS_NOTE"]

#: ``--max-map-drop`` gate failed (or could not be checked): the exit-code table's 1.
EXIT_MAP_DROP = EXIT_FAULT
#: A file could not be read, holds no log lines, or the requested run does not exist: bad input.
EXIT_UNREADABLE = EXIT_USAGE


# -- the comparison --------------------------------------------------------------------------
@dataclass
class CompareResult:
    """What :func:`compare_logs` did: exit status, messages for the terminal, files written."""
    exit_code: int
    messages: List[str] = field(default_factory=list)
    report_path: Optional[str] = None
    plot_paths: List[str] = field(default_factory=list)
    comparable: bool = False


def _load(path, k, label, messages):
    """Parse ``path`` and pick run ``k``; None (with a message) when that is impossible."""
    try:
        parsed = parse_log(path)
    except (OSError, UnicodeError) as err:
        messages.append("error: cannot read %s log %s: %s" % (label, path, err))
        return None, None
    if parsed.unreadable_count:
        messages.append("warning: " + parsed.describe_unreadable())
    if not parsed.runs:
        messages.append("error: %s log %s has no training-log lines (%d lines, %d unreadable)"
                        % (label, path, parsed.n_lines, parsed.unreadable_count))
        return None, None
    if k is None:
        return parsed, parsed.whole_run()
    try:
        return parsed, parsed.run(k)
    except IndexError as err:
        messages.append("error: %s log: %s" % (label, err))
        return None, None


def compare_logs(published, ours, out_dir, published_run=-1, run=None, max_map_drop=None,
                 labels=("published", "ours"), title=None, plots=True):
    """Compare run ``published_run`` of ``published`` with run ``run`` of ``ours``.

    Writes ``report.md`` and, when the logs are of the same detector kind, ``losses.png``,
    ``map.png`` and ``per_class_ap.png`` into ``out_dir``.

    Parameters
    ----------
    published, ours : str
        Log paths.
    out_dir : str
        Output directory (created).
    published_run, run : int or None
        1-based run (``Namespace`` block) index in each file, negative from the end; None:
        the whole last run, resumed blocks joined (``ParsedLog.whole_run``). Defaults: the
        published log's last block, our log's whole run.
    max_map_drop : float, optional
        Gate: exit :data:`EXIT_MAP_DROP` when ours' best mAP is more than this below the
        published run's best mAP, or when it cannot be checked (no validation in ours, or the
        logs are not comparable).
    labels : (str, str)
        Names of the two runs in the report and plots.
    title : str, optional
        Report heading.
    plots : bool
        Draw the PNGs (False: report only, e.g. for a quick gate).

    Returns
    -------
    CompareResult
        ``exit_code`` is :data:`EXIT_OK` unless a file cannot be read, the run does not exist
        or ``out_dir`` cannot be written (:data:`EXIT_UNREADABLE`), or the gate fails
        (:data:`EXIT_MAP_DROP`).
    """
    result = CompareResult(exit_code=EXIT_OK)
    try:
        _compare(result, published, ours, out_dir, published_run, run, max_map_drop,
                 tuple(labels), title, plots)
    except OSError as err:
        result.messages.append("error: cannot write the report to %s: %s" % (out_dir, err))
        result.exit_code = EXIT_UNREADABLE
    return result


def _compare(result, published, ours, out_dir, published_run, run, max_map_drop, labels, title,
             plots):
    parsed_a, run_a = _load(published, published_run, labels[0], result.messages)
    parsed_b, run_b = _load(ours, run, labels[1], result.messages)
    if run_a is None or run_b is None:
        result.exit_code = EXIT_UNREADABLE
        return
    os.makedirs(out_dir, exist_ok=True)
    kind_a = run_a.kind if run_a.kind != "unknown" else parsed_a.kind
    kind_b = run_b.kind if run_b.kind != "unknown" else parsed_b.kind
    result.comparable = kind_a == kind_b or "unknown" in (kind_a, kind_b)
    if not result.comparable:
        result.messages.append(not_comparable_message(labels, kind_a, kind_b))

    drawn = None
    if result.comparable and plots:
        drawn = []
        for name, func, caption in PLOTS:
            path = os.path.join(out_dir, name)
            ok = func(run_a, run_b, labels, path)
            if ok:
                result.plot_paths.append(path)
            panels = loss_panels(run_a, run_b, labels) if ok and func is plot_losses else None
            drawn.append((name, caption, ok, panels))
    gate = None
    if max_map_drop is not None:
        verdict = map_drop_gate(run_a, run_b, result.comparable, max_map_drop)
        gate = gate_message(verdict, labels, max_map_drop)
        if not verdict.passed:
            result.exit_code = EXIT_MAP_DROP
        result.messages.append(gate)

    result.report_path = os.path.join(out_dir, "report.md")
    with open(result.report_path, "w", encoding="utf-8") as handle:
        handle.write(compare_report(parsed_a, run_a, parsed_b, run_b, labels, title,
                                    result.comparable, (kind_a, kind_b), drawn, gate))
    result.messages.append("wrote %s%s" % (result.report_path, "".join(
        " " + os.path.basename(p) for p in result.plot_paths)))
