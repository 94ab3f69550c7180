"""``scripts/demo.py``: the study's small version. Fast tests of its parts (the fresh-folder
rule, the progress estimate, the stage-2 announcement, readable labels, the study's conclusion),
then the demo end to end at a tiny scale (slow): the README's command with the same code path
(dataset, teacher, both arms, evaluation, figures, ``results.md``), a second run that takes the
teacher from the cache, and a used ``--out`` refused."""
import argparse
import json
import logging
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from gankd_gluon.usage import EXIT_USAGE
from gankd_gluon.experiments import demo as D
from gankd_gluon.experiments.runs import shell_command
from gankd_gluon.experiments import study
from gankd_gluon.experiments.scripts import load_script
from gankd_gluon.logs.parse import parse_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "demo.py")
TINY = ["--num-train", "16", "--num-test", "4", "--student-images", "8", "--batch-size", "4",
        "--teacher", "mobilenet0.5", "--student", "mobilenet0.25", "--teacher-epochs", "1",
        "--student-epochs", "2", "--gan-epochs", "1", "--val-interval", "1", "--log-interval",
        "2", "--critic-channels", "8", "--num-workers", "0", "--draw-images", "0,1"]
STUDY = {"arms": {"none": {"1": 0.30, "2": 0.28, "3": 0.33},
                  "hint": {"1": 0.36, "2": 0.35, "3": 0.37},
                  "gan": {"1": 0.31, "2": 0.27, "3": 0.36}},
         "bootstrap": {"samples": 500, "seed": 0}, "min_effect": 0.03,
         "eval_noise": {"std": 0.0123, "ci_low": 0.6, "ci_high": 0.7, "samples": 100,
                        "num_test_images": 500},
         "teacher_map": 0.7, "student_plain_map": 0.3, "num_test": 500, "student_images": 200,
         "num_train": 1000}


@pytest.fixture(scope="module")
def script():
    return load_script("demo.py", "demo_script_under_test")


# -- the fresh-folder rule ------------------------------------------------------------------------
def test_default_out_is_a_new_timestamped_folder_never_logs_demo(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = script.parse_args([])
    assert re.fullmatch(r"runs/demo/\d{8}-\d{6}", args.out)
    assert args.cache == "runs/demo/cache"
    assert os.listdir(str(tmp_path)) == []                 # parsing writes nothing


def test_used_out_is_refused_unless_overwrite(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["demo.py"])
    used = tmp_path / "used"
    used.mkdir()
    (used / "results.md").write_text("an earlier demo")
    with pytest.raises(SystemExit) as err:
        script.parse_args(["--out", str(used)])
    assert err.value.code == EXIT_USAGE
    lines = [ln for ln in capsys.readouterr().err.splitlines()
             if ln.strip() and not ln.startswith(("usage:", " "))]
    assert len(lines) == 1 and lines[0].startswith("demo.py: error: --out %s already holds a "
                                                   "demo's results (results.md)" % used)
    assert (used / "results.md").read_text() == "an earlier demo"
    assert script.parse_args(["--out", str(used), "--overwrite"]).overwrite
    # a folder without a demo's files is fine
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "NOTES.md").write_text("x")
    assert script.parse_args(["--out", str(tmp_path / "other")]).out == str(tmp_path / "other")
    with pytest.raises(SystemExit):
        script.parse_args(["--out", str(tmp_path / "other" / "NOTES.md")])   # a file


def test_overwrite_clears_only_what_a_demo_wrote(tmp_path):
    for name in D.DEMO_OUTPUTS + ("NOTES.md", "old_train.log"):
        (tmp_path / name).write_text("x")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run_train.log").write_text("x")
    (tmp_path / "logs" / "keep.txt").write_text("x")
    gone = D.clear_demo_results(str(tmp_path))
    assert len(gone) == len(D.DEMO_OUTPUTS) + 2
    assert sorted(os.listdir(str(tmp_path))) == ["NOTES.md", "logs"]
    assert os.listdir(str(tmp_path / "logs")) == ["keep.txt"]


def test_shared_flags_keep_the_study_and_ablation_scale(script):
    """study_gankd.py and ablation_chen.py take their other flags from parse_shared_args, at the
    scale their committed runs used; the demo's own defaults are smaller."""
    shared = script.parse_shared_args([])
    assert (shared.student_epochs, shared.gan_epochs, shared.teacher_epochs,
            shared.val_interval, shared.critic_norm) == (24, 16, 32, 4, "batch")
    assert shared.out == "logs/demo"
    own = script.parse_args(["--out", "x"])
    assert not hasattr(own, "critic_norm")        # the gan arm uses the script's own critics
    assert (own.num_train, own.student_images, own.difficulty) == (600, 200, "easy")


