"""Faster R-CNN training steps: plain (GluonCV's), and GAN-KD / KD stage 1 (paper Table 3).

Detection losses are computed exactly as GluonCV's ``ForwardBackwardTask``
(``model_zoo/rcnn/faster_rcnn/data_parallel.py``), per device::

    rpn_loss1  = SigmoidBCE(rpn_score, rpn_cls_t, rpn_cls_t >= 0) * rpn_cls_t.size / num_rpn
    rpn_loss2  = Huber(rho=1/9)(rpn_box, rpn_box_t, rpn_box_mask) * rpn_box.size / num_rpn
    rcnn_loss1 = SoftmaxCE(cls_pred, cls_t, cls_t >= 0) * cls_t.size / num_rcnn
    rcnn_loss2 = Huber(rho=1)(box_pred, box_t, box_mask) * box_pred.size / num_rcnn

with ``num_rpn`` / ``num_rcnn`` the sampled anchors / RoIs on the device; GluonCV then calls
``backward(rpn_loss.sum() + rcnn_loss.sum())`` and ``trainer.step(batch_size)``. Here every
term is divided by the global batch instead and the trainers step with 1, which is the same
update (as in :mod:`.steps`), and lets the critic and distillation terms sit beside the
detection terms with their own normalisation. The log columns are those of the published log
(GluonCV's ``train_faster_rcnn.py`` metrics; the authors' published log,
:mod:`gankd_gluon.logs.published`): ``RPN_Conf``,
``RPN_SmoothL1``, ``RCNN_CrossEntropy``, ``RCNN_SmoothL1`` (the four losses, batch means),
``RPNAcc``, ``RPNL1Loss``, ``RCNNAcc``, ``RCNNL1Loss`` (GluonCV's metric classes), ``Loss_G``,
``Loss_D``; stage 1 appends the distillation terms and the monitors of :mod:`.diagnostics`
(``cosine_length_loss_metric`` on the stride-16 map, ``W_0`` of the one critic). One
difference in GluonCV's four metrics: GluonCV divides epoch sums (sum of correct / sum of
samples), the loop here averages per-step ratios; they agree when every step has the same
number of samples (the RPN samples 256 anchors and the RCNN ``num_sample`` RoIs per image),
and the L1 columns can differ slightly.

The stage-1 step is :class:`~.steps.GANStep` (the alternation, written once) over
:class:`FasterRCNNAdapter`, which supplies the Faster R-CNN forward, its stride-16 maps and
its detection loss; the student's adversarial term starts after the critic warm-up
(``train_D_eopch``).
"""
import collections
import warnings

import mxnet as mx
from mxnet import autograd, gluon

from ..losses.fgfi import imitation_mask
from ..models.faster_rcnn import FeatureTap, rcnn_on_rois, rpn_raw_outputs, set_hybrid
from .guards import check_finite
from .steps import Normalizer

__all__ = ["LOSS_COLUMNS", "METRIC_COLUMNS", "GAN_COLUMNS", "split_sharded", "FasterRCNNLosses",
           "FasterRCNNStep", "FasterRCNNAdapter", "FasterRCNNOutputs", "FRCNN_OUTPUT_TERMS",
           "DeviceSeeds"]

#: published log columns: the four losses (also on the epoch line), GluonCV's four metrics,
#: then the adversarial pair (nan in stage 2)
LOSS_COLUMNS = ("RPN_Conf", "RPN_SmoothL1", "RCNN_CrossEntropy", "RCNN_SmoothL1")
METRIC_COLUMNS = ("RPNAcc", "RPNL1Loss", "RCNNAcc", "RCNNL1Loss")
GAN_COLUMNS = ("Loss_G", "Loss_D")


def split_sharded(batch, ctx_list):
    """Move a ``FasterRCNNTrainBatchify(net, len(ctx))`` batch to the devices: each element is
    already one array per shard (GluonCV pads every shard to its own largest image), except
    that with one shard the images and labels come as one array."""
    out = []
    for elem in batch:
        shards = elem if isinstance(elem, (list, tuple)) else [elem]
        if len(shards) != len(ctx_list):
            raise ValueError("batch has %d shards for %d devices" % (len(shards), len(ctx_list)))
        out.append([shard.as_in_context(ctx) for shard, ctx in zip(shards, ctx_list)])
    return out


