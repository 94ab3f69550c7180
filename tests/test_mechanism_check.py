"""benchmarks/mechanism_check.py: its metrics by hand, its flags, and one tiny end-to-end run
(64 px, four training images, one epoch, two seeds; the teacher is initialised and saved, not
trained: the check only needs its weights to stay fixed)."""
import importlib.util
import json
import math
import os

import mxnet as mx
import numpy as np
import pytest

from gankd_gluon.data.synthetic import make_synthetic_voc
from gankd_gluon.models.weights import read_checkpoint
from gankd_gluon.logs.parse import parse_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64
SEEDS = (1, 2)
ADVERSARIAL = ("Loss_D", "Loss_G", "Loss_D_real", "Loss_D_fake")


def _module():
    path = os.path.join(ROOT, "benchmarks", "mechanism_check.py")
    spec = importlib.util.spec_from_file_location("mechanism_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mc = _module()


# -- metrics by hand ------------------------------------------------------------------------------
def test_moment_distance_by_hand():
    # (N=2, C=2, 1, 1): channel 0 teacher [0, 2] (mean 1, std 1), student [1, 1] (mean 1, std 0)
    # -> 0/1 + 1/1 = 1; channel 1 teacher [1, 3] (mean 2, std 1), student [3, 5] (mean 4, std 1)
    # -> 2/1 + 0/1 = 2; mean over channels 1.5
    t = np.array([[0, 1], [2, 3]], np.float32).reshape(2, 2, 1, 1)
    s = np.array([[1, 3], [1, 5]], np.float32).reshape(2, 2, 1, 1)
    assert mc.moment_distance(s, t) == pytest.approx(1.5)
    assert mc.moment_distance(t, t) == 0
    # images and locations pool alike: the same values spread over H instead of N
    assert mc.moment_distance(s.transpose(2, 1, 0, 3), t.transpose(2, 1, 0, 3)) == \
        pytest.approx(1.5)
    # the student scaled by 2 around the teacher's mean: mean equal, std off by one std_t
    t2 = np.array([0, 2, 4, 6], np.float64).reshape(1, 1, 2, 2)     # mean 3, std sqrt(5)
    assert mc.moment_distance(3 + 2 * (t2 - 3), t2) == pytest.approx(1.0)
    # a channel the teacher holds constant: std_t floored at eps
    c = np.zeros((2, 1, 1, 1))
    assert mc.moment_distance(c + 1, c, eps=0.5) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        mc.moment_distance(s, t[:, :1])


def test_map_metrics_identical_and_averaged_over_maps():
    rng = np.random.RandomState(0)
    maps = [rng.randn(3, 4, 2, 2).astype(np.float32), rng.randn(3, 8, 1, 1).astype(np.float32)]
    same = mc.map_metrics(maps, maps)
    assert same["cosine_length"] == pytest.approx(0, abs=1e-6)
    assert same["moment_distance"] == 0
    # student = 2 x teacher: cosine_length 1 at every location (length off by 100%);
    # moments: |2m - m| / s + |2s - s| / s = |m| / s + 1 per channel
    doubled = mc.map_metrics([2 * m for m in maps], maps)
    assert doubled["cosine_length"] == pytest.approx(1, rel=1e-5)
    for got, m in zip(doubled["per_map"], maps):
        flat = m.astype(np.float64).transpose(1, 0, 2, 3).reshape(m.shape[1], -1)
        want = np.mean(np.abs(flat.mean(1)) / flat.std(1) + 1)
        assert got["moment_distance"] == pytest.approx(want)
        assert got["cosine_length"] == pytest.approx(1, rel=1e-5)
        assert got["constant_channels"] == 0
    assert doubled["moment_distance"] == pytest.approx(
        np.mean([m["moment_distance"] for m in doubled["per_map"]]))


def test_t_interval_by_hand():
    # mean 2, sample std 1, t(0.975, 2 df) = 4.302653
    mean, half, n = mc.t_interval([1, 2, 3])
    assert (mean, n) == (2, 3) and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    mean, half, n = mc.t_interval([5.0, None])        # a failed run: left out
    assert (mean, n) == (5, 1) and math.isnan(half)


def test_flags_refused_with_one_line(tmp_path, capsys):
    teacher = tmp_path / "t.params"
    teacher.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_:
        mc.parse_args(["--dataset-root", str(tmp_path)])
    assert exit_.value.code == 2 and "--teacher-params" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        mc.parse_args(["--teacher-params", str(tmp_path / "missing"), "--dataset-root",
                       str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "missing: no such file" in err
    with pytest.raises(SystemExit) as exit_:
        mc.parse_args(["--teacher-params", str(teacher), "--dataset-root", str(tmp_path / "no")])
    assert exit_.value.code == 2 and "no: no such directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:      # the arms are the script's, not the caller's
        mc.parse_args(["--teacher-params", str(teacher), "--dataset-root", str(tmp_path),
                       "--stage1-flags", "--d-steps 2 --lrD=0.1"])
    assert exit_.value.code == 2 and "--lrD=0.1: set by this script" in capsys.readouterr().err
    args = mc.parse_args(["--teacher-params", str(teacher), "--dataset-root", str(tmp_path),
                          "--stage1-flags", "--d-steps 2 --critic-norm none"])
    assert args.stage1_flags == ["--d-steps", "2", "--critic-norm", "none"]
    assert args.seeds == [233, 234, 235] and args.epochs == 6


# -- end to end -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def check(tmp_path_factory):
    from dist_fixtures import write_teacher
    root = tmp_path_factory.mktemp("mechanism")
    make_synthetic_voc(str(root / "data"), seed=0, num_train=4, num_test=3)
    mx.random.seed(0)
    write_teacher(root / "teacher.params", data_shape=SIZE)
    args = mc.parse_args([
        "--teacher-params", str(root / "teacher.params"), "--dataset-root", str(root / "data"),
        "--teacher", "mobilenet0.5", "--student", "mobilenet0.25", "--data-shape", str(SIZE),
        "--batch-size", "2", "--critic-channels", "8", "--epochs", "1",
        "--seeds", ",".join(map(str, SEEDS)), "--num-images", "2", "--out", str(root / "out"),
        "--work-dir", str(root / "work"), "--keep"])
    assert mc.main(args) == 0
    with open(root / "out" / "mechanism.json") as f:
        return root, args, json.load(f)


@pytest.mark.slow
def test_every_arm_seed_and_metric_is_reported(check):
    root, args, result = check
    assert set(result["metrics"]) == {"start", "gan", "frozen", "none"}
    assert not result["failures"]
    for row, by_seed in result["metrics"].items():
        assert sorted(by_seed) == sorted(str(s) for s in SEEDS), row
        for m in by_seed.values():
            assert len(m["per_map"]) == 6
            for metric in mc.METRICS:
                assert np.isfinite(m[metric]) and m[metric] >= 0, (row, metric)
                assert all(np.isfinite(p[metric]) for p in m["per_map"])
    for row in result["summary"].values():
        for c in row.values():
            assert c["n"] == len(SEEDS) and np.isfinite(c["mean"]) and np.isfinite(c["ci95"])
    for key in ("gan - frozen", "gan - none", "gan - start", "frozen - start", "none - start"):
        for c in result["differences"][key].values():
            assert len(c["per_seed"]) == len(SEEDS) and np.isfinite(c["ci95"])
    assert result["num_images"] == 2 and len(result["git"]["commit"]) == 40
    report = (root / "out" / "mechanism.md").read_text()
    for row in ("| start |", "| gan |", "| frozen |", "| none |", "| gan - frozen |",
                "| gan - none |"):
        assert row in report
    # every arm starts from the same student (paired by seed)
    assert set(result["checks"]["start_students_max_difference"].values()) == {0}


@pytest.mark.slow
def test_arms_differ_in_their_own_flags_only(check):
    _, _, result = check

    def shared(argv):
        argv = list(argv)
        i = argv.index("--save-prefix")
        del argv[i:i + 2]
        for flag in ("--method", "--lrD"):
            if flag in argv:
                i = argv.index(flag)
                del argv[i:i + 2]
        return argv
    for seed in SEEDS:
        runs = {arm: result["argv"][arm]["s%d" % seed] for arm in mc.ARMS}
        assert shared(runs["gan"]) == shared(runs["frozen"]) == shared(runs["none"])
        assert runs["frozen"][runs["frozen"].index("--lrD") + 1] == "0"
        assert "--stage" in runs["gan"] and runs["gan"][runs["gan"].index("--stage") + 1] == "1"


def _dnet_params(manifest):
    part = read_checkpoint(manifest, ["dnet"])["parts"]["dnet"]
    return {k: v.asnumpy() for k, v in mx.nd.load(
        os.path.join(os.path.dirname(manifest), part)).items()}


@pytest.mark.slow
def test_frozen_critics_never_learn_and_the_gan_ones_do(check):
    root, args, result = check
    runs = root / "work" / "runs"
    for seed in SEEDS:
        moved = {}
        for arm in ("gan", "frozen"):
            start = _dnet_params(str(runs / mc.run_name(args, arm, seed, start=True) /
                                     (mc.run_name(args, arm, seed, start=True) + "-final.json")))
            end = _dnet_params(str(runs / mc.run_name(args, arm, seed) /
                                   (mc.run_name(args, arm, seed) + "-final.json")))
            assert set(start) == set(end)
            # not learned: BatchNorm's statistics, the default critics' teacher statistics, score
            # normalisation and per-critic weights (set by the steps, never by the optimiser)
            learnable = [k for k in start if not k.endswith((
                "running_mean", "running_var", "std.mean", "std.std", "score_scale",
                "score_mean", "critic_weights"))]
            # the critic step clips after its (zero) update: the initial weights, clipped
            moved[arm] = max(np.abs(end[k] - np.clip(start[k], -0.03, 0.03)).max()
                             for k in learnable)
        assert moved["frozen"] == 0 and moved["gan"] > 0
        checks = result["checks"]["critics"]
        assert checks["frozen"][str(seed)]["learnable_from_clipped_start"] == 0
        assert checks["gan"][str(seed)]["learnable_from_clipped_start"] == pytest.approx(
            moved["gan"])


@pytest.mark.slow
def test_logs_show_which_terms_ran(check):
    root, args, _ = check
    for seed in SEEDS:
        epochs = {}
        for arm in mc.ARMS:
            parsed = parse_log(str(root / "out" / "logs" /
                                   (mc.run_name(args, arm, seed) + "_train.log")))
            assert parsed.unreadable_count == 0, parsed.describe_unreadable()
            (epochs[arm],) = [e.metrics for e in parsed.run().epochs]
        for name in ADVERSARIAL:
            # the frozen critics still score both sides: Loss_D is computed, the student is
            # pushed; --method none computes no adversarial term at all
            assert np.isfinite(epochs["gan"][name]) and np.isfinite(epochs["frozen"][name])
            assert np.isnan(epochs["none"][name])
        assert np.isnan(epochs["none"]["cosine_length_loss_metric"])
