"""The experiment registry and scripts/reproduce.py without training: the 24 rows and the
paper's numbers, --list, --dry-run (the paper's recipe for a Table 1 row), the per-row scripts,
and the runner's skip / refuse / results logic on hand-made outputs."""
import json
import os
import shlex
import subprocess
import sys

import pytest

from gankd_gluon.experiments.chains import build_chain
from gankd_gluon.experiments.rows import ROWS, get_row, rows_of
from gankd_gluon.experiments.reproduce import (ChainError, append_result, main, parse_args,
                                               step_status)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

# Hong, Yu, Fan 2019 (arXiv:1906.08467) Sec. 4.2, Tables 1-3, typed in by hand:
# (table, student, teacher, mAP)
PAPER = [
    (1, "mobilenet1.0", None, 75.4), (1, "mobilenet1.0", "vgg16_atrous", 77.3),
    (1, "mobilenet1.0", "resnet50_v1", 77.6), (1, "mobilenet1.0", "resnet101_v2", 77.6),
    (1, "mobilenetv2_1.0", None, 75.9), (1, "mobilenetv2_1.0", "vgg16_atrous", 77.2),
    (1, "mobilenetv2_1.0", "resnet50_v1", 77.7), (1, "mobilenetv2_1.0", "resnet101_v2", 77.5),
    (1, "resnet18_v1", None, 74.8), (1, "resnet18_v1", "vgg16_atrous", 77.2),
    (1, "resnet18_v1", "resnet50_v1", 77.6), (1, "resnet18_v1", "resnet101_v2", 77.3),
    (2, "mobilenet1.0", None, 21.7), (2, "mobilenet1.0", "resnet50_v1", 25.4),
    (2, "mobilenet0.75", None, 18.0), (2, "mobilenet0.75", "resnet50_v1", 23.0),
    (2, "mobilenetv2_1.0", None, 22.0), (2, "mobilenetv2_1.0", "resnet50_v1", 24.6),
    (3, "resnet50_v1b", None, 67.0), (3, "resnet50_v1b", "resnet101_v1d", 73.8),
    (3, "resnet50_v1b", None, 71.7), (3, "resnet50_v1b", "resnet101_v1d", 74.0),
    (3, "resnet50_v1b", None, 69.0), (3, "resnet50_v1b", "resnet101_v1d", 72.0),
]


def test_24_rows_with_the_papers_numbers():
    assert len(ROWS) == 24
    assert [len(rows_of(t)) for t in (1, 2, 3)] == [12, 6, 6]
    assert [(r.table, r.student, r.teacher, r.paper_map) for r in ROWS] == PAPER
    assert len({r.name for r in ROWS}) == 24
    for t in (1, 2, 3):
        assert [r.index for r in rows_of(t)] == list(range(1, len(rows_of(t)) + 1))
    assert [r.roi_mode for r in rows_of(3)] == ["pool", "pool", "align", "align", "align",
                                                "align"]
    assert [r.method for r in rows_of(3)] == ["none", "gan", "none", "gan", "none", "fgfi"]
    assert {r.dataset for r in rows_of(2)} == {"coco"}


def test_get_row_by_number_or_name():
    assert get_row(1, 3) is get_row(1, "mobilenet1.0_resnet50_v1")
    assert get_row(1, "table1_mobilenet1.0_resnet50_v1").index == 3
    with pytest.raises(KeyError, match="rows: 1=mobilenet1.0_baseline"):
        get_row(2, 7)


def test_list_shows_every_row_with_the_papers_map():
    lines = []
    assert main(parse_args(["--list"]), ["--list"], out=lines.append) == 0
    text = "\n".join(lines)
    assert "24 rows (Table 1: 12, Table 2: 6, Table 3: 6)" in text
    for r in ROWS:
        row_line = [ln for ln in lines if (" %s " % r.key) in ln and ln.split()[0] ==
                    str(r.index)]
        assert any(r.paper_text() in ln for ln in row_line), r
    assert "77.6 (+2.2)" in text and "23.0 (+5.0)" in text and "73.8 (+6.8)" in text


def test_list_from_the_command_line():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "reproduce.py"),
                          "--list", "--table", "2"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "6 rows (Table 2: 6)" in out.stdout and "mobilenet0.75_resnet50_v1" in out.stdout


