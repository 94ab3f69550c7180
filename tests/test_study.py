"""The controlled study (``gankd_gluon/experiments/study.py``, ``scripts/study_gankd.py``): the
statistics against hand computations, the gate, the subset of the pool, the evaluation-noise
bootstrap, bad arguments, and a tiny study end to end (killed and resumed)."""
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from gankd_gluon.eval.results import DetectionSet, GroundTruth
from gankd_gluon.experiments import study
from gankd_gluon.experiments.scripts import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "study_gankd.py")


# -- statistics -----------------------------------------------------------------------------------
def test_bootstrap_ci_is_the_percentiles_of_resampled_means():
    values = [0.02, 0.05, -0.01, 0.03, 0.0]
    lo, hi = study.bootstrap_mean_ci(values, 1000, seed=7)
    idx = np.random.RandomState(7).randint(0, 5, size=(1000, 5))
    means = np.asarray(values)[idx].mean(axis=1)
    assert (lo, hi) == (np.percentile(means, 2.5), np.percentile(means, 97.5))
    # resample means are means of five of the values: the interval lies inside their range
    assert -0.01 < lo < np.mean(values) < hi < 0.05
    assert study.bootstrap_mean_ci(values, 1000, seed=8) != (lo, hi)   # the seed matters


def test_paired_t_by_the_formula():
    a, b = [0.30, 0.35, 0.32], [0.28, 0.30, 0.31]
    # d = 0.02, 0.05, 0.01: mean 0.026667, sd 0.020817 (ddof 1), t = mean / (sd / sqrt 3)
    t, p = study.paired_t_test(a, b)
    assert t == pytest.approx(0.0266667 / (0.0208167 / math.sqrt(3)), rel=1e-4)
    assert t == pytest.approx(2.2188, abs=1e-3)
    from scipy.stats import t as student_t
    assert p == pytest.approx(2 * student_t.sf(2.2188, 2), rel=1e-3)
    assert study.paired_t_test(b, a)[0] == pytest.approx(-t)          # sign follows a - b


def test_arm_summary():
    s = study.arm_summary([0.1, 0.2, 0.6])
    assert s == {"n": 3, "mean": pytest.approx(0.3), "std": pytest.approx(math.sqrt(0.07))}
    assert math.isnan(study.arm_summary([0.4])["std"])


ARMS3 = {"none": {"1": 0.30, "2": 0.28, "3": 0.33},
         "hint": {"1": 0.36, "2": 0.35, "3": 0.37},
         "gan": {"1": 0.31, "2": 0.27, "3": 0.36, "4": 0.50}}   # seed 4 has no pair


def test_study_statistics_by_hand():
    stats = study.study_statistics(ARMS3, 2000, 5)
    assert stats["arms"]["gan"]["n"] == 4
    assert stats["arms"]["none"]["mean"] == pytest.approx(0.91 / 3)
    diffs = {(d["a"], d["b"]): d for d in stats["differences"]}
    assert set(diffs) == {("hint", "none"), ("gan", "none")}        # no gan-frozen arm
    d = diffs[("hint", "none")]
    assert d["seeds"] == ["1", "2", "3"] and d["diffs"] == pytest.approx([0.06, 0.07, 0.04])
    assert d["mean"] == pytest.approx(0.17 / 3)
    means = np.array([0.06, 0.07, 0.04])[np.random.RandomState(5).randint(
        0, 3, size=(2000, 3))].mean(axis=1)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    sd = np.std([0.06, 0.07, 0.04], ddof=1)
    assert d["t"] == pytest.approx((0.17 / 3) / (sd / math.sqrt(3)))
    # gan - none pairs only the seeds both ran
    g = diffs[("gan", "none")]
    assert g["seeds"] == ["1", "2", "3"] and g["mean"] == pytest.approx(0.03 / 3)


def test_recompute_from_results_json(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"arms": ARMS3, "bootstrap": {"samples": 500, "seed": 3},
                                "teacher_map": 0.7, "student_plain_map": 0.3}))
    assert study.recompute_statistics(str(path)) == study.study_statistics(ARMS3, 500, 3)


def test_verdict_ranks_only_when_the_positive_control_shows():
    shows = study.study_statistics(ARMS3, 2000, 5)
    text = study.verdict(shows, 0.03)
    assert "positive control shows" in text and "`gan - none`" in text
    assert "not sensitive" in study.verdict(shows, 0.1)              # 0.057 < 0.1
    flat = dict(ARMS3, hint={"1": 0.30, "2": 0.29, "3": 0.33})       # hint = none + 0.003
    text = study.verdict(study.study_statistics(flat, 2000, 5), 0.03)
    assert "not sensitive" in text and "gan - none" not in text
    assert "fewer than 2 paired seeds" in study.verdict(
        study.study_statistics({"gan": ARMS3["gan"], "none": ARMS3["none"]}, 100, 0), 0.03)


