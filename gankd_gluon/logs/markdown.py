"""The text of the log reports: ``report.md`` of a comparison and the one-log summary.

Every piece of text is a template at the top of this module (``string.Template`` for the
documents and tables, ``%`` format strings for one-line notes); the functions below only
compute the values that fill them (:mod:`gankd_gluon.logs.numbers`) and format the numbers.
"""
import math
import os
from string import Template

from .numbers import (DIAGNOSTICS, MISSING, class_names, compared_metrics, epoch_end_values,
                      map_summary, settings_diff, stage_speed_ratio, where)
from .records import finite

__all__ = ["KIND_NAMES", "DIAGNOSTICS_NOTE", "compare_report", "summarize_log",
           "not_comparable_message", "gate_message", "panels_text"]

KIND_NAMES = {"ssd": "SSD", "frcnn": "Faster R-CNN", "unknown": "unknown"}

# -- templates -------------------------------------------------------------------------------
_COMPARE_REPORT = Template("""\
# ${title}

- ${run_a}
- ${run_b}
- lines read: ${label_a} ${lines_a} (${unreadable_a} unreadable), \
${label_b} ${lines_b} (${unreadable_b} unreadable)${unreadable_examples}${sections}
""")
_COMPARE_UNREADABLE = Template("\n  - ${label} unreadable line ${line_no} (${reason}): `${text}`")
_SECTION = Template("## ${heading}\n\n${body}")
_NOT_COMPARABLE = ("NOT COMPARABLE: %s (%s) and %s (%s) are logs of different detectors; no "
                   "side-by-side tables or plots are made.")
_NOT_COMPARABLE_MAP = "\n\nfinal mAP %s, best mAP %s"

_RUN_BLOCKS = ("**%s**: `%s`, the whole run: blocks %d-%d of %d (Namespace lines) joined at "
               "%d resume(s) (after cumulative epoch %s), %s")
_RUN_ONE = "**%s**: `%s`, run %d of %d (Namespace at line %d), %s"
_RUN_METRIC = "(mAP is %s)"
_RUN_NO_HEADER = "(no Namespace line before the first record)"

_SUMMARY = Template("""\
## ${title}

- file: `${file}`, detector: ${detector}, ${n_lines} lines, ${n_unreadable} unreadable
- runs (`Namespace` lines): ${n_runs}; validation blocks: ${n_validations} \
(${validations_per_run})${unreadable_examples}

| run | line | epochs (per segment) | batch lines | validations | final mAP \
| best mAP (max) | best stated by log |
|---|---|---|---|---|---|---|---|${rows}${stages}
""")
_SUMMARY_UNREADABLE = Template("\n- unreadable line ${line_no} (${reason}): `${text}`")
_SUMMARY_ROW = Template("| ${run} | ${line} | ${epochs} | ${batches} | ${validations} | "
                        "${final} | ${best} | ${logged} |")
_SUMMARY_IDLE_ROW = Template("| ${runs} | ${lines} | header only (restarted before the first "
                             "batch line) | 0 | 0 | - | - | - |")
_SUMMARY_STAGES = Template("\n\n### Stages of run ${run}\n\n${table}")

_STAGE_TABLE = Template("""\
| seg | stage | starts because | epochs as printed | cumulative | batch lines | \
validations | median speed (samples/s) | speed outliers (glitches) | \
median epoch cost (s) | not computed (nan throughout) | absent |
|---|---|---|---|---|---|---|---|---|---|---|---|${rows}

${notes}""")
_STAGE_ROW = Template("| ${index} | ${stage} (${kind}) | ${reason} | ${first}-${last} | "
                      "${first_global}-${last_global} | ${batches} | ${validations} | "
                      "${speed} | ${outliers} | ${cost} | ${not_computed} | ${absent} |")
_NOTE_SPEED = "stage 2 runs %.2fx the stage-1 speed (median %.2f vs %.2f samples/s)"
_NOTE_NOT_COMPUTED = ("'not computed' columns print nan because the metric was never updated "
                      "in that stage (MXNet's Loss metric returns nan without updates): this is "
                      "not a divergence")
_NOTE_STOPPED = "**RUN STOPPED** (line %d): %s"
_NOTE_INTERRUPTED = "interrupted by %s at epoch %d, batch %s (line %d)"
_NOTE_RESUMED = "resumed from `%s` (%s)"
_NOTE_DIVERGENCE = ("**DIVERGENCE**: %s turned %s at line %d (epoch %d%s, stage %d) after "
                    "finite values")
_NOTE_NO_DIVERGENCE = ("divergences: none (no metric turns nan/inf after finite values within "
                       "a stage)")