def _global_ratio(nums, dens, norm, key):
    """Per-device shares of ``sum(nums) / sum(dens)`` over the devices of every worker (0
    where nothing was counted): the logged sums of the shares over workers are the ratio."""
    total = norm.total(sum(float(d.asscalar()) for d in dens), key)
    return [n / max(total, 1e-12) for n in nums]


class FasterRCNNLosses(object):
    """GluonCV's four Faster R-CNN losses and four metrics for one device's training forward.

    ``__call__(outputs, rpn_cls_t, rpn_box_t, rpn_box_mask)`` with ``outputs`` the 12 train
    outputs of ``net(x, gt_box, gt_label)`` (gluoncv 0.10.5
    ``gluoncv/model_zoo/rcnn/faster_rcnn/faster_rcnn.py``, ``FasterRCNN.hybrid_forward``'s
    training branch) returns a dict of NDArrays:
    ``rpn_cls``, ``rpn_box``, ``rcnn_cls``, ``rcnn_box`` (B,) as ForwardBackwardTask's
    rpn_loss1/2, rcnn_loss1/2 (their ``.mean()`` is the device's batch mean), the counts
    ``num_rpn``, ``num_rcnn`` and the metric numerators / denominators (scalars).
    """

    def __init__(self):
        self.rpn_cls_loss = gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False)
        self.rpn_box_loss = gluon.loss.HuberLoss(rho=1 / 9.)     # == smooth L1 (sigma 3)
        self.rcnn_cls_loss = gluon.loss.SoftmaxCrossEntropyLoss()
        self.rcnn_box_loss = gluon.loss.HuberLoss()               # == smooth L1

    def __call__(self, outputs, rpn_cls_targets, rpn_box_targets, rpn_box_masks):
        cls_pred, box_pred, _, _, _, rpn_score, rpn_box, _, cls_targets, box_targets, \
            box_masks, _ = outputs
        # ---- data_parallel.py ForwardBackwardTask.forward_backward, verbatim in substance
        rpn_score = rpn_score.squeeze(axis=-1)
        num_rpn_pos = (rpn_cls_targets >= 0).sum()
        rpn_loss1 = self.rpn_cls_loss(rpn_score, rpn_cls_targets, rpn_cls_targets >= 0) * \
            rpn_cls_targets.size / num_rpn_pos
        rpn_loss2 = self.rpn_box_loss(rpn_box, rpn_box_targets, rpn_box_masks) * \
            rpn_box.size / num_rpn_pos
        num_rcnn_pos = (cls_targets >= 0).sum()
        rcnn_loss1 = self.rcnn_cls_loss(cls_pred, cls_targets,
                                        cls_targets.expand_dims(-1) >= 0) * \
            cls_targets.size / num_rcnn_pos
        rcnn_loss2 = self.rcnn_box_loss(box_pred, box_targets, box_masks) * box_pred.size / \
            num_rcnn_pos
        # ---- metrics of train_faster_rcnn.py (RPNAccMetric, RPNL1LossMetric, RCNN...)
        with autograd.pause():
            weight = rpn_cls_targets >= 0
            rpn_acc = ((mx.nd.sigmoid(rpn_score) >= 0.5) == rpn_cls_targets) * weight
            rpn_l1 = rpn_box_masks * mx.nd.smooth_l1(rpn_box - rpn_box_targets, scalar=3)
            rcnn_acc = mx.nd.argmax(cls_pred, axis=-1) == cls_targets
            rcnn_l1 = box_masks * mx.nd.smooth_l1(box_pred - box_targets, scalar=1)
            metrics = {"RPNAcc": (rpn_acc.sum(), weight.sum()),
                       "RPNL1Loss": (rpn_l1.sum(), rpn_box_masks.sum() / 4),
                       "RCNNAcc": (rcnn_acc.sum(), mx.nd.array([cls_targets.size],
                                                               ctx=cls_targets.context)),
                       "RCNNL1Loss": (rcnn_l1.sum(), box_masks.sum() / 4)}
        return {"rpn_cls": rpn_loss1, "rpn_box": rpn_loss2, "rcnn_cls": rcnn_loss1,
                "rcnn_box": rcnn_loss2, "num_rpn": num_rpn_pos, "num_rcnn": num_rcnn_pos,
                "metrics": metrics}


