"""Paper Eq. 1 (Hong, Yu, Fan 2019, "GAN-Knowledge Distillation for one-stage Object
Detection", arXiv:1906.08467), in the Wasserstein form (Arjovsky, Chintala, Bottou,
"Wasserstein GAN", ICML 2017, https://arxiv.org/abs/1701.07875; the published SSD log's
``Loss_D = Loss_D_real - Loss_D_fake`` and clamp +-0.03), pinned by hand on tiny networks.

One iteration of :class:`~gankd_gluon.engine.steps.GANStep` over
:class:`~gankd_gluon.engine.steps.SSDAdapter` and over
:class:`~gankd_gluon.engine.frcnn_steps.FasterRCNNAdapter` is run with plain SGD (no momentum,
no weight decay), so each update is ``w_new = w - lr * grad``, and every gradient is written
out in numpy, in closed form:

- critic step: ``L_D = (1/N) sum_b D(T(x_b)) - (1/N) sum_b D(S(x_b))`` with the student's maps
  detached and the teacher without graph, then clipping to the clamp *after* the update;
- student step: ``L_G = (1/N) sum_b D'(S(x_b)) + L_det`` through the *updated* critics D'
  (critics frozen: their weights stay D'), with ``L_det = L_conf + L_loc`` (SSD) or the four
  Faster R-CNN losses (RPN and RCNN classification and box terms), each with weight 1;
  Faster R-CNN adds the adversarial term only after the critic warm-up (``train_D_eopch``).

N is the *global* batch: the tests run on one device and on ``[cpu(0), cpu(1)]`` with a batch of
3 (split 1 + 2, so a mean of per-device means is not the batch mean either), hybridized or not
(real runs hybridize). The blocks are defined here, not taken from the model code: a student of
1x1 convs, a linear head, a quadratic detection loss, and critics ``D_i(m) = <v_i, g(m)> + c_i``
with ``g`` the identity or ``tanh``, so that every gradient is known by hand:

- ``d/dv_i L_D = (1/N) sum_b (g(t_i,b) - g(s_i,b))``, ``d/dc_i L_D = 0``;
- ``d/dm_i (1/N) sum_b D'_i(m_i,b) = v'_i g'(m_i,b) / N``.
"""
import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon
from mxnet.gluon import HybridBlock, nn

from gankd_gluon.engine.frcnn_steps import METRIC_COLUMNS, FasterRCNNAdapter
from gankd_gluon.engine.steps import GANStep, SSDAdapter, split_batch
from gankd_gluon.models.faster_rcnn import MapAdapter

LR_D, LR_G = 0.2, 0.5            # SGD learning rates of the critics and of the student
CLAMP = (-0.3, 0.3)              # WGAN clipping range (larger than the paper's 0.03, so the
#                                  hand-picked critic weights are partly inside, partly clipped)
N = 3                            # global batch: 1 + 2 images on two devices
SIDE = 2                         # input and map side

DEVICES = {1: [mx.cpu(0)], 2: [mx.cpu(0), mx.cpu(1)]}
CASES = [pytest.param(d, h, id="%ddev-%s" % (d, "hybrid" if h else "imperative"))
         for d in (1, 2) for h in (False, True)]


# ------------------------------------------------------------------------------------------
# tiny blocks
# ------------------------------------------------------------------------------------------

class TinyFeatures(HybridBlock):
    """SSD "features": two maps of a (B, 3, 2, 2) input, ``m0 = W0 x + b0`` (B, 2, 2, 2) and
    ``m1 = mean_hw(W1 x + b1)`` (B, 1, 1, 1) (1x1 convs)."""

    def __init__(self, **kwargs):
        super(TinyFeatures, self).__init__(**kwargs)
        with self.name_scope():
            self.conv0 = nn.Conv2D(2, 1, in_channels=3)
            self.conv1 = nn.Conv2D(1, 1, in_channels=3)

    def hybrid_forward(self, F, x):
        return self.conv0(x), F.mean(self.conv1(x), axis=(2, 3), keepdims=True)