_MAP_TABLE = Template("""\
| | ${label_a} | ${label_b} | ${label_b} - ${label_a} |
|---|---|---|---|${rows}${stated}""")
_MAP_ROW = Template("\n| ${name} | ${a} | ${b} | ${delta} |")
_MAP_ROWS = (("final", "final mAP"), ("best", "best mAP (max over validations)"),
             ("logged", "best mAP stated by the log"),
             ("reach", "first validation >= 95% of own best"))
_MAP_STATED = ("\n\n%s: the log states best %.5f, but its maximum is %.5f at %s "
               "(the stated value tracks only part of the run).")

_PER_CLASS_TABLE = Template("""\
| class | ${label_a} (${where_a}) | ${label_b} (${where_b}) | delta |
|---|---|---|---|${rows}""")
_PER_CLASS_ROW = Template("\n| ${name} | ${a} | ${b} | ${delta} |")

_LOSS_TABLE = Template("""\
Epoch-end values (epoch line, else the epoch's last batch line), as \
`${label_a} / ${label_b}`; `n/c` = not computed in that stage.

| cumulative epoch | ${names} |
${rule}|${rows}""")
_LOSS_ROW = Template("\n| ${epoch} | ${cells} |")

_SETTINGS_TABLE = Template("""\
| field | ${label_a} | ${label_b} |
|---|---|---|${rows}""")
_SETTINGS_ROW = Template("\n| `${key}` | ${a} | ${b} |")

_PLOT = "![%s](%s)\n"
_PLOT_NOTHING = "(%s: nothing to plot)\n"
_PANELS = "losses.png panels: %s."
_GATE_NOT_COMPARABLE = "FAIL --max-map-drop: the logs are not comparable"
_GATE_NO_REFERENCE = "FAIL --max-map-drop: %s has no validation to compare against"
_GATE_NO_VALIDATION = "FAIL --max-map-drop: %s has no validation yet"
_GATE = "%s --max-map-drop %.4f: %s best mAP %.5f, %s best %.5f, drop %.5f"

DIAGNOSTICS_NOTE = (
    "Note on `cosine_length_loss_metric`: the published SSD log prints it on its stage-1 batch "
    "lines but its authors never defined it, and it is not part of the objective. Ours is our "
    "reading (gankd_gluon/engine/diagnostics.py): the mean over feature maps and locations of "
    "`(1 - cos(s, t)) + | |s| - |t| | / |t|` between the student's adapted and the teacher's "
    "channel vectors, a monitor only. The two curves are meant to measure the same thing, "
    "not known to be the same quantity. `W_i` (ours only) is critic i's "
    "`mean D_i(student) - mean D_i(teacher)` in the last critic step; the `W_i` sum to "
    "`-Loss_D`.")


# -- numbers as text -------------------------------------------------------------------------
def _fmt(value, spec="%.3f"):
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return spec % value


def _cell(run, rec, name):
    value = rec.metrics.get(name) if rec is not None else None
    if value is None:
        return "-"
    if math.isnan(value) and run.segments and name in run.segments[rec.segment].not_computed:
        return "n/c"
    return _fmt(value)


# -- pieces ----------------------------------------------------------------------------------
def _stage_notes(run):
    notes = [n for seg in run.segments for n in seg.notes]
    ratio = stage_speed_ratio(run)
    if ratio is not None:
        notes.append(_NOTE_SPEED % ratio)
    if any(s.not_computed for s in run.segments):
        notes.append(_NOTE_NOT_COMPUTED)
    for event in run.events:
        if event.kind == "stopped":
            notes.append(_NOTE_STOPPED % (event.line_no, event.value))
        elif event.kind == "interrupted":
            notes.append(_NOTE_INTERRUPTED % (event.value, event.epoch, event.detail,
                                              event.line_no))
        elif event.kind == "resumed":
            notes.append(_NOTE_RESUMED % (event.value, event.detail))
    for div in run.divergences:
        notes.append(_NOTE_DIVERGENCE % (div.metric, div.value, div.line_no, div.epoch,
                                         "" if div.batch is None else ", batch %d" % div.batch,
                                         div.stage))
    if not run.divergences:
        notes.append(_NOTE_NO_DIVERGENCE)
    return notes


