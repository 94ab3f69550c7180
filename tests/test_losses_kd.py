"""Tests for gankd_gluon.losses.kd: values worked out by hand on tiny inputs.

Logits are chosen so the softmaxes are simple: softmax([0, ln 3]) = [1/4, 3/4],
softmax([0, 0]) = [1/2, 1/2].
"""
import math

import mxnet as mx
import numpy as np
import pytest
from gluoncv.loss import SSDMultiBoxLoss
from mxnet import autograd, nd
from mxnet.gluon import HybridBlock

from gankd_gluon.losses import kd
from gankd_gluon.losses.kd import (HintLoss, KLDistillation, SoftTargetCrossEntropy,
                                   TeacherBoundedL2, TeacherL2, ssd_mining_mask)

LN2, LN3 = math.log(2.0), math.log(3.0)


def arr(x):
    return nd.array(np.asarray(x, dtype="float32"))


def close(a, b, tol=1e-5):        # float32
    np.testing.assert_allclose(a.asnumpy() if hasattr(a, "asnumpy") else a, b, rtol=tol,
                               atol=tol)


# ---------------------------------------------------------------- weighted soft CE (Eq. 2-3) ---

def test_soft_ce_background_weight_by_hand():
    # 1 image, 1 anchor, 2 classes (0 = background). P_t = [1/4, 3/4], P_s = [1/2, 1/2].
    s, t = arr([[[0, 0]]]), arr([[[0, LN3]]])
    # CLS (w = 1): -(1/4 ln 1/2 + 3/4 ln 1/2) = ln 2
    close(SoftTargetCrossEntropy(bg_weight=1.0)(s, t), [[LN2]])
    # CLS-W (w_0 = 1.5): -(1.5 * 1/4 ln 1/2 + 3/4 ln 1/2) = (0.375 + 0.75) ln 2 = 1.125 ln 2
    close(SoftTargetCrossEntropy(bg_weight=1.5)(s, t), [[1.125 * LN2]])
    # default is Chen's CLS-W
    close(SoftTargetCrossEntropy()(s, t), [[1.125 * LN2]])
    # student P_s = [3/4, 1/4]: -(1.5 * 1/4 ln 3/4 + 3/4 ln 1/4) = -0.375 ln .75 + 1.5 ln 2
    close(SoftTargetCrossEntropy(bg_weight=1.5)(arr([[[LN3, 0]]]), t),
          [[-0.375 * math.log(0.75) + 1.5 * LN2]])


def test_soft_ce_weight_is_background_only_and_per_anchor_shape():
    # 3 classes: teacher [ln 1, ln 1, ln 2] -> P_t = [1/4, 1/4, 1/2]; student uniform 1/3.
    # -(w_0/4 + 1/4 + 1/2) ln(1/3): w_0 = 2 -> 1.25 ln 3 (only class 0 reweighted).
    s = nd.zeros((2, 3, 3))
    t = nd.broadcast_to(arr([0, 0, LN2]).reshape((1, 1, 3)), (2, 3, 3))
    out = SoftTargetCrossEntropy(bg_weight=2.0)(s, t)
    assert out.shape == (2, 3)
    close(out, np.full((2, 3), 1.25 * LN3))


def test_soft_ce_temperature():
    # T = 2: teacher [0, 2 ln 3] / 2 = [0, ln 3] -> [1/4, 3/4]; student [0, 0] stays uniform.
    s, t = arr([[[0, 0]]]), arr([[[0, 2 * LN3]]])
    close(SoftTargetCrossEntropy(bg_weight=1.5, temperature=2.0)(s, t), [[1.125 * LN2]])
    # student [2 ln 3, 0] / 2 -> [3/4, 1/4]; no T^2 factor (Chen Eq. 2-3)
    close(SoftTargetCrossEntropy(bg_weight=1.5, temperature=2.0)(arr([[[2 * LN3, 0]]]), t),
          [[-0.375 * math.log(0.75) + 1.5 * LN2]])


def test_soft_ce_gradient_student_only():
    # d/dz_j -sum_c w_c p_c log softmax(z)_c = -w_j p_j + (sum_c w_c p_c) q_j, q = softmax(z).
    # w = [1.5, 1], p = [1/4, 3/4], q = [1/2, 1/2]: sum w p = 1.125 ->
    # [-0.375 + 0.5625, -0.75 + 0.5625] = [0.1875, -0.1875]
    s, t = arr([[[0, 0]]]), arr([[[0, LN3]]])
    s.attach_grad()
    t.attach_grad()
    with autograd.record():
        loss = SoftTargetCrossEntropy(bg_weight=1.5)(s, t)
    loss.backward()
    close(s.grad, [[[0.1875, -0.1875]]])
    close(t.grad, np.zeros((1, 1, 2)))


