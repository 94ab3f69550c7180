"""Classic distillation losses for SSD: Chen et al. NIPS 2017 and Ko & Yoo ICTC 2020.

The baselines the adversarial method of Hong, Yu, Fan ("GAN-Knowledge Distillation for one-stage
Object Detection", arXiv:1906.08467, 2019) is compared against here, named as in Chen et al.'s
Table 4:

========================  ========================================================  =========
block                     loss                                                      Table 4
========================  ========================================================  =========
SoftTargetCrossEntropy    ``-sum_c w_c P_t,c log P_s,c`` (Chen Eq. 2-3)             CLS, CLS-W
TeacherBoundedL2          ``||R_s - y||^2`` if worse than the teacher (Chen Eq. 4)  L2-B
TeacherL2                 ``||R_s - R_t||^2``                                       L2
HintLoss                  ``||adapt(V) - Z||`` L2 or L1 (Chen Eq. 5-6, Sec. 3.4)    Hints(-A)
KLDistillation            ``KL(P_t || P_s)`` at temperature Temp (Ko & Yoo Eq. 1)   -
========================  ========================================================  =========

Every block is a plain HybridBlock, student first, with no weight inside:
the training step (:mod:`gankd_gluon.engine.methods`) applies Chen's lambda, gamma, mu, nu and
Ko & Yoo's alpha, beta, whose paper values are the module constants below. The blocks return
per-anchor (B, N) or per-sample (B,) values; the caller masks and normalises them the way
GluonCV's ``SSDMultiBoxLoss`` does its hard terms (sum over the chosen anchors divided by the
positives of the whole batch), so that for instance Chen's Eq. 2 reads::

    mask = ssd_mining_mask(cls_preds, cls_targets)            # anchors of the hard CE
    L_cls = mu * cls_loss + (1 - mu) * (soft(cls_preds, t_cls) * mask).sum() / num_pos

The teacher's inputs go through ``stop_gradient`` inside each block: only the student (and a
hint adaptation layer) learns. That is a graph cut, not a weight.

Chen's "RoIs" on SSD
--------------------
Chen's classification losses are written for Faster R-CNN, whose RCN and RPN classify a sampled
batch of RoIs/anchors (Eq. 1: ``1/N sum_i L_cls``). SSD has no RoIs: it classifies every
anchor, and its hard loss picks the anchors itself, by hard negative mining.
:func:`ssd_mining_mask` returns exactly those anchors, and the soft and KL terms use the same
mask, so the hard and soft halves of Eq. 2 (and of Ko & Yoo's Eq. 1) see the same anchors.
"""
import inspect

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

__all__ = ["ssd_mining_mask", "SoftTargetCrossEntropy", "TeacherBoundedL2", "TeacherL2",
           "HintLoss", "KLDistillation",
           "CHEN_LAMBDA", "CHEN_GAMMA", "CHEN_MU", "CHEN_NU", "CHEN_BG_WEIGHT",
           "CHEN_TEMPERATURE", "CHEN_MARGIN",
           "KO_YOO_ALPHA", "KO_YOO_BETA", "KO_YOO_TEMPERATURE"]

