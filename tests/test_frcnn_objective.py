"""The one distillation objective on Faster R-CNN's outputs: Chen et al.'s soft labels and
teacher-bounded regression on the RPN and the RCNN, Wang et al.'s imitation, and the weights
they put on the hard losses, each checked against numpy on a tiny hand-made device record.

Chen, Choi, Yu, Han, Chandraker, "Learning Efficient Object Detection Models with Knowledge
Distillation", NIPS 2017 (Eq. 1-4); Wang, Yuan, Zhang, Feng, "Distilling Object Detectors with
Fine-grained Feature Imitation", CVPR 2019 (Eq. 2-3)."""
import argparse

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gankd_gluon.engine import methods
from gankd_gluon.engine.frcnn_steps import (FRCNN_OUTPUT_TERMS, FasterRCNNOutputs,
                                            _detection_total)
from gankd_gluon.losses import kd

B, A, N, P, C = 1, 4, 3, 2, 2          # image, anchors, sampled RoIs, positive RoIs, classes


def _args(method, **kw):
    args = methods.add_method_args(argparse.ArgumentParser(), "frcnn").parse_args(
        ["--method", method])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def _objective(method, **kw):
    args = _args(method, **kw)
    return methods.KDObjective(methods.parse_method(method, "frcnn"), args, [2], [mx.cpu()],
                               "frcnn", FRCNN_OUTPUT_TERMS)


def _record(share=0.5, mask=None, num_masked=0.0):
    """One device: the 12 outputs (those the terms read are random), the teacher's heads,
    targets with one ignored anchor (-1), one ignored RoI (-1) and one positive of each."""
    rng = np.random.RandomState(0)
    nd = lambda *shape: mx.nd.array(rng.randn(*shape))          # noqa: E731
    out = [None] * 12
    out[0], out[1] = nd(B, N, C + 1), nd(B, P, C, 4)             # RCNN scores, boxes
    out[5], out[6] = nd(B, A, 1), nd(B, A, 4)                    # RPN scores, boxes
    out[8] = mx.nd.array([[1, 0, -1]])                            # RCNN class targets
    out[9] = nd(B, P, C, 4)                                       # RCNN box targets
    mask_rcnn = np.zeros((B, P, C, 4))
    mask_rcnn[0, 0, 1] = 1                                        # RoI 0: class 2's column
    out[10] = mx.nd.array(mask_rcnn)
    rpn_cls_t = mx.nd.array([[1, 0, -1, 0]])
    rpn_box_mask = np.zeros((B, A, 4))
    rpn_box_mask[0, 0] = 1                                        # anchor 0 positive
    heads = (nd(B, A, 1), nd(B, A, 4), nd(B, N, C + 1), nd(B, P, C, 4))
    losses = {"num_rpn": mx.nd.array([3.0]), "num_rcnn": mx.nd.array([2.0])}
    return FasterRCNNOutputs(out, losses, rpn_cls_t, nd(B, A, 4), mx.nd.array(rpn_box_mask),
                             heads, mask, num_masked, share)


def _np(x):
    return x.asnumpy()


def test_soft_labels_on_rpn_and_rcnn_by_hand():
    """``(1 - mu) (sum_valid soft_rpn / num_rpn + sum_valid soft_rcnn / num_rcnn) * B_d / N``,
    the RPN's logit z read as the two-class logits (0, z); mu weighs the hard classification
    losses, the regression keeps 1."""
    obj = _objective("cls-w", kd_mu=0.3)
    o = _record(share=0.5)
    soft = kd.SoftTargetCrossEntropy(bg_weight=1.5, temperature=1.0)
    two = lambda z: mx.nd.concat(mx.nd.zeros_like(z), z, dim=-1)  # noqa: E731
    rpn = _np(soft(two(o.out[5]), two(o.t_heads[0])))[0]          # (A,)
    rcnn = _np(soft(o.out[0], o.t_heads[2]))[0]                   # (N,)
    want = 0.7 * (rpn[[0, 1, 3]].sum() / 3.0 + rcnn[[0, 1]].sum() / 2.0) * 0.5
    terms = obj(o, [None], [None], 2.0)
    assert list(terms) == ["KD_soft"]
    assert terms["KD_soft"].asscalar() == pytest.approx(want, rel=1e-5)
    assert obj.hard_weights() == (0.3, 1.0) and obj.needs_teacher_head