class TinyHead(HybridBlock):
    """SSD "head": ``cls = Hc flatten(m0)`` (B, 2), ``box = hb m1 + hb0`` (B, 1)."""

    def __init__(self, **kwargs):
        super(TinyHead, self).__init__(**kwargs)
        with self.name_scope():
            self.cls = nn.Dense(2, in_units=8, use_bias=False)
            self.box = nn.Dense(1, in_units=1)

    def hybrid_forward(self, F, m0, m1):
        return self.cls(m0), self.box(m1)


class TinyCritic(HybridBlock):
    """One critic per map: ``D_i(m) = <v_i, g_i(m)> + c_i``, ``g_i`` tanh where ``tanh[i]``,
    else the identity. Inputs: maps (B, C_i, H_i, W_i). Output: (B, M) scores."""

    def __init__(self, shapes, tanh, **kwargs):
        super(TinyCritic, self).__init__(**kwargs)
        self.tanh = tuple(tanh)
        with self.name_scope():
            for i, shape in enumerate(shapes):
                setattr(self, "v%d" % i, self.params.get("v%d" % i, shape=shape))
                setattr(self, "c%d" % i, self.params.get("c%d" % i, shape=(1,)))

    def hybrid_forward(self, F, *maps, **p):
        cols = []
        for i, m in enumerate(maps):
            g = F.tanh(m) if self.tanh[i] else m
            s = F.sum(F.broadcast_mul(g, F.expand_dims(p["v%d" % i], axis=0)), axis=0,
                      exclude=True)
            cols.append(F.broadcast_add(s, p["c%d" % i]))
        return F.stack(*cols, axis=1)


def quad_det_loss(cls_preds, box_preds, cls_targets, box_targets):
    """Stand-in for SSDMultiBoxLoss (same call and return): per image
    ``L_conf = 0.5 |cls - y_c|^2 / N``, ``L_loc = 0.5 |box - y_b|^2 / N``, N the batch over all
    devices (SSDMultiBoxLoss divides by the positives over all devices in the same way)."""
    n = float(sum(c.shape[0] for c in cls_preds))
    cls = [0.5 * ((c - t) ** 2).sum(axis=1) / n for c, t in zip(cls_preds, cls_targets)]
    box = [0.5 * ((b - t) ** 2).sum(axis=1) / n for b, t in zip(box_preds, box_targets)]
    return [c + b for c, b in zip(cls, box)], cls, box


# ------------------------------------------------------------------------------------------
# numpy helpers
# ------------------------------------------------------------------------------------------

def _conv1x1(w, b, x):
    """(O, C) weights, (O,) bias, (B, C, H, W) input."""
    return np.einsum("oc,bchw->bohw", w, x) + b[None, :, None, None]


def _g(m, tanh):
    return np.tanh(m) if tanh else m


def _dg(m, tanh):
    return 1 - np.tanh(m) ** 2 if tanh else np.ones_like(m)


def _critic_update(v, c, t_maps, s_maps, tanh, n):
    """Hand critic step: L_D, the critics' gradients, and the clipped SGD update.

    Returns (L_D, D(teacher) mean, D(student) mean, new v list, new c list, v before clipping).
    """
    d_t = sum((_g(t, th) * vi[None]).sum() + ci.sum() * t.shape[0]
              for t, vi, ci, th in zip(t_maps, v, c, tanh)) / n
    d_s = sum((_g(s, th) * vi[None]).sum() + ci.sum() * s.shape[0]
              for s, vi, ci, th in zip(s_maps, v, c, tanh)) / n
    grad_v = [(_g(t, th).sum(0) - _g(s, th).sum(0)) / n for t, s, th in zip(t_maps, s_maps, tanh)]
    grad_c = [np.zeros_like(ci) for ci in c]        # the biases cancel in real - fake
    raw = [vi - LR_D * gv for vi, gv in zip(v, grad_v)]
    new_v = [np.clip(r, *CLAMP) for r in raw]
    new_c = [np.clip(ci - LR_D * gc, *CLAMP) for ci, gc in zip(c, grad_c)]
    return d_t - d_s, d_t, d_s, new_v, new_c, raw