# ---- Chen, Choi, Yu, Han, Chandraker, "Learning Efficient Object Detection Models with
# Knowledge Distillation", NIPS 2017, https://papers.nips.cc/paper/6676-learning-efficient-
# object-detection-models-with-knowledge-distillation ------------------------------------------
# Eq. 1: "lambda and gamma ... We fix them to be 1 and 0.5, respectively, throughout the
# experiments."
CHEN_LAMBDA = 1.0
CHEN_GAMMA = 0.5
# Eq. 2 names mu ("the parameter to balance the hard and soft losses") but the paper gives no
# value (nor does Seungki Kim's summary, "Knowledge Distillation for Object Detection 2:
# (Survey) 'Learning Efficient Object Detection Models with Knowledge Distillation'",
# Analytics Vidhya on Medium, 30 May 2020; the supplementary material is not available). 0.5
# weighs the hard and soft losses equally: our choice, not the paper's.
CHEN_MU = 0.5
# Eq. 4: "nu is a weight parameter (set as 0.5 in our experiments)".
CHEN_NU = 0.5
# Sec. 3.2: "we use w_0 = 1.5 for the background class and w_i = 1 for all the others in
# experiments on the PASCAL dataset."
CHEN_BG_WEIGHT = 1.5
# Sec. 3.2: "For even harder problems such as object detection, we find using no temperature
# parameter at all (equivalent to T = 1) in the distillation loss works the best".
CHEN_TEMPERATURE = 1.0
# Eq. 4 has a margin m but the paper gives no value: 0 (L_b is active exactly when the
# student's error is above the teacher's) is our choice.
CHEN_MARGIN = 0.0

# ---- Ko, Yoo, "Knowledge Distillation based Compact Model Learning Method for Object
# Detection", ICTC 2020 (International Conference on Information and Communication Technology
# Convergence), https://doi.org/10.1109/ICTC49870.2020.9289463 ----------------------------------
# Eq. 1: Loss = alpha CE(S_conf, GT) + beta KLDiv(T_conf/Temp, S_conf/Temp), alpha + beta = 1.
# The paper gives no value for alpha, beta or Temp. Our choices: alpha = beta = 0.5 (the even
# split allowed by alpha + beta = 1, and Chen's mu above), Temp = 1 (Chen Sec. 3.2 found T = 1
# best for detection; and with no Temp^2 factor in Eq. 1, a larger Temp would also shrink the
# KL term's gradients by about 1/Temp^2).
KO_YOO_ALPHA = 0.5
KO_YOO_BETA = 1.0 - KO_YOO_ALPHA
KO_YOO_TEMPERATURE = 1.0


def ssd_mining_mask(*args, **kwargs):
    """The anchors of SSDMultiBoxLoss's classification term: positives + mined hard negatives.

    ``ssd_mining_mask(cls_preds, cls_targets, negative_mining_ratio=3, min_hard_negatives=0)``;
    a leading ``F`` (``mx.nd`` or ``mx.sym``) may be passed first, to call it from a
    ``hybrid_forward``.

    The mask is computed with GluonCV's own ops (``gluoncv/loss.py``, SSDMultiBoxLoss.forward,
    lines 175-182): per-anchor CE of the student ``-pick(log_softmax(cls_preds), cls_targets)``;
    negatives ranked by it with ``argsort().argsort()`` of ``CE * (pos - 1)``; an anchor is kept
    if positive or if its rank is below ``max(min_hard_negatives, ratio * num_pos)``, with
    ``num_pos`` counted per sample. So ``(CE * mask).sum() / max(1, num_pos over the batch)``
    is SSDMultiBoxLoss's ``cls_loss`` (checked in the tests).

    Chen et al.'s classification distillation (Eq. 1-3) is defined on Faster R-CNN's RoIs, a
    sampled batch of proposals. On SSD the anchors play the RoIs' part, and this mask is how the
    soft (:class:`SoftTargetCrossEntropy`) and KL (:class:`KLDistillation`) terms pick them, so
    that they see the same anchors as the hard loss they are mixed with (Eq. 2). Why not all
    anchors: about 99% of SSD's anchors are negatives (6132 anchors at 512 px against a handful
    of objects), and most are easy background the teacher and student already agree on.
    Distilling on all of them would drown the positives, which is the imbalance Chen's
    background weight addresses, only worse by two orders of magnitude; the hard loss has
    already chosen the informative negatives (3 per positive), so the soft loss reuses its
    choice. The ranking uses the student's CE, as the hard loss does, not the teacher's.

    Parameters
    ----------
    cls_preds : NDArray (B, N, C+1)
        Student class logits (class 0 = background, GluonCV SSD).
    cls_targets : NDArray (B, N)
        SSDTargetGenerator's targets: 0 background, c+1 for class c (no ignore label).
    negative_mining_ratio : float
        Hard negatives per positive (SSDMultiBoxLoss's default 3); negative values act as 0.
    min_hard_negatives : int
        At least this many negatives per sample (SSDMultiBoxLoss's default 0).

    Returns
    -------
    NDArray (B, N), 1.0 on kept anchors and 0.0 elsewhere, dtype of ``cls_targets``; no
    gradient flows through it.
    """
    if args and inspect.ismodule(args[0]):
        return _mining_mask(*args, **kwargs)
    return _mining_mask(mx.nd, *args, **kwargs)


