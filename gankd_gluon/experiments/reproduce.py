"""Run a table row's chain of commands (:mod:`.chains`), resuming where it stopped, and append
the result to ``logs/results.md``.

``scripts/reproduce.py`` is the entry point; ``scripts/experiments/<row>.sh`` call it. Each step
is the existing script run as a subprocess, exactly as ``--dry-run`` prints it. A step is skipped
when its outputs exist and are complete:

* training: the final checkpoint manifest ``<prefix>-final.json`` with every part it names, the
  exported model the next step reads, and the same recipe (epochs, learning rates, batch, data
  shape, ...) in the manifest's stored args as in the command. An unfinished run resumes from
  its newest epoch checkpoint (``--resume auto``), so a killed chain loses at most one epoch;
* evaluation: the ``--out`` JSON, newer than the model it scored;
* the generated dataset (``--scale smoke``): its split files with the expected image counts.
"""
import argparse
import datetime
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time

from ..usage import (EXIT_FAULT, EXIT_OK, EXIT_USAGE, UsageError, check_devices, gpu_list,
                     parse_checked)
from .chains import REPO_ROOT, build_chain, run_names
from .estimates import effective_settings, estimate_hours
from .recipes import SMOKE
from .rows import TABLES, get_row, rows_of
from .runs import checkpoint_status, git_state, mtime

__all__ = ["parse_args", "main", "list_rows", "step_status", "append_result", "has_result",
           "ChainError"]

RESULTS_HEADER = (
    "# Results of scripts/reproduce.py\n\n"
    "One line per evaluation of a table row, appended by `scripts/reproduce.py` "
    "(docs/reproducing.md). mAP in percent: VOC07 11-point mAP@0.5 (Tables 1, 3) or COCO "
    "mAP@[.5:.95] (Table 2). delta = ours - paper; gain = distilled - the row group's \"-\" "
    "row. `smoke` lines come from the generated dataset at toy scale and say nothing about "
    "the paper's numbers.\n\n"
    "| row | scale | paper mAP | our mAP | delta | gain paper / ours | date | command | commit |\n"
    "|---|---|---|---|---|---|---|---|---|\n")


