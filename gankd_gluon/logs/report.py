"""Compare two parsed training logs: markdown report, three PNG plots, an exit status.

:func:`compare_logs` is what ``scripts/compare_logs.py`` runs; :func:`summarize_log` is the
one-file summary the gallery shows. Plots use matplotlib's object API with the Agg canvas
(no pyplot, so no global backend state and no display needed).

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
import math
import os
from dataclasses import dataclass, field
from typing import List, Optional

from ..usage import EXIT_FAULT, EXIT_OK, EXIT_USAGE
from .parse import EpochRecord, parse_log

__all__ = ["CompareResult", "compare_logs", "summarize_log", "settings_diff",
           "epochs_to_fraction", "epoch_end_values", "loss_panels", "plot_losses", "plot_map",
           "plot_per_class_ap", "EXIT_OK", "EXIT_MAP_DROP", "EXIT_UNREADABLE"]

#: ``--max-map-drop`` gate failed (or could not be checked): the exit-code table's 1.
EXIT_MAP_DROP = EXIT_FAULT
#: A file could not be read, holds no log lines, or the requested run does not exist: bad input.
EXIT_UNREADABLE = EXIT_USAGE

KIND_NAMES = {"ssd": "SSD", "frcnn": "Faster R-CNN", "unknown": "unknown"}
#: Monitoring columns compared whenever either run prints them (the published SSD log prints
#: ``cosine_length_loss_metric``; ours print it and ``W_i``, ``engine/diagnostics.py``).
DIAGNOSTICS = ("cosine_length_loss_metric",)
DIAGNOSTICS_NOTE = (
    "Note on `cosine_length_loss_metric`: the published SSD log prints it on its stage-1 batch "
    "lines but its authors never defined it, and it is not part of the objective. Ours is our "
    "reading (gankd_gluon/engine/diagnostics.py): the mean over feature maps and locations of "
    "`(1 - cos(s, t)) + | |s| - |t| | / |t|` between the student's adapted and the teacher's "
    "channel vectors, a monitor only. The two curves are meant to measure the same thing, "
    "not known to be the same quantity. `W_i` (ours only) is critic i's "
    "`mean D_i(student) - mean D_i(teacher)` in the last critic step; the `W_i` sum to "
    "`-Loss_D`.")
_MISSING = object()
_COLORS = ("tab:blue", "tab:orange")


def _fmt(value, spec="%.3f"):
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return spec % value


def _finite(value):
    return value is not None and math.isfinite(value)


# -- numbers ---------------------------------------------------------------------------------
def settings_diff(settings_a, settings_b):
    """Fields whose values differ between two settings dicts.

    Returns
    -------
    list of (str, object, object)
        ``(key, value_a, value_b)``, sorted by key; a key missing on one side has the
        module's ``_MISSING`` marker there (shown as "(absent)").
    """
    rows = []
    for key in sorted(set(settings_a) | set(settings_b)):
        a, b = settings_a.get(key, _MISSING), settings_b.get(key, _MISSING)
        if a is _MISSING or b is _MISSING or a != b:
            rows.append((key, a, b))
    return rows


def epochs_to_fraction(run, fraction=0.95):
    """First validation reaching ``fraction`` of the run's best mAP, or None."""
    best = run.best_validation
    if best is None:
        return None
    return next(v for v in run.validations
                if _finite(v.mean_ap) and v.mean_ap >= fraction * best.mean_ap)


def epoch_end_values(run):
    """Loss values at the end of each cumulative epoch.

    The epoch line where there is one, else the epoch's last batch line (the published SSD
    stage 1 prints no epoch lines before epoch 221).

    Returns
    -------
    dict
        ``{cumulative_epoch: (record, {metric: value})}``.
    """
    values = {}
    for rec in sorted(run.batches + run.epochs, key=lambda r: r.line_no):
        current = values.get(rec.global_epoch)
        if current is None or isinstance(rec, EpochRecord) or not isinstance(current[0],
                                                                            EpochRecord):
            values[rec.global_epoch] = (rec, rec.metrics)
    return values


def _where(run, rec):
    """``'epoch 221 (stage 1)'``; adds the cumulative epoch when the counter restarted."""
    text = "epoch %d" % rec.epoch
    if rec.global_epoch != rec.epoch:
        text += " = cumulative %d" % rec.global_epoch
    if run.segments:
        text += " (stage %d)" % rec.stage
    return text