def _log_losses(parts, n, norm):
    """Published columns from per-device loss dicts: each device's share of the step's global
    batch mean (``RunningMean`` sums the shares, the loop's reducer the workers'), metrics as
    global ratios."""
    out = {}
    for col, key in zip(LOSS_COLUMNS, ("rpn_cls", "rpn_box", "rcnn_cls", "rcnn_box")):
        out[col] = [p[key].detach().sum() / n for p in parts]
    for col in METRIC_COLUMNS:
        out[col] = _global_ratio([p["metrics"][col][0] for p in parts],
                                 [p["metrics"][col][1] for p in parts], norm, "metric:" + col)
    return out


def _detection_total(p, n, w_cls=1.0, w_box=1.0):
    """One device's detection loss divided by the global batch: GluonCV's
    ``rpn_loss.sum() + rcnn_loss.sum()`` (``w_cls`` weighs the two classification terms, Chen
    et al.'s mu, ``w_box`` the two regression terms, their lambda; 1 otherwise)."""
    if w_box == 1.0:                             # GluonCV's sum, to the last bit
        return (w_cls * (p["rpn_cls"].sum() + p["rcnn_cls"].sum())
                + p["rpn_box"].sum() + p["rcnn_box"].sum()) / n
    return (w_cls * (p["rpn_cls"].sum() + p["rcnn_cls"].sum())
            + w_box * (p["rpn_box"].sum() + p["rcnn_box"].sum())) / n


class DeviceSeeds(object):
    """A reproducible random stream per device for GluonCV's RoI sampler.

    ``RCNNTargetSampler`` shuffles the proposals with ``F.random.uniform`` on the device
    (gluoncv 0.10.5 ``model_zoo/rcnn/faster_rcnn/rcnn_target.py``). The CPU devices of one
    process share one generator (MXNet 1.9.1), so in a one-process run over two devices the
    second device draws after the first, while two processes of one device each draw the
    first numbers of identically seeded generators: the RoIs sampled, and so the weights,
    differ. Here each device is seeded before its forward with a seed of its own, from
    (the epoch's draw, the step within the epoch, the device's index over the whole job), so
    that every arrangement of the same devices samples the same RoIs, and a resumed epoch the
    same as the first time (the epoch's draw follows the loop's per-epoch seed).

    Parameters
    ----------
    first_device : int
        Index over the job of this process's first device (rank x local devices).
    """

    def __init__(self, first_device):
        self.first_device = first_device
        self._base = None
        self._step = -1

    def new_epoch(self):
        """Draw the epoch's base from MXNet's generator, just seeded by the loop."""
        self._base = int(mx.nd.random.randint(0, 2 ** 31 - 1, shape=(1,), ctx=mx.cpu(),
                                              dtype="int32").asscalar())
        self._step = -1

    def next_step(self):
        """Count a step (call once per step, before the devices' forwards)."""
        if self._base is None:
            self.new_epoch()
        self._step += 1

    def seed(self, index, ctx):
        """Seed ``ctx``'s generator for local device ``index`` at this step."""
        import numpy as np
        state = np.random.SeedSequence([self._base, self._step, self.first_device + index])
        mx.random.seed(int(state.generate_state(1)[0] % (2 ** 31)), ctx=ctx)


def _forward(net, data, label, seeds=None):
    """The student's training forward on each device: ``net(x, gt_box, gt_label)``; with
    ``seeds`` (:class:`DeviceSeeds`), each device's RoI sampling from its own seed."""
    if seeds is not None:
        seeds.next_step()
    outs = []
    with warnings.catch_warnings():
        # GluonCV's RCNN target generator holds encoder constants its graph does not use
        warnings.filterwarnings("ignore", message=".*is not used by any computation")
        for i, (x, y) in enumerate(zip(data, label)):
            if seeds is not None:
                seeds.seed(i, x.context)
            outs.append(net(x, y.slice_axis(axis=-1, begin=0, end=4),
                            y.slice_axis(axis=-1, begin=4, end=5)))
    return outs