@pytest.mark.parametrize("method, column", [("l2-b", "KD_L2B"), ("l2", "KD_L2")])
def test_regression_terms_on_positives_by_hand(method, column):
    """``lambda nu (sum_pos L_rpn / num_rpn + sum_pos L_rcnn / num_rcnn) * B_d / N``, on the
    positive anchor and the positive RoI's ground-truth class column only; lambda weighs the
    hard regression losses (Chen Eq. 1), mu is not involved."""
    obj = _objective(method, kd_lambda=2.0, kd_nu=0.5, kd_margin=0.0)
    o = _record(share=0.25)
    s_rpn, t_rpn, y_rpn = _np(o.out[6])[0, 0], _np(o.t_heads[1])[0, 0], _np(o.rpn_box_t)[0, 0]
    s_rc, t_rc, y_rc = (_np(x)[0, 0, 1] for x in (o.out[1], o.t_heads[3], o.out[9]))

    def distance(s, t, y):
        e_s, e_t = ((s - y) ** 2).sum(), ((t - y) ** 2).sum()
        return e_s * (e_s > e_t) if method == "l2-b" else ((s - t) ** 2).sum()
    want = 2.0 * 0.5 * (distance(s_rpn, t_rpn, y_rpn) / 3.0 + distance(s_rc, t_rc, y_rc) / 2.0)
    terms = obj(o, [None], [None], 4.0)
    assert terms[column].asscalar() == pytest.approx(want * 0.25, rel=1e-5)
    assert obj.hard_weights() == (1.0, 2.0)


def test_imitation_by_hand():
    """``lambda sum_b sum I (f_adap(s) - t)^2 / (2 N_p)``, N_p the imitated locations of the
    whole batch (here more than this device's); the 3x3 adapter is FGFI's own block."""
    obj = _objective("fgfi", fgfi_lambda=0.01)
    rng = np.random.RandomState(2)
    s, t = mx.nd.array(rng.randn(B, 2, 3, 3)), mx.nd.array(rng.randn(B, 2, 3, 3))
    mask = mx.nd.array((rng.rand(B, 3, 3) > 0.5).astype("float32"))
    o = _record(mask=mask, num_masked=7.0)
    adapted = _np(obj.term_blocks["fgfi"][0].adapt(s))
    want = 0.01 * (((adapted - _np(t)) ** 2) * _np(mask)[:, None]).sum() / (2 * 7.0)
    terms = obj(o, [s], [t], 2.0)
    assert terms["KD_FGFI"].asscalar() == pytest.approx(want, rel=1e-5)
    assert obj.hard_weights() == (1.0, 1.0) and obj.needs("imitation_mask")


def test_chen_total_sums_the_hard_losses_and_every_term():
    """``total = [mu (rpn_cls + rcnn_cls) + lambda (rpn_box + rcnn_box)] / N + soft + L_b +
    gamma hint`` (Chen Eq. 1) for ``--method chen`` on one device."""
    obj = _objective("chen", kd_mu=0.3, kd_lambda=2.0)
    o = _record(share=1.0)
    rng = np.random.RandomState(3)
    s, t = mx.nd.array(rng.randn(B, 2, 3, 3)), mx.nd.array(rng.randn(B, 2, 3, 3))
    terms = obj(o, [s], [t], 1.0)
    assert list(terms) == ["KD_soft", "KD_L2B", "KD_hint"]
    p = {"rpn_cls": mx.nd.array([0.4]), "rcnn_cls": mx.nd.array([0.6]),
         "rpn_box": mx.nd.array([0.1]), "rcnn_box": mx.nd.array([0.2])}
    w_cls, w_box = obj.hard_weights()
    total = obj.total(_detection_total(p, 1.0, w_cls, w_box), terms).asscalar()
    hard = 0.3 * (0.4 + 0.6) + 2.0 * (0.1 + 0.2)
    assert total == pytest.approx(hard + sum(v.asscalar() for v in terms.values()), rel=1e-6)
    assert _detection_total(p, 2.0).asscalar() == pytest.approx((0.4 + 0.6 + 0.1 + 0.2) / 2)