def _adv_value(v, c, s_maps, tanh, n):
    """(1/N) sum_b sum_i D_i(s_i,b)."""
    return sum((_g(s, th) * vi[None]).sum() + ci.sum() * s.shape[0]
               for s, vi, ci, th in zip(s_maps, v, c, tanh)) / n


def _set(param, value):
    param.set_data(mx.nd.array(np.asarray(value, dtype=np.float32).reshape(param.shape)))


def _np(param):
    return param.data().asnumpy().astype(np.float64)


def _sgd(params, lr):
    return gluon.Trainer(params, "sgd", {"learning_rate": lr, "momentum": 0.0, "wd": 0.0})


def _assert_update(before, after, grad, lr, name):
    """``after == before - lr * grad``, compared on the step (so a small term still counts)."""
    step = before - after
    np.testing.assert_allclose(step, lr * grad.reshape(step.shape), rtol=2e-4, atol=2e-6,
                               err_msg=name)


def _no_gradient(block, name):
    for k, p in block.collect_params().items():
        for g in p.list_grad():
            assert not np.any(g.asnumpy()), "%s parameter %s received a gradient" % (name, k)


# ------------------------------------------------------------------------------------------
# SSD: GANStep
# ------------------------------------------------------------------------------------------

SSD_TANH = (False, True)          # critic 0 linear on m0, critic 1 tanh on m1


def _ssd_values():
    rng = np.random.RandomState(0)
    return {
        "x": rng.uniform(-1, 1, (N, 3, SIDE, SIDE)),
        "cls_t": rng.uniform(-1, 1, (N, 2)),
        "box_t": rng.uniform(-1, 1, (N, 1)),
        "student": [rng.normal(0, 0.5, (2, 3)), rng.normal(0, 0.5, (2,)),
                    rng.normal(0, 0.5, (1, 3)), rng.normal(0, 0.5, (1,))],
        "teacher": [rng.normal(0.3, 0.7, (2, 3)), rng.normal(0, 0.5, (2,)),
                    rng.normal(0.3, 0.7, (1, 3)), rng.normal(0, 0.5, (1,))],
        "head": [rng.normal(0, 0.5, (2, 8)), rng.normal(0, 0.5, (1, 1)),
                 rng.normal(0, 0.5, (1,))],
        # v_i partly near the clamp (so the update crosses it), c0 outside it (clipped at once)
        "v": [rng.uniform(-0.35, 0.35, (2, SIDE, SIDE)), np.array([[[0.25]]])],
        "c": [np.array([0.7]), np.array([-0.1])],
    }


def _set_features(block, w):
    for p, value in zip((block.conv0.weight, block.conv0.bias, block.conv1.weight,
                         block.conv1.bias), w):
        _set(p, value)


def _ssd_build(ndev, hybridize):
    ctx = DEVICES[ndev]
    val = _ssd_values()
    teacher, student, head = TinyFeatures(), TinyFeatures(), TinyHead()
    dnet = TinyCritic([(2, SIDE, SIDE), (1, 1, 1)], SSD_TANH)
    for b in (teacher, student, head, dnet):
        b.initialize(ctx=ctx)
    _set_features(teacher, val["teacher"])     # left trainable: any gradient would show
    _set_features(student, val["student"])
    for p, value in zip((head.cls.weight, head.box.weight, head.box.bias), val["head"]):
        _set(p, value)
    for i in range(2):
        _set(getattr(dnet, "v%d" % i), val["v"][i])
        _set(getattr(dnet, "c%d" % i), val["c"][i])
    if hybridize:
        for b in (teacher, student, head, dnet):
            b.hybridize()
    params_g = student.collect_params()
    params_g.update(head.collect_params())
    step = GANStep(SSDAdapter(teacher, student, head, quad_det_loss), dnet,
                   _sgd(params_g, LR_G), _sgd(dnet.collect_params(), LR_D), clamp=CLAMP)
    data, cls_t, box_t = split_batch(
        [mx.nd.array(val[k]) for k in ("x", "cls_t", "box_t")], ctx)
    return {"val": val, "teacher": teacher, "student": student, "head": head, "dnet": dnet,
            "step": step, "batch": (data, cls_t, box_t), "ctx": ctx}


