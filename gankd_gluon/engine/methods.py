"""Which distillation runs: ``--method`` and the one place where KD losses are weighted.

``--method`` is ``gan`` (the paper, default), ``chen`` (Chen et al. 2017: L2-B + CLS-W +
Hints-A), ``ko`` (Ko & Yoo: KL on classification), ``hint`` (Hints-A alone), ``none`` (no
distillation: the student trained alone on the same schedule), or a ``+``-joined set of
components, including Chen's Table 4 ablation names:

=========  =================================================================================
gan        WGAN critics on every feature map (paper Eq. 1)
l2         regression distilled to the teacher's output, ``||R_s - R_t||^2`` (Table 4 "L2")
l2-b       teacher-bounded regression (Chen Eq. 4, "L2-B")
cls        soft-label CE, all classes weight 1 (Table 4 "CLS")
cls-w      soft-label CE with background weight 1.5 (Chen Eq. 3, "CLS-W")
hints      hint L2 between the student's maps and the teacher's, no extra adaptation ("Hints")
hints-a    hint L2 through a 1x1 adaptation layer (Chen Eq. 5-6, Sec. 3.4, "Hints-A")
ko         Ko & Yoo: ``alpha CE(S, GT) + beta KL(T/Temp || S/Temp)``
=========  =================================================================================

The loss blocks (:mod:`gankd_gluon.losses`) hold no weights; :class:`KDObjective` applies
Chen's lambda, gamma, mu, nu and Ko & Yoo's alpha, beta, here and nowhere else.
"""
import mxnet as mx
from mxnet import gluon

__all__ = ["parse_method", "method_name", "KDObjective", "add_method_args", "COMPONENTS"]

COMPONENTS = ("gan", "l2", "l2-b", "cls", "cls-w", "hints", "hints-a", "ko")
ALIASES = {"chen": ("l2-b", "cls-w", "hints-a"), "hint": ("hints-a",), "none": ()}
EXCLUSIVE = [("l2", "l2-b"), ("cls", "cls-w", "ko"), ("hints", "hints-a")]
TEACHER_HEAD = ("l2", "l2-b", "cls", "cls-w", "ko")     # components that need P_t / R_t


def parse_method(text):
    """``'gan+hint'`` -> ``frozenset({'gan', 'hints-a'})``; ``'none'`` -> empty set.

    Raises ``ValueError`` naming the bad part for unknown or conflicting components.
    """
    parts = set()
    for raw in text.lower().split("+"):
        p = raw.strip().replace("_", "-")
        if p in ALIASES:
            parts.update(ALIASES[p])
        elif p in COMPONENTS:
            parts.add(p)
        else:
            raise ValueError("--method %s: unknown part %r; use %s, or a '+' of %s"
                             % (text, raw, ", ".join(["gan", "chen", "ko", "hint", "none"]),
                                ", ".join(COMPONENTS)))
    for group in EXCLUSIVE:
        both = [g for g in group if g in parts]
        if len(both) > 1:
            raise ValueError("--method %s: %s cannot be combined" % (text, " and ".join(both)))
    return frozenset(parts)


def method_name(parts):
    """Canonical name for logs and checkpoints: ``gankd``, ``chen``, ``none``, ``l2-b+cls-w``."""
    if not parts:
        return "none"
    if parts == frozenset({"gan"}):
        return "gankd"
    if parts == frozenset(ALIASES["chen"]):
        return "chen"
    return "+".join(c for c in COMPONENTS if c in parts).replace("gan", "gankd")