def test_gate():
    assert study.check_gate(0.6, 0.3, 0.5, 0.2) is None
    assert study.check_gate(0.5, 0.3, 0.5, 0.2) is None             # both bounds inclusive
    low = study.check_gate(0.45, 0.1, 0.5, 0.2)
    assert "teacher mAP 0.4500 < --gate-teacher-map 0.50" in low and "plain" not in low
    close = study.check_gate(0.6, 0.45, 0.5, 0.2)
    assert "plain student mAP 0.4500 + --gate-margin 0.20" in close and "0.6000" in close
    assert "--gate-teacher-map" not in close
    assert study.check_gate(float("nan"), 0.1, 0.5, 0.2) is not None


def test_eta():
    assert study.eta_seconds([10.0, 20.0], 3) == 45.0
    assert math.isnan(study.eta_seconds([], 3))


# -- evaluation noise -----------------------------------------------------------------------------
def test_bootstrap_map_resamples_images():
    # image 0: one object found exactly; image 1: one object, no detection. VOC07 11-point AP
    # of both images: recall 0.5 at precision 1 -> 6 of the 11 points -> 6/11
    gt = GroundTruth(["a", "b"], [[[0, 0, 9, 9]], [[0, 0, 9, 9]]], [[0], [0]])
    dets = DetectionSet(["a", "b"], [0], [0], [0.9], [[0, 0, 9, 9]])
    from gankd_gluon.eval.voc import score_detections
    assert score_detections(dets, gt, ["c"])[1][-1] == pytest.approx(6 / 11.0)
    maps = study.bootstrap_map(dets, gt, ["c"], 30, seed=4)
    rng = np.random.RandomState(4)
    for value in maps:
        draw = rng.randint(0, 2, size=2)
        expected = {0: 0.0, 1: 6 / 11.0, 2: 1.0}[int((draw == 0).sum())]
        assert value == pytest.approx(expected)
    assert len(set(np.round(maps, 6))) == 3


# -- the students' subset -------------------------------------------------------------------------
def test_subset_root_is_the_first_k_images(tmp_path):
    from gankd_gluon.data.datasets import get_dataset
    from gankd_gluon.data.synthetic import make_synthetic_voc
    pool = str(tmp_path / "pool")
    make_synthetic_voc(pool, seed=0, num_train=5, num_test=2, image_size=(64, 64))
    sub = study.make_subset_root(pool, str(tmp_path / "sub"), 3)
    train, full = get_dataset("synthetic", sub, "train"), get_dataset("synthetic", pool, "train")
    assert len(train) == 3 and len(full) == 5
    for i in range(3):
        np.testing.assert_array_equal(train[i][0].asnumpy(), full[i][0].asnumpy())
        np.testing.assert_array_equal(train[i][1], full[i][1])
    test_sub, test_pool = get_dataset("synthetic", sub, "test"), get_dataset("synthetic", pool,
                                                                                "test")
    assert len(test_sub) == len(test_pool) == 2
    np.testing.assert_array_equal(test_sub[1][1], test_pool[1][1])
    study.make_subset_root(pool, str(tmp_path / "sub"), 2)                # again: rewritten
    assert len(get_dataset("synthetic", sub, "train")) == 2
    with pytest.raises(ValueError, match="outside"):
        study.make_subset_root(pool, str(tmp_path / "sub6"), 6)