def _ssd_hand(val, w_adv=1.0, w_det=1.0):
    """Everything one GANStep iteration should do, in numpy (``w_adv``, ``w_det``: the terms'
    weights in L_G, 1 in Eq. 1; other values only to look at the terms apart)."""
    x = val["x"]
    W0, b0, W1, b1 = val["student"]
    s0, s1 = _conv1x1(W0, b0, x), _conv1x1(W1, b1, x).mean(axis=(2, 3), keepdims=True)
    T0, tb0, T1, tb1 = val["teacher"]
    t0, t1 = _conv1x1(T0, tb0, x), _conv1x1(T1, tb1, x).mean(axis=(2, 3), keepdims=True)
    # ---- critic step
    loss_d, d_real, d_fake, v, c, raw = _critic_update(val["v"], val["c"], [t0, t1], [s0, s1],
                                                       SSD_TANH, N)
    # ---- student step: L_G = (1/N) sum_b D'(S(x_b)) + L_conf + L_loc
    Hc, hb, hb0 = val["head"]
    f0 = s0.reshape(N, -1)
    rc = f0 @ Hc.T - val["cls_t"]                      # (N, 2)
    rb = s1.reshape(N, 1) @ hb.T + hb0 - val["box_t"]  # (N, 1)
    grad = {"Hc": w_det * rc.T @ f0 / N, "hb": w_det * rb.T @ s1.reshape(N, 1) / N,
            "hb0": w_det * rb.sum(0) / N}
    # d L_G / d maps: detection part through the head + adversarial part through D'
    G0 = (w_det * (rc @ Hc).reshape(s0.shape) + w_adv * v[0][None] * _dg(s0, SSD_TANH[0])) / N
    G1 = (w_det * (rb @ hb).reshape(s1.shape) + w_adv * v[1][None] * _dg(s1, SSD_TANH[1])) / N
    grad["W0"] = np.einsum("bohw,bchw->oc", G0, x)
    grad["b0"] = G0.sum(axis=(0, 2, 3))
    grad["W1"] = G1.reshape(N, 1).T @ x.mean(axis=(2, 3))
    grad["b1"] = G1.sum(axis=(0, 2, 3))
    return {"loss_d": loss_d, "d_real": d_real, "d_fake": d_fake, "v": v, "c": c, "raw": raw,
            "loss_g": _adv_value(v, c, [s0, s1], SSD_TANH, N),
            "conf": 0.5 * (rc ** 2).sum() / N, "loc": 0.5 * (rb ** 2).sum() / N, "grad": grad}


def _ssd_student_params(net):
    s, h = net["student"], net["head"]
    return {"W0": s.conv0.weight, "b0": s.conv0.bias, "W1": s.conv1.weight, "b1": s.conv1.bias,
            "Hc": h.cls.weight, "hb": h.box.weight, "hb0": h.box.bias}


def _total(values):
    return sum(float(v.sum().asscalar()) for v in values)


def _check_critics(dnet, hand):
    for i in range(2):
        np.testing.assert_allclose(_np(getattr(dnet, "v%d" % i)), hand["v"][i], rtol=1e-5,
                                   atol=1e-6, err_msg="critic v%d" % i)
        np.testing.assert_allclose(_np(getattr(dnet, "c%d" % i)), hand["c"][i], rtol=1e-5,
                                   atol=1e-6, err_msg="critic c%d" % i)
        for p in (getattr(dnet, "v%d" % i), getattr(dnet, "c%d" % i)):   # same on every device
            for d in p.list_data():
                np.testing.assert_array_equal(d.asnumpy(), p.list_data()[0].asnumpy())


