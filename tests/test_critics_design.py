"""The default critics (``--critic-norm lipschitz``): standardisation with the teacher's
statistics, gain-bounded convs, score scale, per-critic weights and their balancing."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gankd_gluon.engine.balance import balance_weights, critic_gradient_norms
from gankd_gluon.models.critics import DNet, GainConv2D, channel_stats, clip_weights


def _dnet(sizes=(8, 1), channels=(6, 4), base=4):
    d = DNet(list(sizes), base_channels=base, norm="lipschitz", channels=list(channels))
    d.initialize()
    return d


def _maps(n=5, seed=0):
    rng = np.random.RandomState(seed)
    return [mx.nd.array(rng.uniform(0, 3, size=(n, 6, 8, 8))),
            mx.nd.array(rng.uniform(0, 3, size=(n, 4, 1, 1)))]


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


def test_balance_weights_by_hand():
    assert balance_weights([1.0, 2.0, 4.0]) == pytest.approx(
        np.array([1.0, 0.5, 0.25]) / (1.75 / 3))
    w = balance_weights([1.0, 0.0])          # a dead critic: the largest finite weight
    assert w == pytest.approx([1.0, 1.0])
    assert balance_weights([0.0, 0.0]) == pytest.approx([1.0, 1.0])


def test_critic_gradient_norms_match_a_hand_computation():
    """One linear 'backbone' x -> W x shared by two maps; the critics' input gradients are read
    off with autograd, the backbone gradient norms computed by hand from them."""
    d = _dnet(sizes=(2, 1), channels=(3, 3))
    w = gluon.Parameter("mobilenet0_w", shape=(3, 3))
    w.initialize(mx.init.Uniform(1.0))
    x = mx.nd.random.uniform(shape=(2, 3, 2, 2))

    def maps_of(weight):
        m0 = mx.nd.Convolution(x, weight.reshape((3, 3, 1, 1)), no_bias=True, kernel=(1, 1),
                               num_filter=3)
        return [m0, mx.nd.mean(m0, axis=(2, 3), keepdims=True)]
    d(*maps_of(w.data()))
    d.set_critic_weights([3.0, 0.5])         # measured unweighted whatever the weights
    with autograd.record():
        maps = maps_of(w.data())
    norms = critic_gradient_norms(d, maps, [w])
    # by hand: dD_i/dW = sum over the map's input gradient (x)_channel, per critic
    expect = []
    for i in range(2):
        ms = [m.copy() for m in maps_of(w.data())]
        for m in ms:
            m.attach_grad()
        with autograd.record():
            s = (d(*ms) / mx.nd.array([3.0, 0.5]).reshape((1, 2)))[:, i].sum()
        s.backward()
        g_map0 = ms[0].grad.asnumpy() + ms[1].grad.asnumpy() / 4.0          # mean over 2x2
        gw = np.einsum("bohw,bihw->oi", g_map0, x.asnumpy())
        expect.append(np.sqrt((gw ** 2).sum()))
    assert norms == pytest.approx(expect, rel=1e-4)


def test_teacher_statistics_by_hand_over_the_first_images():
    """``teacher_statistics``: per map, channel mean and standard deviation of the teacher's
    maps of the first ``count`` images (validation transform, in batches), by hand."""
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
    from gankd_gluon.engine.ssd_runs import teacher_statistics
    rng = np.random.RandomState(0)
    label = np.array([[1, 1, 10, 10, 0, 0]], dtype="float32")
    dataset = [(mx.nd.array(rng.randint(0, 255, size=(40, 48, 3)), dtype="uint8"), label)
               for _ in range(5)]

    def features(x):             # two "maps": the image, and its 2x2 average pool
        return [x * 2 + 1, mx.nd.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="avg")]
    stats = teacher_statistics(features, dataset, 32, mx.cpu(), count=3, batch=2)
    transform = SSDDefaultValTransform(32, 32)
    x = mx.nd.stack(*[transform(*dataset[i])[0] for i in range(3)])
    for (mean, std), m in zip(stats, features(x)):
        m = m.asnumpy()
        np.testing.assert_allclose(mean.asnumpy(), m.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(std.asnumpy(), m.std(axis=(0, 2, 3)), rtol=2e-3)


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