def _stage_row(seg):
    outliers = ", ".join("%.0f (line %d)" % (s, ln) for ln, s in seg.speed_outliers[:3])
    if len(seg.speed_outliers) > 3:
        outliers += ", ... (%d in all)" % len(seg.speed_outliers)
    return _STAGE_ROW.substitute(
        index=seg.index, stage=seg.stage, kind=seg.kind, reason=seg.reason,
        first=seg.first_epoch, last=seg.last_epoch, first_global=seg.first_global_epoch,
        last_global=seg.last_global_epoch, batches=seg.n_batch_lines,
        validations=seg.n_validations, speed=_fmt(seg.median_speed, "%.2f"),
        outliers=outliers or "none",
        cost=_fmt(seg.median_epoch_cost, "%.1f") if finite(seg.median_epoch_cost) else "-",
        not_computed=", ".join(seg.not_computed) or "none",
        absent=", ".join(seg.absent) or "none")


def _stage_table(run):
    return _STAGE_TABLE.substitute(
        rows="".join("\n" + _stage_row(seg) for seg in run.segments),
        notes="\n".join("- " + n for n in _stage_notes(run)))


def _describe_run(parsed, run, label):
    if len(run.blocks) > 1:
        parts = [_RUN_BLOCKS % (label, os.path.basename(parsed.path), run.blocks[0],
                                run.blocks[-1], len(parsed.runs), len(run.resume_points),
                                ", ".join(str(e) for e, _ in run.resume_points),
                                KIND_NAMES[run.kind])]
    else:
        parts = [_RUN_ONE % (label, os.path.basename(parsed.path), run.index, len(parsed.runs),
                             run.line_no, KIND_NAMES[run.kind])]
    metrics = sorted({v.metric for v in run.validations if v.metric})
    if metrics:
        parts.append(_RUN_METRIC % ", ".join(metrics))
    if run.header is None:
        parts.append(_RUN_NO_HEADER)
    return " ".join(parts)


def _where_or_none(run, rec):
    return where(run, rec) if rec is not None else None


def _map_section(run_a, run_b, labels):
    ra, rb = map_summary(run_a), map_summary(run_b)

    def value(run, rows, key):
        number, rec = rows[key]
        if number is None:
            return "no validation yet" if key != "logged" else "-"
        return _fmt(number, "%.5f") + (" at %s" % where(run, rec) if rec is not None else "")

    def delta(key):
        a, b = ra[key][0], rb[key][0]
        return _fmt(b - a, "%+.5f") if finite(a) and finite(b) else "-"

    rows = "".join(_MAP_ROW.substitute(name=name, a=value(run_a, ra, key),
                                       b=value(run_b, rb, key),
                                       delta=delta(key) if key != "reach" else "-")
                   for key, name in _MAP_ROWS)
    stated = ""
    for run, label in ((run_a, labels[0]), (run_b, labels[1])):
        best, logged = run.best_validation, run.logged_best_map
        if best is not None and logged is not None and abs(best.mean_ap - logged) > 1e-9:
            stated += _MAP_STATED % (label, logged, best.mean_ap, where(run, best))
    return _MAP_TABLE.substitute(label_a=labels[0], label_b=labels[1], rows=rows,
                                 stated=stated)


def _per_class_section(run_a, run_b, labels):
    va, vb = run_a.best_validation, run_b.best_validation
    if va is None and vb is None:
        return "Neither run has a validation yet."
    rows = []
    for name in class_names(va, vb):
        a = va.aps.get(name) if va else None
        b = vb.aps.get(name) if vb else None
        rows.append(_PER_CLASS_ROW.substitute(
            name=name, a=_fmt(a, "%.4f"), b=_fmt(b, "%.4f"),
            delta=_fmt(b - a, "%+.4f") if finite(a) and finite(b) else "-"))
    return _PER_CLASS_TABLE.substitute(
        label_a=labels[0], where_a=where(run_a, va) if va else "no validation yet",
        label_b=labels[1], where_b=where(run_b, vb) if vb else "no validation yet",
        rows="".join(rows))


def _loss_section(run_a, run_b, labels, max_rows=12):
    shared = compared_metrics(run_a, run_b)
    if not shared:
        return "The two runs print no loss of the same name."
    ends_a, ends_b = epoch_end_values(run_a), epoch_end_values(run_b)
    common = sorted(set(ends_a) & set(ends_b))
    if not common:
        return "No cumulative epoch has lines in both runs."
    if len(common) > max_rows:
        step = (len(common) - 1) / (max_rows - 1)
        common = sorted({common[round(i * step)] for i in range(max_rows)})
    rows = []
    for epoch in common:
        rec_a, rec_b = ends_a[epoch][0], ends_b[epoch][0]
        rows.append(_LOSS_ROW.substitute(epoch=epoch, cells=" | ".join(
            "%s / %s" % (_cell(run_a, rec_a, n), _cell(run_b, rec_b, n)) for n in shared)))
    return _LOSS_TABLE.substitute(label_a=labels[0], label_b=labels[1],
                                  names=" | ".join("`%s`" % n for n in shared),
                                  rule="|---" * (len(shared) + 1), rows="".join(rows))