def test_help_is_the_docstring(script, capsys):
    with pytest.raises(SystemExit) as err:
        script.parse_args(["--help"])
    assert err.value.code == 0
    out = capsys.readouterr().out
    assert " ".join(script.__doc__.split()) in " ".join(out.split())
    assert "runs/demo/<YYYYmmdd-HHMMSS>" in out and "(default: None)" not in out


def test_last_wins_drops_only_repeated_flag_value_pairs():
    argv = ["--seed", "1", "--gpus", "", "--no-progress", "--seed", "2", "--x", "--x"]
    assert D.last_wins(argv) == ["--gpus", "", "--no-progress", "--seed", "2", "--x", "--x"]


def test_shell_command_quotes_an_empty_value():
    cmd = shell_command("train_ssd.py", ["--gpus", "", "--dataset-root", "/a b/c"])
    assert cmd == "python scripts/train_ssd.py --gpus '' --dataset-root '/a b/c'"
    assert shlex.split(cmd)[2:] == ["--gpus", "", "--dataset-root", "/a b/c"]


# -- progress -------------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_steps_elapsed_and_time_left_by_hand():
    clock, said = Clock(), []
    p = D.Progress([("a", "first", 20.0), ("b", "second", 60.0)], said.append, clock=clock)
    p.begin("a")
    assert said[-1] == "step 1 of 2: first | elapsed 0 s, about 1.3 min left"   # 80 s nominal
    clock.t += 5
    p.advance(5.0)                     # 5 of 10 nominal s needed to measure: speed still 1
    assert p.left() == pytest.approx(75.0)
    clock.t += 25
    p.finish("a", "first done")        # 20 nominal s took 30 s: 1.5 s per nominal s
    assert p.rate() == pytest.approx(1.5) and p.left() == pytest.approx(90.0)
    assert said[-1] == "step 1 of 2: first done | elapsed 30 s, about 1.5 min left"
    p.begin("b", "detail")
    assert said[-1].startswith("step 2 of 2: second (detail) |")
    p.advance(1000.0)                  # capped at the step's cost
    assert p.done["b"] == 60.0 and p.left() == 0.0


@pytest.fixture
def logger():
    """The training scripts' logger at INFO (as ``setup_logger`` leaves it), restored after."""
    log = logging.getLogger("gankd")
    saved = log.level, log.propagate
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log
    log.setLevel(saved[0])
    log.propagate = saved[1]


def _log(logger, *lines):
    for line in lines:
        logger.info(line)


def test_run_watcher_announces_stage_2_and_counts_epochs(logger):
    clock, said = Clock(), []
    p = D.Progress([("gan", "GAN-KD student", 30.0)], said.append, clock=clock, min_done=1.0)
    p.begin("gan")
    with D.RunWatcher(p, "GAN-KD student", [10.0, 10.0, 5.0], 1.0, gan_epochs=2,
                      stage2="1 epochs of plain SSD training"):
        _log(logger, "Namespace(x=1)", "Start training from [Epoch 1]",
             "[Epoch 1], Speed: 20.000 samples/sec,Loss_D=1.0.",
             "[Epoch 2], Speed: 21.000 samples/sec,Loss_D=1.0.",
             "[Epoch 2] StudentNet Validation: \ncircle=0.5\nmAP=0.25",
             "Start training from [Epoch 1]",
             "[Epoch 1], Speed: 40.000 samples/sec,Loss_D=nan.")
    _log(logger, "[Epoch 9], Speed: 1.000 samples/sec,")          # detached: not counted
    lines = said[1:]
    assert lines[0].startswith("step 1 of 1, GAN-KD student: epoch 1 of 3 (stage 1) done, "
                               "20.0 images/s")
    assert lines[2] == "step 1 of 1, GAN-KD student: validation mAP 0.2500 after epoch 2"
    assert lines[3].startswith("step 1 of 1, GAN-KD student: stage 1 done (2 epochs); stage 2 "
                               "begins: 1 epochs of plain SSD training |")
    assert lines[4].startswith("step 1 of 1, GAN-KD student: epoch 3 of 3 (stage 2) done")
    assert len(lines) == 5 and p.done["gan"] == 26.0


def test_run_watcher_of_a_one_stage_run_never_announces_stage_2(logger):
    said = []
    p = D.Progress([("t", "teacher", 2.0)], said.append)
    p.begin("t")
    with D.RunWatcher(p, "teacher", [1.0, 1.0], 0.1):
        _log(logger, "Start training from [Epoch 1]",
             "[Epoch 1], Speed: 1.000 samples/sec,", "[Epoch 2], Speed: 1.000 samples/sec,")
    assert not any("stage 2" in s for s in said) and "epoch 2 of 2 done" in said[-1]


