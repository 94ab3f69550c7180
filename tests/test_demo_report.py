"""The demo's results.md, written from its template (experiments/templates/demo_results.md)
with numbers given by hand: every field filled, the tables and texts where they belong."""
import types

import pytest

from gankd_gluon.experiments import demo


def _cfg(tmp_path):
    args = types.SimpleNamespace(
        teacher="mobilenet1.0", num_train=600, data_shape=128, student="mobilenet0.25",
        student_images=150, gan_epochs=16, student_epochs=40, head="teacher", seed=233,
        num_test=100, draw_images="0,1,2", draw_thresh=0.3)
    return types.SimpleNamespace(args=args, out=str(tmp_path))


def _res(tmp_path, study, cached=False, dirty=()):
    names = ["circle", "square"]
    return {
        "map": {"teacher": 0.71, "none": 0.42, "gan": 0.45}, "started": 0,
        "difficulty": "easy", "command": "python scripts/demo.py --seed 233", "wall_s": 1234.5,
        "teacher": {"cached": cached}, "load_start": [1.0, 2.0, 3.0],
        "load_end": [2.5, 2.0, 1.0], "git": {"commit": "abc1234", "dirty": list(dirty)},
        "rows": [("teacher", "Teacher", "trained"), ("none", "Baseline", "`--method none`"),
                 ("gan", "GAN-KD", "`--method gan`")],
        "train_wall_s": {"teacher": 600.0, "none": 300.0, "gan": 450.0},
        "class_names": names,
        "aps": {"teacher": [0.8, 0.6], "none": [0.5, 0.3], "gan": [0.55, 0.35]},
        "study": study, "study_path": str(tmp_path / "study" / "results.json"), "max_boxes": 8,
        "figures": {"detections": {"label_fontsize": 7.0, "dpi": 100, "label_px": 9.72,
                                   "label_title_overlaps": 0, "labels": 12}},
        "logs": {"none": {"epochs": [(1, 1, {demo.CE: 1.0, demo.L1: 0.5}, None)],
                          "n_lines": 10, "unreadable": 0},
                 "gan": {"epochs": [(1, 1, {demo.CE: 1.1, demo.L1: 0.4, "Loss_D": -9.0,
                                            "Loss_G": 4.0}, None)],
                         "n_lines": 12, "unreadable": 1},
                 "teacher": {"epochs": [], "n_lines": 5, "unreadable": 0}},
        "log_paths": {k: str(tmp_path / "logs" / (k + ".log"))
                      for k in ("teacher", "none", "gan")}}


STUDY = {"path": "/elsewhere/results.json", "teacher_map": 0.7, "student_images": 150,
         "num_train": 600, "num_test": 100, "min_effect": 0.01,
         "stats": {"arms": {"none": {"n": 4, "mean": 0.4, "std": 0.02},
                            "gan": {"n": 4, "mean": 0.41, "std": 0.03}},
                   "differences": [{"a": "gan", "b": "none", "mean": 0.01, "ci_low": -0.01,
                                    "ci_high": 0.03, "seeds": [1, 2, 3, 4], "p": 0.2}]},
         "verdict": "No difference shown.",
         "eval_noise": {"std": 0.005, "samples": 1000, "num_test_images": 100}}


def _write(tmp_path, **kw):
    path = demo.write_results(_cfg(tmp_path), _res(tmp_path, **kw), str(tmp_path / "r.md"))
    with open(path) as f:
        return f.read()


def test_every_field_filled_and_the_numbers_in_their_tables(tmp_path):
    text = _write(tmp_path, study=STUDY)
    assert "$" not in text
    assert "| Teacher | trained | **0.710** | 10.0 min |" in text
    assert "| GAN-KD | `--method gan` | **0.450** | 7.5 min |" in text
    assert "**GAN-KD - baseline: +0.030 mAP in this run** (teacher 0.710, 0.290 above" in text
    assert "| model | circle | square |\n|---|---|---|\n| Teacher | 0.800 | 0.600 |" in text
    assert "| 1 | 1 | 1.000 | 0.500 | 1.100 | 0.400 | -9.000 | 4.000 |" in text
    assert "stage 1: 16 epochs, Adam; stage 2: 24 epochs, SGD" in text
    assert "Wall time: **20.6 min**, teacher trained in this run." in text
    assert "This run can serve as the committed reference" in text
    # the study: its arms, the paired difference with its interval, the verdict, the noise
    assert "| gan | 4 | 0.4100 | 0.0300 |" in text
    assert ("- `gan - none`: +0.0100 mAP (95% CI -0.0100 to 0.0300, 4 paired seeds, p 0.2)"
            in text)
    assert "No difference shown." in text
    assert "evaluation noise of 0.0050 mAP" in text and "0.0200 mAP for the baseline" in text
    assert "- GAN-KD: `logs/gan.log` (12 lines, 1 unreadable by the parser)" in text
    assert "at scores >= 0.30 (at most 8 per image)" in text
    assert "(Labels: 7.0 pt at 100 dpi, 9.7 px high" in text


def test_without_a_study_and_not_a_reference(tmp_path):
    text = _write(tmp_path, study=None, cached=True, dirty=["a.py"])
    assert "No committed study found (looked for `" in text
    assert "No committed study measurement of the noise is available." in text
    assert ("Not a reference run for `logs/demo/`: that needs an empty cache (the teacher was "
            "cached here) and a clean working tree." in text)
    assert "Code: commit `abc1234` (with local changes in: a.py)." in text
    assert "10.0 min (cached: the run that trained it)" in text


def test_an_unreadable_study_is_named(tmp_path):
    text = _write(tmp_path, study={"path": "/x/y.json", "error": "bad json"})
    assert "The committed study's results could not be read (`/x/y.json`: bad json)." in text


def test_md_table_by_hand():
    assert demo.md_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"
    with pytest.raises(TypeError):
        demo.md_table(["a"], [[1]])          # cells are text: a number is a caller's bug