def _is_not_computed(run, rec, name):
    return name in run.segments[rec.segment].not_computed if run.segments else False


def _cell(run, rec, name):
    value = rec.metrics.get(name) if rec is not None else None
    if value is None:
        return "-"
    if math.isnan(value) and _is_not_computed(run, rec, name):
        return "n/c"
    return _fmt(value)


# -- markdown pieces -------------------------------------------------------------------------
def _stage_table(run):
    lines = [
        "| seg | stage | starts because | epochs as printed | cumulative | batch lines | "
        "validations | median speed (samples/s) | speed outliers (glitches) | "
        "median epoch cost (s) | not computed (nan throughout) | absent |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for seg in run.segments:
        outliers = ", ".join("%.0f (line %d)" % (s, ln) for ln, s in seg.speed_outliers[:3])
        if len(seg.speed_outliers) > 3:
            outliers += ", ... (%d in all)" % len(seg.speed_outliers)
        lines.append("| %d | %d (%s) | %s | %d-%d | %d-%d | %d | %d | %s | %s | %s | %s | %s |" % (
            seg.index, seg.stage, seg.kind, seg.reason, seg.first_epoch, seg.last_epoch,
            seg.first_global_epoch, seg.last_global_epoch, seg.n_batch_lines,
            seg.n_validations, _fmt(seg.median_speed, "%.2f"), outliers or "none",
            _fmt(seg.median_epoch_cost, "%.1f") if _finite(seg.median_epoch_cost) else "-",
            ", ".join(seg.not_computed) or "none", ", ".join(seg.absent) or "none"))
    out = "\n".join(lines)
    notes = [n for seg in run.segments for n in seg.notes]
    adv = [s for s in run.segments if s.stage == 1 and _finite(s.median_speed)]
    plain = [s for s in run.segments if s.stage == 2 and _finite(s.median_speed)]
    if adv and plain:
        notes.append("stage 2 runs %.2fx the stage-1 speed (median %.2f vs %.2f samples/s)"
                     % (plain[-1].median_speed / adv[-1].median_speed,
                        plain[-1].median_speed, adv[-1].median_speed))
    if any(s.not_computed for s in run.segments):
        notes.append("'not computed' columns print nan because the metric was never updated "
                     "in that stage (MXNet's Loss metric returns nan without updates): this is "
                     "not a divergence")
    for event in run.events:
        if event.kind == "stopped":
            notes.append("**RUN STOPPED** (line %d): %s" % (event.line_no, event.value))
        elif event.kind == "interrupted":
            notes.append("interrupted by %s at epoch %d, batch %s (line %d)"
                         % (event.value, event.epoch, event.detail, event.line_no))
        elif event.kind == "resumed":
            notes.append("resumed from `%s` (%s)" % (event.value, event.detail))
    if run.divergences:
        for div in run.divergences:
            notes.append("**DIVERGENCE**: %s turned %s at line %d (epoch %d%s, stage %d) "
                         "after finite values" % (div.metric, div.value, div.line_no, div.epoch,
                                                  "" if div.batch is None
                                                  else ", batch %d" % div.batch, div.stage))
    else:
        notes.append("divergences: none (no metric turns nan/inf after finite values within "
                     "a stage)")
    return out + "\n\n" + "\n".join("- " + n for n in notes)


def _map_rows(run):
    final, best = run.final_validation, run.best_validation
    reach = epochs_to_fraction(run)
    return {
        "final": (final.mean_ap if final else None, _where(run, final) if final else None),
        "best": (best.mean_ap if best else None, _where(run, best) if best else None),
        "logged": (run.logged_best_map, None),
        "reach": (reach, _where(run, reach) if reach else None),
    }


def _describe_run(parsed, run, label):
    if len(run.blocks) > 1:
        lines = ["**%s**: `%s`, the whole run: blocks %d-%d of %d (Namespace lines) joined at "
                 "%d resume(s) (after cumulative epoch %s), %s" % (
                     label, os.path.basename(parsed.path), run.blocks[0], run.blocks[-1],
                     len(parsed.runs), len(run.resume_points),
                     ", ".join(str(e) for e, _ in run.resume_points), KIND_NAMES[run.kind])]
    else:
        lines = ["**%s**: `%s`, run %d of %d (Namespace at line %d), %s" % (
            label, os.path.basename(parsed.path), run.index, len(parsed.runs), run.line_no,
            KIND_NAMES[run.kind])]
    metrics = sorted({v.metric for v in run.validations if v.metric})
    if metrics:
        lines.append("(mAP is %s)" % ", ".join(metrics))
    if run.header is None:
        lines.append("(no Namespace line before the first record)")
    return " ".join(lines)


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
    out = ["## %s" % (title or name), "",
           "- file: `%s`, detector: %s, %d lines, %d unreadable"
           % (name, KIND_NAMES[parsed.kind], parsed.n_lines, parsed.unreadable_count),
           "- runs (`Namespace` lines): %d; validation blocks: %d (%s)"
           % (len(parsed.runs), parsed.n_validations,
              ", ".join("%d in run %d" % (len(r.validations), r.index)
                        for r in parsed.runs if r.validations) or "none")]
    for ex in parsed.unreadable_examples:
        out.append("- unreadable line %d (%s): `%s`" % (ex.line_no, ex.reason, ex.text[:100]))
    out += ["", "| run | line | epochs (per segment) | batch lines | validations | final mAP "
            "| best mAP (max) | best stated by log |", "|---|---|---|---|---|---|---|---|"]
    idle = []  # consecutive runs that logged nothing but their header: one row for all

    def flush_idle():
        if idle:
            out.append("| %s | %s | header only (restarted before the first batch line) "
                       "| 0 | 0 | - | - | - |" % (
                           "%d-%d" % (idle[0].index, idle[-1].index) if len(idle) > 1
                           else idle[0].index,
                           "%d-%d" % (idle[0].line_no, idle[-1].line_no) if len(idle) > 1
                           else idle[0].line_no))
            del idle[:]

    for run in parsed.runs:
        if not run.segments:
            idle.append(run)
            continue
        flush_idle()
        rows = _map_rows(run)
        epochs = ", ".join("%d-%d" % (s.first_epoch, s.last_epoch) for s in run.segments)
        out.append("| %d | %d | %s | %d | %d | %s | %s | %s |" % (
            run.index, run.line_no, epochs, len(run.batches), len(run.validations),
            _fmt(rows["final"][0], "%.5f"),
            "%s at %s" % (_fmt(rows["best"][0], "%.5f"), rows["best"][1]) if rows["best"][1]
            else "-", _fmt(rows["logged"][0], "%.5f")))
    flush_idle()
    for run in parsed.runs:
        if run.validations or run is parsed.runs[-1]:
            out += ["", "### Stages of run %d" % run.index, ""]
            out.append(_stage_table(run) if run.segments else "(no training lines)")
    return "\n".join(out) + "\n"


def _settings_section(run_a, run_b, labels):
    rows = settings_diff(run_a.settings, run_b.settings)
    if not rows:
        return "No differences in the `Namespace` settings."
    lines = ["| field | %s | %s |" % labels, "|---|---|---|"]
    for key, a, b in rows:
        lines.append("| `%s` | %s | %s |" % (key, "(absent)" if a is _MISSING else "`%r`" % (a,),
                                           "(absent)" if b is _MISSING else "`%r`" % (b,)))
    return "\n".join(lines)


def _map_section(run_a, run_b, labels):
    ra, rb = _map_rows(run_a), _map_rows(run_b)

    def value(rows, key):
        number, where = rows[key]
        if number is None:
            return "no validation yet" if key != "logged" else "-"
        text = number if isinstance(number, str) else _fmt(
            getattr(number, "mean_ap", number), "%.5f")
        return text + (" at %s" % where if where else "")

    def delta(key):
        a = getattr(ra[key][0], "mean_ap", ra[key][0])
        b = getattr(rb[key][0], "mean_ap", rb[key][0])
        return _fmt(b - a, "%+.5f") if _finite(a) and _finite(b) else "-"

    lines = ["| | %s | %s | %s - %s |" % (labels[0], labels[1], labels[1], labels[0]),
             "|---|---|---|---|"]
    for key, name in (("final", "final mAP"), ("best", "best mAP (max over validations)"),
                      ("logged", "best mAP stated by the log"),
                      ("reach", "first validation >= 95% of own best")):
        lines.append("| %s | %s | %s | %s |" % (name, value(ra, key), value(rb, key),
                                                delta(key) if key != "reach" else "-"))
    for run, label in ((run_a, labels[0]), (run_b, labels[1])):
        best, logged = run.best_validation, run.logged_best_map
        if best is not None and logged is not None and abs(best.mean_ap - logged) > 1e-9:
            lines.append("\n%s: the log states best %.5f, but its maximum is %.5f at %s "
                         "(the stated value tracks only part of the run)."
                         % (label, logged, best.mean_ap, _where(run, best)))
    return "\n".join(lines)


def _per_class_section(run_a, run_b, labels):
    va, vb = run_a.best_validation, run_b.best_validation
    if va is None and vb is None:
        return "Neither run has a validation yet."
    head = "| class | %s (%s) | %s (%s) | delta |" % (
        labels[0], _where(run_a, va) if va else "no validation yet",
        labels[1], _where(run_b, vb) if vb else "no validation yet")
    lines = [head, "|---|---|---|---|"]
    for name in _class_names(va, vb):
        a = va.aps.get(name) if va else None
        b = vb.aps.get(name) if vb else None
        lines.append("| %s | %s | %s | %s |" % (
            name, _fmt(a, "%.4f"), _fmt(b, "%.4f"),
            _fmt(b - a, "%+.4f") if _finite(a) and _finite(b) else "-"))
    return "\n".join(lines)


def _class_names(va, vb):
    names = list(va.aps) if va else []
    names += [n for n in (vb.aps if vb else []) if n not in names]
    return names


def _is_separation(name):
    """``W_0``, ``W_1``, ...: our per-critic separation columns (one panel for all)."""
    return name.startswith("W_") and name[2:].isdigit()


def _shared_metrics(run_a, run_b):
    names_b = set(run_b.metric_names)
    return [n for n in run_a.metric_names if n in names_b]


def _compared_metrics(run_a, run_b):
    """Losses side by side: those both runs print (our ``W_i`` apart), then the monitors
    either run prints (:data:`DIAGNOSTICS`), in that order."""
    shared = [n for n in _shared_metrics(run_a, run_b)
              if n not in DIAGNOSTICS and not _is_separation(n)]
    either = set(run_a.metric_names) | set(run_b.metric_names)
    return shared + [n for n in DIAGNOSTICS if n in either]


def loss_panels(run_a, run_b, labels):
    """What ``losses.png`` draws: one panel per compared loss, then one for the ``W_i``.

    Returns
    -------
    list of (str, list of (str, int, str))
        Panel title and its series ``(legend label, run 0 or 1, metric)``. A loss both runs
        print (and ``cosine_length_loss_metric`` whenever either prints it) has one series per
        run that prints it; the per-critic separations ``W_0..W_{M-1}`` of each run share one
        panel.
    """
    runs = (run_a, run_b)
    panels = []
    for name in _compared_metrics(run_a, run_b):
        panels.append((name, [(labels[k], k, name) for k in (0, 1)
                              if name in runs[k].metric_names]))
    series = [("%s %s" % (labels[k], name), k, name) for k in (0, 1)
              for name in runs[k].metric_names if _is_separation(name)]
    if series:
        panels.append(("W_i = mean D_i(student) - mean D_i(teacher), per critic", series))
    return panels


def _panels_text(panels):
    """One line naming every panel of ``losses.png`` and the runs drawn in it."""
    items = []
    for title, series in panels:
        if title.startswith("W_i"):
            runs = sorted({label.rsplit(" ", 1)[0] for label, _, _ in series})
            items.append("per-critic separation `W_i` (%s)" % ", ".join(runs))
        else:
            items.append("`%s` (%s)" % (title, ", ".join(label for label, _, _ in series)))
    return "losses.png panels: " + "; ".join(items) + "."


def _loss_section(run_a, run_b, labels, max_rows=12):
    shared = _compared_metrics(run_a, run_b)
    if not shared:
        return "The two runs print no loss of the same name."
    ends_a, ends_b = epoch_end_values(run_a), epoch_end_values(run_b)
    common = sorted(set(ends_a) & set(ends_b))
    if not common:
        return "No cumulative epoch has lines in both runs."
    if len(common) > max_rows:
        step = (len(common) - 1) / (max_rows - 1)
        common = sorted({common[round(i * step)] for i in range(max_rows)})
    lines = ["Epoch-end values (epoch line, else the epoch's last batch line), as "
             "`%s / %s`; `n/c` = not computed in that stage." % labels, "",
             "| cumulative epoch | " + " | ".join("`%s`" % n for n in shared) + " |",
             "|---" * (len(shared) + 1) + "|"]
    for epoch in common:
        rec_a, rec_b = ends_a[epoch][0], ends_b[epoch][0]
        lines.append("| %d | " % epoch + " | ".join(
            "%s / %s" % (_cell(run_a, rec_a, n), _cell(run_b, rec_b, n)) for n in shared) + " |")
    return "\n".join(lines)


# -- plots -----------------------------------------------------------------------------------
def _new_figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _x_positions(run):
    """Cumulative-epoch x of each batch/epoch record: an epoch's batch lines spread over
    (E-1, E], its epoch line at E, so end-of-epoch values line up with validations."""
    batches = run.batches
    per_epoch = {}
    for b in batches:
        per_epoch.setdefault((b.segment, b.epoch), []).append(b.batch)
    steps = [min(j - i for i, j in zip(ids, ids[1:])) for ids in
             (sorted(set(v)) for v in per_epoch.values()) if len(ids) > 1]
    interval = min(steps) if steps else 1
    epoch_len = max((b.batch for b in batches), default=0) + interval
    xs = {}
    for rec in run.batches:
        xs[id(rec)] = rec.global_epoch - 1 + (rec.batch + 1) / float(epoch_len)
    for rec in run.epochs:
        xs[id(rec)] = float(rec.global_epoch)
    return xs


def _mark_boundaries(ax, run, color, label=None, resume_label=None):
    for seg in run.segments[1:]:
        ax.axvline(seg.first_global_epoch - 1, color=color, linestyle="--", linewidth=1,
                   alpha=0.8, label=label)
        label = None  # one legend entry per run
    for epoch, _ in run.resume_points:
        ax.axvline(epoch, color=color, linestyle=":", linewidth=1.5, alpha=0.9,
                   label=resume_label)
        resume_label = None


def plot_losses(run_a, run_b, labels, path):
    """Every loss both runs print, against cumulative epoch; stage boundaries dashed.

    The panels are :func:`loss_panels`': besides the shared losses, the published SSD log's
    ``cosine_length_loss_metric`` beside ours (our reading of it, ``engine/diagnostics.py``),
    drawn for whichever run prints it, and our per-critic separations ``W_i`` in one panel.

    Returns
    -------
    bool
        False (and no file) when there is nothing to draw.
    """
    panels = loss_panels(run_a, run_b, labels)
    if not panels:
        return False
    runs = (run_a, run_b)
    ncols = 2 if len(panels) > 1 else 1
    nrows = int(math.ceil(len(panels) / float(ncols)))
    height = 2.8 * nrows + 0.8
    fig = _new_figure(6.5 * ncols, height)
    xs = [_x_positions(run) for run in runs]
    for i, (title, series) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        separation = title.startswith("W_i")
        for j, (label, k, name) in enumerate(series):
            recs = sorted((r for r in runs[k].batches + runs[k].epochs if name in r.metrics),
                          key=lambda r: xs[k][id(r)])
            marker = "o" if len(recs) < 30 else None
            # one colour per run; in the W_i panel one colour per critic, a line style per run
            color = "C%d" % (j % 10) if separation else _COLORS[k]
            ax.plot([xs[k][id(r)] for r in recs], [r.metrics[name] for r in recs], color=color,
                    linestyle="--" if separation and k == 0 else "-", linewidth=1,
                    marker=marker, markersize=3, label=label)
        names = {name for _, _, name in series}
        for k in sorted({k for _, k, _ in series}):
            _mark_boundaries(ax, runs[k], _COLORS[k])
            for seg in runs[k].segments:
                if names <= set(seg.not_computed):
                    ax.axvspan(seg.first_global_epoch - 1, seg.last_global_epoch,
                               color=_COLORS[k], alpha=0.08)
        shaded = any(names <= set(seg.not_computed) for r in runs for seg in r.segments)
        ax.set_title(title + (" (shaded: not computed, prints nan)" if shaded else ""),
                     fontsize=9)
        if separation:
            ax.axhline(0, color="gray", linewidth=0.8)
            ax.legend(fontsize=6, ncol=2, frameon=False)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if i >= len(panels) - ncols:
            ax.set_xlabel("epoch (cumulative across counter restarts)", fontsize=8)
    handles, names = [], []
    for ax in fig.axes:             # one legend entry per run, whichever panel draws it
        for handle, name in zip(*ax.get_legend_handles_labels()):
            if name in labels and name not in names:
                handles.append(handle)
                names.append(name)
    from matplotlib.lines import Line2D
    handles.append(Line2D([], [], color="gray", linestyle="--"))
    names.append("stage boundary / counter restart")
    if run_a.resume_points or run_b.resume_points:
        handles.append(Line2D([], [], color="gray", linestyle=":", linewidth=1.5))
        names.append("resumed")
    fig.legend(handles, names, loc="upper center", ncol=3, fontsize=9, frameon=False)
    # Fixed margins, not tight_layout: measuring every tick label took seconds per figure.
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.6 / height, top=1 - 0.75 / height,
                        hspace=0.45, wspace=0.18)
    fig.savefig(path)
    return True