class ChainError(RuntimeError):
    """A step cannot be run or skipped safely (stale output, missing script)."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="reproduce.py",
        description="Reproduce a row of the paper's Tables 1-3: train the teacher (when the model "
                    "zoo has none), the baseline, the distilled student, evaluate, and append "
                    "the result to logs/results.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the rows with the paper's mAP")
    parser.add_argument("--table", type=int, choices=sorted(TABLES), help="table number")
    parser.add_argument("--row", type=str,
                        help="row number in the table (1-based, as --list shows) or its name, "
                             "e.g. mobilenet1.0_resnet50_v1")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the exact commands (and which are already done), run nothing")
    parser.add_argument("--gpus", type=gpu_list, default=None,
                        help="GPU ids of every command; default '0,1' (the paper's two GPUs), "
                             "'' (CPU) at --scale smoke. The global batch stays the paper's and "
                             "is split over them")
    parser.add_argument("--scale", choices=("full", "smoke"), default="full",
                        help="full: the paper's data and schedule; smoke: the same chain on a "
                             "generated %d/%d-image dataset, 1 epoch per stage, %d px (%d for "
                             "VGG16), CPU, no downloads"
                             % (SMOKE["num_train"], SMOKE["num_test"], SMOKE["data_shape"],
                                SMOKE["data_shape_vgg"]))
    parser.add_argument("--work-dir", type=str, default=None,
                        help="where checkpoints/, logs/, eval/ (and data/ at smoke) go; "
                             "default '.' (full), work_dirs/smoke (smoke)")
    parser.add_argument("--results", type=str, default=None,
                        help="results table to append to; default <work-dir>/logs/results.md")
    parser.add_argument("--checkpoint", choices=("best", "final"), default="best",
                        help="which exported model is evaluated: best validation mAP (as "
                             "GluonCV's scripts and the published logs keep it) or the last")
    parser.set_defaults(baseline=True)     # on the parser: the help shows no "(default: True)"
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        default=argparse.SUPPRESS,
                        help="distillation rows: skip the baseline (then the gain is reported "
                             "only if the '-' row was already evaluated); without it the "
                             "baseline runs")
    parser.add_argument("--python", type=str, default=sys.executable,
                        help="interpreter that runs the steps")
    return parse_checked(parser, argv, _check_args)


def _check_args(args):
    """A row that exists and, unless only listing or printing, GPUs that exist (the chain's
    training steps would each refuse them after the previous steps ran)."""
    if args.list:
        return
    if args.table is None or args.row is None:
        raise UsageError("give --list, or --table T --row R (see --list)")
    try:
        get_row(args.table, args.row)
    except KeyError as err:
        raise UsageError("--row %s: %s" % (args.row, err.args[0])) from None
    if not args.dry_run:
        gpus = args.gpus if args.gpus is not None else ("" if args.scale == "smoke" else "0,1")
        check_devices(argparse.Namespace(gpus=gpus))


# --------------------------------------------------------------------------------- listing
def list_rows(table=None, out=print):
    """Print the rows (all, or one table's) with the paper's mAP; returns the rows."""
    rows = rows_of(table)
    for t in sorted({r.table for r in rows}):
        out(TABLES[t])
        out("  %-3s %-34s %-18s %-13s %-6s %-12s %s" % (
            "row", "name", "student", "teacher", "method", "paper mAP", "row settings"))
        for r in rows_of(t):
            if r not in rows:
                continue
            out("  %-3d %-34s %-18s %-13s %-6s %-12s %s" % (
                r.index, r.key, r.student + ("/" + r.roi_mode if r.roi_mode else ""),
                r.teacher or "-", r.method, r.paper_text(), r.settings_text()))
        out("")
    counts = ", ".join("Table %d: %d" % (t, len(rows_of(t))) for t in sorted(TABLES)
                       if table is None or t == int(table))
    out("%d rows (%s). Run one: python scripts/reproduce.py --table T --row R "
        "(or scripts/experiments/<table>_<name>.sh)" % (len(rows), counts))
    return rows


# ------------------------------------------------------------------------------ step status
def _split_files_count(path):
    if not os.path.isfile(path):
        return -1
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def step_status(step):
    """``(True, why)`` if the step's outputs exist and are complete, else ``(False, why)``.

    Raises
    ------
    ChainError
        The outputs exist but were made with another recipe, or before an input they depend on
        was rewritten: re-running would silently reuse or resume the wrong run.
    """
    outs = step.outputs
    if "dataset" in outs:
        root, n_train, n_test = outs["dataset"]
        sets = os.path.join(root, "VOCdevkit", "VOC2007", "ImageSets", "Main")
        coco = os.path.join(root, "coco", "annotations")
        ok = (_split_files_count(os.path.join(sets, "trainval.txt")) == n_train
              and _split_files_count(os.path.join(sets, "test.txt")) == n_test
              and all(os.path.isfile(os.path.join(coco, "instances_%s.json" % s))
                      for s in ("trainval", "test")))
        return (ok, "generated dataset at %s" % root if ok else "no complete dataset at %s" % root)
    if "eval_json" in outs:
        path = outs["eval_json"]
        if not os.path.isfile(path):
            return False, "no evaluation %s" % path
        try:
            with open(path) as f:
                json.load(f)["ap"]["mAP"]
        except (ValueError, KeyError, TypeError):
            return False, "unreadable evaluation %s" % path
        newer = [p for p in step.inputs if (mtime(p) or 0) > mtime(path)]
        if newer:
            return False, "evaluation %s is older than %s" % (path, newer[0])
        return True, "evaluated: %s" % path
    manifest = outs["manifest"]
    status, why = checkpoint_status(manifest, step.recipe, step.inputs, outs.get("files", []))
    folder = os.path.dirname(os.path.abspath(manifest))
    if status == "differs":
        raise ChainError("%s was trained with other settings: %s. Delete %s (or use another "
                         "--work-dir) to train it again." % (manifest, why, folder))
    if status == "stale":
        raise ChainError("%s is older than its input %s (rewritten since). Delete %s to train "
                         "it again with the new input." % (manifest, why, folder))
    return status == "done", why


# ------------------------------------------------------------------------------ results
def _git_commit():
    """``<commit>`` of the checkout, ``<commit>-dirty`` with local changes to tracked files."""
    state = git_state()
    return state["commit"] + ("-dirty" if state["dirty"] else "")


def _fmt(x, sign=False):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return ("%+.1f" if sign else "%.1f") % x


def append_result(path, row, scale, ours, our_gain, command, commit, date=None):
    """Append one line to the results table ``path`` (created with its header if missing)."""
    date = date or datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    delta = ours - row.paper_map if ours is not None else None
    gain = "-" if row.is_baseline else "%s / %s" % (_fmt(row.paper_gain, True),
                                                    _fmt(our_gain, True))
    cells = ["T%d R%d %s" % (row.table, row.index, row.key), scale, "%.1f" % row.paper_map,
             _fmt(ours), _fmt(delta, True), gain, date,
             "`%s`" % command.replace("|", "\\|"), commit]
    line = "| " + " | ".join(cells) + " |\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a") as f:
        if new:
            f.write(RESULTS_HEADER)
        f.write(line)
    return line


def has_result(path, row, scale):
    """Does the results table ``path`` hold a line of ``row`` at ``scale``?"""
    if not os.path.isfile(path):
        return False
    start = "| T%d R%d %s | %s |" % (row.table, row.index, row.key, scale)
    with open(path) as f:
        return any(line.startswith(start) for line in f)


# ------------------------------------------------------------------------------ running
def _display(step):
    return step.command("python")


def _run(step, python):
    script = os.path.join(REPO_ROOT, step.script)
    if not os.path.isfile(script):
        raise ChainError("%s does not exist in this checkout; this row cannot run yet"
                         % step.script)
    cmd = [python, script] + step.argv()
    child = subprocess.Popen(cmd)

    def forward(signum, _frame):
        # a scheduler's SIGTERM reaches only this process: pass it on, so the training saves
        # its 'interrupted' checkpoint and the next run resumes from it
        child.send_signal(signum)
    previous = signal.signal(signal.SIGTERM, forward)
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(args, argv=None, out=print):
    """Entry point of ``scripts/reproduce.py``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.list:
        list_rows(args.table, out)
        return EXIT_OK
    if args.table is None or args.row is None:
        out("error: give --list, or --table T --row R (see --list)")
        return EXIT_USAGE
    try:
        row = get_row(args.table, args.row)
    except KeyError as err:
        out("error: %s" % err.args[0])
        return EXIT_USAGE
    work_dir = args.work_dir or ("work_dirs/smoke" if args.scale == "smoke" else ".")
    results = args.results or os.path.join(work_dir, "logs", "results.md")
    steps = build_chain(row, args.scale, args.gpus, work_dir, args.checkpoint, args.baseline)

    out("Table %d, row %d (%s): %s, teacher %s, method %s, dataset %s; paper mAP %s"
        % (row.table, row.index, row.key, row.student, row.teacher or "-", row.method,
           row.dataset, row.paper_text()))
    if row.note:
        out("note: " + row.note)
    if args.dry_run:
        for line in effective_settings(row, steps):
            out("  " + line)
        if args.scale == "full":
            gpus = [g for g in (args.gpus if args.gpus is not None else "0,1").split(",")
                    if g.strip()]
            est = estimate_hours(row, max(1, len(gpus)), args.baseline)
            out("  estimated wall time on %d GTX 1080 Ti (published speeds): %s; total %.0f h"
                % (max(1, len(gpus)), ", ".join("%s %.0f h" % kv for kv in est.items()),
                   sum(est.values())))
    ran_eval = False
    for i, step in enumerate(steps, 1):
        try:
            done, why = step_status(step)
        except ChainError as err:
            out("[%d/%d] %s: error: %s" % (i, len(steps), step.kind, err))
            return EXIT_USAGE
        if args.dry_run:
            out("[%d/%d] %s (%s)" % (i, len(steps), step.kind,
                                     "done, would skip: " + why if done else "to run"))
            out("    " + _display(step))
            continue
        if done:
            out("[%d/%d] %s: skipped, %s" % (i, len(steps), step.kind, why))
            continue
        out("[%d/%d] %s: %s\n    %s" % (i, len(steps), step.kind, why, _display(step)))
        sys.stdout.flush()
        tic = time.time()
        try:
            code = _run(step, args.python)
        except ChainError as err:
            out("error: %s" % err)
            return EXIT_USAGE
        if code != 0:
            out("error: step %d/%d (%s) failed with exit status %d; fix the cause and run the "
                "same command again: finished steps are skipped, an unfinished training resumes"
                % (i, len(steps), step.kind, code))
            return code
        done, why = step_status(step)
        if not done:
            out("error: step %s exited 0 but its outputs are not complete: %s" % (step.kind, why))
            return EXIT_FAULT
        out("[%d/%d] %s: done in %.0f s" % (i, len(steps), step.kind, time.time() - tic))
        ran_eval = ran_eval or step.kind == "eval"
    if args.dry_run:
        return EXIT_OK

    final = [s for s in steps if s.kind == "eval"][-1]
    ours = read_eval_map(final.outputs["eval_json"])
    our_gain = None
    if not row.is_baseline:
        base = [s for s in steps if s.kind == "eval-baseline"]
        base_json = base[0].outputs["eval_json"] if base else os.path.normpath(os.path.join(
            work_dir, "eval", "%s-%s.json" % (run_names(row, args.scale)["baseline"],
                                               args.checkpoint)))
        if os.path.isfile(base_json):
            our_gain = ours - read_eval_map(base_json)
    command = " ".join(shlex.quote(a) for a in ["python", "scripts/reproduce.py"] + argv)
    # a row whose steps were all done by other rows (a "-" row after its distillation rows,
    # Table 3 row 5 after row 3) still gets its line once; a re-run does not repeat it
    if ran_eval or not has_result(results, row, args.scale):
        line = append_result(results, row, args.scale, ours, our_gain, command, _git_commit())
        out("result appended to %s:\n%s" % (results, line.rstrip()))
    else:
        out("all steps were already done and %s has this row's line; result: our mAP %s, "
            "paper %s, delta %s" % (results, _fmt(ours), row.paper_text(),
                                     _fmt(ours - row.paper_map, True)))
    return EXIT_OK


def read_eval_map(path):
    """mAP (percent) from an ``eval_voc.py`` / ``eval_coco.py`` ``--out`` JSON; nan if null."""
    with open(path) as f:
        value = json.load(f)["ap"]["mAP"]
    return float("nan") if value is None else 100.0 * float(value)
