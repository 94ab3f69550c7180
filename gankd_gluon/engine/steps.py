"""The training steps: the GAN-KD step (paper Eq. 1) and the plain SSD step.

The GAN alternation is written once, here, top to bottom (WGAN reference ``main.py``, MXNet's
Gluon DCGAN example): the teacher runs once, the student's maps are computed once, then

1. critic step: ``L_D = mean D(teacher) - mean D(student)``, teacher and student frozen (the
   student's maps are detached), then WGAN weight clipping;
2. student step: ``L_G = mean D(student) + L_conf + L_loc`` through the updated critics, critics
   frozen (their trainer does not step).

All losses are normalised by the global batch on every device, so ``trainer.step(1)`` gives the
same update whatever the number of devices (GluonCV's SSDMultiBoxLoss already normalises by the
positives of the whole batch).
"""
import collections
import contextlib

from mxnet import autograd, gluon

from ..losses import kd
from ..models.critics import clip_weights
from .diagnostics import COSINE_LENGTH, cosine_length_metric, separation_columns
from .guards import check_finite

__all__ = ["GANStep", "SSDAdapter", "SSDStep", "split_batch", "Normalizer", "SSDOutputs",
           "SSD_OUTPUT_TERMS"]


@contextlib.contextmanager
def _no_weight_grads(params):
    """``grad_req='null'`` on ``params`` inside the block, their own ``grad_req`` back after
    (fresh zero gradient buffers). Gradients still flow *through* the ops that use them."""
    saved = [p.grad_req for p in params]
    for p in params:
        p.grad_req = "null"
    try:
        yield
    finally:
        for p, req in zip(params, saved):
            p.grad_req = req


class Normalizer:
    """The global batch size and positive-anchor count every loss is divided by.

    On one machine they are the local ones. Under ``dist_sync`` the servers *sum* the
    workers' gradients (and so does Horovod, whose trainer's averaging
    :meth:`~.distributed.HorovodEnv.trainer` undoes), so each worker divides by the totals over
    all workers: the summed gradient is then exactly the one-process gradient of the global
    batch (Eq. 1's 1/N and SSDMultiBoxLoss's 1/num_pos), and ``trainer.step(1)`` is right
    everywhere.

    Parameters
    ----------
    env : DistEnv, HorovodEnv or None
    """

    def __init__(self, env=None):
        self.env = env
        self.is_dist = env is not None and env.is_dist

    def reduce_array(self, array, key):
        """``array`` (any shape) summed over distributed workers, without a host read."""
        from .distributed import allreduce_array
        return allreduce_array(self.env, key, array)

    def total(self, value, key):
        """A Python float summed over distributed workers (``value`` on one machine); ``key``
        names the sum, the same on every worker."""
        if not self.is_dist:
            return value
        from .distributed import allreduce_sum
        return allreduce_sum(self.env, key, value)

    def batch(self, data):
        n = float(sum(x.shape[0] for x in data))
        return n * (self.env.num_workers if self.env is not None else 1)

    def num_pos(self, cls_targets):
        """Positives over the whole (global) batch; one host read, as SSDMultiBoxLoss does."""
        local = sum(float((ct > 0).sum().asscalar()) for ct in cls_targets)
        if self.is_dist:
            from .distributed import allreduce_sum
            local = allreduce_sum(self.env, "num_pos", local)
        return max(1.0, local)

    def rescale_det(self, losses, cls_targets, num_pos):
        """SSDMultiBoxLoss divides by the *local* positives; rescale its outputs to the global
        count (a no-op on one machine)."""
        if not self.is_dist:
            return losses
        local = max(1.0, sum(float((ct > 0).sum().asscalar()) for ct in cls_targets))
        return [[l * (local / num_pos) for l in part] for part in losses]


def split_batch(batch, ctx_list):
    """Split a loader batch (e.g. SSD's ``(data, cls_targets, box_targets)``) over devices.

    batchify outputs live on ``cpu_shared`` (mxnet 1.9.1 ``mxnet/gluon/data/dataloader.py``,
    ``default_mp_batchify_fn``), so they are always copied.
    """
    return [gluon.utils.split_and_load(b, ctx_list=ctx_list, batch_axis=0, even_split=False)
            for b in batch]


