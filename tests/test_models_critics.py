"""models/critics.py: the reference DCGAN critic (``Critic``, ``--critic-norm batch``), the
default critics (``LipschitzCritic`` over ``Standardize`` and ``GainConv2D``, ``--critic-norm
lipschitz``), the ``DNet`` that holds one per map (teacher statistics, score scale, per-critic
weights), ``channel_stats`` and the WGAN weight clipping."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gankd_gluon.models.critics import (Critic, DNet, GainConv2D, LipschitzCritic, channel_stats,
                                        clip_weights, num_downsamplings)


def _dnet(sizes=(8, 1), channels=(6, 4), base=4):
    d = DNet(list(sizes), base_channels=base, norm="lipschitz", channels=list(channels))
    d.initialize()
    return d


def _maps(n=5, seed=0):
    rng = np.random.RandomState(seed)
    return [mx.nd.array(rng.uniform(0, 3, size=(n, 6, 8, 8))),
            mx.nd.array(rng.uniform(0, 3, size=(n, 4, 1, 1)))]


def test_num_downsamplings_reach_one_by_one():
    # 5 -> 2 -> 1, 3 -> 1 (a 4x4/s2/p1 conv floors an odd side)
    assert [num_downsamplings(s) for s in (32, 16, 8, 4, 2, 1, 5, 3)] == [5, 4, 3, 2, 1, 0, 2, 1]


def test_clip_weights_clamps_every_weight_but_not_moving_statistics():
    d = DNet([8, 1])
    d.initialize(mx.init.Uniform(1.0))
    d(mx.nd.ones((1, 3, 8, 8)), mx.nd.ones((1, 3, 1, 1)))
    for p in d.collect_params().values():
        p.set_data(mx.nd.ones(p.shape) * 5)
    clip_weights(d.collect_params(), -0.03, 0.03)
    kinds = set()
    for k, p in d.collect_params().items():
        v = p.data().asnumpy()
        kind = k.rsplit("_", 1)[-1]
        kinds.add(kind)
        if p.grad_req == "null":          # running_mean / running_var, the critics' weights
            assert kind in ("mean", "var", "weights") and (v == 5).all()
        else:                                               # conv weights, gamma, beta
            assert (v == 0.03).all(), k
    assert {"weight", "gamma", "beta", "mean", "var"} <= kinds


def test_critic_layers_follow_wgans_reference_dcgan_critic():
    """A 16x16 map: four 4x4/s2 convs (16->8->4->2->1) with no bias, BatchNorm after every conv
    but the first, LeakyReLU after each, then the 1x1 scoring conv; ``none`` drops the
    BatchNorms and keeps biases."""
    from mxnet.gluon import nn
    c = Critic(16, base_channels=4, norm="batch")
    kinds = [type(b).__name__ for b in c.body]
    assert kinds == ["Conv2D", "LeakyReLU"] + ["Conv2D", "BatchNorm", "LeakyReLU"] * 3
    assert [b._channels for b in c.body if isinstance(b, nn.Conv2D)] == [4, 8, 16, 32]
    assert all(b.bias is None for b in c.body if isinstance(b, nn.Conv2D)) and c.out.bias is None
    c = Critic(16, base_channels=4, norm="none")
    assert [type(b).__name__ for b in c.body] == ["Conv2D", "LeakyReLU"] * 4
    assert c.out.bias is not None
    with pytest.raises(ValueError, match="critic norm 'layer'"):
        Critic(16, norm="layer")
    with pytest.raises(ValueError, match="LipschitzCritic"):     # not a BatchNorm-less Critic
        Critic(16, norm="lipschitz")


def test_batchnorm_critic_output_is_bounded_by_the_clamp_whatever_the_feature_scale():
    """The reason for the BatchNorm (models/critics.py): after clipping, the output of a
    BatchNorm critic does not grow with the scale of its input, a normalisation-free one does
    in proportion. Worked bound for the BatchNorm critic: after the last BatchNorm each
    activation is gamma * z + beta with |gamma|, |beta| <= c, and z has zero mean and unit
    variance over the batch, so the 1x1 output conv over K channels gives at most
    K * c * (c * |z| + c) per position."""
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.normal(size=(8, 64, 8, 8)))
    out = {}
    for norm in ("batch", "none"):
        mx.random.seed(1)
        c = Critic(8, base_channels=16, norm=norm)
        c.initialize(mx.init.Uniform(1.0))
        c(x)
        clip_weights(c.collect_params(), -0.03, 0.03)
        with autograd.train_mode():
            out[norm] = [np.abs(c(x * s).asnumpy()).max() for s in (1.0, 100.0)]
    assert out["none"][1] == pytest.approx(100 * out["none"][0], rel=1e-3)   # linear in scale
    assert out["batch"][1] == pytest.approx(out["batch"][0], rel=0.05)       # scale-free
    # 3 convs: 16 -> 32 -> 64 channels; z of a batch of 8 is at most sqrt(7) in magnitude
    assert out["batch"][0] <= 64 * 0.03 * (0.03 * np.sqrt(7) + 0.03)


def test_gain_conv_output_bounded_by_input_whatever_the_width():
    """With weights clipped to +-c, |output| <= max |input| (bias 0): the L-inf gain is <= 1 for
    any width, and it is reached when every weight is +c on a constant input."""
    for cin in (3, 64, 512):
        conv = GainConv2D(2, 3, 1, 1, cin, 0.03)
        conv.initialize()
        x = mx.nd.ones((1, cin, 5, 5))
        conv.weight.set_data(mx.nd.ones_like(conv.weight.data()) * 0.03)
        y = conv(x).asnumpy()
        assert y[0, :, 2, 2] == pytest.approx([1.0, 1.0], rel=1e-5)     # interior: gain 1
        assert np.abs(y).max() <= 1.0 + 1e-5
        conv.weight.set_data(mx.nd.random.uniform(-0.03, 0.03, conv.weight.shape))
        assert np.abs(conv(x * 7).asnumpy()).max() <= 7.0 + 1e-4


def test_standardisation_uses_the_teachers_statistics_on_both_sides():
    d = _dnet()
    maps = _maps()
    d(*maps)
    stats = channel_stats(maps, floor=0.0)
    d.set_teacher_stats(stats)
    z = d.critics[0].std(maps[0]).asnumpy()
    assert np.abs(z.mean(axis=(0, 2, 3))).max() < 1e-4
    assert z.std(axis=(0, 2, 3)) == pytest.approx(np.ones(6), rel=1e-3)
    # a fake at half the scale keeps half the spread: not re-normalised away
    z2 = d.critics[0].std(maps[0] * 0.5).asnumpy()
    assert z2.std(axis=(0, 2, 3)) == pytest.approx(np.full(6, 0.5), rel=1e-3)


def test_score_scale_puts_each_critics_scores_in_units_of_their_spread():
    """After the first observation of a critic step's scores, the normalised scores of that batch
    have mean 0 and standard deviation 1 per critic; with a momentum, later observations are
    averaged in (here 0.5); the default (momentum 0) takes the batch's own."""
    d = _dnet()
    real, fake = _maps(6, 0), [m * 0.5 for m in _maps(6, 1)]
    d(*real)
    r0, f0 = d(*real), d(*fake)
    raw = np.concatenate([r0.asnumpy(), f0.asnumpy()])
    d.observe_scores([r0], [f0])
    r1, f1 = d(*real), d(*fake)
    scaled = np.concatenate([r1.asnumpy(), f1.asnumpy()])
    assert scaled.std(axis=0) == pytest.approx([1.0, 1.0], rel=1e-3)
    scale0 = np.array([c.score_scale.data().asscalar() for c in d.critics])
    assert scale0 == pytest.approx(raw.std(axis=0), rel=1e-3)
    assert scaled.mean(axis=0) == pytest.approx([0.0, 0.0], abs=1e-4)       # centred
    mean0 = np.array([c.score_mean.data().asscalar() for c in d.critics])
    assert mean0 == pytest.approx(raw.mean(axis=0), rel=1e-3)
    # the second observation: s <- 0.5 s + 0.5 std(raw), raw = scaled * s + m (momentum 0.5)
    d.observe_scores([r1 * 3 + 1], [f1 * 3 + 1], momentum=0.5)
    scale1 = np.array([c.score_scale.data().asscalar() for c in d.critics])
    mean1 = np.array([c.score_mean.data().asscalar() for c in d.critics])
    assert scale1 == pytest.approx(0.5 * scale0 + 0.5 * 3 * scale0, rel=1e-3)
    assert mean1 == pytest.approx(mean0 + 0.5 * scale0, rel=1e-3)
    d.observe_scores([r1 * 3 + 1], [f1 * 3 + 1])                  # default: the batch's own
    scale2 = np.array([c.score_scale.data().asscalar() for c in d.critics])
    assert scale2 == pytest.approx(3 * scale1, rel=1e-3)      # scores in the units of scale1