def _method_arg(text):
    """argparse type: check ``--method`` at parse time, so a typo is a usage error."""
    import argparse
    try:
        parse_method(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


def add_method_args(parser):
    """``--method`` and the baselines' weights, with the papers' defaults."""
    from ..losses import kd
    from ..usage import nonnegative_float, positive_float, unit_interval
    parser.add_argument("--method", type=_method_arg, default="gan",
                        help="gan (the paper), chen, ko, hint, none, or components joined by "
                             "'+': " + ", ".join(COMPONENTS))
    parser.add_argument("--kd-lambda", type=nonnegative_float, default=kd.CHEN_LAMBDA,
                        help="Chen: weight of the regression loss (paper: 1)")
    parser.add_argument("--kd-gamma", type=nonnegative_float, default=kd.CHEN_GAMMA,
                        help="Chen: weight of the hint loss (paper: 0.5)")
    parser.add_argument("--kd-mu", type=unit_interval, default=kd.CHEN_MU,
                        help="Chen Eq. 2: hard/soft balance of the classification loss")
    parser.add_argument("--kd-nu", type=nonnegative_float, default=kd.CHEN_NU,
                        help="Chen Eq. 4: weight of the teacher-bounded loss (paper: 0.5)")
    parser.add_argument("--kd-margin", type=nonnegative_float, default=kd.CHEN_MARGIN,
                        help="Chen Eq. 4: margin m of the teacher bound")
    parser.add_argument("--kd-bg-weight", type=nonnegative_float, default=kd.CHEN_BG_WEIGHT,
                        help="Chen Eq. 3: background class weight of CLS-W (paper: 1.5)")
    parser.add_argument("--kd-temperature", type=positive_float, default=kd.CHEN_TEMPERATURE,
                        help="Chen: soft-label temperature (paper: 1 for detection)")
    parser.add_argument("--ko-alpha", type=unit_interval, default=kd.KO_YOO_ALPHA,
                        help="Ko & Yoo Eq. 1: weight of CE with ground truth (alpha + beta = 1)")
    parser.add_argument("--ko-temperature", type=positive_float, default=kd.KO_YOO_TEMPERATURE,
                        help="Ko & Yoo Eq. 1: temperature of the KL term")
    parser.add_argument("--hint-mode", choices=("l2", "l1"), default="l2",
                        help="Chen Eq. 5/6: L2 (default) or L1 hint distance")
    parser.add_argument("--monitor-teacher", action="store_true",
                        help="run the teacher in stage 1 even when no term needs it (--method "
                             "none), so that the log's student-teacher distance "
                             "cosine_length_loss_metric is computed for the control too (one "
                             "teacher forward per step; never optimised)")
    return parser


class KDObjective:
    """The student's objective: detection loss plus the chosen distillation terms, weighted.

    Parameters
    ----------
    parts : frozenset of str
        From :func:`parse_method` (``gan`` is handled by the step's critics, not here).
    args : argparse.Namespace
        The weights (``kd_*``, ``ko_*``, ``hint_mode``).
    teacher_channels : list of int
        Channels of each map, for the hint adaptation layers.
    ctx : list of Context

    ``needs_teacher_head`` says whether the step must run the teacher's head (P_t, R_t).
    """

    def __init__(self, parts, args, teacher_channels, ctx):
        from ..losses import kd
        self.parts = parts
        self.args = args
        self.needs_teacher_head = any(p in parts for p in TEACHER_HEAD)
        self.blocks = gluon.nn.HybridSequential(prefix="kd_")
        with self.blocks.name_scope():
            self.soft = self.bounded = self.l2 = self.kl = None
            self.hints = None
            if "cls" in parts or "cls-w" in parts:
                bg = args.kd_bg_weight if "cls-w" in parts else 1.0
                self.soft = kd.SoftTargetCrossEntropy(bg_weight=bg,
                                                      temperature=args.kd_temperature)
            if "l2-b" in parts:
                self.bounded = kd.TeacherBoundedL2(margin=args.kd_margin)
            if "l2" in parts:
                self.l2 = kd.TeacherL2()
            if "ko" in parts:
                self.kl = kd.KLDistillation(temperature=args.ko_temperature)
            if "hints" in parts or "hints-a" in parts:
                self.hints = gluon.nn.HybridSequential(prefix="hint_")
                for ch in teacher_channels:
                    self.hints.add(kd.HintLoss(channels=ch, adapt="hints-a" in parts,
                                               mode=args.hint_mode))
                # the adaptation layers are trained with the student (Chen Sec. 3.4)
                self.blocks.add(self.hints)
        self.blocks.initialize(ctx=ctx)

    def term_names(self):
        """Log columns of the terms this objective computes, in a fixed order."""
        names = []
        if self.soft is not None:
            names.append("KD_soft")
        if self.kl is not None:
            names.append("KD_KL")
        if self.bounded is not None:
            names.append("KD_L2B")
        if self.l2 is not None:
            names.append("KD_L2")
        if self.hints is not None:
            names.append("KD_hint")
        return names

    def params(self):
        """Trainable parameters of the distillation terms (the hint adapters), or None."""
        params = self.blocks.collect_params()
        return params if list(params.keys()) else None

    def __call__(self, s_maps, t_maps, cls_preds, box_preds, t_cls, t_box, cls_targets,
                 box_targets, cls_loss, box_loss, num_pos, batch):
        """Weighted per-device terms; call inside ``autograd.record``.

        The log's ``KD_*`` columns are these weighted terms, as added to the objective; the
        ``train_student_ori_net_*`` columns stay the unweighted hard losses, so they compare
        across methods.

        Parameters
        ----------
        s_maps, t_maps : list (devices) of list (maps) of NDArray (B, C_i, H_i, W_i)
        cls_preds, t_cls : list of NDArray (B, N, C+1); box_preds, t_box : (B, N, 4)
            Student and teacher head outputs (teacher ones None unless needed).
        cls_targets (B, N), box_targets (B, N, 4) : list of NDArray
        cls_loss, box_loss : list of NDArray (B,)
            SSDMultiBoxLoss's hard terms, already divided by ``num_pos``.
        num_pos : float
            Positive anchors over the whole batch (SSDMultiBoxLoss's normaliser).
        batch : float
            Global batch size (the 1/N of per-image terms).

        Returns
        -------
        total : list of NDArray, one scalar per device
        terms : dict of str -> list of NDArray, the weighted KD terms for the log
        """
        from ..losses import kd
        a, p = self.args, self.parts
        n_dev = len(cls_preds)
        terms = {}
        w_cls, w_box = 1.0, 1.0
        if self.soft is not None:                          # Chen Eq. 2
            w_cls = a.kd_mu
            terms["KD_soft"] = [(1 - a.kd_mu) * (self.soft(cp, tc) * kd.ssd_mining_mask(
                cp, ct)).sum() / num_pos for cp, tc, ct in zip(cls_preds, t_cls, cls_targets)]
        if self.kl is not None:                            # Ko & Yoo Eq. 1
            w_cls = a.ko_alpha
            terms["KD_KL"] = [(1 - a.ko_alpha) * (self.kl(cp, tc) * kd.ssd_mining_mask(
                cp, ct)).sum() / num_pos for cp, tc, ct in zip(cls_preds, t_cls, cls_targets)]
        if self.bounded is not None or self.l2 is not None:
            w_box = a.kd_lambda                           # Chen: L = L_cls + lambda L_reg
            name = "KD_L2B" if self.bounded is not None else "KD_L2"
            vals = []
            for bp, tb, ct, bt in zip(box_preds, t_box, cls_targets, box_targets):
                pos = ct > 0                               # positives only (Chen Eq. 4)
                loss = self.bounded(bp, tb, bt) if self.bounded is not None else self.l2(bp, tb)
                vals.append(a.kd_lambda * a.kd_nu * (loss * pos).sum() / num_pos)
            terms[name] = vals
        if self.hints is not None:                         # Chen Eq. 1: gamma L_hint
            terms["KD_hint"] = [a.kd_gamma * sum(h(sm, tm).sum() for h, sm, tm in
                                                  zip(self.hints, s_dev, t_dev)) / batch
                                for s_dev, t_dev in zip(s_maps, t_maps)]
        total = [w_cls * c.sum() + w_box * b.sum() for c, b in zip(cls_loss, box_loss)]
        for vals in terms.values():
            total = [t + v for t, v in zip(total, vals)]
        assert len(total) == n_dev
        return total, terms