def _mining_mask(F, cls_preds, cls_targets, negative_mining_ratio=3, min_hard_negatives=0):
    ratio = max(0, negative_mining_ratio)              # as SSDMultiBoxLoss.__init__
    min_neg = max(0, min_hard_negatives)
    cls_preds = F.stop_gradient(cls_preds)
    pred = F.log_softmax(cls_preds, axis=-1)
    pos = cls_targets > 0
    cls_loss = -F.pick(pred, cls_targets, axis=-1, keepdims=False)
    rank = (cls_loss * (pos - 1)).argsort(axis=1).argsort(axis=1)
    hard_negative = F.broadcast_lesser(
        rank, F.maximum(min_neg, pos.sum(axis=1) * ratio).expand_dims(-1))
    return F.stop_gradient((pos + hard_negative) > 0)


class SoftTargetCrossEntropy(HybridBlock):
    """Class-weighted soft-label cross entropy, Chen et al. Eq. 3 (the soft half of Eq. 2).

    ``L_soft(P_s, P_t) = -sum_c w_c P_t,c log P_s,c`` per anchor, with ``P = softmax(Z / T)``,
    ``w_0 = bg_weight`` for the background (class 0 in GluonCV's SSD) and ``w_c = 1`` for the
    object classes. ``bg_weight=1`` is the plain soft CE of Hinton et al. (Table 4 "CLS"),
    ``bg_weight=1.5`` Chen's weighted one ("CLS-W", their PASCAL setting).

    No ``T^2`` factor: Chen's Eq. 2-3 have none (Hinton et al. scale the soft term by ``T^2``),
    and at Chen's ``T = 1`` it makes no difference. The teacher gets no gradient.

    Use it on the anchors of :func:`ssd_mining_mask`; Eq. 2's ``mu`` is applied by the caller.

    Parameters
    ----------
    bg_weight : float
        ``w_0``, the background class weight (Chen: 1.5).
    temperature : float
        ``T`` of both softmaxes (Chen: 1).

    Inputs: student_logits (B, N, C+1), teacher_logits (B, N, C+1), raw class scores Z.
    Output: (B, N) per-anchor loss.
    """

    def __init__(self, bg_weight=CHEN_BG_WEIGHT, temperature=CHEN_TEMPERATURE, **kwargs):
        super(SoftTargetCrossEntropy, self).__init__(**kwargs)
        self._bg_weight = float(bg_weight)
        self._temperature = float(temperature)

    def hybrid_forward(self, F, student_logits, teacher_logits):
        t = self._temperature
        p_t = F.softmax(F.stop_gradient(teacher_logits) / t, axis=-1)
        log_p_s = F.log_softmax(student_logits / t, axis=-1)
        ce = p_t * log_p_s                                      # (B, N, C+1)
        # w_c = 1 + (w_0 - 1)[c == 0]: add the background's extra weight without knowing C
        bg = F.slice_axis(ce, axis=-1, begin=0, end=1).squeeze(axis=-1)
        return -(F.sum(ce, axis=-1) + (self._bg_weight - 1.0) * bg)