def test_score_scale_and_weights_are_not_clipped_or_trained():
    d = _dnet()
    d(*_maps())
    d.set_critic_weights([5.0, 0.2])
    r, f = d(*_maps()), d(*_maps(5, 3))
    d.observe_scores([r], [f])
    before = {k: v.data().asnumpy().copy() for k, v in d.collect_params().items()
              if v.grad_req == "null"}
    clip_weights(d.collect_params(), -0.03, 0.03)
    for k, v in before.items():
        np.testing.assert_array_equal(d.collect_params()[k].data().asnumpy(), v)
    assert d.critic_weights.data().asnumpy() == pytest.approx([5.0, 0.2])


def test_critic_weights_scale_the_scores():
    d = _dnet()
    maps = _maps()
    base = d(*maps).asnumpy()
    d.set_critic_weights([2.0, 0.5])
    np.testing.assert_allclose(d(*maps).asnumpy(), base * [2.0, 0.5], rtol=1e-6)
    d.hybridize()
    np.testing.assert_allclose(d(*maps).asnumpy(), base * [2.0, 0.5], rtol=1e-6)


def test_lipschitz_critic_layers():
    """3x3 conv + LeakyReLU, then ``depth`` 4x4/s2 convs + LeakyReLU (3x3/s1 once the map is
    1x1: the same depth for every map), then the 1x1 scoring conv; every conv gain-bounded."""
    from gankd_gluon.models.critics import LipschitzCritic
    for size, strides in ((8, [1, 2, 2]), (2, [1, 2, 1]), (1, [1, 1, 1])):
        c = LipschitzCritic(size, 6, base_channels=4, depth=2)
        kinds = [type(b).__name__ for b in c.body]
        assert kinds == ["GainConv2D", "LeakyReLU"] * 3, (size, kinds)
        convs = [b for b in c.body if isinstance(b, GainConv2D)]
        assert [b.kw["stride"][0] for b in convs] == strides
        assert [b.kw["num_filter"] for b in convs] == [4, 8, 16]
        assert isinstance(c.out, GainConv2D) and c.out.kw["kernel"] == (1, 1)


