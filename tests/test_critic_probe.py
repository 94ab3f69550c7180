"""The critic probe (``scripts/probe_critics.py``): the instrument itself, on maps made here, and
the script end to end at a tiny scale."""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import mxnet as mx
import numpy as np
import pytest

from gankd_gluon.experiments import critic_probe as cp
from gankd_gluon.models.critics import DNet, channel_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "probe_critics.py")


_SCALES = [np.random.RandomState(5).uniform(5.0, 20.0, size=(1, c, 1, 1)) for c in (16, 8)]


def _teacher_like(n, rng):
    """Maps shaped like an SSD's: a wide 8x8 map and a 1x1 map, non-negative (after ReLU),
    channel means and scales (5 to 20) that differ by channel (the same in every pool)."""
    scale0, scale1 = _SCALES
    m0 = np.maximum(rng.normal(0.3, 1.0, size=(n, 16, 8, 8)), 0) * scale0
    m1 = np.maximum(rng.normal(0.3, 1.0, size=(n, 8, 1, 1)), 0) * scale1
    return [mx.nd.array(m0), mx.nd.array(m1)]


def _separations(norm, fake_fn, steps=60):
    """Train fresh critics of ``norm`` on real pool A vs fake_fn(pool B) with the training
    code's critic step; separations on held-out pools for that fake and for the control."""
    rng = np.random.RandomState(0)
    a, b, a2, b2 = (_teacher_like(n, rng) for n in (64, 64, 256, 256))
    stats = channel_stats(a)
    args = SimpleNamespace(lrD=5e-4, beta1=0.5, clamp_lower=-0.03, clamp_upper=0.03, steps=steps,
                           batch_size=16)

    def make():
        dnet = DNet([8, 1], base_channels=8, norm=norm, channels=[16, 8], clamp=0.03)
        dnet.initialize()
        dnet(*[m[:2] for m in a])
        dnet.set_teacher_stats(stats)
        return dnet
    out = {}
    for name, fn in (("fake", fake_fn), ("control", lambda maps: maps)):
        mx.random.seed(1)
        dnet, loss_d = cp._train_critics(make, args, a, fn(b), mx.cpu(),
                                         np.random.RandomState(1))
        out[name] = cp._separation(dnet, a2, fn(b2), 16, mx.cpu())[0]
        assert np.isfinite(loss_d)
    return out


def _scaled(maps):
    return [m * 0.5 for m in maps]


def test_batchnorm_critic_is_blind_to_scale_of_a_wide_map():
    """The reference DCGAN critic (BatchNorm on all-real and all-fake batches) cannot tell the
    teacher's maps from the same maps x 0.5 on a map it downsamples (conv and LeakyReLU are
    positively homogeneous; BatchNorm removes the scale): the separation stays below 5x the
    no-difference control."""
    sep = _separations("batch", _scaled)
    assert abs(sep["fake"][0]) < 5 * abs(sep["control"][0]), sep


def test_default_critic_separates_scale_on_every_map():
    """The project's default critics tell the scaled maps apart on both maps, by at least 5x
    the control, with the right sign (D higher on the fake)."""
    sep = _separations("lipschitz", _scaled)
    for i in range(2):
        assert sep["fake"][i] > 0, sep
        assert sep["fake"][i] >= 5 * abs(sep["control"][i]), (i, sep)


