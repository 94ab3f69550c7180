"""What the experiment runners (:mod:`.demo`, :mod:`.study`, :mod:`.ablation`) share: the
generated dataset, the cached teacher, a run reused when it finished with the same settings,
the evaluation of an exported detector, the checkout's git state.

The runners import this module, never each other's internals, so the import graph of
``experiments`` has no cycle (checked by ``tests/test_layers.py``).
"""
import json
import os
import shlex
import shutil
import time

__all__ = ["train_ssd_gankd", "train_ssd_plain", "shell_command", "ensure_dataset", "fresh_log", "teacher_cached", "train_teacher",
           "finished_with", "evaluate_exported", "git_state"]


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


def finished_with(cfg, prefix, run_args, log, argv=()):
    """True when ``prefix``'s final checkpoint was written by a run with every setting of
    ``run_args`` (the ablation shares its run folder across budgets: a different
    ``--student-epochs`` must train again) and its log is in the output folder.

    A setting the checkpoint does not record belongs to a flag added to the script after that
    run: it counts as equal when ``argv`` (the run's command-line arguments) does not give the
    flag, because a flag's default keeps the behaviour from before the flag existed."""
    manifest = os.path.join(cfg.runs_dir, prefix, prefix + "-final.json")
    if not (os.path.isfile(manifest) and os.path.isfile(log)):
        return False
    with open(manifest) as f:
        stored = json.load(f).get("args", {})
    given = {a.split("=", 1)[0][2:].replace("-", "_") for a in argv if a.startswith("--")}
    for k, v in vars(run_args).items():
        if k == "progress":
            continue
        if k not in stored:
            if k in given:
                return False
        elif stored[k] != (list(v) if isinstance(v, tuple) else v):
            return False
    return True


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