class FasterRCNNStep(object):
    """Plain Faster R-CNN training step (stage 2; the no-distillation baselines).

    Parameters
    ----------
    net : FasterRCNN
    trainer : gluon.Trainer
        Over ``net.collect_train_params()`` (GluonCV: no conv1/layer1, no BatchNorm).
    hybridize : bool
        Train on one cached graph (GluonCV's ``net.hybridize(static_alloc=True)``).
    epoch_offset : int
        Added to the loop's epoch in error messages, so they name the epoch the log prints
        (``Stage.epoch_offset``).
    norm : Normalizer or None
        The global batch (several machines); default: this process's.
    seeds : DeviceSeeds or None
        Each device's RoI sampling seeded on its own (more than one device in the job).

    ``__call__(data, label, rpn_cls_t, rpn_box_t, rpn_box_mask, epoch, batch)``, each a list
    over devices, returns the published columns (per-device lists).
    """

    def __init__(self, net, trainer, hybridize=True, epoch_offset=0, norm=None, seeds=None):
        self.net = net
        self.trainer = trainer
        self.hybridize = hybridize
        self.epoch_offset = epoch_offset
        self.norm = norm or Normalizer()
        self.seeds = seeds
        self.losses = FasterRCNNLosses()

    def __call__(self, data, label, rpn_cls_t, rpn_box_t, rpn_box_mask, epoch=0, batch=0):
        n = self.norm.batch(data)                    # the global batch
        set_hybrid(self.net, "full" if self.hybridize else "off")
        with autograd.record():
            outs = _forward(self.net, data, label, self.seeds)
            parts = [self.losses(o, c, b, m) for o, c, b, m in
                     zip(outs, rpn_cls_t, rpn_box_t, rpn_box_mask)]
            total = [_detection_total(p, n) for p in parts]
        autograd.backward(total)
        logs = _log_losses(parts, n, self.norm)
        check_finite({c: logs[c] for c in LOSS_COLUMNS}, epoch + self.epoch_offset, batch)
        self.trainer.step(1)
        return logs


#: One device's Faster R-CNN outputs for the output-level distillation terms: the student's
#: 12 training outputs, its :class:`FasterRCNNLosses` dict (normalisers, targets), the RPN's
#: targets (B, A), (B, A, 4), (B, A, 4), the teacher's heads (:meth:`FasterRCNNAdapter.
#: teacher_heads`, None unless a term needs them), Wang et al.'s imitation mask (B, H, W) and
#: its count over the whole batch ``N_p`` (None / 0 unless ``fgfi``), and the device's share
#: of the global batch ``B_d / N`` (the hard losses' per-device batch means enter the total
#: as ``mean * B_d / N``)
FasterRCNNOutputs = collections.namedtuple(
    "FasterRCNNOutputs",
    "out losses rpn_cls_t rpn_box_t rpn_box_mask t_heads imitation_mask num_masked share")


def _soft_labels(block, a, o, s_maps, t_maps):
    """Chen et al. Eq. 2-3 on ``L_RPN`` and ``L_RCN``: ``(1 - mu) L_soft`` over the anchors
    and RoIs the hard losses use, with their normalisers (the sampled anchors and RoIs). The
    RPN's one sigmoid logit ``z`` is Eq. 3's two-class case: logits ``(0, z)``, background
    first, so CLS-W's background weight applies to ``1 - sigmoid(z)``."""
    out, p = o.out, o.losses
    t_score, _, t_cls, _ = o.t_heads
    s_rpn = mx.nd.concat(mx.nd.zeros_like(out[5]), out[5], dim=-1)
    t_rpn = mx.nd.concat(mx.nd.zeros_like(t_score), t_score, dim=-1)
    rpn = (block(s_rpn, t_rpn) * (o.rpn_cls_t >= 0)).sum() / p["num_rpn"]
    rcnn = (block(out[0], t_cls) * (out[8] >= 0)).sum() / p["num_rcnn"]
    return (1 - a.kd_mu) * (rpn + rcnn) * o.share