# -- readable pictures ----------------------------------------------------------------------------
def test_label_height_from_font_size_and_dpi():
    # 1 pt = 1/72 inch: 9.5 pt at 100 dpi is 13.19 px; the issue asks for about 12 px or more
    assert D.label_height_px(9.5, 100) == pytest.approx(13.194, abs=1e-3)
    assert D.label_height_px(D.LABEL_FONTSIZE, D.FIGURE_DPI) >= 12.0


def test_panel_labels_are_readable_inside_the_image_and_clear_of_the_title():
    """Boxes touching the top and right edges of the image: plot_bbox would write their labels
    above the image, into the title; draw_panel keeps them inside, at >= 12 px."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(3.3, 3.3), dpi=D.FIGURE_DPI)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    img = np.full((256, 256, 3), 128, np.uint8)
    boxes = np.array([[0, 0, 60, 50], [200, 0, 255, 40], [100, 120, 180, 200],
                      [10, 10, 20, 20]], np.float64)
    classes = list(D.CLASS_LOOK)
    labels = D.draw_panel(ax, img, boxes, np.array([0, 3, 4, 1]), np.array([0.9, 0.8, 0.5,
                                                                            0.1]),
                          classes, D._class_colors(classes), thresh=0.3)
    ax.set_title("teacher mobilenet1.0\nmAP 0.500", fontsize=D.TITLE_FONTSIZE)
    fig.tight_layout()
    canvas.draw()
    r = canvas.get_renderer()
    assert [t.get_text() for t in labels] == ["circle 0.90", "star 0.80", "cross 0.50"]
    frame, title = ax.get_window_extent(r), ax.title.get_window_extent(r)
    for t in labels:
        # the height a label is drawn at, from the font size and the figure's dpi
        assert t.get_fontsize() * fig.dpi / 72.0 >= 12.0
        box = t.get_window_extent(r)
        assert box.height >= 12.0
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, t.get_text()
        assert not D._overlaps(box, title)


def test_class_look_is_the_generator_s():
    from gankd_gluon.data import synthetic
    assert tuple(D.CLASS_LOOK) == synthetic.SYNTHETIC_CLASSES
    textures = {"solid": "solid", "hstripes": "horizontal stripes", "gradient": "shading",
                "dots": "dots", "dstripes": "diagonal stripes"}
    for cls, (_, texture) in synthetic._STYLE.items():
        assert D.CLASS_LOOK[cls][1] == textures[texture]


# -- the committed study --------------------------------------------------------------------------
def test_study_conclusion_present_absent_unreadable(tmp_path):
    assert D.study_conclusion(str(tmp_path / "none.json")) is None
    path = tmp_path / "results.json"
    path.write_text(json.dumps(STUDY))
    got = D.study_conclusion(str(path))
    stats = study.study_statistics(STUDY["arms"], 500, 0)
    assert got["stats"] == stats and got["verdict"] == study.verdict(stats, 0.03)
    assert got["eval_noise"]["std"] == 0.0123
    path.write_text("{}")
    assert "KeyError" in D.study_conclusion(str(path))["error"]


# -- end to end, tiny -----------------------------------------------------------------------------
def _run(cwd, *argv):
    return subprocess.run([sys.executable, SCRIPT] + list(argv), capture_output=True, text=True,
                          timeout=1200, cwd=str(cwd))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A first run with the default (fresh) output folder and no committed study, then a
    second with the cached teacher, a study's results.json and the plain student."""
    base = tmp_path_factory.mktemp("demo")
    cache = base / "cache"
    first = _run(base, "--cache", str(cache), "--study-results", str(base / "absent.json"),
                 *TINY)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    made = os.listdir(str(base / "runs" / "demo"))
    assert len(made) == 1 and re.fullmatch(r"\d{8}-\d{6}", made[0]), made
    (base / "study.json").write_text(json.dumps(STUDY))
    second = _run(base, "--cache", str(cache), "--out", str(base / "second"), "--study-results",
                  str(base / "study.json"), "--plain-student", *TINY)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return base, base / "runs" / "demo" / made[0], first, base / "second", second