def _dry_run(table, row, *extra):
    argv = ["--table", str(table), "--row", str(row), "--dry-run"] + list(extra)
    lines = []
    assert main(parse_args(argv), argv, out=lines.append) == 0
    commands = [shlex.split(ln.strip()) for ln in lines if ln.startswith("    python ")]
    return lines, commands


def test_dry_run_table1_is_the_papers_recipe_on_two_gpus(monkeypatch):
    """Parsed by the training script itself: what would run is what the paper describes."""
    monkeypatch.setattr("gankd_gluon.usage._num_gpus", lambda: 2)   # the paper's machine
    import train_ssd
    import train_ssd_gan_kd
    lines, commands = _dry_run(1, 3)
    assert [c[1] for c in commands] == ["scripts/train_ssd.py", "scripts/eval_voc.py",
                                        "scripts/train_ssd_gan_kd.py", "scripts/eval_voc.py"]
    kd = train_ssd_gan_kd.parse_args(commands[2][2:])
    # paper sec. 4.1: stage 1 Adam 0.0005, 180 epochs; stage 2 SGD wd 0.0005, momentum 0.9,
    # 90 epochs; SSD512 on VOC07+12 with two GPUs
    assert (kd.student, kd.teacher, kd.method, kd.head, kd.stage) == (
        "mobilenet1.0", "resnet50_v1", "gan", "teacher", "both")
    assert (kd.gan_epochs, kd.lrG, kd.lrD, kd.beta1) == (180, 0.0005, 0.0005, 0.5)
    assert (kd.epochs, kd.lr, kd.momentum, kd.wd, kd.lr_decay_epoch) == (90, 0.001, 0.9, 0.0005,
                                                                         "")
    assert (kd.clamp_lower, kd.clamp_upper) == (-0.03, 0.03)
    assert (kd.dataset, kd.data_shape, kd.gpus, kd.dataset_root) == ("voc", 512, "0,1", None)
    assert kd.teacher_params is None and kd.pretrained_base is True   # zoo downloads
    # the global batch is split over the GPUs: 16 per GPU, the published log's per-GPU batch
    # (64 on 4 GPUs); the learning rates above go with that global batch unchanged
    assert kd.batch_size == 32 and kd.batch_size // len(kd.gpus.split(",")) == 16
    assert kd.resume == "auto"
    base = train_ssd.parse_args(commands[0][2:])
    assert (base.network, base.optimizer, base.epochs, base.lr, base.lr_decay_epoch,
            base.batch_size, base.data_shape) == ("mobilenet1.0", "sgd", 240, 0.001, "160,200",
                                                  32, 512)
    text = "\n".join(lines)
    assert "global batch 32 over 2 GPU(s) (0,1), 16 per device" in text
    assert "stage 1: Adam lr 0.0005" in text and "180 epochs" in text
    assert "stage 2: SGD lr 0.001, momentum 0.9, wd 0.0005, 90 epochs" in text
    assert "estimated wall time on 2 GTX 1080 Ti" in text
    # the exported best student is what is evaluated, on VOC07 test at 512
    ev = commands[3]
    assert ev[ev.index("--symbol") + 1].endswith(
        "ssd_512_mobilenet1.0_resnet50_v1_voc_gankd-best-student")
    assert ev[ev.index("--data-shape") + 1] == "512" and ev[ev.index("--dataset") + 1] == "voc"


def test_dry_run_other_gpus_keep_the_global_batch(monkeypatch):
    monkeypatch.setattr("gankd_gluon.usage._num_gpus", lambda: 4)   # a 4-GPU machine
    import train_ssd_gan_kd
    lines, commands = _dry_run(1, 3, "--gpus", "0,1,2,3")
    kd = train_ssd_gan_kd.parse_args(commands[2][2:])
    assert kd.gpus == "0,1,2,3" and kd.batch_size == 32
    assert "32 over 4 GPU(s) (0,1,2,3), 8 per device" in "\n".join(lines)