# ---------------------------------------------------------- teacher-bounded L2 (Eq. 4) and L2 ---

def test_bounded_l2_both_sides_of_the_margin():
    y = nd.zeros((1, 1, 4))
    s = arr([[[1, 0, 0, 0]]])                 # ||R_s - y||^2 = 1
    t_equal = arr([[[.5, .5, .5, .5]]])       # ||R_t - y||^2 = 4 * 0.25 = 1
    t_worse = arr([[[1, 1, 1, 1]]])           # 4
    t_better = nd.zeros((1, 1, 4))            # 0
    # m = 0: 1 + 0 > 1 is false -> 0 (student as good as the teacher: no loss)
    close(TeacherBoundedL2(margin=0.0)(s, t_equal, y), [[0.0]])
    # m = 0.5: 1 + 0.5 > 1 -> ||R_s - y||^2 = 1
    close(TeacherBoundedL2(margin=0.5)(s, t_equal, y), [[1.0]])
    # teacher worse than the student: 1 + 0.5 > 4 is false -> 0
    close(TeacherBoundedL2(margin=0.5)(s, t_worse, y), [[0.0]])
    # teacher better: 1 > 0 -> 1, with the default margin (0)
    close(TeacherBoundedL2()(s, t_better, y), [[1.0]])
    # m = 3.5: 1 + 3.5 > 4 -> 1; m = 2.5: 3.5 > 4 false -> 0
    close(TeacherBoundedL2(margin=3.5)(s, t_worse, y), [[1.0]])
    close(TeacherBoundedL2(margin=2.5)(s, t_worse, y), [[0.0]])


def test_bounded_l2_per_anchor_with_nonzero_target():
    # y = [1, 1, 0, 0]; anchor 0: R_s = [2, 1, 0, 0] -> err_s 1, R_t = y -> err_t 0: active, 1.
    # anchor 1: R_s = [1, 3, 0, 0] -> err_s 4, R_t = [1, 1, 3, 0] -> err_t 9: inactive, 0.
    # anchor 2: R_s = [0, 0, 0, 0] -> err_s 2, R_t = [0, 0, 0, 0] -> err_t 2: m=0 -> 0.
    y = arr([[[1, 1, 0, 0]] * 3])
    s = arr([[[2, 1, 0, 0], [1, 3, 0, 0], [0, 0, 0, 0]]])
    t = arr([[[1, 1, 0, 0], [1, 1, 3, 0], [0, 0, 0, 0]]])
    out = TeacherBoundedL2()(s, t, y)
    assert out.shape == (1, 3)
    close(out, [[1.0, 0.0, 0.0]])


def test_bounded_l2_gradient_student_only():
    # active anchor: d/dR_s ||R_s - y||^2 = 2 (R_s - y) = [2, 0, 0, 0]; inactive anchor: 0
    y = nd.zeros((1, 2, 4))
    s = arr([[[1, 0, 0, 0], [1, 0, 0, 0]]])
    t = arr([[[0, 0, 0, 0], [2, 0, 0, 0]]])
    s.attach_grad()
    t.attach_grad()
    with autograd.record():
        loss = TeacherBoundedL2()(s, t, y)
    loss.backward()
    close(s.grad, [[[2, 0, 0, 0], [0, 0, 0, 0]]])
    close(t.grad, np.zeros((1, 2, 4)))


def test_teacher_l2_by_hand_and_gradient():
    # ||[1, 2, 0, 0] - [0, 0, 0, 1]||^2 = 1 + 4 + 0 + 1 = 6; gradient 2 (R_s - R_t)
    s, t = arr([[[1, 2, 0, 0]]]), arr([[[0, 0, 0, 1]]])
    s.attach_grad()
    t.attach_grad()
    with autograd.record():
        loss = TeacherL2()(s, t)
    loss.backward()
    close(loss, [[6.0]])
    close(s.grad, [[[2, 4, 0, -2]]])
    close(t.grad, np.zeros((1, 1, 4)))


# ---------------------------------------------------------------- hint loss (Eq. 5-6, 3.4) ---

