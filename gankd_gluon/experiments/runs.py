"""What the experiment runners (:mod:`.reproduce`, :mod:`.demo`, :mod:`.study`,
:mod:`.ablation`, :mod:`.table3`) share: the generated dataset, the cached teacher, the one
test of whether a run finished with the wanted settings (:func:`checkpoint_status`),
the evaluation of an exported detector, the checkout's git state.

The runners import this module, never each other's internals, so the import graph of
``experiments`` has no cycle (checked by ``tests/test_layers.py``).
"""
import json
import math
import os
import shlex
import shutil
import time

__all__ = ["train_ssd_gankd", "train_ssd_plain", "shell_command", "ensure_dataset", "fresh_log",
           "teacher_cached", "train_teacher", "finished_with", "checkpoint_status",
           "same_setting", "mtime", "evaluate_exported", "git_state"]


def train_ssd_gankd(args):
    """One ``train_ssd_gan_kd.py`` run in this process, on parsed arguments
    (:func:`gankd_gluon.engine.runs.run_gankd` over an SSD part)."""
    from ..engine.runs import run_gankd
    from ..engine.ssd_runs import SSDPart
    return run_gankd(args, SSDPart())


def train_ssd_plain(args):
    """One ``train_ssd.py`` run in this process, on parsed arguments
    (:func:`gankd_gluon.engine.runs.run_plain` over an SSD part)."""
    from ..engine.runs import run_plain
    from ..engine.ssd_runs import SSDPart
    return run_plain(args, SSDPart())


def shell_command(script, argv):
    """The command that runs ``scripts/<script>`` with ``argv``, quoted for a POSIX shell
    (``shlex.join``: an empty ``--gpus`` value prints as ``''``)."""
    return shlex.join(["python", "scripts/" + script] + list(argv))


def ensure_dataset(root, seed, num_train, num_test, say=print, image_size=(256, 256),
                   difficulty="default"):
    """Generate the synthetic set under ``root`` unless it is already there with these
    settings (recorded in ``<root>/generated.json`` when it is made; a set without that record
    is made again: same seed, same bytes).

    Returns
    -------
    bool
        True when the set was generated, False when the cached one was used.
    """
    from ..data.synthetic import make_synthetic_voc
    settings = {"seed": seed, "num_train": num_train, "num_test": num_test,
                "image_size": list(image_size), "difficulty": difficulty}
    record = os.path.join(root, "generated.json")
    if os.path.isfile(record):
        with open(record) as f:
            if json.load(f) == settings:
                say("dataset: cached at %s" % root)
                return False
    tic = time.time()
    make_synthetic_voc(root, seed=seed, num_train=num_train, num_test=num_test,
                       image_size=tuple(image_size), difficulty=difficulty)
    with open(record, "w") as f:
        json.dump(settings, f)
    say("dataset: generated %d train + %d test %s images at %s in %.1f s"
        % (num_train, num_test, difficulty, root, time.time() - tic))
    return True


def fresh_log(path):
    """Logs are opened in append mode; a demo run starts its logs afresh."""
    if os.path.exists(path):
        os.remove(path)


def teacher_cached(cfg):
    """True when the cache holds the teacher's final params and its export."""
    return (os.path.isfile(cfg.teacher_params)
            and os.path.isfile(cfg.exported("teacher") + "-symbol.json"))


def train_teacher(cfg, say=print):
    """Train the teacher with ``run_plain`` unless the cache has it.

    Returns
    -------
    dict
        ``cached`` (bool), ``wall_s`` (training wall time of the run that made it), ``log``.
    """
    a = cfg.args
    cached_log = os.path.join(cfg.teacher_dir, cfg.teacher_prefix + "_train.log")
    meta_path = os.path.join(cfg.teacher_dir, cfg.teacher_prefix + ".demo.json")
    if teacher_cached(cfg):
        say("teacher: cached, %s" % cfg.teacher_params)
        meta = json.load(open(meta_path)) if os.path.isfile(meta_path) else {}
        info = {"cached": True, "wall_s": meta.get("wall_s", float("nan")),
                "argv": meta.get("argv", [])}
    else:
        argv = ["--network", a.teacher, "--optimizer", "adam", "--lr", str(a.lr),
                "--epochs", str(a.teacher_epochs), "--save-prefix", cfg.teacher_prefix,
                "--overwrite", "--save-dir", cfg.teacher_dir, "--log-dir", cfg.teacher_dir]
        argv += cfg.common_argv()
        fresh_log(cached_log)
        say("teacher: training %s for %d epochs: %s"
            % (a.teacher, a.teacher_epochs, shell_command("train_ssd.py", argv)))
        tic = time.time()
        train_ssd_plain(cfg.plain_parse_args(argv))
        info = {"cached": False, "wall_s": time.time() - tic, "argv": argv}
        with open(meta_path, "w") as f:
            json.dump(info, f)
    shutil.copyfile(cached_log, cfg.log_path("teacher"))
    info["log"] = cfg.log_path("teacher")
    return info


