"""engine/balance.py: the critics' gradient norms at the student's backbone and the
weights that balance them."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gankd_gluon.engine.balance import balance_weights, critic_gradient_norms
from gankd_gluon.models.critics import DNet


def _dnet(sizes=(8, 1), channels=(6, 4), base=4):
    d = DNet(list(sizes), base_channels=base, norm="lipschitz", channels=list(channels))
    d.initialize()
    return d


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