def test_hint_without_adaptation_by_hand():
    # student all ones (1, 2, 2, 2); teacher zeros except one 4: differences seven 1s and one -3.
    s = nd.ones((1, 2, 2, 2))
    t = nd.zeros((1, 2, 2, 2))
    t[0, 0, 0, 0] = 4
    # l2: (7 * 1 + 9) / 8 = 2; l1: (7 * 1 + 3) / 8 = 1.25 (mean over C, H, W)
    close(HintLoss(adapt=False, mode="l2")(s, t), [2.0])
    close(HintLoss(adapt=False, mode="l1")(s, t), [1.25])
    assert len(HintLoss(adapt=False).collect_params().keys()) == 0


def test_hint_with_adaptation_by_hand():
    # V = [[1, 2], [3, 4]] (1, 1, 2, 2) -> adapted ch0 = [3, 5, 7, 9], ch1 = [-1, -2, -3, -4]
    v = arr([1, 2, 3, 4]).reshape((1, 1, 2, 2))
    z = nd.zeros((1, 2, 2, 2))
    for mode, want in (("l2", (9 + 25 + 49 + 81 + 1 + 4 + 9 + 16) / 8.0),     # 194/8 = 24.25
                       ("l1", (3 + 5 + 7 + 9 + 1 + 2 + 3 + 4) / 8.0)):         # 34/8 = 4.25
        h = HintLoss(channels=2, mode=mode)
        h.initialize()
        h(v, z)                                       # deferred init: in_channels from V
        assert h.adapt.weight.shape == (2, 1, 1, 1)
        h.adapt.weight.set_data(arr([2, -1]).reshape((2, 1, 1, 1)))
        h.adapt.bias.set_data(arr([1, 0]))
        close(h(v, z), [want], tol=1e-6)
    # teacher = the adapted student itself -> 0
    close(h(v, arr([3, 5, 7, 9, -1, -2, -3, -4]).reshape((1, 2, 2, 2))), [0.0])


def test_hint_per_sample_and_equal_channels_still_adapted():
    # Chen Sec. 3.4: the adapter is there even when channels match. Identity weights, zero bias:
    # sample 0 difference 1 everywhere -> 1; sample 1 difference 2 -> 4 (l2).
    h = HintLoss(channels=3)
    h.initialize()
    s = nd.ones((2, 3, 2, 2))
    t = nd.concat(nd.zeros((1, 3, 2, 2)), -nd.ones((1, 3, 2, 2)), dim=0)
    h(s, t)
    h.adapt.weight.set_data(nd.eye(3).reshape((3, 3, 1, 1)))
    h.adapt.bias.set_data(nd.zeros(3))
    out = h(s, t)
    assert out.shape == (2,)
    close(out, [1.0, 4.0])


def test_hint_gradients_student_and_adapter_not_teacher():
    # l2, 1 -> 1 channel, weight 2, bias 0, V = [1], Z = [0]: L = (2V)^2 = 4,
    # dL/dV = 8 V = 8, dL/dw = 2 w V^2 = 4, dL/db = 2 (w V + b) = 4, dL/dZ cut.
    h = HintLoss(channels=1)
    h.initialize()
    v, z = nd.ones((1, 1, 1, 1)), nd.zeros((1, 1, 1, 1))
    h(v, z)
    h.adapt.weight.set_data(nd.full((1, 1, 1, 1), 2))
    h.adapt.bias.set_data(nd.zeros(1))
    v.attach_grad()
    z.attach_grad()
    with autograd.record():
        loss = h(v, z)
    loss.backward()
    close(loss, [4.0])
    close(v.grad, [[[[8.0]]]])
    close(h.adapt.weight.grad(), [[[[4.0]]]])
    close(h.adapt.bias.grad(), [4.0])
    close(z.grad, [[[[0.0]]]])


def test_hint_argument_checks():
    with pytest.raises(ValueError, match="channels"):
        HintLoss(channels=None, adapt=True)
    with pytest.raises(ValueError, match="mode"):
        HintLoss(channels=2, mode="l3")
    with pytest.raises(ValueError, match="equal shapes"):
        HintLoss(adapt=False)(nd.ones((1, 2, 2, 2)), nd.ones((1, 3, 2, 2)))


# --------------------------------------------------------------------- Ko & Yoo KL (Eq. 1) ---

def test_kl_by_hand():
    # P_t = [1/4, 3/4], P_s = [1/2, 1/2]: 1/4 ln(1/2) + 3/4 ln(3/2) = -0.25 ln 2 + 0.75 ln 1.5
    want = -0.25 * LN2 + 0.75 * math.log(1.5)
    close(KLDistillation()(arr([[[0, 0]]]), arr([[[0, LN3]]])), [[want]])
    # same distribution -> 0
    close(KLDistillation()(arr([[[1, 2, 3]]]), arr([[[1, 2, 3]]])), [[0.0]])
    # KL = unweighted soft CE - teacher entropy; H([1/4, 3/4]) = 1/4 ln 4 + 3/4 ln(4/3)
    h_t = 0.25 * math.log(4) + 0.75 * math.log(4 / 3.0)
    close(want, LN2 - h_t)