def test_zoo_teachers_download_and_others_are_trained():
    # every SSD teacher of Tables 1/2 is in GluonCV's zoo: no teacher step at full scale
    for r in rows_of(1) + rows_of(2):
        kinds = [s.kind for s in build_chain(r)]
        assert "teacher" not in kinds
        assert kinds == (["baseline", "eval"] if r.is_baseline else
                         ["baseline", "eval-baseline", "distill", "eval"])
    # at smoke scale nothing downloads: the teacher is trained in the chain and passed on
    chain = build_chain(get_row(2, 2), scale="smoke", work_dir="w")
    assert [s.kind for s in chain] == ["data", "teacher", "baseline", "eval-baseline",
                                       "distill", "eval"]
    teacher, distill = chain[1], chain[4]
    assert teacher.get("--network") == "resnet50_v1" and teacher.get("--dataset") == \
        "synthetic_coco"
    assert distill.get("--teacher-params") == teacher.outputs["files"][0]
    assert distill.get("--pretrained-base") == "none" and distill.get("--gpus") == ""
    assert chain[-1].script == "scripts/eval_coco.py"
    # Table 3's teacher is trained on VOC2007 trainval only (the zoo's is 07+12)
    assert "teacher" in [s.kind for s in build_chain(get_row(3, 2))]
    # --no-baseline
    assert [s.kind for s in build_chain(get_row(1, 3), baseline=False)] == ["distill", "eval"]


def test_smoke_shapes_vgg_rows_at_320():
    chain = build_chain(get_row(1, 2), scale="smoke", work_dir="w")
    shapes = {s.kind: s.get("--data-shape") for s in chain}
    assert shapes == {"data": None, "teacher": "320", "baseline": "128",
                      "eval-baseline": "128", "distill": "320", "eval": "320"}
    for s in chain[1:]:
        if s.kind in ("teacher", "baseline", "distill"):
            assert (s.get("--epochs"), s.get("--batch-size"), s.get("--cpu-devices")) == \
                ("1", "4", "2")
    # the baseline is the same run as the '-' row's, so it is trained once
    base_row = build_chain(get_row(1, 1), scale="smoke", work_dir="w")
    assert base_row[1].argv() == chain[2].argv()