class TeacherBoundedL2(HybridBlock):
    """Teacher-bounded L2 regression loss ``L_b``, Chen et al. Eq. 4 (Table 4 "L2-B").

    ``L_b = ||R_s - y||^2`` if ``||R_s - y||^2 + m > ||R_t - y||^2``, else 0, per anchor, with
    ``||.||^2`` the squared Euclidean norm over the 4 box offsets. The student is pushed
    towards the ground truth only while its error (plus the margin) is above the teacher's.
    Eq. 4's ``L_reg = L_sL1 + nu L_b``: the smooth L1 term is SSDMultiBoxLoss's box loss, and
    ``nu`` is applied by the caller.

    Apply it on positive (matched) anchors only, ``cls_targets > 0``, as the box loss is:
    elsewhere ``y`` is 0 by convention and means nothing. The caller masks.

    Parameters
    ----------
    margin : float
        ``m``; the paper gives no value (see :data:`CHEN_MARGIN`).

    Inputs: student_reg (B, N, 4), teacher_reg (B, N, 4), target (B, N, 4), all encoded offsets
    (GluonCV's NormalizedBoxCenterEncoder, as ``box_preds`` / ``box_targets``).
    Output: (B, N) per-anchor loss.
    """

    def __init__(self, margin=CHEN_MARGIN, **kwargs):
        super(TeacherBoundedL2, self).__init__(**kwargs)
        self._margin = float(margin)

    def hybrid_forward(self, F, student_reg, teacher_reg, target):
        err_s = F.sum(F.square(student_reg - target), axis=-1)                       # (B, N)
        err_t = F.sum(F.square(F.stop_gradient(teacher_reg) - target), axis=-1)
        active = F.stop_gradient((err_s + self._margin) > err_t)
        return err_s * active


class TeacherL2(HybridBlock):
    """Regression distilled straight to the teacher's output, ``||R_s - R_t||^2`` (Table 4 "L2").

    The baseline Chen et al. Sec. 4.3 compare Eq. 4 against ("directly parroting to teacher's
    output"). Squared Euclidean norm over the 4 offsets; the teacher gets no gradient. Apply it
    on positive anchors only (the caller masks), like :class:`TeacherBoundedL2`.

    Inputs: student_reg (B, N, 4), teacher_reg (B, N, 4). Output: (B, N) per-anchor loss.
    """

    def hybrid_forward(self, F, student_reg, teacher_reg):
        return F.sum(F.square(student_reg - F.stop_gradient(teacher_reg)), axis=-1)