def _regression(bounded):
    """Chen et al. Eq. 4 on the RPN's positive anchors and each positive RoI's ground-truth
    class column: ``lambda nu L_b`` (teacher-bounded) or ``lambda nu L2`` to the teacher."""
    def term(block, a, o, s_maps, t_maps):
        out, p = o.out, o.losses
        _, t_box, _, t_rcnn_box = o.t_heads
        box_pred, box_t, box_mask = out[1], out[9], out[10]
        rpn_pos = o.rpn_box_mask.sum(axis=-1) > 0
        sel = lambda x: (x * box_mask).sum(axis=2)               # (B, P, C, 4) -> (B, P, 4)
        rcnn_pos = box_mask.sum(axis=(2, 3)) > 0
        if bounded:
            rpn = block(out[6], t_box, o.rpn_box_t)
            rcnn = block(sel(box_pred), sel(t_rcnn_box), sel(box_t))
        else:
            rpn = block(out[6], t_box)
            rcnn = block(sel(box_pred), sel(t_rcnn_box))
        return a.kd_lambda * a.kd_nu * ((rpn * rpn_pos).sum() / p["num_rpn"]
                                        + (rcnn * rcnn_pos).sum() / p["num_rcnn"]) * o.share
    return term


def _imitation(blocks, a, o, s_maps, t_maps):
    """Wang et al. Eq. 2-3: ``lambda / (2 N_p) sum I (f_adap(s) - t)^2`` on the stride-16 map,
    ``N_p`` the imitated locations of the whole batch."""
    return a.fgfi_lambda * blocks[0](s_maps[0], t_maps[0], o.imitation_mask).sum() / \
        (2.0 * max(o.num_masked, 1.0))


#: Faster R-CNN's output-level distillation terms (:class:`~.methods.KDObjective`):
#: component -> ``fn(block, args, FasterRCNNOutputs, s_maps, t_maps)``, the weighted term of
#: one device. Sources: Chen, Choi, Yu, Han, Chandraker, "Learning Efficient Object Detection
#: Models with Knowledge Distillation", NIPS 2017 (Eq. 1-4 are written for Faster R-CNN);
#: Wang, Yuan, Zhang, Feng, "Distilling Object Detectors with Fine-grained Feature
#: Imitation", CVPR 2019, https://arxiv.org/abs/1906.03609.
FRCNN_OUTPUT_TERMS = {"cls": _soft_labels, "cls-w": _soft_labels, "l2-b": _regression(True),
                      "l2": _regression(False), "fgfi": _imitation}