def test_grad_shares_sum_to_one_and_follow_the_critics(tmp_path):
    """Each critic's share of the adversarial gradient reaching the backbone, on a toy student
    whose two maps come from one backbone conv: a critic with zero output weights gives 0."""
    from mxnet.gluon import nn

    class Toy(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.base = nn.Conv2D(16, 3, padding=1, prefix="mobilenet0_conv0_")
                self.adapters_x = nn.Conv2D(8, 1, prefix="adapters_conv0_")

        def hybrid_forward(self, F, x):
            f = F.relu(self.base(x))
            return [F.Pooling(f, kernel=(1, 1), stride=(1, 1), pool_type="avg"),
                    self.adapters_x(F.Pooling(f, global_pool=True, kernel=(1, 1),
                                              pool_type="avg"))]
    toy = Toy()
    toy.initialize()
    x = mx.nd.random.uniform(shape=(4, 3, 8, 8))
    dnet = DNet([8, 1], base_channels=8, norm="lipschitz", channels=[16, 8])
    dnet.initialize()
    dnet(*toy(x))
    from gankd_gluon.models.ssd import backbone_params
    names = [p.name for p in backbone_params(toy)]
    assert names and all("adapters_" not in n for n in names)
    shares, unweighted, norms = cp._grad_shares(dnet, toy, x, x, 4, mx.cpu(), balance=False)
    assert abs(unweighted.sum() - 1) < 1e-6 and (norms > 0).all()
    np.testing.assert_allclose(shares, unweighted)
    # balanced on the same batch it is measured on: every critic gives the same share
    shares, unweighted, norms = cp._grad_shares(dnet, toy, x, x, 4, mx.cpu(), balance=True)
    np.testing.assert_allclose(shares, [0.5, 0.5], rtol=1e-4)
    assert dnet.critic_weights.data().asnumpy() @ norms == pytest.approx(2 * norms.prod() * 2
                                                                        / norms.sum(), rel=1e-4)
    dnet.critics[1].out.weight.set_data(mx.nd.zeros_like(dnet.critics[1].out.weight.data()))
    shares, unweighted, norms = cp._grad_shares(dnet, toy, x, x, 4, mx.cpu(), balance=False)
    assert norms[1] == 0 and unweighted[0] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from gankd_gluon.data.synthetic import make_synthetic_voc
    root = tmp_path_factory.mktemp("probe") / "data"
    make_synthetic_voc(str(root), seed=0, num_train=8, num_test=8)
    return str(root)


@pytest.mark.slow
def test_probe_script_end_to_end(synthetic_root, tmp_path):
    out = tmp_path / "probe.json"
    cmd = [sys.executable, SCRIPT, "--dataset", "synthetic", "--dataset-root", synthetic_root,
           "--teacher", "mobilenet0.25", "--student", "mobilenet0.25", "--data-shape", "64",
           "--critic-channels", "8", "--steps", "3", "--batch-size", "4", "--num-train", "4",
           "--num-heldout", "4", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["settings"]["critic_norm"] == "lipschitz"
    critics = result["critics"]
    assert len(critics) == 6
    for c in critics:
        assert set(c["separation"]) == set(cp.FAKES)
        assert all(np.isfinite(v) for v in c["separation"].values())
        assert len(c["shape"]) == 3
    assert sum(c["grad_share"] for c in critics) == pytest.approx(1.0, abs=1e-6)
    # the printed table is the JSON's numbers
    assert "| 0 | " in res.stdout and ("%+.3g" % critics[0]["separation"]["random"]) in res.stdout


@pytest.mark.slow
def test_probe_script_faster_rcnn_end_to_end(synthetic_root, tmp_path):
    """``--detector faster_rcnn``: one critic on the stride-16 map, the teacher read from a
    file (the zoo layout), every fake measured, the whole gradient share on that critic."""
    import warnings
    from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES
    from gankd_gluon.models.faster_rcnn import build_faster_rcnn, initialize_params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        teacher = build_faster_rcnn("resnet50_v1b", SYNTHETIC_CLASSES, short=64, max_size=64,
                                    rpn_train_post_nms=64, rpn_test_post_nms=64, num_sample=32)
        initialize_params(teacher, mx.cpu())
        teacher(mx.nd.zeros((1, 3, 64, 64)))            # deferred shapes
        teacher.save_parameters(str(tmp_path / "teacher.params"))
    out = tmp_path / "probe.json"
    cmd = [sys.executable, SCRIPT, "--detector", "faster_rcnn", "--dataset", "synthetic",
           "--dataset-root", synthetic_root, "--teacher", "resnet50_v1b",
           "--teacher-params", str(tmp_path / "teacher.params"), "--data-shape", "64",
           "--critic-channels", "8", "--steps", "3", "--batch-size", "4", "--num-train", "4",
           "--num-heldout", "4", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["settings"]["detector"] == "faster_rcnn"
    assert result["settings"]["student"] == "resnet50_v1b"
    (critic,) = result["critics"]
    assert critic["shape"] == [1024, 4, 4]
    assert set(critic["separation"]) == set(cp.FAKES)
    assert all(np.isfinite(v) for v in critic["separation"].values())
    assert critic["grad_share"] == pytest.approx(1.0) and critic["grad_norm"] > 0


@pytest.mark.parametrize("argv, flag", [
    (["--fakes", "random,bogus"], "--fakes"),
    (["--steps", "0"], "--steps"),
    (["--teacher-params", "/nonexistent.params"], "--teacher-params"),
    (["--batch-size", "64", "--num-heldout", "8"], "--batch-size"),
    (["--data-shape", "0"], "--data-shape"),
    (["--data-shape", "100"], "--data-shape"),
    (["--critic-channels", "0"], "--critic-channels"),
    (["--critic-balance-interval", "-1"], "--critic-balance-interval"),
    (["--d-steps", "0"], "--d-steps"),
    (["--teacher", "resnet9000"], "--teacher"),
    (["--student", "vgg16_atrous"], "--student"),
    (["--out", "/nonexistent_dir/probe.json"], "--out"),
    (["--detector", "faster_rcnn", "--teacher", "mobilenet1.0"], "--teacher"),
    (["--detector", "faster_rcnn", "--student", "mobilenet1.0"], "--student"),
    (["--detector", "faster_rcnn", "--data-shape", "16"], "--data-shape"),
    (["--detector", "yolo"], "--detector"),
])
def test_probe_script_bad_arguments(argv, flag, tmp_path, monkeypatch, capsys):
    """Each refused in the script's own ``parse_args`` (in this process: an interpreter start
    with MXNet's import is about 4 s; the command line itself is run below)."""
    from gankd_gluon.experiments.scripts import load_script
    probe = load_script("probe_critics.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [SCRIPT])        # argparse names the program after it
    with pytest.raises(SystemExit) as exit_:
        probe.parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = [l for l in err.strip().splitlines() if l.startswith("probe_critics.py: error")]
    assert len(lines) == 1 and flag in lines[0], err
    assert "Traceback" not in err
    assert os.listdir(str(tmp_path)) == []


def test_probe_script_bad_argument_on_the_command_line(tmp_path):
    res = subprocess.run([sys.executable, SCRIPT, "--steps", "0"], capture_output=True,
                         text=True, cwd=str(tmp_path))
    assert res.returncode == 2
    lines = [l for l in res.stderr.strip().splitlines() if l.startswith("probe_critics.py: error")]
    assert len(lines) == 1 and "--steps" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert os.listdir(str(tmp_path)) == []


def test_probe_script_checks_the_dataset_before_building_networks(tmp_path):
    """A missing dataset root stops the probe with one line naming it, before any network is
    built (no warning of the network builders before it), exit 2, nothing written."""
    out = tmp_path / "probe.json"
    res = subprocess.run([sys.executable, SCRIPT, "--dataset", "synthetic", "--dataset-root",
                          str(tmp_path / "missing"), "--teacher", "mobilenet0.25", "--student",
                          "mobilenet0.25", "--data-shape", "64", "--batch-size", "4",
                          "--num-train", "4", "--num-heldout", "4", "--out", str(out)],
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [l for l in res.stderr.strip().splitlines()
                                               if l.startswith("error: ")], res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "missing" in res.stderr
    assert os.listdir(str(tmp_path)) == []
