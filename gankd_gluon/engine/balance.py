"""Balancing the critics: each critic's adversarial term weighted so that every feature map
gives the same share of the adversarial gradient reaching the student's backbone.

Measured without a weighting, the critics of the smallest maps (2x2, 1x1, reached through the
extra layers) send almost all of the adversarial gradient into the backbone, and the critics of
the backbone maps, which see what the teacher's backbone computes, almost none (probe tables in
``benchmarks/README.md``). The paper sums the critics' scores unweighted (Hong, Yu, Fan,
"GAN-Knowledge Distillation for one-stage Object Detection", arXiv 1906.08467, 2019, Eq. 1); a
weight per critic that makes the maps count alike is this project's departure
(``--critic-balance-interval 0`` keeps the unweighted sum).

Every ``interval`` batches of an epoch (and at its first batch) the student step measures, on the
first device's batch, the norm ``g_i`` of the gradient of ``sum_b D_i(student(x_b))`` with
respect to the backbone's parameters, one backward per critic through the graph the step has
already recorded, and sets ``w_i = (1 / g_i) / mean_j (1 / g_j)`` (mean 1, so the adversarial
term keeps its overall size). The weights live in the D-Net (saved with it) and depend only on
the epoch and batch numbers, so a resumed run replays them exactly.
"""
import mxnet as mx
import numpy as np
from mxnet import autograd

__all__ = ["critic_gradient_norms", "balance_weights"]


def critic_gradient_norms(dnet, maps, params):
    """Per critic i, the L2 norm of d(sum_b D_i(maps)) / d(params), unweighted.

    Parameters
    ----------
    dnet : DNet
        With ``critic_weights`` (:meth:`~gankd_gluon.models.critics.DNet.set_critic_weights`).
    maps : list of NDArray
        The student's maps of one device, outputs of a graph recorded by ``autograd.record``
        (kept: every backward retains it).
    params : list of Parameter
        Whose gradients are measured (the backbone's), with ``grad_req='write'``.

    Returns
    -------
    numpy array (M,) of norms. Reads the gradients on the host (one sync per call).
    """
    ctx = maps[0].context
    weights = dnet.critic_weights.data(ctx)
    with autograd.record():
        scores = mx.nd.broadcast_div(dnet(*maps), weights.reshape((1, -1)))
        terms = [scores.slice_axis(axis=1, begin=i, end=i + 1).sum()
                 for i in range(scores.shape[1])]
    norms = []
    for term in terms:
        autograd.backward(term, retain_graph=True)
        sq = sum(float((p.grad(ctx) ** 2).sum().asscalar()) for p in params)
        norms.append(np.sqrt(sq))
    return np.array(norms)


def balance_weights(norms, floor=1e-12):
    """``w_i = (1 / g_i) / mean_j (1 / g_j)`` from gradient norms ``g`` (M,); a critic whose
    gradient is (numerically) 0 gets the largest weight any critic gets (its product with 0 is
    still 0) instead of an infinite one."""
    norms = np.asarray(norms, dtype=np.float64)
    inv = np.where(norms > floor, 1.0 / np.maximum(norms, floor), 0.0)
    if not (inv > 0).any():
        return np.ones_like(norms)
    inv = np.where(inv > 0, inv, inv.max())
    return inv / inv.mean()
