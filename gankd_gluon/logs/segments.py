"""Segment analysis: where a run restarts its epoch counter or changes stage, what diverged,
which speeds are timer glitches, and how resumed blocks join into one run.

The authors' published logs (:mod:`gankd_gluon.logs.published`) are messy real artifacts, and
each mess is handled on purpose:

- **Restarts.** Inside a run the epoch counter may restart (SSD: stage 1 runs epochs 1..221,
  then stage 2 counts from 1 again); a counter that goes down opens a new :class:`Segment`.
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
- **Absent columns.** Our stage-1 lines append monitors after the published columns
  (``cosine_length_loss_metric``, ``W_0``...; ``gankd_gluon/engine/diagnostics.py``), which
  stage 2 does not print (:attr:`Segment.absent`).
"""
import dataclasses
import re
import statistics

from .records import (BatchRecord, Divergence, EpochRecord, EventRecord, NewBestRecord, Run,
                      Segment, ValidationRecord, finite)

__all__ = ["ADVERSARIAL_METRICS", "OUTLIER_FACTOR", "run_kind", "segment_run", "stitch_runs"]

#: Columns computed only in the adversarial stage (the critic and generator terms).
ADVERSARIAL_METRICS = ("Loss_D", "Loss_G", "Loss_D_real", "Loss_D_fake")
#: A speed this many times above or below the segment median is a timer glitch.
OUTLIER_FACTOR = 10.0


def run_kind(run):
    """Tell the detector from the line shapes, falling back to the settings.

    Parameters
    ----------
    run : Run

    Returns
    -------
    str
        ``'frcnn'`` (a ``Training cost`` epoch line or a comma-separated batch line),
        ``'ssd'`` (SSD batch or epoch lines, or a ``StudentNet`` validation), else what
        ``save_prefix``/``network``/``model``/``name`` say, else ``'unknown'``.
    """
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
        if any(finite(records[i].metrics.get(name)) for name in ADVERSARIAL_METRICS):
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
    return all(finite(v) for v in others)


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


def segment_run(run):
    """Fill ``run.segments``, ``run.divergences`` and each record's segment/stage/epoch.

    Parameters
    ----------
    run : Run
        Read, not yet segmented (its ``segments`` and ``divergences`` empty); changed in
        place. A run holding only ``Start training`` lines gets no segment.
    """
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
        adversarial = any(finite(rec.metrics.get(name)) for rec in records
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
    seg.not_computed = [n for n, vals in present.items() if not any(finite(v) for v in vals)]
    seg.absent = [n for n in all_names if n not in present] if records else []
    batch_speeds = [r.speed for r in records if isinstance(r, BatchRecord)
                    and finite(r.speed)]
    all_speeds = [(r.line_no, r.speed) for r in records if r.speed is not None]
    reference = batch_speeds or [s for _, s in all_speeds if finite(s)]
    if reference:
        median = statistics.median(reference)
        seg.speed_outliers = [(ln, s) for ln, s in all_speeds
                              if not finite(s) or median <= 0
                              or not median / OUTLIER_FACTOR <= s <= median * OUTLIER_FACTOR]
        outlier_lines = {ln for ln, _ in seg.speed_outliers}
        kept = [r.speed for r in records if isinstance(r, BatchRecord) and finite(r.speed)
                and r.line_no not in outlier_lines]
        if not kept:
            kept = [s for ln, s in all_speeds if ln not in outlier_lines]
        if kept:
            seg.median_speed = statistics.median(kept)
    costs = [r.cost for r in records if isinstance(r, EpochRecord) and finite(r.cost)]
    if costs:
        seg.median_epoch_cost = statistics.median(costs)


def _find_divergences(run, seg, records):
    """Flag the first non-finite value of each metric that was finite earlier in the segment."""
    seen_finite, flagged = set(), set()
    for rec in records:
        for name, value in rec.metrics.items():
            if finite(value):
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
    segment_run(whole)
    whole.kind = run_kind(whole)
    for position, index in resumes:
        reached = copies[position - 1].global_epoch if position else 0
        whole.resume_points.append((reached, index))
    return whole