def plot_map(run_a, run_b, labels, path):
    """mAP against cumulative epoch for both runs: each run's best starred, the best the log
    states itself dotted (it differs from the maximum in the published SSD log)."""
    from matplotlib.ticker import MaxNLocator
    fig = _new_figure(8, 5)
    ax = fig.add_subplot(1, 1, 1)
    any_val = False
    for run, label, color in ((run_a, labels[0], _COLORS[0]), (run_b, labels[1], _COLORS[1])):
        vals = [v for v in run.validations if _finite(v.mean_ap)]
        _mark_boundaries(ax, run, color, label="%s: stage boundary" % label,
                         resume_label="%s: resumed" % label)
        if not vals:
            ax.plot([], [], color=color, label="%s: no validation yet" % label)
            continue
        any_val = True
        ax.plot([v.global_epoch for v in vals], [v.mean_ap for v in vals], color=color,
                marker="o", markersize=3, linewidth=1, label=label)
        best = run.best_validation
        ax.plot([best.global_epoch], [best.mean_ap], marker="*", markersize=12, color=color,
                linestyle="none", label="%s best %.4f (%s)" % (label, best.mean_ap,
                                                              _where(run, best)))
        logged = run.logged_best_map
        if logged is not None and abs(logged - best.mean_ap) > 1e-9:
            ax.axhline(logged, color=color, linestyle=":", linewidth=1,
                       label="%s: best stated by the log %.4f" % (label, logged))
    if not any_val:
        ax.text(0.5, 0.5, "no validation in either run yet", transform=ax.transAxes,
                ha="center", va="center")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0.05, y=0.15)
    ax.set_xlabel("epoch (cumulative across counter restarts)")
    ax.set_ylabel("mAP")
    ax.set_title("mAP per validation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2,
              frameon=False)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.3)
    fig.savefig(path)
    return True