def mtime(path):
    """The modification time of ``path`` (seconds since the epoch), None when it is absent."""
    return os.path.getmtime(path) if os.path.exists(path) else None


def same_setting(recorded, wanted):
    """Does a checkpoint's recorded setting equal ``wanted``: a parsed value (a tuple counts as
    the list JSON stores), or a command-line string (``'0.5'`` equals ``0.5``, ``'true'``
    equals ``True``)?"""
    if isinstance(wanted, tuple):
        wanted = list(wanted)
    if not isinstance(wanted, str):
        return recorded == wanted
    if isinstance(recorded, bool) or recorded is None:
        return str(recorded).lower() == wanted.lower()
    if isinstance(recorded, (int, float)):
        try:
            return math.isclose(float(recorded), float(wanted), rel_tol=1e-9, abs_tol=0.0)
        except ValueError:
            return False
    return str(recorded) == wanted


def checkpoint_status(manifest, wanted, inputs=(), files=(), given=None):
    """Is a step's training done: the one test every experiment runner applies to a run's
    final checkpoint before it trains (or reuses) that run.

    Parameters
    ----------
    manifest : str
        The run's final checkpoint manifest (``<prefix>-final.json``).
    wanted : dict of str -> value
        The settings (argparse dests) the run must have been trained with: parsed values or
        command-line strings (:func:`same_setting`).
    inputs : iterable of str
        Files the run was made from (a teacher's weights): one rewritten since makes it stale.
    files : iterable of str
        Further outputs that must exist (an export).
    given : set of str or None
        The dests the command line gives. A setting the manifest does not record belongs to a
        flag added to the script after that run, and its default keeps the behaviour from
        before the flag existed: it differs only when ``given`` names it (None: never).

    Returns
    -------
    (status, why) : (str, str)
        ``status`` is ``'done'``; ``'absent'`` (no readable manifest); ``'incomplete'`` (a
        file of its checkpoint set or of ``files`` is missing: a kill during the write);
        ``'differs'`` (``why`` lists ``key=recorded (command: wanted)``); or ``'stale'`` (an
        input is newer than the manifest). The callers decide: the table rows stop and ask
        (:func:`~.reproduce.step_status`); the ablation and the study, which give no inputs,
        train again a run that is not done.
    """
    if not os.path.isfile(manifest):
        return "absent", "no final checkpoint %s" % manifest
    try:
        with open(manifest) as f:
            state = json.load(f)
    except ValueError:
        return "absent", "unreadable checkpoint manifest %s" % manifest
    folder = os.path.dirname(os.path.abspath(manifest))
    missing = [p for p in state.get("parts", {}).values()
               if not os.path.isfile(os.path.join(folder, p))]
    missing += [p for p in files if not os.path.isfile(p)]
    if missing:
        return "incomplete", "checkpoint %s is incomplete (missing %s)" % (manifest, missing[0])
    recorded = state.get("args", {})
    differ = ["%s=%s (command: %s)" % (k, recorded.get(k), v) for k, v in wanted.items()
              if (k in recorded and not same_setting(recorded[k], v))
              or (k not in recorded and given is not None and k in given)]
    if differ:
        return "differs", "; ".join(differ)
    newer = [p for p in inputs if p and (mtime(p) or 0) > mtime(manifest)]
    if newer:
        return "stale", newer[0]
    return "done", "finished: %s" % manifest


def finished_with(cfg, prefix, run_args, log, argv=()):
    """True when ``prefix``'s final checkpoint is complete and was written by a run with every
    setting of ``run_args`` (:func:`checkpoint_status`; the ablation shares its run folder
    across budgets: a different ``--student-epochs`` must train again) and its log is in the
    output folder. ``argv``: the run's command-line arguments (settings the checkpoint does not
    record count as equal unless ``argv`` gives them)."""
    manifest = os.path.join(cfg.runs_dir, prefix, prefix + "-final.json")
    given = {a.split("=", 1)[0][2:].replace("-", "_") for a in argv if a.startswith("--")}
    wanted = {k: v for k, v in vars(run_args).items() if k != "progress"}
    status, _ = checkpoint_status(manifest, wanted, given=given)
    return status == "done" and os.path.isfile(log)


def evaluate_exported(prefix, dataset, data_shape, batch_size, num_workers=0, collect=None):
    """VOC07 mAP of an exported detector on ``dataset`` (the project's evaluation).

    Returns
    -------
    names : list of str (classes + 'mAP'), values : list of float
    """
    import mxnet as mx
    from ..eval.detector import import_symbol_detector
    from ..eval.voc import evaluate_detector, get_eval_loader
    net = import_symbol_detector(prefix, [mx.cpu()])
    loader = get_eval_loader(dataset, data_shape, batch_size, num_workers)
    return evaluate_detector(net, loader, [mx.cpu()], list(dataset.classes), progress=False,
                             collect=collect)


def git_state():
    """Commit and locally modified tracked files of the checkout an experiment runs from."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def git(*cmd):
        try:
            return subprocess.run(("git",) + cmd, cwd=root, capture_output=True, text=True,
                                  timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no")
             .splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or "unknown", "dirty": dirty}