def test_hand_values_exercise_clipping_and_both_terms():
    """The chosen numbers test what they should: the critic update crosses the clamp for some
    weights and not for others, and on every student parameter the adversarial and the
    detection gradients are of the same size (a scaled or dropped term cannot hide in the
    tolerance)."""
    val = _ssd_values()
    hand = _ssd_hand(val)
    raw = np.concatenate([r.ravel() for r in hand["raw"]])
    assert (np.abs(raw) > CLAMP[1]).any() and (np.abs(raw) < CLAMP[1] - 0.01).any()
    assert hand["c"][0] == CLAMP[1] and hand["c"][1] == -0.1
    adv, det = _ssd_hand(val, w_det=0)["grad"], _ssd_hand(val, w_adv=0)["grad"]
    for k in ("W0", "b0", "W1", "b1"):
        ratio = np.linalg.norm(adv[k]) / np.linalg.norm(det[k])
        assert 0.1 < ratio < 10, (k, ratio)
    fr = _fr_values()
    x = fr["x"]
    *_, c, raw = _critic_update(fr["v"], fr["c"],
                                [_conv1x1(fr["teacher"][0], fr["teacher"][1], x)],
                                [_conv1x1(fr["student"][0], fr["student"][1], x)], FR_TANH, N)
    assert (np.abs(raw[0]) > CLAMP[1]).any() and (np.abs(raw[0]) < CLAMP[1] - 0.01).any()
    assert c[0] == CLAMP[1]
    adv = {k: a - d for (k, a), d in zip(_fr_hand(fr, True)["grad"].items(),
                                         _fr_hand(fr, False)["grad"].values())}
    det = _fr_hand(fr, False)["grad"]
    for k in ("W", "b"):
        ratio = np.linalg.norm(adv[k]) / np.linalg.norm(det[k])
        assert 0.1 < ratio < 10, (k, ratio)


@pytest.mark.parametrize("ndev, hybridize", CASES)
def test_ssd_gan_step_is_eq1_by_hand(ndev, hybridize):
    """Critic step: SGD on L_D = mean D(T) - mean D(S), then clipping. Student step: SGD on
    L_G = mean D'(S) + L_conf + L_loc, critics unchanged, teacher without gradient."""
    net = _ssd_build(ndev, hybridize)
    hand = _ssd_hand(net["val"])
    params = _ssd_student_params(net)
    before = {k: _np(p) for k, p in params.items()}
    out = net["step"](*net["batch"])
    # ---- student + head: w <- w - lr * d/dw [mean D'(S) + L_conf + L_loc]
    for k, p in params.items():
        _assert_update(before[k], _np(p), hand["grad"][k], LR_G, k)
        for d in p.list_data():                         # every device holds the same weights
            np.testing.assert_array_equal(d.asnumpy(), p.list_data()[0].asnumpy())
    # ---- critics: the critic step's clipped update, untouched by the student step
    _check_critics(net["dnet"], hand)
    assert net["step"].trainer_d.optimizer.num_update == 1     # d_steps=1; not in the G step
    assert net["step"].trainer_g.optimizer.num_update == 1
    # ---- teacher: no gradient, no change
    _no_gradient(net["teacher"], "teacher")
    for p, value in zip((net["teacher"].conv0.weight, net["teacher"].conv0.bias,
                         net["teacher"].conv1.weight, net["teacher"].conv1.bias),
                        net["val"]["teacher"]):
        np.testing.assert_allclose(_np(p), np.reshape(value, p.shape), rtol=1e-6)
    # ---- logged values (the published SSD log's columns), summed over devices
    assert len(out["Loss_G"]) == ndev
    for key, want in (("Loss_D", hand["loss_d"]), ("Loss_D_real", hand["d_real"]),
                      ("Loss_D_fake", hand["d_fake"]), ("Loss_G", hand["loss_g"]),
                      ("CrossEntropy", hand["conf"]), ("SmoothL1", hand["loc"])):
        assert _total(out[key]) == pytest.approx(want, rel=1e-4, abs=1e-6), key