def plot_per_class_ap(run_a, run_b, labels, path):
    """Per-class AP of each run's best validation as paired horizontal bars."""
    va, vb = run_a.best_validation, run_b.best_validation
    names = _class_names(va, vb)
    height = max(3.0, 0.32 * len(names) + 1.8)
    fig = _new_figure(8, height)
    ax = fig.add_subplot(1, 1, 1)
    if not names:
        ax.text(0.5, 0.5, "no validation in either run yet", transform=ax.transAxes,
                ha="center", va="center")
        ax.set_axis_off()
    else:
        bar = 0.4
        for offset, (val, run, label, color) in enumerate(
                ((va, run_a, labels[0], _COLORS[0]), (vb, run_b, labels[1], _COLORS[1]))):
            ys = [i - bar / 2 + offset * bar for i in range(len(names))]
            aps = [val.aps.get(n, float("nan")) if val else float("nan") for n in names]
            text = ("%s, %s, mAP %.4f" % (label, _where(run, val), val.mean_ap) if val
                    else "%s: no validation yet" % label)
            ax.barh(ys, [a if _finite(a) else 0 for a in aps], height=bar, color=color,
                    label=text)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("AP")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=1,
                  frameon=False)
        ax.set_title("Per-class AP at each run's best validation")
    fig.subplots_adjust(left=0.16, right=0.97, top=1 - 0.45 / height, bottom=1.2 / height)
    fig.savefig(path)
    return True