def _settings_section(run_a, run_b, labels):
    diff = settings_diff(run_a.settings, run_b.settings)
    if not diff:
        return "No differences in the `Namespace` settings."

    def shown(value):
        return "(absent)" if value is MISSING else "`%r`" % (value,)
    return _SETTINGS_TABLE.substitute(label_a=labels[0], label_b=labels[1], rows="".join(
        _SETTINGS_ROW.substitute(key=key, a=shown(a), b=shown(b)) for key, a, b in diff))


def panels_text(panels):
    """One line naming every panel of ``losses.png`` and the runs drawn in it.

    Parameters
    ----------
    panels : list
        :func:`gankd_gluon.logs.numbers.loss_panels`.

    Returns
    -------
    str
    """
    items = []
    for title, series in panels:
        if title.startswith("W_i"):
            runs = sorted({label.rsplit(" ", 1)[0] for label, _, _ in series})
            items.append("per-critic separation `W_i` (%s)" % ", ".join(runs))
        else:
            items.append("`%s` (%s)" % (title, ", ".join(label for label, _, _ in series)))
    return _PANELS % "; ".join(items)


def _plots_body(plots):
    if plots is None:
        return "(not drawn: --no-plots)"
    items = []
    for name, caption, drawn, panels in plots:
        if drawn:
            items.append(_PLOT % (caption, name))
            if panels is not None:
                items.append(panels_text(panels) + "\n")
        else:
            items.append(_PLOT_NOTHING % caption)
    return "\n".join(items)


# -- messages --------------------------------------------------------------------------------
def not_comparable_message(labels, kind_a, kind_b):
    """The line saying two logs are of different detectors (``kind_a``, ``kind_b``: ``'ssd'``,
    ``'frcnn'`` or ``'unknown'``)."""
    return _NOT_COMPARABLE % (labels[0], KIND_NAMES[kind_a], labels[1], KIND_NAMES[kind_b])


def gate_message(gate, labels, max_map_drop):
    """The ``--max-map-drop`` verdict as one line.

    Parameters
    ----------
    gate : gankd_gluon.logs.numbers.GateResult
    labels : (str, str)
    max_map_drop : float
        mAP (not percent).

    Returns
    -------
    str
        ``'PASS ...'`` or ``'FAIL ...'``.
    """
    if gate.failure == "not comparable":
        return _GATE_NOT_COMPARABLE
    if gate.failure == "no validation in a":
        return _GATE_NO_REFERENCE % labels[0]
    if gate.failure == "no validation in b":
        return _GATE_NO_VALIDATION % labels[1]
    return _GATE % ("PASS" if gate.passed else "FAIL", max_map_drop, labels[1], gate.best_b,
                    labels[0], gate.best_a, gate.drop)