class SSDStep:
    """One plain SSD training step, as GluonCV's ``train_ssd.py`` does it.

    Parameters
    ----------
    net : SSD
        The detector (in GAN-KD stage 2: the deployable student).
    trainer : gluon.Trainer
    det_loss : gluoncv.loss.SSDMultiBoxLoss

    ``__call__`` returns a dict of per-device losses: ``CrossEntropy`` and ``SmoothL1`` (B,).
    """

    def __init__(self, net, trainer, det_loss, norm=None):
        self.net = net
        self.trainer = trainer
        self.det_loss = det_loss
        self.norm = norm or Normalizer()

    def __call__(self, data, cls_targets, box_targets, epoch=0, batch=0):
        num_pos = self.norm.num_pos(cls_targets) if self.norm.is_dist else None
        with autograd.record():
            cls_preds, box_preds = [], []
            for x in data:
                c, b, _ = self.net(x)
                cls_preds.append(c)
                box_preds.append(b)
            sum_loss, cls_loss, box_loss = self.norm.rescale_det(
                self.det_loss(cls_preds, box_preds, cls_targets, box_targets), cls_targets,
                num_pos)
        autograd.backward(sum_loss)
        check_finite({"CrossEntropy": cls_loss, "SmoothL1": box_loss}, epoch, batch)
        self.trainer.step(1)
        return {"CrossEntropy": cls_loss, "SmoothL1": box_loss}


#: One device's SSD outputs for the output-level distillation terms: the student's class
#: scores (B, N, C+1) and box offsets (B, N, 4), the teacher's (None unless a term needs them),
#: the anchors' targets (B, N) and (B, N, 4), and the positives of the whole batch
#: (SSDMultiBoxLoss's normaliser, a float)
SSDOutputs = collections.namedtuple(
    "SSDOutputs", "cls_pred box_pred t_cls t_box cls_targets box_targets num_pos")


def _mined(weight):
    """``(1 - args.<weight>) sum(block(S, T) * mask) / num_pos`` on the anchors SSD's hard
    loss uses (positives and the mined negatives), over the positives: Chen et al. Eq. 2's
    ``(1 - mu) L_soft`` (``weight='kd_mu'``) or Ko & Yoo Eq. 1's ``beta KL(T/Temp || S/Temp)``,
    ``beta = 1 - alpha`` (``weight='ko_alpha'``)."""
    def term(block, a, o, s_maps, t_maps):
        return (1 - getattr(a, weight)) * (block(o.cls_pred, o.t_cls) * kd.ssd_mining_mask(
            o.cls_pred, o.cls_targets)).sum() / o.num_pos
    return term


def _regression(bounded):
    """Chen et al. Eq. 4: ``lambda nu L_b`` (teacher-bounded) or ``lambda nu L2`` to the
    teacher's offsets, on the positive anchors, over the positives."""
    def term(block, a, o, s_maps, t_maps):
        pos = o.cls_targets > 0
        loss = block(o.box_pred, o.t_box, o.box_targets) if bounded else \
            block(o.box_pred, o.t_box)
        return a.kd_lambda * a.kd_nu * (loss * pos).sum() / o.num_pos
    return term


#: SSD's output-level distillation terms (:class:`~.methods.KDObjective`): component ->
#: ``fn(block, args, SSDOutputs, s_maps, t_maps)``, the weighted term of one device.
#: Sources: Chen, Choi, Yu, Han, Chandraker, "Learning Efficient Object Detection Models with
#: Knowledge Distillation", NIPS 2017; Ko, Yoo, "Knowledge Distillation based Compact Model
#: Learning Method for Object Detection", ICTC 2020,
#: https://doi.org/10.1109/ICTC49870.2020.9289463.
SSD_OUTPUT_TERMS = {"cls": _mined("kd_mu"), "cls-w": _mined("kd_mu"), "ko": _mined("ko_alpha"),
                    "l2-b": _regression(True), "l2": _regression(False)}