def test_row_scripts():
    folder = os.path.join(ROOT, "scripts", "experiments")
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(r.script) for r in ROWS)
    for r in ROWS:
        path = os.path.join(ROOT, r.script)
        assert os.access(path, os.X_OK), path
        text = open(path).read()
        assert ('reproduce.py" --table %d --row %d "$@"' % (r.table, r.index)) in text
    assert os.path.isfile(os.path.join(folder, "table1_mobilenet1.0_resnet50_v1.sh"))
    env = dict(os.environ, PYTHON=sys.executable)
    out = subprocess.run([os.path.join(folder, "table1_resnet18_v1_vgg16_atrous.sh"),
                          "--dry-run", "--gpus", "0"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--teacher vgg16_atrous" in out.stdout and "--gpus 0 " in out.stdout


# ----------------------------------------------------------------- skip / refuse, by hand
def _fake_run(tmp_path, step, args):
    prefix = step.outputs["manifest"][:-len("-final.json")]
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    for f in step.outputs["files"] + [prefix + "-final.net.params"]:
        open(f, "w").close()
    with open(step.outputs["manifest"], "w") as f:
        json.dump({"args": args, "parts": {"net": os.path.basename(prefix) +
                                           "-final.net.params"}}, f)


def test_step_status_train(tmp_path):
    step = build_chain(get_row(1, 1), scale="smoke", work_dir=str(tmp_path))[1]
    assert step_status(step)[0] is False
    args = {"network": "mobilenet1.0", "epochs": 1, "lr": 0.001, "batch_size": 4,
            "data_shape": 128, "lr_decay_epoch": "", "dataset": "synthetic", "gpus": ""}
    _fake_run(tmp_path, step, args)
    done, why = step_status(step)
    assert done and why.startswith("finished")
    # a run made with another recipe is not silently reused
    _fake_run(tmp_path, step, dict(args, epochs=240))
    with pytest.raises(ChainError, match="epochs=240 .command: 1."):
        step_status(step)
    # a missing part makes it incomplete (the run resumes)
    _fake_run(tmp_path, step, args)
    os.remove(step.outputs["files"][0])
    assert step_status(step) == (False, "checkpoint %s is incomplete (missing %s)"
                                 % (step.outputs["manifest"], step.outputs["files"][0]))


def test_step_status_eval_older_than_model(tmp_path):
    step = build_chain(get_row(1, 1), scale="smoke", work_dir=str(tmp_path))[2]
    assert step.kind == "eval"
    for p in step.inputs:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "w").close()
    os.makedirs(os.path.dirname(step.outputs["eval_json"]))
    with open(step.outputs["eval_json"], "w") as f:
        json.dump({"ap": {"mAP": 0.5}}, f)
    assert step_status(step)[0]
    t = os.path.getmtime(step.outputs["eval_json"])
    os.utime(step.inputs[1], (t + 10, t + 10))
    done, why = step_status(step)
    assert not done and "older than" in why


def test_append_result(tmp_path):
    path = str(tmp_path / "logs" / "results.md")
    row = get_row(1, 3)
    line = append_result(path, row, "full", 77.9, 2.0, "python scripts/reproduce.py --table 1 "
                         "--row 3", "abc123", date="2026-01-02 03:04")
    assert line == ("| T1 R3 mobilenet1.0_resnet50_v1 | full | 77.6 | 77.9 | +0.3 | +2.2 / +2.0 "
                    "| 2026-01-02 03:04 | `python scripts/reproduce.py --table 1 --row 3` "
                    "| abc123 |\n")
    append_result(path, get_row(1, 1), "smoke", float("nan"), None, "c", "x", date="d")
    text = open(path).read()
    assert text.startswith("# Results of scripts/reproduce.py")
    assert text.count("| row | scale | paper mAP | our mAP | delta |") == 1
    assert text.endswith("| T1 R1 mobilenet1.0_baseline | smoke | 75.4 | nan | nan | - | d | "
                         "`c` | x |\n")


def test_missing_script_is_a_clear_error(tmp_path, monkeypatch):
    from gankd_gluon.experiments import reproduce
    monkeypatch.setattr(reproduce, "REPO_ROOT", str(tmp_path))   # no scripts there
    argv = ["--table", "1", "--row", "1", "--scale", "smoke", "--work-dir", str(tmp_path)]
    lines = []
    assert main(parse_args(argv), argv, out=lines.append) == 2
    assert "scripts/make_synthetic_voc.py does not exist in this checkout" in lines[-1]


def test_the_docs_dry_run_is_the_real_one(tmp_path, monkeypatch):
    """docs/reproducing.md shows Table 1 row 3's dry run; it must not drift from the code."""
    monkeypatch.chdir(tmp_path)          # a fresh machine: nothing done yet
    lines = []
    argv = ["--table", "1", "--row", "3", "--dry-run"]
    main(parse_args(argv), argv, out=lines.append)
    doc = open(os.path.join(ROOT, "docs", "reproducing.md")).read()
    missing = [ln for ln in lines if ln not in doc]
    assert not missing, missing
    for r in ROWS:
        assert "`%s.sh`" % r.name in doc and r.paper_text() in doc, r


def _fake_chain_done(work, row):
    """Make every output of ``row``'s smoke chain exist, as if it had run."""
    for step in build_chain(row, scale="smoke", work_dir=str(work)):
        if "dataset" in step.outputs:
            root, n_train, n_test = step.outputs["dataset"]
            sets = os.path.join(root, "VOCdevkit", "VOC2007", "ImageSets", "Main")
            coco = os.path.join(root, "coco", "annotations")
            os.makedirs(sets)
            os.makedirs(coco)
            for split, n in (("trainval", n_train), ("test", n_test)):
                open(os.path.join(sets, split + ".txt"), "w").write(
                    "".join("%06d\n" % i for i in range(n)))
                open(os.path.join(coco, "instances_%s.json" % split), "w").write("{}")
        elif "manifest" in step.outputs:
            _fake_run(work, step, {k: v for k, v in step.recipe.items()})
        else:
            os.makedirs(os.path.dirname(step.outputs["eval_json"]), exist_ok=True)
            with open(step.outputs["eval_json"], "w") as f:
                json.dump({"ap": {"mAP": 0.25}}, f)


def test_a_row_done_by_other_rows_still_gets_its_line_once(tmp_path):
    """Table 3 row 5 is row 3's run, a '-' row may be trained by its distillation rows: the
    row's first run appends its line although no step ran; a re-run does not repeat it."""
    row = get_row(1, 1)
    _fake_chain_done(tmp_path, row)
    argv = ["--table", "1", "--row", "1", "--scale", "smoke", "--work-dir", str(tmp_path)]
    results = os.path.join(str(tmp_path), "logs", "results.md")
    for expected in (1, 1):
        lines = []
        assert main(parse_args(argv), argv, out=lines.append) == 0
        assert sum(": skipped, " in ln for ln in lines) == 3
        rows = [ln for ln in open(results) if ln.startswith("| T1 R1 ")]
        assert len(rows) == expected
    assert rows[0].startswith("| T1 R1 mobilenet1.0_baseline | smoke | 75.4 | 25.0 | -50.4 | - |")
    assert "has this row's line" in lines[-1]