@pytest.mark.slow
def test_demo_end_to_end(runs):
    base, out, run, _, _ = runs
    assert not (base / "logs").exists()                      # never logs/demo
    res = json.load(open(out / "results.json"))
    assert set(res["map"]) == {"teacher", "none", "gan"} and res["teacher_cached"] is False
    for key in res["map"]:
        assert 0.0 <= res["map"][key] <= 1.0 and len(res["aps"][key]) == 5
    for name in ("results.md", "detections.png", "losses.png", "demo.log"):
        assert (out / name).stat().st_size > 1000 or name == "demo.log", name
    # progress: every step announced with the time, both students switch to stage 2
    for k, step in enumerate(("dataset", "teacher", "baseline student", "GAN-KD student",
                              "evaluation", "figures"), 1):
        assert re.search(r"^\[demo\] step %d of 6: %s.*\| elapsed [0-9.]+ (s|min), about "
                         r"[0-9.]+ (s|min) left$" % (k, step), run.stdout, re.M), step
    assert len(re.findall(r"stage 1 done \(1 epochs\); stage 2 begins", run.stdout)) == 2
    assert "teacher: epoch 1 of 1 done" in run.stdout
    # figure: labels of >= 12 px (font size x dpi / 72) clear of titles and inside the images
    fig = res["figures"]["detections"]
    assert fig["label_fontsize"] * fig["dpi"] / 72.0 >= 12.0 and fig["labels"] >= 2
    assert fig["label_title_overlaps"] == 0 and fig["labels_outside"] == 0
    text = (out / "results.md").read_text()
    assert "python scripts/demo.py --cache" in text
    for key in res["map"]:
        assert "**%.3f**" % res["map"][key] in text
    assert "## What the committed study concluded" in text
    assert "No committed study found (looked for `%s`)" % (base / "absent.json") in text
    assert "vary from machine to machine and from seed to seed" in text
    assert "no unlabelled distractors" in text and "**circle** red, solid" in text


@pytest.mark.slow
def test_printed_commands_round_trip_through_the_shell(runs):
    _, out, run, _, _ = runs
    res = json.load(open(out / "results.json"))
    printed = re.findall(r"^\[demo\] (?:teacher: training .*?: |baseline student: |GAN-KD "
                         r"student: )(python scripts/\S+ .*)$", run.stdout, re.M)
    assert len(printed) == 3
    assert "--gpus ''" in printed[0]
    for cmd, key in zip(printed, ("teacher", "none", "gan")):
        assert cmd == res["commands"][key]
        assert shlex.split(cmd)[2:] == res["argv"][key]
    demo_cmd = re.search(r"^\[demo\] command: (.*)$", run.stdout, re.M).group(1)
    assert shlex.split(demo_cmd)[:2] == ["python", "scripts/demo.py"] and "--cache" in demo_cmd


@pytest.mark.slow
def test_arms_differ_only_in_the_distillation_flags(runs):
    _, out, _, _, _ = runs
    argv = json.load(open(out / "results.json"))["argv"]
    gankd = load_script("train_ssd_gan_kd.py")

    def without(arm):
        a = argv[arm]
        assert a[-len(study.ARMS[arm]):] == study.ARMS[arm]
        a = a[:-len(study.ARMS[arm])]
        i = a.index("--save-prefix")
        return a[:i] + a[i + 2:]
    assert without("none") == without("gan")
    assert "--critic-norm" not in argv["gan"] and "--critic-balance-interval" not in argv["gan"]
    parsed = {arm: vars(gankd.parse_args(argv[arm])) for arm in ("none", "gan")}
    assert {k for k in parsed["gan"] if parsed["gan"][k] != parsed["none"][k]} == \
        {"method", "save_prefix"}
    assert parsed["gan"]["critic_norm"] == "lipschitz"       # the script's default critics
    assert parsed["gan"]["critic_balance_interval"] == 50
    assert parsed["gan"]["dataset_root"].endswith("_first8")


@pytest.mark.slow
def test_logs_parse_with_both_stages(runs):
    _, out, _, _, _ = runs
    for arm in ("none", "gan"):
        log = [p for p in os.listdir(out / "logs") if "_study_demo_%s_" % arm in p]
        parsed = parse_log(str(out / "logs" / log[0]))
        assert parsed.unreadable_count == 0, parsed.describe_unreadable()
        assert len(parsed.run(-1).validations) == 2           # one per stage (1 epoch each)


@pytest.mark.slow
def test_second_run_cached_teacher_study_conclusion_and_plain_row(runs):
    _, _, _, out, run = runs
    assert "teacher: cached" in run.stdout and "step 5 of 7: plain" in run.stdout
    res = json.load(open(out / "results.json"))
    assert res["teacher_cached"] is True and set(res["map"]) == {"teacher", "none", "gan",
                                                                  "plain"}
    text = (out / "results.md").read_text()
    stats = study.study_statistics(STUDY["arms"], 500, 0)
    assert study.verdict(stats, 0.03) in text
    assert "evaluation noise of 0.0123 mAP" in text
    assert "plain student (`train_ssd.py`; for scale: another schedule)" in text
    assert "Not a reference run" in text and "an empty cache" in text


@pytest.mark.slow
def test_used_out_refused_by_the_script(runs):
    base, out, _, _, _ = runs
    before = (out / "results.md").stat().st_mtime
    again = _run(base, "--out", str(out), *TINY)
    assert again.returncode == EXIT_USAGE and "Traceback" not in again.stderr
    err = [ln for ln in again.stderr.splitlines() if "error:" in ln]
    assert len(err) == 1 and "already holds a demo's results" in err[0]
    assert (out / "results.md").stat().st_mtime == before and again.stdout == ""
