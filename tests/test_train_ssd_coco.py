"""Training on a COCO-kind dataset validates with COCO AP@[.5:.95] (pycocotools), and the
``best`` checkpoint follows it: a tiny train_ssd.py run on the generated set read as COCO."""
import json
import os
import subprocess

import pytest

import dist_fixtures as dist

pytestmark = pytest.mark.slow


def test_best_checkpoint_follows_coco_ap(tmp_path):
    from gankd_gluon.logs.parse import parse_log
    root = dist.make_data(tmp_path)
    argv = dist.train_ssd_argv(root, "out", "--epochs", "3", "--lr", "0.05",
                               "--val-interval", "1", "--save-prefix", "coco")
    argv[argv.index("synthetic")] = "synthetic_coco"
    env = dict(os.environ, PYTHONPATH=dist.ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = parse_log(str(root / "out" / "coco_train.log")).runs[-1]
    assert [v.metric for v in run.validations] == ["COCO AP@[.5:.95]"] * 3
    maps = [v.mean_ap for v in run.validations]
    with open(root / "out" / "coco" / "coco-best.json") as f:
        best = json.load(f)
    assert best["best_map"] == max(maps)
    assert best["epoch"] == run.validations[maps.index(max(maps))].epoch
    # the logged number is eval_coco.py's AP@[.5:.95] of that checkpoint, not a VOC mAP
    out = tmp_path / "ap.json"
    proc = subprocess.run([dist.PY, os.path.join(dist.ROOT, "scripts", "eval_coco.py"),
                           "--dataset", "synthetic_coco", "--dataset-root", str(root / "data"),
                           "--checkpoint", str(root / "out" / "coco" / "coco-best.json"),
                           "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out) as f:
        assert json.load(f)["ap"]["mAP"] == pytest.approx(best["best_map"], abs=1e-6)