# -- documents -------------------------------------------------------------------------------
def compare_report(parsed_a, run_a, parsed_b, run_b, labels, title, comparable, kinds,
                   plots, gate):
    """The text of ``report.md``.

    Parameters
    ----------
    parsed_a, parsed_b : ParsedLog
    run_a, run_b : Run
        The runs compared (a block, or a whole run of resumed blocks).
    labels : (str, str)
    title : str or None
        Heading; None: ``'Log comparison: <a> vs <b>'``.
    comparable : bool
        Same detector kind: the side-by-side sections are written, else each run's mAP.
    kinds : (str, str)
        Detector kinds (``'ssd'``, ``'frcnn'``, ``'unknown'``), named when not comparable.
    plots : list of (str, str, bool, list or None), or None
        Per figure: file name, caption, whether it was drawn, and for ``losses.png`` its
        panels (:func:`gankd_gluon.logs.numbers.loss_panels`); None: plots not drawn
        (``--no-plots``).
    gate : str or None
        :func:`gate_message`, when ``--max-map-drop`` was given.

    Returns
    -------
    str
        Markdown ending with a newline.
    """
    examples = "".join(
        _COMPARE_UNREADABLE.substitute(label=label, line_no=ex.line_no, reason=ex.reason,
                                       text=ex.text[:100])
        for parsed, label in ((parsed_a, labels[0]), (parsed_b, labels[1]))
        for ex in parsed.unreadable_examples)
    sections = []
    if not comparable:
        sections.append("**%s**" % not_comparable_message(labels, *kinds))
    else:
        sections.append(_SECTION.substitute(heading="mAP",
                                            body=_map_section(run_a, run_b, labels)))
    for run, label in ((run_a, labels[0]), (run_b, labels[1])):
        body = _stage_table(run) if run.segments else "(no training lines yet)"
        if not comparable:
            rows = map_summary(run)
            body += _NOT_COMPARABLE_MAP % (_fmt(rows["final"][0], "%.5f"),
                                           _fmt(rows["best"][0], "%.5f"))
        heading = "Stages of %s (%s)" % (label, "run %d" % run.index if len(run.blocks) < 2
                                         else "runs %d-%d" % (run.blocks[0], run.blocks[-1]))
        sections.append(_SECTION.substitute(heading=heading, body=body))
    if comparable:
        sections += [
            _SECTION.substitute(heading="Per-class AP at each run's best validation",
                                body=_per_class_section(run_a, run_b, labels)),
            _SECTION.substitute(heading="Losses at matching epochs",
                                body=_loss_section(run_a, run_b, labels)),
            _SECTION.substitute(heading="Plots", body=_plots_body(plots))]
        if any(n in DIAGNOSTICS for n in set(run_a.metric_names) | set(run_b.metric_names)):
            sections.append(DIAGNOSTICS_NOTE)
    sections.append(_SECTION.substitute(heading="Settings diff (`Namespace` fields that differ)",
                                        body=_settings_section(run_a, run_b, labels)))
    if gate is not None:
        sections.append(_SECTION.substitute(heading="Gate", body=gate))
    return _COMPARE_REPORT.substitute(
        title=title or "Log comparison: %s vs %s" % labels,
        run_a=_describe_run(parsed_a, run_a, labels[0]),
        run_b=_describe_run(parsed_b, run_b, labels[1]),
        label_a=labels[0], lines_a=parsed_a.n_lines, unreadable_a=parsed_a.unreadable_count,
        label_b=labels[1], lines_b=parsed_b.n_lines, unreadable_b=parsed_b.unreadable_count,
        unreadable_examples=examples, sections="".join("\n\n" + s for s in sections))


def _summary_rows(parsed):
    """Table rows: one per run that trained, one per stretch of runs with only a header."""
    rows, idle = [], []   # consecutive runs that logged nothing but their header: one row

    def flush_idle():
        if idle:
            several = len(idle) > 1
            rows.append(_SUMMARY_IDLE_ROW.substitute(
                runs="%d-%d" % (idle[0].index, idle[-1].index) if several else idle[0].index,
                lines="%d-%d" % (idle[0].line_no, idle[-1].line_no) if several
                else idle[0].line_no))
            del idle[:]

    for run in parsed.runs:
        if not run.segments:
            idle.append(run)
            continue
        flush_idle()
        summary = map_summary(run)
        best, best_rec = summary["best"]
        rows.append(_SUMMARY_ROW.substitute(
            run=run.index, line=run.line_no,
            epochs=", ".join("%d-%d" % (s.first_epoch, s.last_epoch) for s in run.segments),
            batches=len(run.batches), validations=len(run.validations),
            final=_fmt(summary["final"][0], "%.5f"),
            best="%s at %s" % (_fmt(best, "%.5f"), where(run, best_rec)) if best_rec else "-",
            logged=_fmt(summary["logged"][0], "%.5f")))
    flush_idle()
    return rows


def summarize_log(parsed, title=None):
    """Markdown summary of one parsed log: runs, validations, stages of the runs that trained.

    Parameters
    ----------
    parsed : ParsedLog
    title : str, optional
        Heading; defaults to the file name.

    Returns
    -------
    str
    """
    name = os.path.basename(parsed.path)
    stages = "".join(
        _SUMMARY_STAGES.substitute(run=run.index, table=_stage_table(run) if run.segments
                                   else "(no training lines)")
        for run in parsed.runs if run.validations or run is parsed.runs[-1])
    return _SUMMARY.substitute(
        title=title or name, file=name, detector=KIND_NAMES[parsed.kind],
        n_lines=parsed.n_lines, n_unreadable=parsed.unreadable_count, n_runs=len(parsed.runs),
        n_validations=parsed.n_validations,
        validations_per_run=", ".join("%d in run %d" % (len(r.validations), r.index)
                                      for r in parsed.runs if r.validations) or "none",
        unreadable_examples="".join(
            _SUMMARY_UNREADABLE.substitute(line_no=ex.line_no, reason=ex.reason,
                                           text=ex.text[:100])
            for ex in parsed.unreadable_examples),
        rows="".join("\n" + row for row in _summary_rows(parsed)), stages=stages)