def test_kl_temperature():
    # Temp = 2: teacher [0, 2 ln 3] -> [1/4, 3/4], student [0, 0] -> uniform: same as above,
    # with no Temp^2 factor (Ko & Yoo Eq. 1 has none).
    want = -0.25 * LN2 + 0.75 * math.log(1.5)
    close(KLDistillation(temperature=2.0)(arr([[[0, 0]]]), arr([[[0, 2 * LN3]]])), [[want]])
    # Temp = 1 on the same logits differs: P_t = [1/10, 9/10] -> 0.1 ln .2 + 0.9 ln 1.8
    close(KLDistillation(temperature=1.0)(arr([[[0, 0]]]), arr([[[0, 2 * LN3]]])),
          [[0.1 * math.log(0.2) + 0.9 * math.log(1.8)]])


def test_kl_gradient_student_only():
    # d KL / d z_s = (P_s - P_t) / Temp; Temp = 2, P_s = [1/2, 1/2], P_t = [1/4, 3/4]
    # -> [0.125, -0.125]
    s, t = arr([[[0, 0]]]), arr([[[0, 2 * LN3]]])
    s.attach_grad()
    t.attach_grad()
    with autograd.record():
        loss = KLDistillation(temperature=2.0)(s, t)
    loss.backward()
    close(s.grad, [[[0.125, -0.125]]])
    close(t.grad, np.zeros((1, 1, 2)))


# ----------------------------------------------------------------------- hard negative mining ---

def test_mining_mask_by_hand():
    # 1 image, 5 anchors, 2 classes; anchor 0 positive (class 1). Student logits make the CE of
    # background on anchors 1..4 equal to softplus(z_1 - z_0) for z = [0, a]: a = 3, -1, 2, 0
    # -> CE order 1 > 3 > 4 > 2. Ratio 2 -> 2 hard negatives: anchors 1 and 3.
    preds = arr([[[0, 0], [0, 3], [0, -1], [0, 2], [0, 0]]])
    targets = arr([[1, 0, 0, 0, 0]])
    close(ssd_mining_mask(preds, targets, negative_mining_ratio=2), [[1, 1, 0, 1, 0]])
    close(ssd_mining_mask(preds, targets), [[1, 1, 0, 1, 1]])             # ratio 3
    # min_hard_negatives=4 keeps all 4 negatives
    close(ssd_mining_mask(preds, targets, 2, min_hard_negatives=4), [[1, 1, 1, 1, 1]])
    # no positive and min_hard_negatives 0 -> nothing (SSDMultiBoxLoss returns 0)
    close(ssd_mining_mask(preds, nd.zeros((1, 5))), [[0, 0, 0, 0, 0]])
    # an explicit leading F is accepted
    close(ssd_mining_mask(nd, preds, targets, 2), [[1, 1, 0, 1, 0]])


@pytest.mark.parametrize("ratio, min_neg", [(3, 0), (2, 0), (3, 5), (0.5, 0), (40, 0)])
def test_mining_mask_matches_ssd_multibox_loss(ratio, min_neg):
    # sum over the mask of the student's CE / max(1, num_pos over the batch) is SSDMultiBoxLoss's
    # cls_loss. Sample 2 has no positive; ratio 40 asks for more negatives than there are.
    rng = np.random.RandomState(int(ratio * 10) + min_neg)
    b, n, c = 3, 60, 4
    cls_preds = nd.array(rng.randn(b, n, c) * 2)
    targets = rng.randint(1, c, size=(b, n)) * (rng.rand(b, n) < 0.1)
    targets[0, :2] = [1, 2]
    targets[2] = 0
    cls_targets = nd.array(targets)
    box_preds, box_targets = nd.zeros((b, n, 4)), nd.zeros((b, n, 4))
    _, cls_loss, _ = SSDMultiBoxLoss(negative_mining_ratio=ratio, min_hard_negatives=min_neg)(
        cls_preds, box_preds, cls_targets, box_targets)
    mask = ssd_mining_mask(cls_preds, cls_targets, ratio, min_neg)
    assert mask.shape == (b, n)
    ce = -nd.pick(nd.log_softmax(cls_preds, axis=-1), cls_targets, axis=-1)
    num_pos = max(1.0, float((cls_targets > 0).sum().asscalar()))
    close((ce * mask).sum(axis=1) / num_pos, cls_loss[0].asnumpy(), tol=1e-5)
    # positives always in; rank < max(min_neg, ratio * num_pos_i) keeps at most the ceiling
    # of that many negatives per sample
    pos = (cls_targets > 0).asnumpy()
    assert (mask.asnumpy()[pos > 0] == 1).all()
    neg_kept = (mask.asnumpy() * (1 - pos)).sum(axis=1)
    assert (neg_kept <= np.ceil(np.maximum(min_neg, ratio * pos.sum(axis=1)))).all()