class FasterRCNNAdapter(object):
    """What a GAN-KD step (:class:`~.steps.GANStep`) needs to know of a Faster R-CNN student.

    1. teacher backbone once per iteration, no graph;
    2. one training forward of the student; its stride-16 map is read by a forward hook
       (:class:`~gankd_gluon.models.faster_rcnn.FeatureTap`) and adapted to the teacher's
       channels, so detection losses, critics and imitation terms share it;
    3. the detection loss is GluonCV's four losses (:class:`FasterRCNNLosses`), the log also
       gets GluonCV's four metrics.

    Parameters
    ----------
    teacher : FasterRCNN or None
        Frozen; only its ``features`` run unless the objective needs its heads.
    student : FasterRCNN
        The deployable student.
    adapter : MapAdapter
        Student map -> teacher channels (identity for ResNet50 -> ResNet101).
    hybridize : bool
        Hybridize the student's blocks (its top-level forward stays imperative for the tap).
    norm : Normalizer or None
        The global batch and sums over workers (several machines); default: this process's.
    seeds : DeviceSeeds or None
        Each device's RoI sampling seeded on its own (more than one device in the job).

    A step's batch is ``(data, label, rpn_cls_t, rpn_box_t, rpn_box_mask)``, each a list over
    devices of (B, 3, H, W), (B, M, 5), (B, A), (B, A, 4), (B, A, 4).
    """

    def __init__(self, teacher, student, adapter, hybridize=True, norm=None, seeds=None):
        self.teacher = teacher
        self.student = student
        self.adapter = adapter
        self.hybridize = hybridize
        self.norm = norm or Normalizer()
        self.seeds = seeds
        self.losses = FasterRCNNLosses()
        self.tap = FeatureTap(student.features)

    def batch_size(self, data, *targets):
        """The global batch: Eq. 1's 1/N."""
        return self.norm.batch(data)

    def forward(self, data, label, *targets):
        """``(t_maps, s_maps, outs)``: the teacher's stride-16 map per device (``[[t]]``, no
        graph; None without a teacher), the student's adapted one (``[[s]]``, on the graph)
        and the student's 12 training outputs per device."""
        set_hybrid(self.student, "parts" if self.hybridize else "off")
        t_feats = [self.teacher.features(x) for x in data] if self.teacher is not None \
            else None
        self.tap.pop()
        with autograd.record():
            outs = _forward(self.student, data, label, self.seeds)
            s_maps = [self.adapter(f) for f in self.tap.pop()]
        if len(s_maps) != len(data):
            raise RuntimeError("read %d student maps for %d devices: the student's top-level "
                               "forward must run imperatively (set_hybrid 'parts')"
                               % (len(s_maps), len(data)))
        t_maps = [[t] for t in t_feats] if t_feats is not None else None
        return t_maps, [[s] for s in s_maps], outs

    def teacher_heads(self, t_feat, out):
        """The teacher's RPN on its map and its RCNN on the student's RoIs (no graph): the
        raw RPN scores (B, A, 1) and boxes (B, A, 4), the RCNN class logits (B, N, C+1) and
        the boxes of the positive RoIs (B, P, C, 4). Both RPNs tile the stride-16 map the
        same way, so the anchors are the student's."""
        with autograd.pause():
            t_score, t_box = rpn_raw_outputs(self.teacher, t_feat)
            t_cls, t_rcnn_box = rcnn_on_rois(self.teacher, t_feat, out[2], out[11])
        return t_score, t_box, t_cls, t_rcnn_box

    def student_loss(self, t_maps, s_maps, outs, objective, n, data, label, rpn_cls_t,
                     rpn_box_t, rpn_box_mask):
        """The student's objective without the adversarial term; call inside
        ``autograd.record``. Returns ``(total, losses, monitors)``: per-device scalars to
        back-propagate, the losses to check and log (the four published loss columns and the
        weighted terms of ``objective``), and GluonCV's four metrics (logged, not checked)."""
        parts = [self.losses(o, c, b, m) for o, c, b, m in
                 zip(outs, rpn_cls_t, rpn_box_t, rpn_box_mask)]
        logs = _log_losses(parts, n, self.norm)
        losses = {c: logs[c] for c in LOSS_COLUMNS}
        monitors = {c: logs[c] for c in METRIC_COLUMNS}
        if objective is None:
            return [_detection_total(p, n) for p in parts], losses, monitors
        t_feats = [tm[0] for tm in t_maps] if t_maps is not None else [None] * len(data)
        feats = [sm[0] for sm in s_maps]
        with autograd.pause():                       # the teacher's heads; FGFI's mask, N_p
            t_heads = [None] * len(data)
            if objective.needs_teacher_head:
                t_heads = [self.teacher_heads(t, o) for t, o in zip(t_feats, outs)]
            masks, num_masked = [None] * len(data), 0.0
            if objective.needs("imitation_mask"):
                masks = [imitation_mask(o[7], y.slice_axis(axis=-1, begin=0, end=4),
                                        f.shape[2:], psi=objective.args.fgfi_psi)
                         for o, y, f in zip(outs, label, feats)]
                # N_p of the whole (global) batch: one host read
                num_masked = self.norm.total(float(sum(m.sum().asscalar() for m in masks)),
                                             "fgfi_num_masked")
        w_cls, w_box = objective.hard_weights()
        total, terms = [], {name: [] for name in objective.term_names()}
        for d in range(len(data)):
            out = FasterRCNNOutputs(outs[d], parts[d], rpn_cls_t[d], rpn_box_t[d],
                                    rpn_box_mask[d], t_heads[d], masks[d], num_masked,
                                    float(feats[d].shape[0]) / n)
            dev = objective(out, s_maps[d], t_maps[d] if t_maps is not None else None, n)
            for name, value in dev.items():
                terms[name].append(value)
            total.append(objective.total(_detection_total(parts[d], n, w_cls, w_box), dev))
        losses.update(terms)
        return total, losses, monitors
