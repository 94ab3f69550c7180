"""``scripts/ablation_chen.py`` end to end at a tiny scale: every row of Chen et al.'s Table 4
plus GAN-KD trains on the generated dataset with the same budget, and ``table.md`` holds each
row's evaluated mAP, its difference to the baseline, the command and the code state."""
import os
import re
import subprocess
import sys

import pytest

from gankd_gluon.experiments.ablation import TABLE4

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--num-train", "4", "--num-test", "4", "--batch-size", "4", "--teacher", "mobilenet0.5",
        "--student", "mobilenet0.25", "--teacher-epochs", "1", "--student-epochs", "2",
        "--gan-epochs", "1", "--val-interval", "1", "--log-interval", "2", "--critic-channels",
        "8", "--num-workers", "0"]


def test_ablation_runs_every_row_and_writes_the_table(tmp_path):
    out, cache = tmp_path / "ablation", tmp_path / "cache"
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "ablation_chen.py"), "--out", str(out),
           "--cache", str(cache)] + TINY
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=str(tmp_path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = (out / "table.md").read_text()
    assert "Command: `python scripts/ablation_chen.py" in text and "--student-epochs 2" in text
    assert re.search(r"Code: commit `\w+`", text)
    rows = {m.group(2): (float(m.group(3)), m.group(4)) for m in re.finditer(
        r"^\| (.+?) \| (\S+) \| ([0-9.]+) \| ([^|]*) \|", text, re.M)}
    assert set(rows) == {"-"} | {method for _, method in TABLE4}
    base = rows["none"][0]
    for method, (value, delta) in rows.items():
        assert 0.0 <= value <= 1.0
        if method in ("-", "none"):
            assert delta.strip() == ""
        else:                                   # the printed difference is mAP - baseline
            assert float(delta) == pytest.approx(value - base, abs=1.5e-4)
    # every configuration wrote its own log, named after its method, with the same budget
    for _, method in TABLE4:
        name = "ssd_128_mobilenet0.25_mobilenet0.5_synthetic_ablation_%s_train.log" % \
            method.replace("+", "_")
        log = (out / name).read_text()
        assert "method='%s'" % method in log and "gan_epochs=1" in log and "epochs=1" in log
    # a re-run (after an interruption, say) reuses the rows that finished with the same
    # settings and writes the same numbers; another budget trains again
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=str(tmp_path))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("reused, finished earlier") == len(TABLE4)
    text2 = (out / "table.md").read_text()
    assert [ln.split("|")[3] for ln in text2.splitlines() if ln.startswith("| ")] == \
        [ln.split("|")[3] for ln in text.splitlines() if ln.startswith("| ")]
    other = subprocess.run(cmd + ["--methods", "none", "--student-epochs", "3"],
                           capture_output=True, text=True, timeout=1800, cwd=str(tmp_path))
    assert other.returncode == 0, other.stdout[-3000:] + other.stderr[-3000:]
    assert "reused" not in other.stdout and "Baseline: train_ssd_gan_kd.py" in other.stdout
