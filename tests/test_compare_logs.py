"""scripts/compare_logs.py end to end, and the report helpers, against the published logs."""
import importlib.util
import os
import subprocess
import sys

import pytest

from gankd_gluon.logs import format as fmt
from gankd_gluon.logs.parse import parse_log
from gankd_gluon.logs.report import (EXIT_MAP_DROP, EXIT_OK, EXIT_UNREADABLE, epoch_end_values,
                                     epochs_to_fraction, settings_diff, summarize_log)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "compare_logs.py")
NAN = float("nan")
VOC = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
       "train", "tvmonitor"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("compare_logs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_ssd_log(path, final_map=0.78, validate=True, diagnostics=False):
    """A short SSD GAN-KD log in our format: stage 1 epochs 1-3, stage 2 epochs 1-2;
    ``diagnostics``: stage 1 also prints our monitors (cosine_length_loss_metric, W_0..W_5)."""
    lines = [fmt.format_namespace({"batch_size": 32, "epochs": 3, "gpus": "0", "lr": 0.001,
                                   "seed": 233}), fmt.format_start(1)]
    epoch_maps = iter([final_map - 0.05, final_map - 0.02, final_map - 0.01, final_map - 0.005,
                       final_map])

    def validation(epoch):
        mean = next(epoch_maps)
        lines.append(fmt.format_validation(epoch, VOC, [mean + (i % 5 - 2) * 0.01
                                                        for i in range(20)], mean))
        lines.append(fmt.format_best_map(mean))

    for epoch in (1, 2, 3):
        metrics = [("Loss_D", -1.0 / epoch), ("Loss_G", 0.5), ("Loss_D_real", 0.2),
                   ("Loss_D_fake", 0.7), ("train_student_ori_net_CrossEntropy", 3.0 / epoch),
                   ("train_student_ori_net_SmoothL1", 1.5 / epoch)]
        if diagnostics:
            metrics += [("cosine_length_loss_metric", 0.6 - 0.05 * epoch)]
            metrics += [("W_%d" % i, (1.0 / epoch) / 6) for i in range(6)]
        for batch in (99, 199):
            lines.append(fmt.format_ssd_batch(epoch, batch, 20.0 + batch / 100.0, metrics))
        lines.append(fmt.format_ssd_epoch(epoch, 123456.0, metrics))
        if validate:
            validation(epoch)
    lines.append(fmt.format_start(1))
    for epoch in (1, 2):
        metrics = [("Loss_D", NAN), ("Loss_G", NAN), ("Loss_D_real", NAN), ("Loss_D_fake", NAN),
                   ("train_student_ori_net_CrossEntropy", 1.0),
                   ("train_student_ori_net_SmoothL1", 0.5)]
        for batch in (99, 199):
            lines.append(fmt.format_ssd_batch(epoch, batch, 40.0, metrics))
        lines.append(fmt.format_ssd_epoch(epoch, 654321.0, metrics))
        if validate:
            validation(epoch)
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run_main(script, argv):
    return script.main(script.parse_args(argv))


def test_end_to_end_report_and_three_plots(script, published_ssd_log, tmp_path, capsys):
    ours = write_ssd_log(tmp_path / "ours.log")
    out = tmp_path / "cmp"
    assert run_main(script, [published_ssd_log, ours, "--out", str(out)]) == EXIT_OK
    for name in ("losses.png", "map.png", "per_class_ap.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10000, name
    report = (out / "report.md").read_text()
    for heading in ("## mAP", "## Stages of published (run 2)", "## Stages of ours (run 1)",
                    "## Per-class AP", "## Losses at matching epochs", "## Settings diff"):
        assert heading in report
    # final / best / stated best and deltas; the published best is not its stated best_map
    assert "| final mAP | 0.78052 at epoch 4 = cumulative 225 (stage 2) | 0.78000 at epoch 2 " \
           "= cumulative 5 (stage 2) | -0.00052 |" in report
    assert "| best mAP (max over validations) | 0.78271 at epoch 221 (stage 1)" in report
    assert "| best mAP stated by the log | 0.78201 | 0.78000 | -0.00201 |" in report
    assert "the log states best 0.78201, but its maximum is 0.78271" in report
    assert "| first validation >= 95% of own best | 0.78271 at epoch 221 (stage 1) | " \
           "0.76000 at epoch 2 (stage 1)" in report
    # stages of each run, speeds, not computed
    assert "| 1 | 2 (plain) | epoch counter restarts (221 -> 1) | 1-4 | 222-225 |" in report
    assert "| 1 | 2 (plain) | new 'Start training from [Epoch 1]' line | 1-2 | 4-5 |" in report
    assert "stage 2 runs 1.63x the stage-1 speed (median 57.22 vs 35.03 samples/s)" in report
    assert "Loss_D, Loss_G, Loss_D_real, Loss_D_fake" in report
    # per-class side by side, losses at matching epochs, settings diff
    assert "| aeroplane | 0.8235 | 0.7600 | -0.0635 |" in report
    # cumulative epoch 5 is stage 1 in the published run and stage 2 (not computed) in ours
    assert "| 5 | -6.289 / n/c | 0.103 / n/c |" in report
    assert "| `batch_size` | `64` | `32` |" in report
    assert "| `network` | `'vgg16_atrous'` | (absent) |" in report
    assert "wrote" in capsys.readouterr().out


def test_no_validation_yet(script, published_ssd_log, tmp_path):
    ours = write_ssd_log(tmp_path / "early.log", validate=False)
    out = tmp_path / "cmp"
    assert run_main(script, [published_ssd_log, ours, "--out", str(out)]) == EXIT_OK
    report = (out / "report.md").read_text()
    assert "| final mAP | 0.78052 at epoch 4 = cumulative 225 (stage 2) | no validation yet" \
        in report
    assert (out / "map.png").exists() and (out / "per_class_ap.png").exists()


def test_other_detector_kind_is_not_comparable(script, published_ssd_log, published_frcnn_log,
                                               tmp_path, capsys):
    out = tmp_path / "cmp"
    assert run_main(script, [published_ssd_log, published_frcnn_log, "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "NOT COMPARABLE" in report and "Faster R-CNN" in report
    assert not list(out.glob("*.png"))
    assert "## Stages of ours (run 45)" in report
    assert "NOT COMPARABLE" in capsys.readouterr().err


@pytest.mark.parametrize("final_map, gate, expected", [(0.78, "0.01", EXIT_OK),
                                                       (0.70, "0.01", EXIT_MAP_DROP)])
def test_max_map_drop_gate(script, published_ssd_log, tmp_path, final_map, gate, expected,
                           capsys):
    ours = write_ssd_log(tmp_path / "ours.log", final_map=final_map)
    argv = [published_ssd_log, ours, "--out", str(tmp_path / "cmp"), "--max-map-drop", gate,
            "--no-plots"]
    assert run_main(script, argv) == expected
    word = "PASS" if expected == EXIT_OK else "FAIL"
    assert word + " --max-map-drop 0.0100" in capsys.readouterr().out + \
        (tmp_path / "cmp" / "report.md").read_text()


def test_gate_fails_without_validation(script, published_ssd_log, tmp_path):
    ours = write_ssd_log(tmp_path / "early.log", validate=False)
    argv = [published_ssd_log, ours, "--out", str(tmp_path / "c"), "--max-map-drop", "0.5",
            "--no-plots"]
    assert run_main(script, argv) == EXIT_MAP_DROP


def test_unreadable_files_and_runs(script, published_ssd_log, tmp_path, capsys):
    assert run_main(script, [published_ssd_log, str(tmp_path / "missing.log"),
                             "--out", str(tmp_path / "c")]) == EXIT_UNREADABLE
    assert "cannot read ours log" in capsys.readouterr().err
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert run_main(script, [published_ssd_log, str(empty)]) == EXIT_UNREADABLE
    assert "no training-log lines" in capsys.readouterr().err
    assert run_main(script, [published_ssd_log, published_ssd_log, "--run", "3",
                             "--out", str(tmp_path / "c")]) == EXIT_UNREADABLE
    assert "has 2 run(s); run 3 does not exist" in capsys.readouterr().err


def test_corrupted_log_reports_count_not_traceback(script, published_ssd_log, tmp_path, capsys):
    ours = write_ssd_log(tmp_path / "ours.log")
    text = open(ours).read().split("\n")
    text[2] = text[2][:66]  # a batch line cut inside a metric name ("Los")
    damaged = tmp_path / "damaged.log"
    damaged.write_bytes(("\n".join(text[:-12])).encode() + b"\n\xff\xfe\x00junk")
    out = tmp_path / "cmp"
    argv = [published_ssd_log, str(damaged), "--out", str(out), "--no-plots"]
    assert run_main(script, argv) == EXIT_OK
    err = capsys.readouterr().err
    assert "damaged.log: 3 unreadable line(s)" in err and "Traceback" not in err
    assert "ours unreadable line 3 (batch line with unreadable metrics)" in \
        (out / "report.md").read_text()


def test_published_run_selection(script, published_frcnn_log, tmp_path):
    out = tmp_path / "cmp"
    argv = [published_frcnn_log, published_frcnn_log, "--run", "44", "--out", str(out),
            "--labels", "run 45", "run 44", "--no-plots"]
    assert run_main(script, argv) == EXIT_OK
    report = (out / "report.md").read_text()
    assert "| best mAP (max over validations) | 0.73838 at epoch 35 (stage 2) | 0.36550 at " \
           "epoch 0 (stage 1) | -0.37288 |" in report
    assert "switch at epoch 27 agrees with GAN_epochs=26" in report
    assert "(not drawn: --no-plots)" in report and not list(out.glob("*.png"))


def test_unwritable_out_dir(script, published_ssd_log, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = [published_ssd_log, published_ssd_log, "--out", str(blocker), "--no-plots"]
    assert run_main(script, argv) == EXIT_UNREADABLE
    assert "cannot write the report" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_exit_status(published_ssd_log, tmp_path):
    """The real command line (one process each): exit 2 on a missing file, 0 otherwise."""
    bad = subprocess.run([sys.executable, SCRIPT, published_ssd_log, str(tmp_path / "nope")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == EXIT_UNREADABLE and "cannot read" in bad.stderr
    good = subprocess.run([sys.executable, SCRIPT, published_ssd_log, published_ssd_log,
                           "--published-run", "2", "--run", "1", "--out", str(tmp_path / "o"),
                           "--no-plots"], capture_output=True, text=True, cwd=ROOT)
    assert good.returncode == EXIT_OK, good.stderr
    assert os.listdir(tmp_path / "o") == ["report.md"]


def test_helpers_on_published_logs(published_ssd_log, published_frcnn_log):
    ssd, frcnn = parse_log(published_ssd_log), parse_log(published_frcnn_log)
    assert settings_diff(ssd.run(1).settings, ssd.run(2).settings) == [("num_workers", 16, 32)]
    assert epochs_to_fraction(ssd.run(2)).epoch == 221
    # 95% of 0.73838 is 0.70146: epoch 5 (0.70013) is short of it, epoch 6 (0.70861) is not.
    assert epochs_to_fraction(frcnn.run(45)).epoch == 6
    assert epochs_to_fraction(ssd.run(1)) is None
    ends = epoch_end_values(ssd.run(2))
    assert ends[221][0].speed == 398863.976  # the epoch line wins over the batch lines
    assert ends[220][1]["Loss_G"] == 6.315   # no epoch line: the last batch line
    summary = summarize_log(frcnn)
    assert "runs (`Namespace` lines): 45; validation blocks: 39 (1 in run 44, 38 in run 45)" \
        in summary
    assert "| 45 | 159 | 0-26, 27-37 | 456 | 38 | 0.73602 | 0.73838 at epoch 35 (stage 2) | " \
        "0.73838 |" in summary
    assert "| 1-39 | 1-77 | header only" in summary


def test_cosine_length_and_critic_separation_are_drawn_and_reported(script, published_ssd_log,
                                                                   tmp_path):
    """Our cosine_length_loss_metric is drawn beside the published curve and tabled with it;
    our W_i get one panel; the report says what the metric is (our reading of an undefined
    column). A log without it still gets the published curve alone."""
    from gankd_gluon.logs.report import loss_panels
    ours = write_ssd_log(tmp_path / "ours.log", diagnostics=True)
    out = tmp_path / "cmp"
    assert run_main(script, [published_ssd_log, ours, "--out", str(out)]) == EXIT_OK
    report = (out / "report.md").read_text()
    assert "`cosine_length_loss_metric` (published, ours)" in report
    assert "per-critic separation `W_i` (ours)" in report
    assert "its authors never defined it" in report
    # epoch-end values side by side: ours' epoch 3 line prints 0.450
    assert "`cosine_length_loss_metric` |" in report and " / 0.450 |" in report
    assert (out / "losses.png").stat().st_size > 10000
    published, mine = parse_log(published_ssd_log).run(2), parse_log(ours).run(1)
    panels = dict(loss_panels(published, mine, ("published", "ours")))
    assert panels["cosine_length_loss_metric"] == [
        ("published", 0, "cosine_length_loss_metric"), ("ours", 1, "cosine_length_loss_metric")]
    (w_title, w_series), = [(t, v) for t, v in panels.items() if t.startswith("W_i")]
    assert [name for _, _, name in w_series] == ["W_%d" % i for i in range(6)]
    assert {k for _, k, _ in w_series} == {1}
    assert not any(t.startswith("W_") and not t.startswith("W_i") for t in panels)

    # an older log of ours without the monitors: the published curve alone, no W_i panel
    old = parse_log(write_ssd_log(tmp_path / "old.log")).run(1)
    panels = dict(loss_panels(published, old, ("published", "ours")))
    assert panels["cosine_length_loss_metric"] == [("published", 0, "cosine_length_loss_metric")]
    assert not any(t.startswith("W_i") for t in panels)


def test_resumed_run_is_compared_as_a_whole(script, tmp_path):
    """A log with two resumes (tests/test_logs_parse.py): the report's best mAP is the whole
    run's (0.5, before the first resume), epochs are not repeated, both plots are drawn with
    the resume points; --run 3 still picks the last block alone (nothing validated there)."""
    from test_logs_parse import resumed_ssd_log_lines
    log = tmp_path / "resumed.log"
    log.write_text("\n".join(resumed_ssd_log_lines()) + "\n")
    out = tmp_path / "cmp"
    # the "published" side: the same file's first block
    assert run_main(script, [str(log), str(log), "--published-run", "1",
                             "--out", str(out)]) == EXIT_OK
    report = (out / "report.md").read_text()
    assert "the whole run: blocks 1-3 of 3 (Namespace lines) joined at 2 resume(s) (after " \
           "cumulative epoch 2, 5)" in report
    assert "| best mAP (max over validations) | 0.50000 at epoch 2 (stage 1) | 0.50000 at " \
           "epoch 2 (stage 1) |" in report
    assert "| final mAP | 0.20000 at epoch 3 (stage 1) | 0.40000 at epoch 1 = cumulative 5 " \
           "(stage 2) |" in report
    assert "## Stages of ours (runs 1-3)" in report
    for name in ("losses.png", "map.png", "per_class_ap.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    last = tmp_path / "last"
    assert run_main(script, [str(log), str(log), "--published-run", "1", "--run", "3",
                             "--out", str(last)]) == EXIT_OK
    assert "no validation yet" in (last / "report.md").read_text()