def _spy_critic_step(step, blocks, monkeypatch):
    """Wrap ``step.critic_step``: right after it returns (the student step has not run yet),
    keep every gradient the blocks hold."""
    seen = {}
    real = step.critic_step

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        for name, block in blocks.items():
            seen[name] = {k: [g.asnumpy().copy() for g in p.list_grad()]
                          for k, p in block.collect_params().items() if p.grad_req != "null"}
        return result
    monkeypatch.setattr(step, "critic_step", spy)
    return seen


def _assert_no_grads(seen):
    assert seen, "the critic step did not run"
    for name, grads in seen.items():
        for k, per_device in grads.items():
            for g in per_device:
                assert not np.any(g), "critic step gave %s parameter %s a gradient" % (name, k)


@pytest.mark.parametrize("ndev, hybridize", CASES)
def test_ssd_critic_step_gives_student_and_teacher_no_gradient(ndev, hybridize, monkeypatch):
    """Right after the critic step (the student step still to come) neither the student
    (detached maps) nor its head nor the teacher (no graph) holds any gradient."""
    net = _ssd_build(ndev, hybridize)
    seen = _spy_critic_step(net["step"], {k: net[k] for k in ("student", "head", "teacher")},
                            monkeypatch)
    net["step"](*net["batch"])
    _assert_no_grads(seen)


@pytest.mark.parametrize("ndev, hybridize", CASES)
def test_ssd_two_iterations_by_hand(ndev, hybridize):
    """A second iteration starts from the first one's hand results: the critics' gradients are
    live again after the student step froze them (``grad_req`` back to 'write'), nothing is
    left over from the first iteration, and both updates are Eq. 1's."""
    net = _ssd_build(ndev, hybridize)
    val = net["val"]
    first = _ssd_hand(val)
    g = first["grad"]
    nxt = dict(val, v=first["v"], c=first["c"])
    nxt["student"] = [val["student"][i] - LR_G * g[k] for i, k in enumerate(("W0", "b0", "W1",
                                                                             "b1"))]
    nxt["head"] = [val["head"][i] - LR_G * g[k] for i, k in enumerate(("Hc", "hb", "hb0"))]
    second = _ssd_hand(nxt)
    for _ in range(2):
        net["step"](*net["batch"])
    want = dict(zip(("W0", "b0", "W1", "b1", "Hc", "hb", "hb0"), nxt["student"] + nxt["head"]))
    for k, p in _ssd_student_params(net).items():
        np.testing.assert_allclose(_np(p), (want[k] - LR_G * second["grad"][k]).reshape(p.shape),
                                   rtol=1e-4, atol=1e-5, err_msg=k)
    _check_critics(net["dnet"], second)
    for k, p in net["dnet"].collect_params().items():
        assert p.grad_req == "write", k


# ------------------------------------------------------------------------------------------
# Faster R-CNN: GANStep over FasterRCNNAdapter
# ------------------------------------------------------------------------------------------

FR_TANH = (True,)                 # one tanh critic on the stride-16 map


class TinyRCNN(HybridBlock):
    """A Faster R-CNN stand-in with the real one's interface for the step: ``features`` (its
    "stride-16" map, ``f = W x + b``, (B, 2, 2, 2)) and a training forward
    ``net(x, gt_box, gt_label)`` returning 12 outputs; output 0 is ``p = H flatten(f) + h0``
    (B, 4), the predictions the four stand-in losses compare with their targets."""

    def __init__(self, **kwargs):
        super(TinyRCNN, self).__init__(**kwargs)
        with self.name_scope():
            self.features = nn.Conv2D(2, 1, in_channels=3)
            self.head = nn.Dense(4, in_units=8)

    def hybrid_forward(self, F, x, gt_box, gt_label):
        p = self.head(self.features(x))
        return [p] + [F.zeros_like(p)] * 11


