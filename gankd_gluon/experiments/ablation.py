"""Chen et al.'s Table 4 ablation on an SSD teacher/student pair, beside GAN-KD.

Every configuration is ``train_ssd_gan_kd.py`` with another ``--method`` and nothing else
changed: same teacher, student, head, data, epochs (stage 1 with the method's terms, then
plain stage 2) and evaluation. So the table isolates the distillation terms. The baseline is
``--method none``: the same student (initialised with the teacher's head when ``--head
teacher``) with no distillation term, so that head initialisation is not credited to any method.
"""
import os
import time

__all__ = ["TABLE4", "run_ablation", "write_table"]

# (row name in Chen et al. Table 4, --method)
TABLE4 = [
    ("Baseline", "none"),
    ("L2", "l2"),
    ("L2-B", "l2-b"),
    ("CLS", "cls"),
    ("CLS-W", "cls-w"),
    ("Hints", "hints"),
    ("Hints-A", "hints-a"),
    ("L2-B+CLS-W", "l2-b+cls-w"),
    ("L2-B+CLS-W+Hints-A", "l2-b+cls-w+hints-a"),
    ("GAN-KD (this paper)", "gan"),
]


def run_ablation(cfg, rows, say=print):
    """Train and evaluate each ``(name, method)`` row with the demo's teacher and budget.

    Parameters
    ----------
    cfg : gankd_gluon.experiments.demo.DemoConfig
        Dataset, cached teacher, scale and output folder (shared with the demo: the teacher
        trained there is reused here).
    rows : list of (str, str)

    Returns
    -------
    list of dict : name, method, mAP, per-class APs, wall seconds, log path, argv.
    """
    from .runs import train_ssd_gankd as run_gankd
    from ..data.datasets import get_dataset
    from .demo import gankd_argv
    from .runs import ensure_dataset, evaluate_exported, finished_with, train_teacher
    a = cfg.args
    ensure_dataset(cfg.data_root, a.data_seed, a.num_train, a.num_test, say)
    teacher = train_teacher(cfg, say)
    test = get_dataset("synthetic", cfg.data_root, "test")
    t_names, t_values = evaluate_exported(cfg.exported("teacher"), test, a.data_shape,
                                          a.batch_size)
    out = [{"name": "Teacher (%s)" % a.teacher, "method": "-", "mAP": t_values[-1],
            "wall_s": teacher["wall_s"], "log": teacher["log"], "argv": teacher.get("argv", [])}]
    for name, method in rows:
        prefix = "ssd_%d_%s_%s_synthetic_ablation_%s" % (a.data_shape, a.student, a.teacher,
                                                         method.replace("+", "_"))
        argv = gankd_argv(cfg) + ["--method", method, "--save-prefix", prefix]
        log = os.path.join(cfg.out, prefix + "_train.log")
        run_args = cfg.gankd_parse_args(argv)
        if finished_with(cfg, prefix, run_args, log, argv):
            # a re-run after an interruption: this row's run finished with these very settings
            say("%s: reused, finished earlier with the same settings (%s)" % (name, log))
            wall = None
        else:
            if os.path.exists(log):
                os.remove(log)
            say("%s: train_ssd_gan_kd.py %s" % (name, " ".join(argv)))
            tic = time.time()
            run_gankd(run_args)
            wall = time.time() - tic
        names, values = evaluate_exported(
            os.path.join(cfg.runs_dir, prefix, prefix + "-final-student"), test, a.data_shape,
            a.batch_size)
        say("%s: mAP %.4f%s" % (name, values[-1], "" if wall is None else " in %.0f s" % wall))
        out.append({"name": name, "method": method, "mAP": values[-1], "wall_s": wall,
                    "log": log, "argv": argv, "aps": dict(zip(names[:-1], values[:-1]))})
    return out


def write_table(results, path, command, cfg):
    """The markdown table: one row per configuration, mAP and its difference to the baseline."""
    from .runs import git_state
    a = cfg.args
    git = git_state()
    base = next((r["mAP"] for r in results if r["method"] == "none"), float("nan"))
    lines = ["# Chen et al. Table 4 ablation, with GAN-KD, on the generated dataset", "",
             "Command: `%s`" % command, "",
             "Teacher %s, student %s, %d px, %d train / %d test images, from scratch; every "
             "student: %d stage-1 epochs with its method's terms (Adam, lr %g) then %d plain "
             "epochs (SGD, lr %g), head initialised from the %s. VOC07 11-point mAP on the "
             "generated test split. One run each (seed %d): differences of a few points are "
             "within run-to-run noise at this scale."
             % (a.teacher, a.student, a.data_shape, a.num_train, a.num_test, a.gan_epochs,
                a.lr_g, a.student_epochs - a.gan_epochs, a.stage2_lr, a.head, a.seed), "",
             "Code: commit `%s`%s." % (git["commit"], " (with local changes in: %s)"
                                       % ", ".join(git["dirty"]) if git["dirty"]
                                       else ", clean working tree"), "",
             "| configuration | --method | mAP | vs baseline | wall time |",
             "|---|---|---|---|---|"]
    for r in results:
        delta = "" if r["method"] in ("-", "none") else "%+.4f" % (r["mAP"] - base)
        wall = "reused" if r["wall_s"] is None else "%.0f s" % r["wall_s"]
        lines.append("| %s | %s | %.4f | %s | %s |" % (r["name"], r["method"], r["mAP"],
                                                     delta, wall))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
