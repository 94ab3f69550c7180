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
whole (global) batch, the norm ``g_i`` of the gradient of ``sum_b D_i(student(x_b))`` with
respect to the backbone's parameters, one backward per critic through the graph the step has
already recorded, and sets ``w_i = (1 / g_i) / mean_j (1 / g_j)`` (mean 1, so the adversarial
term keeps its overall size). The weights live in the D-Net (saved with it) and depend only on
the epoch and batch numbers, so a resumed run replays them exactly.
"""
import mxnet as mx
import numpy as np
from mxnet import autograd

__all__ = ["critic_gradient_norms", "balance_weights"]


def critic_gradient_norms(dnet, maps, params, reduce=None):
    """Per critic i, the L2 norm of d(sum_b D_i(maps)) / d(params), unweighted, of the gradient
    summed over the devices (and, with ``reduce``, over distributed workers): the norm of the
    global batch's gradient, whatever the split. (The root of the summed per-device squared
    norms would not be: it depends on how many devices share the batch.)

    Parameters
    ----------
    dnet : DNet
        With ``critic_weights`` (:meth:`~gankd_gluon.models.critics.DNet.set_critic_weights`).
    maps : list of NDArray, or list of such lists (one per device)
        The student's maps (B_d, C_i, H_i, W_i) of each device, outputs of a graph recorded by
        ``autograd.record`` (kept: every backward retains it).
    params : list of Parameter
        Whose gradients are measured (the backbone's), with ``grad_req='write'``.
    reduce : callable or None
        ``reduce(vector)``: a flat NDArray summed over distributed workers (same shape on
        every worker).

    Returns
    -------
    numpy array (M,) of norms. Reads one number per critic on the host.
    """
    per_device = [maps] if isinstance(maps[0], mx.nd.NDArray) else list(maps)
    ctx0 = per_device[0][0].context
    terms = []                                     # per device, per critic
    for dev_maps in per_device:
        weights = dnet.critic_weights.data(dev_maps[0].context)
        with autograd.record():
            scores = mx.nd.broadcast_div(dnet(*dev_maps), weights.reshape((1, -1)))
            terms.append([scores.slice_axis(axis=1, begin=i, end=i + 1).sum()
                          for i in range(scores.shape[1])])
    norms = []
    for i in range(len(terms[0])):
        # every term reads the concat of all critics' scores, so each backward writes the
        # gradient of every backbone parameter (0 where critic i does not reach): none stale
        autograd.backward([t[i] for t in terms], retain_graph=True)
        flat = mx.nd.concat(*[
            mx.nd.add_n(*[p.grad(m[0].context).as_in_context(ctx0) for m in per_device])
            .reshape((-1,)) for p in params], dim=0)
        if reduce is not None:
            flat = reduce(flat)
        norms.append(float(mx.nd.norm(flat.astype("float64")).asscalar()))
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