# -- command line ---------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, flag", [
    (["--arms", "none,bogus"], "--arms"),
    (["--arms", "none,none"], "--arms"),
    (["--seeds", "1"], "--seeds"),
    (["--seeds", "1,x"], "--seeds"),
    (["--student-images", "400", "--num-train", "300"], "--student-images"),
    (["--num-train", "abc"], "--num-train"),
    (["--critic-norm", "batch"], "--critic-norm"),
    (["--gan-epochs", "5", "--student-epochs", "5"], "--gan-epochs"),
    (["--min-effect", "0"], "--min-effect"),
    (["--difficulty", "hard"], "--difficulty"),
])
def test_bad_arguments_one_line_nothing_written(tmp_path, capsys, argv, flag):
    script = load_script("study_gankd.py")
    out = tmp_path / "out"
    code = script.cli(argv + ["--out", str(out), "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and flag in err and "study_gankd.py" in err
    assert os.listdir(str(tmp_path)) == []


def test_a_stop_signal_during_a_run_ends_the_study_with_exit_3(tmp_path, capsys, monkeypatch):
    # the training loop saved `interrupted` and raised; the study says how to continue
    from gankd_gluon.usage import EXIT_INTERRUPTED
    from gankd_gluon.engine.guards import RunInterrupted
    script = load_script("study_gankd.py")

    def stopped(*_):
        raise RunInterrupted("SIGTERM", str(tmp_path / "run-interrupted.json"))
    monkeypatch.setattr(script, "main", stopped)
    code = script.cli(["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_INTERRUPTED == 3
    assert err == ["study_gankd.py: stopped on SIGTERM during a run; the same command continues "
                   "the study (finished runs are reused, the interrupted one trains again)"]


def test_bad_argument_exit_code_of_the_script(tmp_path):
    run = subprocess.run([sys.executable, SCRIPT, "--seeds", "3", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "--seeds" in run.stderr and os.listdir(str(tmp_path)) == []


# -- end to end -----------------------------------------------------------------------------------
TINY = ["--name", "tiny", "--arms", "none,gan", "--seeds", "1,2", "--num-train", "8",
        "--num-test", "4", "--student-images", "4", "--data-shape", "64", "--batch-size", "4",
        "--teacher", "mobilenet0.5", "--student", "mobilenet0.25", "--teacher-epochs", "1",
        "--student-epochs", "2", "--gan-epochs", "1", "--val-interval", "2", "--log-interval",
        "1", "--critic-channels", "8", "--num-workers", "0", "--eval-bootstrap", "10",
        "--bootstrap-samples", "500", "--bootstrap-seed", "3"]


@pytest.mark.slow
def test_tiny_study_gate_report_and_resume(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    # the README's command, at a tiny scale
    readme = open(os.path.join(ROOT, "README.md")).read()
    command = re.search(r"^python scripts/study_gankd.py .*$", readme, re.M).group(0)
    assert command == "python scripts/study_gankd.py --name main"
    cmd = ([sys.executable, os.path.join(ROOT, command.split()[1])] + command.split()[2:]
           + ["--out", str(out), "--cache", str(cache)] + TINY)

    def run(*extra):
        return subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=900,
                              cwd=str(tmp_path))
    # the gate: a one-epoch teacher is nowhere near 0.5 mAP; no student run starts
    gated = run()
    assert gated.returncode == 1, gated.stdout[-2000:] + gated.stderr[-2000:]
    assert re.search(r"gate failed: teacher mAP [0-9.]+ < --gate-teacher-map 0.50", gated.stderr)
    assert "plain student mAP" in gated.stderr and "run 1 of 4" not in gated.stdout
    assert not (out / "tiny" / "report.md").exists()

    first = run("--no-gate")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "teacher: cached" in first.stdout and "plain student: reused" in first.stdout
    assert re.search(r"run 2 of 4: arm gan, seed 1 \(time left about [0-9.]+ min\)",
                     first.stdout)
    assert "run 2 of 4: arm gan, seed 1: training, --student mobilenet0.25" in first.stdout
    folder = out / "tiny"
    for name in ("report.md", "results.json", "map_per_arm.png", "diagnostics.png"):
        assert (folder / name).stat().st_size > 0, name
    res = json.loads((folder / "results.json").read_text())
    assert set(res["arms"]) == {"none", "gan"} and set(res["arms"]["gan"]) == {"1", "2"}
    assert 0 <= res["teacher_map"] <= 1 and 0 <= res["student_plain_map"] <= 1
    assert res["gate"]["passed"] is False

    # the report's numbers, by hand from results.json
    report = (folder / "report.md").read_text()
    assert "Minimum meaningful effect: 0.030 mAP" in report.splitlines()[2]
    assert "bootstrap seed 3" in report and "--no-gate" in report
    d = np.array([res["arms"]["gan"][s] - res["arms"]["none"][s] for s in ("1", "2")])
    means = d[np.random.RandomState(3).randint(0, 2, size=(500, 2))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    row = re.search(r"^\| gan - none \| 1,2 \| (\S+) \| (\S+) to (\S+) \| (\S+) \|", report, re.M)
    assert row, report
    assert float(row.group(1)) == pytest.approx(d.mean(), abs=6e-5)
    assert float(row.group(2)) == pytest.approx(lo, abs=6e-5)
    assert float(row.group(3)) == pytest.approx(hi, abs=6e-5)
    if d.std(ddof=1) > 0:
        assert float(row.group(4)) == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(2)),
                                                    rel=2e-3)
    for arm in ("none", "gan"):
        vals = [res["arms"][arm][s] for s in ("1", "2")]
        assert re.search(r"^\| %s \| `--method [^`]+` \| 2 \| %.4f \| %.4f \|"
                         % (arm, np.mean(vals), np.std(vals, ddof=1)), report, re.M), arm
    assert study.recompute_statistics(str(folder / "results.json")) == study.study_statistics(
        res["arms"], 500, 3)

    # the mechanism check: every arm (the control too, --monitor-teacher) logs the distance;
    # results.json holds each run's last stage-1 value, the report's table recomputes from it
    dist = res["distance"]
    assert set(dist) == {"none", "gan"} and all(set(v) == {"1", "2"} for v in dist.values())
    for arm in ("none", "gan"):
        for seed in ("1", "2"):
            log = folder / res["logs"][arm][seed]
            last = re.findall(r"^\[Epoch \d+\], .*cosine_length_loss_metric=([0-9]+\.[0-9]+)",
                              log.read_text(), re.M)
            assert float(last[-1]) == pytest.approx(dist[arm][seed], abs=1e-3), (arm, seed)
    section = report.split("### Mechanism check")[1]
    dd = np.array([dist["gan"][s] - dist["none"][s] for s in ("1", "2")])
    row = re.search(r"^\| gan - none \| 1,2 \| (\S+) \|", section, re.M)
    assert row and float(row.group(1)) == pytest.approx(dd.mean(), abs=6e-5), section

    # paired seeds: the first batch's loss (before any update) is the same in every arm of a
    # seed (same initialisation, same images), and another seed's differs
    def first_ce(arm, seed):
        log = (folder / "logs" / ("ssd_64_mobilenet0.25_mobilenet0.5_study_tiny_%s_s%d_train.log"
                                  % (arm, seed))).read_text()
        return float(re.search(r"\[Epoch 1\]\[Batch 0\].*?CrossEntropy=([0-9]+\.[0-9]+)",
                               log).group(1))
    assert first_ce("none", 1) == pytest.approx(first_ce("gan", 1), rel=1e-3)
    assert first_ce("none", 2) == pytest.approx(first_ce("gan", 2), rel=1e-3)
    assert first_ce("none", 1) != pytest.approx(first_ce("none", 2), rel=1e-3)

    # a study killed during its last run: that run's final checkpoint is missing; the rerun
    # trains it alone and reuses the three that finished
    runs = cache / "runs"
    last = "ssd_64_mobilenet0.25_mobilenet0.5_study_tiny_gan_s2"
    os.remove(str(runs / last / (last + "-final.json")))
    kept = {p: os.path.getmtime(str(p)) for p in runs.glob("*study_tiny_[ng]*_s*/*-final.json")}
    assert len(kept) == 3
    again = run("--no-gate")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("reused, finished earlier") == 4      # plain student + 3 runs
    assert "run 4 of 4: arm gan, seed 2: training" in again.stdout
    assert "run 4 of 4: arm gan, seed 2: reused" not in again.stdout
    assert {p: os.path.getmtime(str(p)) for p in kept} == kept
    res2 = json.loads((folder / "results.json").read_text())
    for arm, seed in (("none", "1"), ("none", "2"), ("gan", "1")):
        assert res2["arms"][arm][seed] == res["arms"][arm][seed]


def test_arms_differ_only_in_the_distillation(tmp_path):
    from gankd_gluon.experiments.demo import DemoConfig
    train_ssd, gankd = load_script("train_ssd.py"), load_script("train_ssd_gan_kd.py")
    args, options = load_script("study_gankd.py").parse_args(
        ["--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    assert (args.num_train, args.num_test, options.student_images) == (1000, 500, 200)
    # the committed study's schedule, pinned by the study whatever the demo's defaults are
    assert (args.teacher, args.student, args.data_shape, args.teacher_epochs,
            args.student_epochs, args.gan_epochs, args.critic_channels, args.val_interval) == (
        "mobilenet1.0", "mobilenet0.25", 128, 24, 24, 16, 64, 8)
    cfg = DemoConfig(args, train_ssd.parse_args, gankd.parse_args)
    plan = study.StudyPlan(cfg, options)
    # --teacher-params must name a file (checked by parse_args); no teacher is trained here
    os.makedirs(os.path.dirname(cfg.teacher_params))
    open(cfg.teacher_params, "w").close()
    base = vars(gankd.parse_args(plan.student_argv("none", 1)))
    own = {"none": {}, "hint": {"method": "hints-a"}, "gan": {"method": "gan"},
           "gan-frozen": {"method": "gan", "lrD": 0.0}, "chen": {"method": "chen"},
           "ko": {"method": "ko"}, "gan-batch": {"method": "gan", "critic_norm": "batch"}}
    assert set(own) == set(study.ARMS)
    for arm, changes in own.items():
        args = vars(gankd.parse_args(plan.student_argv(arm, 1)))
        differ = {k: v for k, v in args.items() if v != base[k] and k != "save_prefix"}
        assert differ == changes, arm
        assert args["dataset_root"].endswith("synthetic_easy_s0_n1000_500_first200")
        assert args["head"] == "teacher" and args["seed"] == 1
    other = vars(gankd.parse_args(plan.student_argv("gan", 2)))
    assert {k for k, v in other.items() if v != vars(gankd.parse_args(
        plan.student_argv("gan", 1)))[k]} == {"seed", "save_prefix"}
    assert base["critic_norm"] == "lipschitz"             # the new critics, not the demo's
    plain = vars(train_ssd.parse_args(plan.plain_argv()))
    assert plain["dataset_root"] == base["dataset_root"] and plain["network"] == "mobilenet0.25"
    assert plain["epochs"] == base["gan_epochs"] + base["epochs"]


def test_report_only_of_a_study_stopped_part_way(tmp_path, capsys):
    """``--report-only`` writes the report from results.json as it stands: the runs that
    finished in the tables (statistics by hand), the planned runs that did not listed; with
    no results.json, one line and exit 2, nothing written."""
    script = load_script("study_gankd.py")
    assert script.cli(["--report-only", "--out", str(tmp_path / "none")]) == 2
    assert "has no results.json" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    folder = tmp_path / "out" / "main"
    folder.mkdir(parents=True)
    res = {"name": "main", "command": "python scripts/study_gankd.py --name main",
           "git": {"commit": "abc1234", "dirty": []},
           "arms": {"none": {"1": 0.10, "2": 0.20}, "gan": {"1": 0.15}},
           "plan": {"arms": ["none", "gan"], "seeds": ["1", "2"]},
           "teacher_map": 0.5, "student_plain_map": 0.1,
           "eval_noise": {"std": 0.01, "ci_low": 0.48, "ci_high": 0.52, "samples": 10,
                          "num_test_images": 50},
           "bootstrap": {"samples": 200, "seed": 0}, "min_effect": 0.03,
           "gate": {"passed": True, "message": ""}, "student_images": 20,
           "difficulty": "easy", "num_train": 100, "num_test": 50, "logs": {}}
    (folder / "results.json").write_text(json.dumps(res))
    assert script.cli(["--report-only", "--out", str(tmp_path / "out")]) == 0
    report = (folder / "report.md").read_text()
    assert "**A partial study: 1 planned run(s) did not run** (gan seed 2)" in report
    assert re.search(r"^\| none \| `--method none` \| 2 \| 0\.1500 \| 0\.0707 \|", report, re.M)
    assert re.search(r"^\| gan \| `--method gan` \| 1 \| 0\.1500 \| nan \|", report, re.M)
    assert "fewer than 2 paired seeds" in report
    for name in ("map_per_arm.png", "diagnostics.png"):
        assert (folder / name).stat().st_size > 0
    assert study.missing_runs(json.loads((folder / "results.json").read_text())) == [
        ("gan", "2")]


def test_a_finished_run_is_reused_across_flags_added_later(tmp_path):
    """A run's manifest records the settings it ran with; a flag added to the script later is
    missing there. Not given in the argv, the flag had its default (the older behaviour): the run
    is reused. Given, or any recorded setting changed: it is trained again."""
    import argparse
    import json
    from gankd_gluon.experiments.runs import finished_with as _finished

    class Cfg:
        runs_dir = str(tmp_path)
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "r-final.json").write_text(json.dumps({"args": {"lr": 0.001, "epochs": 4}}))
    log = tmp_path / "r_train.log"
    log.write_text("Namespace(...)\n")
    args = argparse.Namespace(lr=0.001, epochs=4, val_split="test", progress=True)
    argv = ["--lr", "0.001", "--epochs", "4"]
    assert _finished(Cfg, "r", args, str(log), argv)
    assert not _finished(Cfg, "r", args, str(log), argv + ["--val-split", "test"])
    assert not _finished(Cfg, "r", args, str(log), argv + ["--val-split=test"])
    assert not _finished(Cfg, "r", argparse.Namespace(lr=0.01, epochs=4), str(log), argv)
    log.unlink()                                          # the log belongs to the finished run
    assert not _finished(Cfg, "r", args, str(log), argv)
