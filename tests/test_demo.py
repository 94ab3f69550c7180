"""``scripts/demo.py`` end to end at a tiny scale: the README's main command, with the same code
path (dataset, teacher, baseline, GAN-KD's two stages, export, evaluation, figures,
``results.md``), then a second run that takes the teacher from the cache."""
import json
import os
import subprocess
import sys

import pytest

from gankd_gluon.logs.parse import parse_log

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--num-train", "16", "--num-test", "4", "--batch-size", "4", "--teacher", "mobilenet0.5",
        "--student", "mobilenet0.25", "--teacher-epochs", "1", "--student-epochs", "2",
        "--gan-epochs", "1", "--val-interval", "1", "--log-interval", "2", "--critic-channels",
        "8", "--num-workers", "0", "--draw-images", "0,1"]


def _demo(out, cache, *extra):
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "demo.py"), "--out", str(out),
           "--cache", str(cache)] + TINY + list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=str(out))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    out, cache = base / "out", base / "cache"
    out.mkdir()
    first = _demo(out, cache)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return out, cache, first


def test_demo_writes_results_figures_and_logs(demo):
    out, _, run = demo
    res = json.load(open(out / "results.json"))
    for key in ("teacher", "baseline", "gankd"):
        assert 0.0 <= res["map"][key] <= 1.0
        assert len(res["aps"][key]) == len(res["class_names"]) == 5
    assert res["teacher_cached"] is False
    text = (out / "results.md").read_text()
    # the table holds the numbers the evaluation measured, the command and the verdict
    assert "python scripts/demo.py" in text and "--teacher-epochs 1" in text
    for key in ("teacher", "baseline", "gankd"):
        assert "**%.3f**" % res["map"][key] in text
    assert "the baseline" in text and ("did NOT beat" in text or "beat the baseline" in text
                                       or "level" in text)
    for fig in ("detections.png", "losses.png"):
        assert (out / fig).stat().st_size > 10000, fig
    assert "wrote" in run.stdout and "results.md" in run.stdout


def test_demo_logs_parse_like_the_published_log(demo):
    """The GAN-KD log parses with the regular expressions that read the published SSD log: one
    run, both stages, adversarial columns in stage 1, nan in stage 2, validations with mAP."""
    out, _, _ = demo
    logs = sorted(p for p in os.listdir(out) if p.endswith("_gankd_train.log"))
    assert len(logs) == 1
    parsed = parse_log(str(out / logs[0]))
    assert parsed.unreadable_count == 0, parsed.describe_unreadable()
    run = parsed.run(-1)
    assert {"Loss_D", "Loss_G", "Loss_D_real", "Loss_D_fake",
            "train_student_ori_net_CrossEntropy", "train_student_ori_net_SmoothL1"} \
        <= set(run.metric_names)
    assert run.settings["critic_norm"] == "batch" and run.settings["clamp_upper"] == 0.03
    assert len(run.validations) == 2                      # one per stage (1 epoch each)
    for name in ("teacher", "baseline"):
        log = [p for p in os.listdir(out) if p.endswith("_train.log") and name in p]
        assert len(log) == 1 and parse_log(str(out / log[0])).unreadable_count == 0


def test_second_demo_run_takes_the_teacher_from_the_cache(demo, tmp_path):
    _, cache, _ = demo
    out = tmp_path / "again"
    out.mkdir()
    again = _demo(out, cache, "--student-epochs", "2", "--gan-epochs", "1")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "teacher: cached" in again.stdout
    assert json.load(open(out / "results.json"))["teacher_cached"] is True
