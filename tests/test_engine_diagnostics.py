"""The stage-1 monitors (engine/diagnostics.py), checked against values worked by hand:
``cosine_length_loss_metric`` on tiny maps, the per-critic separation ``W_i`` of
``GANStep.critic_step`` on a critic whose scores are known, and the log columns."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon
from mxnet.gluon import HybridBlock

from gankd_gluon.engine.diagnostics import (COSINE_LENGTH, cosine_length_distance,
                                            cosine_length_metric, diagnostic_columns,
                                            separation_columns)
from gankd_gluon.engine.guards import RunningMean
from gankd_gluon.engine.steps import GANStep


def _vec(*channels):
    """One sample, one location: (1, C, 1, 1)."""
    return mx.nd.array(channels).reshape((1, -1, 1, 1))


@pytest.mark.parametrize("s, t, expected", [
    ((3.0, 4.0), (3.0, 4.0), 0.0),          # identical
    ((6.0, 8.0), (3.0, 4.0), 1.0),          # s = 2t: cos 1, length off by |10 - 5| / 5
    ((1.5, 2.0), (3.0, 4.0), 0.5),          # s = t/2: |2.5 - 5| / 5
    ((-4.0, 3.0), (3.0, 4.0), 1.0),         # orthogonal, same length: 1 - 0 + 0
    ((-3.0, -4.0), (3.0, 4.0), 2.0),        # opposite: 1 - (-1)
    ((0.0, 0.0), (0.0, 0.0), 0.0),          # both zero: they agree
    ((0.0, 0.0), (3.0, 4.0), 2.0),          # no student vector: 1 (no direction) + 1
])
def test_cosine_length_distance_by_hand(s, t, expected):
    d = cosine_length_distance(_vec(*s), _vec(*t))
    assert d.shape == (1, 1, 1)
    assert d.asscalar() == pytest.approx(expected, abs=1e-6)


def test_metric_means_locations_then_maps_equally_and_divides_by_the_global_batch():
    """Two samples, two maps of different sizes; each map's location mean counts once.

    sample 0: map A (1x1) identical -> 0; map B (2x2) s = 2t at every location -> 1;
              per-sample mean (0 + 1) / 2 = 0.5
    sample 1: map A orthogonal, equal length -> 1; map B: two locations identical, one s = 2t,
              one s = -t -> (0 + 0 + 1 + 2) / 4 = 0.75; per-sample mean (1 + 0.75) / 2 = 0.875
    sum over the device's samples 1.375, over the global batch n.
    """
    t_a = mx.nd.array([[[[3.0]], [[4.0]]], [[[3.0]], [[4.0]]]])            # (2, 2, 1, 1)
    s_a = mx.nd.array([[[[3.0]], [[4.0]]], [[[-4.0]], [[3.0]]]])
    t_b = mx.nd.ones((2, 3, 2, 2))
    s_b = 2 * t_b
    s_b[1] = t_b[1]
    s_b[1, :, 1, 0] = 2
    s_b[1, :, 1, 1] = -1
    for n in (2, 8):
        value = cosine_length_metric([s_a, s_b], [t_a, t_b], n)
        assert value.shape == (1,)
        assert value.asscalar() == pytest.approx(1.375 / n, abs=1e-6)
    with pytest.raises(ValueError, match="adapted to the teacher's channels"):
        cosine_length_metric([mx.nd.ones((1, 2, 1, 1))], [mx.nd.ones((1, 3, 1, 1))], 1)


def test_metric_is_outside_autograd_and_device_shares_sum_to_the_batch_mean():
    rng = np.random.RandomState(0)
    t = [mx.nd.array(rng.normal(size=(4, 5, 3, 3))), mx.nd.array(rng.normal(size=(4, 5, 1, 1)))]
    s = [mx.nd.array(rng.normal(size=m.shape)) for m in t]
    for m in s:
        m.attach_grad()
    with mx.autograd.record():
        s_graph = [m * 2 for m in s]
    whole = cosine_length_metric(s_graph, t, 4).asscalar()
    halves = [cosine_length_metric([m[i:i + 2] for m in s_graph], [m[i:i + 2] for m in t], 4)
              for i in (0, 2)]
    mean = RunningMean(COSINE_LENGTH)
    mean.update(halves)
    assert mean.get()[1] == pytest.approx(whole, rel=1e-5)
    # the student's maps are detached: even inside record() the metric adds no gradient
    with mx.autograd.record():
        s_graph = [m * 2 for m in s]
        total = s_graph[0].sum() + 100 * cosine_length_metric(s_graph, t, 4)
    total.backward()
    np.testing.assert_array_equal(s[0].grad.asnumpy(), 2 * np.ones(s[0].shape))


def test_separation_columns_split_per_critic_without_host_read():
    dev0, dev1 = mx.nd.array([1.0, -2.0, 0.5]), mx.nd.array([0.25, 1.0, 0.0])
    cols = separation_columns([dev0, dev1])
    assert list(cols) == ["W_0", "W_1", "W_2"]
    assert all(isinstance(v, mx.nd.NDArray) and v.shape == (1,) for vs in cols.values()
               for v in vs)
    assert [sum(v.asscalar() for v in cols[k]) for k in cols] == [1.25, -1.0, 0.5]


def test_diagnostic_columns_keep_their_place_and_print_nan_when_not_computed():
    assert diagnostic_columns(3, True, True) == [
        (COSINE_LENGTH, COSINE_LENGTH), ("W_0", "W_0"), ("W_1", "W_1"), ("W_2", "W_2")]
    # --method none (no teacher, no critics) and a KD baseline (teacher, no critics): the same
    # column names, with key None (printed nan, "not computed")
    assert diagnostic_columns(2, False, False) == [(COSINE_LENGTH, None), ("W_0", None),
                                                   ("W_1", None)]
    assert diagnostic_columns(1, True, False) == [(COSINE_LENGTH, COSINE_LENGTH), ("W_0", None)]


class MeanCritics(HybridBlock):
    """A D-Net whose critic i scores a map by ``w_i * mean(map)``: (B, M), known by hand."""

    def __init__(self, num_maps, **kwargs):
        super(MeanCritics, self).__init__(**kwargs)
        with self.name_scope():
            self.w = self.params.get("w", shape=(1, num_maps), init=mx.init.One())

    def hybrid_forward(self, F, *feats, w):
        means = [F.mean(f, axis=(1, 2, 3)).reshape((-1, 1)) for f in feats]
        return F.broadcast_mul(F.concat(*means, dim=1), w)


def _maps():
    """Two maps, batch 2: teacher means (1, 3) and (0, 2); student means (2, 1) and (4, 0)."""
    t = [mx.nd.array([1.0, 3.0]).reshape((2, 1, 1, 1)) * mx.nd.ones((2, 2, 2, 2)),
         mx.nd.array([0.0, 2.0]).reshape((2, 1, 1, 1)) * mx.nd.ones((2, 3, 1, 1))]
    s = [mx.nd.array([2.0, 1.0]).reshape((2, 1, 1, 1)) * mx.nd.ones((2, 2, 2, 2)),
         mx.nd.array([4.0, 0.0]).reshape((2, 1, 1, 1)) * mx.nd.ones((2, 3, 1, 1))]
    return t, s


@pytest.mark.parametrize("d_steps, w", [(1, 1.0), (2, 0.5)])
def test_critic_step_returns_each_critics_separation(d_steps, w):
    """W_i = mean_b D_i(student) - mean_b D_i(teacher) of the last critic step.

    With w_i = 1: critic 0 gives student (2 + 1) / 2 = 1.5, teacher (1 + 3) / 2 = 2, W_0 = -0.5;
    critic 1 gives (4 + 0) / 2 = 2 and (0 + 2) / 2 = 1, W_1 = 1. With lr 0 only the clipping
    to +-0.5 changes w after the first critic step, so a second step scores with w_i = 0.5.
    """
    dnet = MeanCritics(2)
    dnet.initialize()
    trainer = gluon.Trainer(dnet.collect_params(), "sgd", {"learning_rate": 0.0})
    step = GANStep(None, dnet, None, trainer, clamp=(-0.5, 0.5),
                   d_steps=d_steps)
    t, s = _maps()
    real, fake, loss_d, separation = step.critic_step([t], [s], 2.0, 0, 0)
    assert separation[0].shape == (2,)
    np.testing.assert_allclose(separation[0].asnumpy(), [-0.5 * w, 1.0 * w], rtol=1e-6)
    # Loss_D = Loss_D_real - Loss_D_fake = -sum_i W_i
    assert real[0].asscalar() == pytest.approx(3.0 * w)
    assert fake[0].asscalar() == pytest.approx(3.5 * w)
    assert loss_d[0].asscalar() == pytest.approx(-separation[0].sum().asscalar())


def test_critic_separation_two_devices_equal_one():
    """Half the batch on each of two devices: the W_i shares sum (RunningMean) to one device's
    value, since each is divided by the global batch."""
    t, s = _maps()
    logged = {}
    for split in (False, True):
        dnet = MeanCritics(2)
        ctx = [mx.cpu(0), mx.cpu(1)] if split else [mx.cpu(0)]
        dnet.initialize(ctx=ctx)
        trainer = gluon.Trainer(dnet.collect_params(), "sgd", {"learning_rate": 0.0})
        step = GANStep(None, dnet, None, trainer, clamp=(-1, 1))
        if split:
            t_dev = [[m[i:i + 1].as_in_context(c) for m in t] for i, c in enumerate(ctx)]
            s_dev = [[m[i:i + 1].as_in_context(c) for m in s] for i, c in enumerate(ctx)]
        else:
            t_dev, s_dev = [t], [s]
        sep = step.critic_step(t_dev, s_dev, 2.0, 0, 0)[3]
        cols = separation_columns(sep)
        logged[split] = []
        for name in ("W_0", "W_1"):
            mean = RunningMean(name)
            mean.update(cols[name])
            logged[split].append(mean.get()[1])
    assert logged[False] == pytest.approx([-0.5, 1.0])
    assert logged[True] == pytest.approx(logged[False], rel=1e-6)