class _MaskBlock(HybridBlock):
    def hybrid_forward(self, F, cls_preds, cls_targets):
        return ssd_mining_mask(F, cls_preds, cls_targets, 2, 1)


def test_mining_mask_symbolic_equals_imperative_and_has_no_gradient():
    rng = np.random.RandomState(0)
    preds = nd.array(rng.randn(2, 30, 3))
    targets = nd.array((rng.rand(2, 30) < 0.2) * 2)
    want = ssd_mining_mask(preds, targets, 2, 1)
    blk = _MaskBlock()
    blk.hybridize()
    close(blk(preds, targets), want.asnumpy())
    preds.attach_grad()
    with autograd.record():
        m = ssd_mining_mask(preds, targets)
    m.backward()
    close(preds.grad, np.zeros((2, 30, 3)))


# ------------------------------------------------------------------ hybridized == imperative ---

@pytest.mark.parametrize("make, shapes", [
    (lambda: SoftTargetCrossEntropy(1.5, 2.0), [(2, 7, 4)] * 2),
    (lambda: TeacherBoundedL2(0.3), [(2, 7, 4)] * 3),
    (lambda: TeacherL2(), [(2, 7, 4)] * 2),
    (lambda: KLDistillation(3.0), [(2, 7, 4)] * 2),
    (lambda: HintLoss(channels=5, mode="l2"), [(2, 3, 4, 4), (2, 5, 4, 4)]),
    (lambda: HintLoss(channels=5, mode="l1"), [(2, 3, 4, 4), (2, 5, 4, 4)]),
    (lambda: HintLoss(adapt=False), [(2, 5, 4, 4)] * 2),
])
def test_hybridized_equals_imperative(make, shapes):
    rng = np.random.RandomState(1)
    inputs = [nd.array(rng.randn(*s)) for s in shapes]
    blk = make()
    blk.initialize(mx.init.Normal(0.5))
    want = blk(*inputs).asnumpy()
    blk.hybridize()
    close(blk(*inputs), want)
    with autograd.record():                      # the traced graph in training mode too
        got = blk(*inputs)
    close(got, want)


def test_gradients_never_reach_teacher_inputs():
    # every block on random inputs, hybridized: the teacher inputs' gradients stay zero while
    # the student's do not.
    rng = np.random.RandomState(2)
    cases = [(SoftTargetCrossEntropy(), (2, 5, 3), 1), (KLDistillation(2.0), (2, 5, 3), 1),
             (TeacherL2(), (2, 5, 4), 1), (TeacherBoundedL2(1.0), (2, 5, 4), 2),
             (HintLoss(channels=3), (2, 3, 2, 2), 1), (HintLoss(adapt=False), (2, 3, 2, 2), 1)]
    for blk, shape, n_teacher in cases:
        blk.initialize()
        blk.hybridize()
        s = nd.array(rng.randn(*shape))
        teacher = [nd.array(rng.randn(*shape)) for _ in range(n_teacher)]
        s.attach_grad()
        teacher[0].attach_grad()                 # teacher output (the target y gets none either)
        with autograd.record():
            loss = blk(s, *teacher)
        loss.backward()
        assert np.abs(s.grad.asnumpy()).sum() > 0, type(blk).__name__
        assert np.abs(teacher[0].grad.asnumpy()).sum() == 0, type(blk).__name__


def test_constants_are_the_papers():
    assert (kd.CHEN_LAMBDA, kd.CHEN_GAMMA, kd.CHEN_NU) == (1.0, 0.5, 0.5)   # Eq. 1, Eq. 4
    assert (kd.CHEN_BG_WEIGHT, kd.CHEN_TEMPERATURE) == (1.5, 1.0)           # Sec. 3.2
    assert (kd.CHEN_MU, kd.CHEN_MARGIN) == (0.5, 0.0)                       # not in the paper
    assert kd.KO_YOO_ALPHA + kd.KO_YOO_BETA == 1.0                          # Ko & Yoo Eq. 1