def _adapter_losses(method, args, table, seed, no_teacher_heads=False):
    """``FasterRCNNAdapter.student_loss`` over two devices (1 + 2 images, global batch 3)
    with tiny stand-in networks and detection losses (``test_objective_eq1.py``) and the
    objective of ``method`` over ``table``: ``(total, losses)``."""
    from gankd_gluon.engine.frcnn_steps import FasterRCNNAdapter
    from gankd_gluon.models.faster_rcnn import MapAdapter
    from test_objective_eq1 import QuadRCNNLosses, TinyRCNN
    ctx = [mx.cpu(0), mx.cpu(1)]
    teacher, student, adapter = TinyRCNN(), TinyRCNN(), MapAdapter(2, 2)
    for b in (teacher, student, adapter):
        b.initialize(ctx=ctx)
    obj = methods.KDObjective(methods.parse_method(method, "frcnn"), args, [2], ctx, "frcnn",
                              table)
    det = FasterRCNNAdapter(teacher, student, adapter, hybridize=False)
    det.losses = QuadRCNNLosses()
    if no_teacher_heads:                       # the stand-in terms do not read them
        det.teacher_heads = lambda t_feat, out: None
    rng = np.random.RandomState(seed)
    x, y = mx.nd.array(rng.uniform(-1, 1, (3, 3, 2, 2))), mx.nd.array(rng.uniform(-1, 1, (3, 4)))
    batch = [x, mx.nd.zeros((3, 1, 5)), y, mx.nd.zeros((3, 4)), mx.nd.zeros((3, 4))]
    batch = [[b[:1].as_in_context(ctx[0]), b[1:].as_in_context(ctx[1])] for b in batch]
    t_maps, s_maps, outs = det.forward(*batch)
    with autograd.record():
        total, losses, _ = det.student_loss(t_maps, s_maps, outs, obj, 3.0, *batch)
    return total, losses


def test_the_adapter_sums_weighted_hard_losses_and_each_devices_terms():
    """FasterRCNNAdapter.student_loss on two devices (1 + 2 images, global batch 3) with
    ``cls+l2`` (mu 0.3, lambda 2): each device's total is ``mu (rpn_cls + rcnn_cls) +
    lambda (rpn_box + rcnn_box)`` over the global batch plus that device's terms, and a term
    sees its device's share ``B_d / N`` of the batch. The terms are stand-ins that return
    ``10 share`` and ``100 share`` (the real ones are checked above)."""
    const = lambda k: lambda b, a, o, s, t: k * o.share * mx.nd.ones((1,), ctx=s[0].context)
    table = dict(FRCNN_OUTPUT_TERMS, cls=const(10.0), l2=const(100.0))
    total, losses = _adapter_losses("l2+cls", _args("l2+cls", kd_mu=0.3, kd_lambda=2.0), table,
                                    4, no_teacher_heads=True)
    for d, share in enumerate((1 / 3.0, 2 / 3.0)):
        col = lambda c: losses[c][d].asscalar()                    # noqa: E731
        hard = 0.3 * (col("RPN_Conf") + col("RCNN_CrossEntropy")) + \
            2.0 * (col("RPN_SmoothL1") + col("RCNN_SmoothL1"))
        assert col("KD_soft") == pytest.approx(10 * share, rel=1e-6)
        assert col("KD_L2") == pytest.approx(100 * share, rel=1e-6)
        assert total[d].asscalar() == pytest.approx(hard + 110 * share, rel=1e-5)


def test_the_adapter_gives_fgfi_the_imitated_locations_of_the_whole_batch(monkeypatch):
    """Wang et al.'s N_p counts the imitated locations of the whole batch, not of one device:
    with every location of the 2x2 maps imitated (a stand-in mask) and 1 + 2 images on two
    devices, both devices' terms see N_p = 12, and the mask reaches the term unchanged."""
    from gankd_gluon.engine import frcnn_steps
    monkeypatch.setattr(frcnn_steps, "imitation_mask", lambda anchors, gt, shape, psi: mx.nd.ones(
        (gt.shape[0],) + tuple(shape), ctx=gt.context))
    seen = []

    def term(blocks, a, o, s, t):
        seen.append((o.num_masked, o.imitation_mask.shape))
        return o.num_masked * mx.nd.ones((1,), ctx=s[0].context)
    _, losses = _adapter_losses("fgfi", _args("fgfi"), dict(FRCNN_OUTPUT_TERMS, fgfi=term), 6)
    assert seen == [(12.0, (1, 2, 2)), (12.0, (2, 2, 2))]
    assert [v.asscalar() for v in losses["KD_FGFI"]] == [12.0, 12.0]