class HintLoss(HybridBlock):
    """Hint loss with a 1x1 adaptation layer, Chen et al. Eq. 5-6 and Sec. 3.4.

    ``L_hint = mean_{c,h,w} (adapt(V) - Z)^2`` (``mode='l2'``, Eq. 5) or ``mean |adapt(V) - Z|``
    (``mode='l1'``, Eq. 6), per sample, with ``V`` the student's (guided) map, ``Z`` the
    teacher's (hint) map and ``adapt`` a learnable 1x1 convolution (with bias) to the teacher's
    channels, part of this block and trained with the student. Chen found the adaptation layer
    matters even when channel counts match (Table 4: "Hints-A" 58.0 vs "Hints" 56.9), so it is
    on by default; ``adapt=False`` is "Hints", a direct comparison of equal-shaped maps.

    Normalisation: Eq. 5/6 write ``||V - Z||_2^2`` and ``||V - Z||_1``, sums over all neurons of
    the map. We take the mean over C, H, W instead (a deviation from the paper's sum), so that
    ``gamma = 0.5`` (Eq. 1) keeps the same meaning on every map: SSD's maps range from
    1024x32x32 to 256x1x1, and a sum would weigh them by their size (a factor of 4096) and
    dwarf the detection loss. The caller averages over the batch and sums over maps.

    The 1x1 conv leaves H, W unchanged: student and teacher maps must have the same spatial
    size (true for the student/teacher pairs of the 6-map SSD512 presets, all at strides
    16..512: gluoncv 0.10.5 ``gluoncv/model_zoo/ssd/presets.py``; Chen's padding trick for
    different resolutions is not implemented). Use one HintLoss per map.

    Parameters
    ----------
    channels : int or None
        Teacher channels C_t, the adapter's output; required when ``adapt``. The adapter's
        input channels are inferred on the first call.
    adapt : bool
        True: "Hints-A" (1x1 conv adaptation); False: "Hints" (no parameters).
    mode : {'l2', 'l1'}
        Eq. 5 (squared difference) or Eq. 6 (absolute difference).

    Inputs: student_feat (B, C_s, H, W), teacher_feat (B, C_t, H, W).
    Output: (B,) per-sample loss. The teacher map gets no gradient.
    """

    def __init__(self, channels=None, adapt=True, mode="l2", **kwargs):
        super(HintLoss, self).__init__(**kwargs)
        if mode not in ("l2", "l1"):
            raise ValueError("HintLoss mode must be 'l2' or 'l1', got %r" % (mode,))
        if adapt and not channels:
            raise ValueError("HintLoss(adapt=True) needs channels= (the teacher map's channels)")
        self._mode = mode
        self.adapt = None
        if adapt:
            with self.name_scope():
                self.adapt = nn.Conv2D(channels, kernel_size=1, in_channels=0)

    def hybrid_forward(self, F, student_feat, teacher_feat):
        if self.adapt is not None:
            student_feat = self.adapt(student_feat)
        elif isinstance(student_feat, mx.nd.NDArray) and student_feat.shape != teacher_feat.shape:
            # hybridized, the shape inference of the subtraction below fails instead
            raise ValueError("HintLoss(adapt=False) needs equal shapes, got student %s and "
                             "teacher %s; use adapt=True" % (student_feat.shape,
                                                             teacher_feat.shape))
        diff = student_feat - F.stop_gradient(teacher_feat)
        dist = F.square(diff) if self._mode == "l2" else F.abs(diff)
        return F.mean(dist, axis=0, exclude=True)


class KLDistillation(HybridBlock):
    """KL distillation on class scores, Ko & Yoo Eq. 1 (the ``beta`` term).

    ``KL(P_t || P_s) = sum_c P_t,c (log P_t,c - log P_s,c)`` per anchor, with
    ``P_t = softmax(T_conf / Temp)`` and ``P_s = softmax(S_conf / Temp)``. Eq. 1 writes
    ``KLDiv(T_conf/Temp, S_conf/Temp)`` without saying which way; we take the teacher as the
    target distribution, as Hinton et al. and PyTorch's
    ``KLDivLoss(log_softmax(S/Temp), softmax(T/Temp))`` do. It differs from the unweighted
    :class:`SoftTargetCrossEntropy` only by the teacher's entropy, a constant for the student.

    No ``Temp^2`` factor: Ko & Yoo's Eq. 1 has none (Hinton et al. multiply the soft term by
    ``T^2`` to keep its gradients' scale as T varies), so none is applied; at Temp = 1 this
    makes no difference. Eq. 1's ``alpha`` and ``beta`` are applied by the caller, on the
    anchors of :func:`ssd_mining_mask` (Ko & Yoo distil classification only).

    Parameters
    ----------
    temperature : float
        ``Temp``; the paper gives no value (see :data:`KO_YOO_TEMPERATURE`).

    Inputs: student_logits (B, N, C+1), teacher_logits (B, N, C+1), raw class scores.
    Output: (B, N) per-anchor KL, >= 0. The teacher gets no gradient.
    """

    def __init__(self, temperature=KO_YOO_TEMPERATURE, **kwargs):
        super(KLDistillation, self).__init__(**kwargs)
        self._temperature = float(temperature)

    def hybrid_forward(self, F, student_logits, teacher_logits):
        t = self._temperature
        log_p_t = F.log_softmax(F.stop_gradient(teacher_logits) / t, axis=-1)
        log_p_s = F.log_softmax(student_logits / t, axis=-1)
        return F.sum(F.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