class QuadRCNNLosses(object):
    """Stand-in for FasterRCNNLosses (same call, same dict): the four losses per image are
    ``0.5 (p_k - y_k)^2``, k = rpn_cls, rpn_box, rcnn_cls, rcnn_box, with ``y`` passed as the
    RPN class targets (B, 4). The step divides them by the global batch and sums them."""

    def __call__(self, outputs, rpn_cls_targets, rpn_box_targets, rpn_box_masks):
        r = outputs[0] - rpn_cls_targets
        one = mx.nd.ones((1,), ctx=r.context)
        losses = {k: 0.5 * r.slice_axis(axis=1, begin=i, end=i + 1).reshape((-1,)) ** 2
                  for i, k in enumerate(("rpn_cls", "rpn_box", "rcnn_cls", "rcnn_box"))}
        losses.update(num_rpn=one, num_rcnn=one,
                      metrics={c: (one, one) for c in METRIC_COLUMNS})
        return losses


def _fr_values():
    rng = np.random.RandomState(1)
    return {
        "x": rng.uniform(-1, 1, (N, 3, SIDE, SIDE)),
        "y": rng.uniform(-1, 1, (N, 4)),
        "student": [rng.normal(0, 0.5, (2, 3)), rng.normal(0, 0.5, (2,)),
                    rng.normal(0, 0.4, (4, 8)), rng.normal(0, 0.5, (4,))],
        "teacher": [rng.normal(0.3, 0.7, (2, 3)), rng.normal(0, 0.5, (2,))],
        "v": [rng.uniform(-0.35, 0.35, (2, SIDE, SIDE))],
        "c": [np.array([0.5])],
    }


def _fr_build(ndev, hybridize, warmup):
    ctx = DEVICES[ndev]
    val = _fr_values()
    teacher, student = TinyRCNN(), TinyRCNN()
    dnet = TinyCritic([(2, SIDE, SIDE)], FR_TANH)
    adapter = MapAdapter(2, 2)                          # identity, as ResNet50 -> ResNet101
    for b in (teacher, student, dnet, adapter):
        b.initialize(ctx=ctx)
    _set(teacher.features.weight, val["teacher"][0])     # trainable: any gradient would show
    _set(teacher.features.bias, val["teacher"][1])
    for p, value in zip((student.features.weight, student.features.bias, student.head.weight,
                         student.head.bias), val["student"]):
        _set(p, value)
    _set(dnet.v0, val["v"][0])
    _set(dnet.c0, val["c"][0])
    if hybridize:
        # as frcnn_runs.py: teacher and critic hybridized, the student by the step ('parts'),
        # the adapter not (a hybridized *identity* MapAdapter returns its input without graph,
        # which would silently drop the adversarial gradient)
        for b in (teacher, dnet):
            b.hybridize()
    detector = FasterRCNNAdapter(teacher, student, adapter, hybridize=hybridize)
    detector.losses = QuadRCNNLosses()                   # the detection part, by hand
    step = GANStep(detector, dnet, _sgd(student.collect_params(), LR_G),
                   _sgd(dnet.collect_params(), LR_D), clamp=CLAMP, warmup_epochs=warmup)
    x, y = mx.nd.array(val["x"]), mx.nd.array(val["y"])
    label = mx.nd.zeros((N, 1, 5))
    batch = split_batch([x, label, y, mx.nd.zeros((N, 4)), mx.nd.zeros((N, 4))], ctx)
    return {"val": val, "teacher": teacher, "student": student, "dnet": dnet, "step": step,
            "batch": batch}


