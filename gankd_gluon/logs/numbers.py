"""The numbers a log comparison reports, without their text: which settings differ, best and
final mAP, epochs to 95% of the best, loss values at each epoch's end, the loss panels, the
stage speeds and the ``--max-map-drop`` gate.

:mod:`gankd_gluon.logs.markdown` writes them into ``report.md``, :mod:`gankd_gluon.logs.plots`
draws them, :mod:`gankd_gluon.logs.report` puts the comparison together.

Conventions
-----------
- Epochs are shown as printed, and also "cumulative": the count goes on across counter
  restarts, so the published SSD stage-2 epoch 1 is cumulative epoch 222.
- "Best mAP" is the maximum over the run's validations; the value the log states itself
  (``best_map is``, or the last ``higher than current best`` line) is kept beside it, because
  in the published SSD log they differ (0.78201 stated, 0.78271 at stage-1 epoch 221).
"""
from dataclasses import dataclass
from typing import Optional

from .records import EpochRecord, finite

__all__ = ["DIAGNOSTICS", "MISSING", "settings_diff", "epochs_to_fraction", "epoch_end_values",
           "map_summary", "class_names", "is_separation", "compared_metrics", "loss_panels",
           "stage_speed_ratio", "GateResult", "map_drop_gate", "where"]

#: Monitoring columns compared whenever either run prints them (the published SSD log prints
#: ``cosine_length_loss_metric``; ours print it and ``W_i``, ``engine/diagnostics.py``).
DIAGNOSTICS = ("cosine_length_loss_metric",)
#: :func:`settings_diff`'s value for a key one side does not have (shown as "(absent)").
MISSING = object()


def settings_diff(settings_a, settings_b):
    """Fields whose values differ between two settings dicts.

    Returns
    -------
    list of (str, object, object)
        ``(key, value_a, value_b)``, sorted by key; a key missing on one side has the
        :data:`MISSING` marker there (shown as "(absent)").
    """
    rows = []
    for key in sorted(set(settings_a) | set(settings_b)):
        a, b = settings_a.get(key, MISSING), settings_b.get(key, MISSING)
        if a is MISSING or b is MISSING or a != b:
            rows.append((key, a, b))
    return rows


def epochs_to_fraction(run, fraction=0.95):
    """First validation reaching ``fraction`` of the run's best mAP, or None."""
    best = run.best_validation
    if best is None:
        return None
    return next(v for v in run.validations
                if finite(v.mean_ap) and v.mean_ap >= fraction * best.mean_ap)


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


def where(run, rec):
    """Where a record is, as reports and plot legends name it: ``'epoch 221 (stage 1)'``, with
    the cumulative epoch added when the counter restarted (``'epoch 4 = cumulative 225
    (stage 2)'``)."""
    text = "epoch %d" % rec.epoch
    if rec.global_epoch != rec.epoch:
        text += " = cumulative %d" % rec.global_epoch
    if run.segments:
        text += " (stage %d)" % rec.stage
    return text


def map_summary(run):
    """The run's final, best, log-stated best mAP and its first validation >= 95% of the best.

    Returns
    -------
    dict
        ``{'final' | 'best' | 'logged' | 'reach': (mAP or None, ValidationRecord or None)}``;
        ``'logged'`` (:attr:`Run.logged_best_map`) has no record.
    """
    final, best = run.final_validation, run.best_validation
    reach = epochs_to_fraction(run)
    return {
        "final": (final.mean_ap if final else None, final),
        "best": (best.mean_ap if best else None, best),
        "logged": (run.logged_best_map, None),
        "reach": (reach.mean_ap if reach else None, reach),
    }


def class_names(va, vb):
    """Class names of two validations (either may be None): ``va``'s, then ``vb``'s others."""
    names = list(va.aps) if va else []
    names += [n for n in (vb.aps if vb else []) if n not in names]
    return names


def is_separation(name):
    """``W_0``, ``W_1``, ...: our per-critic separation columns (one panel for all)."""
    return name.startswith("W_") and name[2:].isdigit()


def _shared_metrics(run_a, run_b):
    names_b = set(run_b.metric_names)
    return [n for n in run_a.metric_names if n in names_b]


def compared_metrics(run_a, run_b):
    """Losses side by side: those both runs print (our ``W_i`` apart), then the monitors
    either run prints (:data:`DIAGNOSTICS`), in that order."""
    shared = [n for n in _shared_metrics(run_a, run_b)
              if n not in DIAGNOSTICS and not is_separation(n)]
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
    for name in compared_metrics(run_a, run_b):
        panels.append((name, [(labels[k], k, name) for k in (0, 1)
                              if name in runs[k].metric_names]))
    series = [("%s %s" % (labels[k], name), k, name) for k in (0, 1)
              for name in runs[k].metric_names if is_separation(name)]
    if series:
        panels.append(("W_i = mean D_i(student) - mean D_i(teacher), per critic", series))
    return panels


def stage_speed_ratio(run):
    """Stage-2 over stage-1 median batch speed (the last segment of each with a speed).

    Returns
    -------
    tuple of (float, float, float) or None
        ``(ratio, stage-2 samples/s, stage-1 samples/s)``; None unless both stages have a
        finite median speed.
    """
    adv = [s for s in run.segments if s.stage == 1 and finite(s.median_speed)]
    plain = [s for s in run.segments if s.stage == 2 and finite(s.median_speed)]
    if not (adv and plain):
        return None
    return (plain[-1].median_speed / adv[-1].median_speed, plain[-1].median_speed,
            adv[-1].median_speed)


@dataclass
class GateResult:
    """The ``--max-map-drop`` verdict: ``failure`` names why it cannot be checked (None when
    it can); ``drop`` is the published best minus ours (mAP), ``passed`` ``drop <= max``."""
    passed: bool
    failure: Optional[str] = None
    best_a: Optional[float] = None
    best_b: Optional[float] = None
    drop: Optional[float] = None


def map_drop_gate(run_a, run_b, comparable, max_map_drop):
    """Check that ``run_b``'s best mAP is at most ``max_map_drop`` below ``run_a``'s.

    Returns
    -------
    GateResult
        Failed, with ``failure`` ``'not comparable'``, ``'no validation in a'`` or ``'no
        validation in b'``, when it cannot be checked.
    """
    best_a, best_b = run_a.best_validation, run_b.best_validation
    if not comparable:
        return GateResult(False, "not comparable")
    if best_a is None:
        return GateResult(False, "no validation in a")
    if best_b is None:
        return GateResult(False, "no validation in b")
    drop = best_a.mean_ap - best_b.mean_ap
    return GateResult(drop <= max_map_drop, None, best_a.mean_ap, best_b.mean_ap, drop)