class SSDAdapter:
    """What a GAN-KD step needs to know of an SSD: its feature maps and its detection loss.

    Parameters
    ----------
    teacher_features : HybridBlock or None
        The frozen teacher net (``grad_req='null'``); run outside ``autograd.record`` so its
        BatchNorm layers use moving statistics. Returns M maps. None when no term needs it.
    student_features, student_head : HybridBlock
        The student's feature block (:class:`~gankd_gluon.models.ssd.StudentFeatures`) and its
        :class:`~gankd_gluon.models.ssd.SSDHead`; together they are the deployable student.
    det_loss : gluoncv.loss.SSDMultiBoxLoss
    teacher_head : SSDHead or None
        The teacher's head, run on the teacher's maps when the objective needs P_t or R_t.
    norm : Normalizer or None
        Global batch and positives (several machines); default: this process's.

    A step's batch is ``(data, cls_targets, box_targets)``, each a list over devices of
    (B, 3, H, W), (B, N) and (B, N, 4).
    """

    def __init__(self, teacher_features, student_features, student_head, det_loss,
                 teacher_head=None, norm=None):
        self.teacher_features = teacher_features
        self.student_features = student_features
        self.student_head = student_head
        self.det_loss = det_loss
        self.teacher_head = teacher_head
        self.norm = norm or Normalizer()

    def batch_size(self, data, *targets):
        """The global batch: Eq. 1's 1/N."""
        return self.norm.batch(data)

    def forward(self, data, *targets):
        """Teacher maps (no graph; None without a teacher), student maps on the autograd graph,
        and the teacher's head outputs when they are needed: ``(t_maps, s_maps, state)``, the
        maps per device as lists of M (B, C_i, H_i, W_i)."""
        t_maps = t_cls = t_box = None
        if self.teacher_features is not None:
            t_maps = [self.teacher_features(x) for x in data]
            if self.teacher_head is not None:
                t_out = [self.teacher_head(*tm) for tm in t_maps]
                t_cls, t_box = [o[0] for o in t_out], [o[1] for o in t_out]
        with autograd.record():
            s_maps = [self.student_features(x) for x in data]
        return t_maps, s_maps, (t_cls, t_box)

    def backbone_params(self):
        """The student's backbone parameters (the critics' balance is measured at them)."""
        from ..models.ssd import backbone_params
        return backbone_params(self.student_features)

    def student_loss(self, t_maps, s_maps, state, objective, n, data, cls_targets,
                     box_targets):
        """The student's objective without the adversarial term; call inside
        ``autograd.record``. Returns ``(total, losses, monitors)``: the per-device scalars to
        back-propagate, the losses to check and log (``CrossEntropy``, ``SmoothL1``, (B,), and
        the weighted terms of ``objective``), and nothing more to log."""
        t_cls, t_box = state
        heads = [self.student_head(*sm) for sm in s_maps]
        cls_preds = [h[0] for h in heads]
        box_preds = [h[1] for h in heads]
        num_pos = self.norm.num_pos(cls_targets)
        sum_loss, cls_loss, box_loss = self.norm.rescale_det(
            self.det_loss(cls_preds, box_preds, cls_targets, box_targets), cls_targets,
            num_pos)
        if objective is None:
            return [s.sum() for s in sum_loss], {"CrossEntropy": cls_loss,
                                                  "SmoothL1": box_loss}, {}
        w_cls, w_box = objective.hard_weights()
        total, terms = [], {name: [] for name in objective.term_names()}
        for d in range(len(data)):
            out = SSDOutputs(cls_preds[d], box_preds[d], t_cls[d] if t_cls else None,
                             t_box[d] if t_box else None, cls_targets[d], box_targets[d],
                             num_pos)
            dev = objective(out, s_maps[d], t_maps[d] if t_maps is not None else None, n)
            for name, value in dev.items():
                terms[name].append(value)
            total.append(objective.total(w_cls * cls_loss[d].sum() + w_box * box_loss[d].sum(),
                                         dev))
        return total, dict(terms, CrossEntropy=cls_loss, SmoothL1=box_loss), {}