def test_channel_stats_by_hand():
    m = mx.nd.array(np.arange(2 * 2 * 1 * 2, dtype="float32").reshape(2, 2, 1, 2))
    (mean, std), = channel_stats([m], floor=0.0)
    x = m.asnumpy()
    np.testing.assert_allclose(mean.asnumpy(), x.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std.asnumpy(), x.std(axis=(0, 2, 3)), rtol=1e-5)
    # a constant channel gets the floor (1% of the map's RMS), not 0
    z = mx.nd.concat(m, mx.nd.ones((2, 1, 1, 2)) * 3, dim=1)
    (_, std2), = channel_stats([z])
    rms = np.sqrt((z.asnumpy() ** 2).mean())
    assert abs(std2.asnumpy()[2] - 0.01 * rms) < 1e-4 * rms


def _student_push(batch, eps, seed=0):
    """Norm of the student step's gradient on the fake maps after one critic step's
    renormalisation, for a 1x1-map critic and fakes ``eps`` from the real maps."""
    from gankd_gluon.models.critics import channel_stats
    mx.random.seed(seed)
    rng = np.random.RandomState(seed)
    d = DNet([1], base_channels=4, norm="lipschitz", channels=[4])
    d.initialize()
    real = mx.nd.array(rng.uniform(0, 3, size=(batch, 4, 1, 1)))
    direction = mx.nd.array(rng.normal(size=(batch, 4, 1, 1)))
    d(real)
    d.set_teacher_stats(channel_stats([mx.nd.array(rng.uniform(0, 3, size=(64, 4, 1, 1)))],
                                      floor=0.0))
    fake = real + eps * direction
    with autograd.record():
        r, f = d.renormalise([d(real)], [d(fake)])
    fake.attach_grad()
    with autograd.record():
        loss = -d(fake).sum() / batch
    loss.backward()
    return float(mx.nd.norm(fake.grad).asscalar()), r[0].asnumpy(), f[0].asnumpy()


def test_one_image_a_side_makes_the_push_grow_as_the_student_nears_the_teacher():
    """Why a global batch of 1 is refused with these critics (``check_critic_args``): the score
    spread of one real and one fake sample is half their distance, so both normalised scores
    are +-1 whatever the maps and the student's gradient grows as 1/distance (measured 2.9,
    12.5, 125, 1250 at distances 1 .. 0.001); from 2 images a side it stays bounded (at most
    6.5 at 2, 1.6 at 4)."""
    pushes = [_student_push(1, eps)[0] for eps in (1, 0.1, 0.01, 0.001)]
    for near, far in zip(pushes[1:], pushes[:-1]):
        assert near > 4 * far
    _, r, f = _student_push(1, 0.01)
    assert abs(r).ravel() == pytest.approx([1.0], rel=1e-4)
    assert abs(f).ravel() == pytest.approx([1.0], rel=1e-4)
    for batch in (2, 4):
        pushes = [_student_push(batch, eps)[0] for eps in (1, 0.1, 0.01, 0.001)]
        assert max(pushes) < 5 * pushes[0], (batch, pushes)