_PLOTS = (("losses.png", plot_losses, "Losses against epoch"),
          ("map.png", plot_map, "mAP against epoch"),
          ("per_class_ap.png", plot_per_class_ap, "Per-class AP"))


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

    out = ["# %s" % (title or "Log comparison: %s vs %s" % labels), "",
           "- " + _describe_run(parsed_a, run_a, labels[0]),
           "- " + _describe_run(parsed_b, run_b, labels[1]),
           "- lines read: %s %d (%d unreadable), %s %d (%d unreadable)"
           % (labels[0], parsed_a.n_lines, parsed_a.unreadable_count,
              labels[1], parsed_b.n_lines, parsed_b.unreadable_count)]
    for parsed, label in ((parsed_a, labels[0]), (parsed_b, labels[1])):
        for ex in parsed.unreadable_examples:
            out.append("  - %s unreadable line %d (%s): `%s`"
                       % (label, ex.line_no, ex.reason, ex.text[:100]))
    if not result.comparable:
        msg = ("NOT COMPARABLE: %s (%s) and %s (%s) are logs of different detectors; no "
               "side-by-side tables or plots are made." % (labels[0], KIND_NAMES[kind_a],
                                                           labels[1], KIND_NAMES[kind_b]))
        result.messages.append(msg)
        out += ["", "**%s**" % msg]
    else:
        out += ["", "## mAP", "", _map_section(run_a, run_b, labels)]
    for run_x, label in ((run_a, labels[0]), (run_b, labels[1])):
        out += ["", "## Stages of %s (%s)" % (label, "run %d" % run_x.index
                                               if len(run_x.blocks) < 2 else "runs %d-%d" % (
                                                   run_x.blocks[0], run_x.blocks[-1])), ""]
        out.append(_stage_table(run_x) if run_x.segments else "(no training lines yet)")
        if not result.comparable:
            rows = _map_rows(run_x)
            out.append("\nfinal mAP %s, best mAP %s" % (_fmt(rows["final"][0], "%.5f"),
                                                       _fmt(rows["best"][0], "%.5f")))
    if result.comparable:
        out += ["", "## Per-class AP at each run's best validation", "",
                _per_class_section(run_a, run_b, labels),
                "", "## Losses at matching epochs", "", _loss_section(run_a, run_b, labels)]
        out += ["", "## Plots", ""]
        if not plots:
            out.append("(not drawn: --no-plots)")
        for name, func, caption in (_PLOTS if plots else ()):
            path = os.path.join(out_dir, name)
            if func(run_a, run_b, labels, path):
                result.plot_paths.append(path)
                out.append("![%s](%s)\n" % (caption, name))
                if func is plot_losses:
                    out.append(_panels_text(loss_panels(run_a, run_b, labels)) + "\n")
            else:
                out.append("(%s: nothing to plot)\n" % caption)
        if any(n in DIAGNOSTICS for n in set(run_a.metric_names) | set(run_b.metric_names)):
            out += ["", DIAGNOSTICS_NOTE]
    out += ["", "## Settings diff (`Namespace` fields that differ)", "",
            _settings_section(run_a, run_b, labels)]

    if max_map_drop is not None:
        _apply_gate(result, run_a, run_b, labels, max_map_drop)
        out += ["", "## Gate", "", result.messages[-1]]
    result.report_path = os.path.join(out_dir, "report.md")
    with open(result.report_path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(out) + "\n")
    result.messages.append("wrote %s%s" % (result.report_path, "".join(
        " " + os.path.basename(p) for p in result.plot_paths)))


def _apply_gate(result, run_a, run_b, labels, max_map_drop):
    best_a, best_b = run_a.best_validation, run_b.best_validation
    if not result.comparable:
        msg = "FAIL --max-map-drop: the logs are not comparable"
    elif best_a is None:
        msg = "FAIL --max-map-drop: %s has no validation to compare against" % labels[0]
    elif best_b is None:
        msg = "FAIL --max-map-drop: %s has no validation yet" % labels[1]
    else:
        drop = best_a.mean_ap - best_b.mean_ap
        ok = drop <= max_map_drop
        msg = ("%s --max-map-drop %.4f: %s best mAP %.5f, %s best %.5f, drop %.5f"
               % ("PASS" if ok else "FAIL", max_map_drop, labels[1], best_b.mean_ap,
                  labels[0], best_a.mean_ap, drop))
        if ok:
            result.messages.append(msg)
            return
    result.exit_code = EXIT_MAP_DROP
    result.messages.append(msg)