class GANStep:
    """One stage-1 iteration: ``d_steps`` critic steps, then one student step, for any detector.

    With ``dnet`` (``--method gan``, the paper) this is GAN-KD's iteration; with ``dnet=None``
    only the student step runs, with the distillation terms of ``objective`` (the baselines of
    Chen et al., Ko & Yoo and Wang et al., or none), so every method shares this one step and
    schedule. What differs between detectors (the forward pass, the maps the critics and the
    hints see, the detection loss and its log columns) is the ``detector`` adapter's:
    :class:`SSDAdapter`, :class:`~.frcnn_steps.FasterRCNNAdapter`.

    Parameters
    ----------
    detector : SSDAdapter or FasterRCNNAdapter
    dnet : DNet or None
        One critic per map.
    trainer_g, trainer_d : gluon.Trainer
        Adam for the student (+ adapters), Adam for the critics (paper Sec. 4.1).
    clamp : (float, float)
        WGAN weight-clipping range (published log: -0.03, 0.03).
    d_steps : int
        Critic steps per student step (paper: 1, they alternate). Extra critic steps reuse the
        same batch's maps: the teacher runs once per iteration.
    objective : KDObjective or None
        Weighs the detection loss and the distillation terms (:mod:`.methods`); None: the
        detection loss alone.
    balance_interval : int
        Every this many batches of an epoch (and at its first) the critics are weighted so that
        each map gives the same share of the adversarial gradient at the student's backbone
        (:meth:`balance_critics`); 0: all weights 1 from the first step on (the paper's plain
        sum, Eq. 1), also after resuming a balanced run.
    warmup_epochs : int
        ``train_D_eopch`` of the published Faster R-CNN log: in epochs ``1..warmup_epochs``
        the critics learn but the student's objective has no adversarial term yet
        (``Loss_G`` is still measured); 0: adversarial from the first step.
    epoch_offset : int
        Added to the loop's epoch in error messages, so they name the epoch the log prints.

    ``__call__(*batch, epoch, batch)`` returns a dict of per-device lists: the losses
    (``Loss_D``, ``Loss_D_real``, ``Loss_D_fake``, ``Loss_G`` with ``dnet``; the detector's
    losses and metrics; the method's terms) and two monitors that are never optimised
    (:mod:`.diagnostics`): ``cosine_length_loss_metric`` when the teacher runs, ``W_0..W_{M-1}``
    with ``dnet``.
    """

    def __init__(self, detector, dnet, trainer_g, trainer_d, clamp=(-0.03, 0.03), d_steps=1,
                 objective=None, balance_interval=0, warmup_epochs=0, epoch_offset=0):
        self.detector = detector
        self.norm = detector.norm if detector is not None else Normalizer()
        self.dnet = dnet
        self.trainer_g = trainer_g
        self.trainer_d = trainer_d
        self.clamp = clamp
        self.d_steps = d_steps
        self.objective = objective
        self.warmup_epochs = warmup_epochs
        self.epoch_offset = epoch_offset
        self._critic_weights = [] if dnet is None else [
            p for p in dnet.collect_params().values() if p.grad_req != "null"]
        self.balance_interval = balance_interval if hasattr(dnet, "set_critic_weights") else 0
        if self.balance_interval and not hasattr(detector, "backbone_params"):
            raise ValueError("critic balancing needs the student's backbone; %s has none"
                             % type(detector).__name__)
        # interval 0 is the paper's plain sum: weights 1 from the first step on, also when a
        # checkpoint of a balanced run was resumed (its weights would otherwise stay frozen)
        self._unit_weights_pending = hasattr(dnet, "set_critic_weights") and not balance_interval
        self._backbone = None

    def critic_step(self, t_maps, s_maps, n, epoch, batch):
        """WGAN critic update on ``L_D = mean D(teacher) - mean D(student)``, then clipping.

        The student's maps are detached, the teacher has no graph: only the critics learn.
        Returns the last step's (D(teacher), D(student), L_D, separation) per device, each
        divided by the global batch ``n``; ``separation`` (M,) holds critic i's
        ``(sum_b D_i(student) - sum_b D_i(teacher)) / n`` (the ``W_i`` log columns,
        :func:`~.diagnostics.separation_columns`; they sum to ``-L_D``).
        """
        for _ in range(self.d_steps):
            with autograd.record():
                d_real = [self.dnet(*tm) for tm in t_maps]
                d_fake = [self.dnet(*[m.detach() for m in sm]) for sm in s_maps]
                renormalise = getattr(self.dnet, "renormalise", None)
                if renormalise is not None:  # the default critics: this batch's score units
                    reduce = self.norm.reduce_array if self.norm.is_dist else None
                    d_real, d_fake = renormalise(d_real, d_fake, reduce=reduce)
                # D-Net score = sum of its critics (B, M) -> (B,), batch mean via 1/N
                loss_d = [(r.sum() - f.sum()) / n for r, f in zip(d_real, d_fake)]
            autograd.backward(loss_d)
            check_finite({"Loss_D": loss_d}, epoch, batch)
            self.trainer_d.step(1)
            clip_weights(self.dnet.collect_params(), *self.clamp)
        # the scores were computed before the last update, as Loss_D_real / Loss_D_fake
        separation = [(f.sum(axis=0) - r.sum(axis=0)) / n for r, f in zip(d_real, d_fake)]
        return ([r.sum() / n for r in d_real], [f.sum() / n for f in d_fake], loss_d,
                separation)

    def __call__(self, *device_batch, epoch=0, batch=0):
        shown = epoch + self.epoch_offset            # the epoch of the log, for errors
        n = self.detector.batch_size(*device_batch)   # global batch: Eq. 1's 1/N
        # Teacher once per iteration, no graph; the student's maps once, on the graph: both
        # serve the critic step and the student step.
        t_maps, s_maps, state = self.detector.forward(*device_batch)
        out = {}
        if t_maps is not None:                       # monitored, never optimised
            out[COSINE_LENGTH] = [cosine_length_metric(sm, tm, n)
                                  for sm, tm in zip(s_maps, t_maps)]

        # ---------------- critic step: teacher and student frozen ----------------
        if self._unit_weights_pending:
            self.dnet.set_critic_weights([1.0] * len(self.dnet.critics))
            self._unit_weights_pending = False
        if self.dnet is not None:
            out["Loss_D_real"], out["Loss_D_fake"], out["Loss_D"], separation = \
                self.critic_step(t_maps, s_maps, n, shown, batch)
            out.update(separation_columns(separation))
            if self.balance_interval and batch % self.balance_interval == 0:
                self.balance_critics(s_maps)

        # ---------------- student step: critics frozen ----------------
        # The adversarial term back-propagates through the critics to the student's maps; the
        # critics' own weight gradients are not needed (their trainer does not step here), so
        # they are not computed (benchmarks/README.md: about 8% of a stage-1 iteration).
        adversarial = self.dnet is not None and epoch > self.warmup_epochs \
            if self.warmup_epochs else self.dnet is not None
        with _no_weight_grads(self._critic_weights):
            with autograd.record():
                total, losses, monitors = self.detector.student_loss(
                    t_maps, s_maps, state, self.objective, n, *device_batch)
                if adversarial:                      # + mean D(student), Eq. 1
                    adv = [d.sum() / n for d in self.adversarial_scores(t_maps, s_maps)]
                    total = [t + a for t, a in zip(total, adv)]
            if self.dnet is not None:
                if not adversarial:                  # warm-up: measured, not optimised
                    adv = [d.sum() / n for d in self.adversarial_scores(
                        t_maps, [[m.detach() for m in sm] for sm in s_maps])]
                losses["Loss_G"] = adv
            autograd.backward(total)
            check_finite(losses, shown, batch)
            self.trainer_g.step(1)
        # For the log (as the authors' published logs): Loss_D_real / Loss_D_fake are the
        # D-Net's batch means in the last critic step; Loss_D = real - fake; Loss_G is the
        # adversarial term alone.
        out.update(losses)
        out.update(monitors)
        return out

    def adversarial_scores(self, t_maps, s_maps):
        """The D-Net's scores of the student's maps for the student step: per device (B, M),
        on the autograd graph of ``s_maps`` (call inside ``autograd.record``).

        The default critics score in the units of the critic as the critic step left it: the
        teacher's maps are scored again (no graph) and both sides renormalised
        (:meth:`~gankd_gluon.models.critics.DNet.renormalise`), one critic forward more per
        iteration. Without it the student step read a critic that had just moved, in the units
        measured before the move: at the start of training one Adam step multiplies the raw
        scores' spread by hundreds (fresh clipped weights align), and epoch 1's Loss_G reached
        -950 with an adversarial gradient as many times too large."""
        d_fake = [self.dnet(*sm) for sm in s_maps]
        renormalise = getattr(self.dnet, "renormalise", None)
        if renormalise is None or getattr(self.dnet, "norm", None) != "lipschitz":
            return d_fake
        with autograd.pause():
            d_real = [self.dnet(*tm) for tm in t_maps]
        reduce = self.norm.reduce_array if self.norm.is_dist else None
        return renormalise(d_real, d_fake, reduce=reduce)[1]

    def balance_critics(self, s_maps):
        """Weight the critics so that each gives the same share of the adversarial gradient
        reaching the student's backbone (:mod:`.balance`), measured on every device's maps (the
        graph the step recorded, kept for the student step): each critic's gradient is summed
        over the devices and, on several machines, over the workers before its norm is taken
        (one host read per critic every ``balance_interval`` batches), so that the weights are
        those of the global batch whatever the number of devices and workers."""
        from .balance import balance_weights, critic_gradient_norms
        if self._backbone is None:
            self._backbone = self.detector.backbone_params()
        reduce = None
        if self.norm.is_dist:
            reduce = lambda a: self.norm.reduce_array(a, "critic_balance")  # noqa: E731
        with _no_weight_grads(self._critic_weights):
            norms = critic_gradient_norms(self.dnet, s_maps, self._backbone, reduce=reduce)
        self.dnet.set_critic_weights(balance_weights(norms))
