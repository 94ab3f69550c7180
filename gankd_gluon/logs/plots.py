"""The figures of the log reports, drawn with matplotlib's object API on the Agg canvas (no
pyplot, so no global backend state and no display needed).

Each ``plot_*`` function draws one PNG of :func:`gankd_gluon.logs.report.compare_logs` from the
numbers of :mod:`gankd_gluon.logs.numbers`: ``losses.png`` (:func:`plot_losses`), ``map.png``
(:func:`plot_map`) and ``per_class_ap.png`` (:func:`plot_per_class_ap`). The x axis counts
epochs cumulatively across counter restarts; batch lines sit between the previous epoch's end
and their own.
"""
import math

from .numbers import class_names, loss_panels, where
from .records import finite

__all__ = ["COLORS", "new_figure", "plot_losses", "plot_map", "plot_per_class_ap", "PLOTS"]

#: One colour per run: the first (published) and the second (ours).
COLORS = ("tab:blue", "tab:orange")


def new_figure(width, height, dpi=100):
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches at ``dpi`` on an Agg canvas
    (``fig.canvas``; ``fig.savefig`` works without pyplot or a display, and without changing
    the process's matplotlib backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=dpi)
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
    fig = new_figure(6.5 * ncols, height)
    xs = [_x_positions(run) for run in runs]
    for i, (title, series) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        separation = title.startswith("W_i")
        for j, (label, k, name) in enumerate(series):
            recs = sorted((r for r in runs[k].batches + runs[k].epochs if name in r.metrics),
                          key=lambda r: xs[k][id(r)])
            marker = "o" if len(recs) < 30 else None
            # one colour per run; in the W_i panel one colour per critic, a line style per run
            color = "C%d" % (j % 10) if separation else COLORS[k]
            ax.plot([xs[k][id(r)] for r in recs], [r.metrics[name] for r in recs], color=color,
                    linestyle="--" if separation and k == 0 else "-", linewidth=1,
                    marker=marker, markersize=3, label=label)
        names = {name for _, _, name in series}
        for k in sorted({k for _, k, _ in series}):
            _mark_boundaries(ax, runs[k], COLORS[k])
            for seg in runs[k].segments:
                if names <= set(seg.not_computed):
                    ax.axvspan(seg.first_global_epoch - 1, seg.last_global_epoch,
                               color=COLORS[k], alpha=0.08)
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
    fig = new_figure(8, 5)
    ax = fig.add_subplot(1, 1, 1)
    any_val = False
    for run, label, color in ((run_a, labels[0], COLORS[0]), (run_b, labels[1], COLORS[1])):
        vals = [v for v in run.validations if finite(v.mean_ap)]
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
                                                              where(run, best)))
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
    names = class_names(va, vb)
    height = max(3.0, 0.32 * len(names) + 1.8)
    fig = new_figure(8, height)
    ax = fig.add_subplot(1, 1, 1)
    if not names:
        ax.text(0.5, 0.5, "no validation in either run yet", transform=ax.transAxes,
                ha="center", va="center")
        ax.set_axis_off()
    else:
        bar = 0.4
        for offset, (val, run, label, color) in enumerate(
                ((va, run_a, labels[0], COLORS[0]), (vb, run_b, labels[1], COLORS[1]))):
            ys = [i - bar / 2 + offset * bar for i in range(len(names))]
            aps = [val.aps.get(n, float("nan")) if val else float("nan") for n in names]
            text = ("%s, %s, mAP %.4f" % (label, where(run, val), val.mean_ap) if val
                    else "%s: no validation yet" % label)
            ax.barh(ys, [a if finite(a) else 0 for a in aps], height=bar, color=color,
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


#: The figures of a comparison: (file name, drawing function, caption in report.md).
PLOTS = (("losses.png", plot_losses, "Losses against epoch"),
         ("map.png", plot_map, "mAP against epoch"),
         ("per_class_ap.png", plot_per_class_ap, "Per-class AP"))