def _fr_hand(val, adversarial):
    x = val["x"]
    W, b, H, h0 = val["student"]
    f = _conv1x1(W, b, x)
    t = _conv1x1(val["teacher"][0], val["teacher"][1], x)
    loss_d, _, _, v, c, _ = _critic_update(val["v"], val["c"], [t], [f], FR_TANH, N)
    flat = f.reshape(N, -1)
    r = flat @ H.T + h0 - val["y"]                      # (N, 4)
    grad = {"H": r.T @ flat / N, "h0": r.sum(0) / N}
    G = (r @ H).reshape(f.shape) / N                     # the four detection losses
    if adversarial:                                      # + (1/N) sum_b D'(f_b)
        G = G + v[0][None] * _dg(f, FR_TANH[0]) / N
    grad["W"] = np.einsum("bohw,bchw->oc", G, x)
    grad["b"] = G.sum(axis=(0, 2, 3))
    return {"loss_d": loss_d, "v": v, "c": c, "grad": grad,
            "loss_g": _adv_value(v, c, [f], FR_TANH, N),
            "det": [0.5 * (r[:, k] ** 2).sum() / N for k in range(4)]}


FR_PHASES = [pytest.param(1, 1, False, id="warmup"), pytest.param(2, 1, True, id="adversarial")]


@pytest.mark.parametrize("epoch, warmup, adversarial", FR_PHASES)
@pytest.mark.parametrize("ndev, hybridize", CASES)
def test_frcnn_gan_step_is_eq1_by_hand(ndev, hybridize, epoch, warmup, adversarial):
    """In epochs 1..warmup_epochs the student's update is the detection losses' alone; after,
    it adds (1/N) sum_b D'(S(x_b)) through the updated critic. Both phases: the critic takes
    its clipped WGAN update and keeps it through the student step, the teacher gets no
    gradient, and ``Loss_G`` is measured with the updated critic."""
    net = _fr_build(ndev, hybridize, warmup)
    hand = _fr_hand(net["val"], adversarial)
    s = net["student"]
    params = {"W": s.features.weight, "b": s.features.bias, "H": s.head.weight,
              "h0": s.head.bias}
    before = {k: _np(p) for k, p in params.items()}
    log = net["step"](*net["batch"], epoch=epoch, batch=0)
    for k, p in params.items():
        _assert_update(before[k], _np(p), hand["grad"][k], LR_G, k)
    dnet = net["dnet"]
    np.testing.assert_allclose(_np(dnet.v0), hand["v"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(dnet.c0), hand["c"][0], rtol=1e-5, atol=1e-6)
    assert net["step"].trainer_d.optimizer.num_update == 1
    assert net["step"].trainer_g.optimizer.num_update == 1
    _no_gradient(net["teacher"], "teacher")
    np.testing.assert_allclose(_np(net["teacher"].features.weight),
                               net["val"]["teacher"][0].reshape(2, 3, 1, 1), rtol=1e-6)
    assert _total(log["Loss_D"]) == pytest.approx(hand["loss_d"], rel=1e-4, abs=1e-6)
    assert _total(log["Loss_G"]) == pytest.approx(hand["loss_g"], rel=1e-4, abs=1e-6)
    for col, want in zip(("RPN_Conf", "RPN_SmoothL1", "RCNN_CrossEntropy", "RCNN_SmoothL1"),
                         hand["det"]):
        assert _total(log[col]) == pytest.approx(want, rel=1e-4, abs=1e-6), col


@pytest.mark.parametrize("ndev, hybridize", CASES)
def test_frcnn_critic_step_gives_student_and_teacher_no_gradient(ndev, hybridize, monkeypatch):
    """As for SSD: right after the critic step neither the student nor the teacher holds a
    gradient (the student's map is detached, the teacher has no graph)."""
    net = _fr_build(ndev, hybridize, warmup=1)
    seen = _spy_critic_step(net["step"], {k: net[k] for k in ("student", "teacher")},
                            monkeypatch)
    net["step"](*net["batch"], epoch=2, batch=0)
    _assert_no_grads(seen)
