"""Which distillation runs: ``--method``, its one grammar for both detectors, and the table of
distillation terms that the objectives (:class:`KDObjective` for SSD,
:class:`~.frcnn_steps.FasterRCNNKD` for Faster R-CNN) are built from.

``--method`` is ``gan`` (the paper, default), ``chen`` (Chen et al. 2017: L2-B + CLS-W +
Hints-A), ``ko`` (Ko & Yoo: KL on classification, SSD only), ``fgfi`` (Wang et al. 2019,
Faster R-CNN only), ``hint`` (Hints-A alone), ``none`` (no distillation: the student trained
alone on the same schedule), or a ``+``-joined set of components, including Chen's Table 4
ablation names:

=========  =================================================================================
gan        WGAN critics on every feature map (paper Eq. 1)
l2         regression distilled to the teacher's output, ``||R_s - R_t||^2`` (Table 4 "L2")
l2-b       teacher-bounded regression (Chen Eq. 4, "L2-B")
cls        soft-label CE, all classes weight 1 (Table 4 "CLS")
cls-w      soft-label CE with background weight 1.5 (Chen Eq. 3, "CLS-W")
hints      hint L2 between the student's maps and the teacher's, no extra adaptation ("Hints")
hints-a    hint L2 through a 1x1 adaptation layer (Chen Eq. 5-6, Sec. 3.4, "Hints-A")
ko         Ko & Yoo: ``alpha CE(S, GT) + beta KL(T/Temp || S/Temp)`` (SSD)
fgfi       Wang et al.: imitation of the teacher's map near objects (Faster R-CNN)
=========  =================================================================================

Sources: Hong, Yu, Fan, "GAN-Knowledge Distillation for one-stage Object Detection",
arXiv 2019, https://arxiv.org/abs/1906.08467; Chen, Choi, Yu, Han, Chandraker, "Learning
Efficient Object Detection Models with Knowledge Distillation", NIPS 2017; Ko, Yoo,
"Knowledge Distillation based Compact Model Learning Method for Object Detection", ICTC 2020,
https://doi.org/10.1109/ICTC49870.2020.9289463; Wang, Yuan, Zhang, Feng, "Distilling Object
Detectors with Fine-grained Feature Imitation", CVPR 2019, https://arxiv.org/abs/1906.03609.

The loss blocks (:mod:`gankd_gluon.losses`) hold no weights; the objectives apply Chen's
lambda, gamma, mu, nu, Ko & Yoo's alpha and Wang et al.'s lambda, and nowhere else. Adding a
method whose term compares feature maps: its loss block in :mod:`gankd_gluon.losses` and one
:data:`TERMS` entry here (with ``weight``; :func:`map_terms` weighs it for every detector). A
term on the detectors' outputs also needs its weighting in the objective of each detector it
is defined for (:class:`KDObjective`, :class:`~.frcnn_steps.FasterRCNNKD`).
"""
import argparse
import collections

from mxnet import gluon

from ..losses import kd
from ..losses.fgfi import FGFI_LAMBDA, FGFI_PSI
from ..usage import nonnegative_float, positive_float, unit_interval

__all__ = ["Term", "Flag", "TERMS", "DETECTORS", "parse_method", "method_name", "KDObjective",
           "add_method_args", "build_term_blocks", "term_columns", "map_terms", "needs",
           "components", "available_components", "COMPONENTS", "output_terms",
           "check_output_terms", "UnweightedTermError"]

DETECTORS = {"ssd": "SSD", "frcnn": "Faster R-CNN"}

#: A flag of a distillation term: ``parser.add_argument(option, dest=dest, type=type,
#: default=default, help=help)``
Flag = collections.namedtuple("Flag", "option dest type default help")

#: One row per ``--method`` component (the GAN's critics are the step's, not a loss block):
#: ``column`` the log column of its weighted term; ``block(args, channels)`` its loss block
#: (None: no block); ``reads`` the flags (dests) it reads; ``needs`` what the objective must
#: give it (``teacher_head``: the teacher's class / box outputs, ``teacher_maps``: its
#: feature maps); ``detectors`` where it is defined, and ``why_not`` the reason elsewhere;
#: ``group`` components that exclude each other; ``weight``: for a *map term* (a block
#: ``(student map, teacher map) -> loss`` per map, the student's map adapted to the
#: teacher's channels) the dest of the flag it is multiplied by, the objectives then weigh it
#: the same for every detector (:func:`map_terms`); None: the detector's objective weighs it;
#: ``flags``: :class:`Flag` s of its own that :func:`add_method_args` adds. The rows' order
#: is the log columns' order and the order the terms are summed in.
Term = collections.namedtuple(
    "Term", "column block reads needs detectors why_not group weight flags")
Term.__new__.__defaults__ = (None, ())      # weight, flags


def _soft(bg_weight):
    def make(args, channels):
        return kd.SoftTargetCrossEntropy(
            bg_weight=args.kd_bg_weight if bg_weight else 1.0, temperature=args.kd_temperature)
    return make


def _kl(args, channels):
    return kd.KLDistillation(temperature=args.ko_temperature)


def _bounded(args, channels):
    return kd.TeacherBoundedL2(margin=args.kd_margin)


def _l2(args, channels):
    return kd.TeacherL2()


def _hint(adapt):
    def make(args, channels):
        return kd.HintLoss(channels=channels, adapt=adapt, mode=args.hint_mode)
    return make


def _fgfi(args, channels):
    from ..losses.fgfi import FineGrainedImitationLoss
    return FineGrainedImitationLoss(channels)


_BOTH = ("ssd", "frcnn")
TERMS = collections.OrderedDict([
    ("gan", Term("Loss_G", None, (), ("teacher_maps",), _BOTH, None, None)),
    ("cls", Term("KD_soft", _soft(False), ("kd_mu", "kd_temperature"), ("teacher_head",),
                 _BOTH, None, "cls")),
    ("cls-w", Term("KD_soft", _soft(True), ("kd_mu", "kd_temperature", "kd_bg_weight"),
                   ("teacher_head",), _BOTH, None, "cls")),
    ("ko", Term("KD_KL", _kl, ("ko_alpha", "ko_temperature"), ("teacher_head",), ("ssd",),
                "Ko & Yoo's KL distils SSD's classifier (use cls or cls-w)", "cls", flags=(
                    Flag("--ko-alpha", "ko_alpha", unit_interval, kd.KO_YOO_ALPHA,
                         "Ko & Yoo Eq. 1: weight of CE with ground truth (alpha + beta = 1)"),
                    Flag("--ko-temperature", "ko_temperature", positive_float,
                         kd.KO_YOO_TEMPERATURE,
                         "Ko & Yoo Eq. 1: temperature of the KL term")))),
    ("l2-b", Term("KD_L2B", _bounded, ("kd_lambda", "kd_nu", "kd_margin"), ("teacher_head",),
                  _BOTH, None, "l2")),
    ("l2", Term("KD_L2", _l2, ("kd_lambda", "kd_nu"), ("teacher_head",), _BOTH, None, "l2")),
    # Chen Eq. 1: gamma L_hint
    ("hints", Term("KD_hint", _hint(False), ("kd_gamma", "hint_mode"), ("teacher_maps",),
                   _BOTH, None, "hints", weight="kd_gamma")),
    ("hints-a", Term("KD_hint", _hint(True), ("kd_gamma", "hint_mode"), ("teacher_maps",),
                     _BOTH, None, "hints", weight="kd_gamma")),
    # fgfi and the hints both imitate the backbone map: one of them
    ("fgfi", Term("KD_FGFI", _fgfi, ("fgfi_lambda", "fgfi_psi"), ("teacher_maps",),
                  ("frcnn",), "Wang et al.'s imitation mask is built from the RPN's anchors",
                  "hints", flags=(
                      Flag("--fgfi-lambda", "fgfi_lambda", nonnegative_float, FGFI_LAMBDA,
                           "Wang et al. 2019 Eq. 3: imitation weight"),
                      Flag("--fgfi-psi", "fgfi_psi", positive_float, FGFI_PSI,
                           "Wang et al. 2019 Sec. 3.1: mask threshold factor")))),
])

#: Components in the order of canonical run names (``gankd+hints-a``, ``l2-b+cls-w``); later
#: :data:`TERMS` entries follow in table order (:func:`components`)
COMPONENTS = ("gan", "l2", "l2-b", "cls", "cls-w", "hints", "hints-a", "ko", "fgfi")
ALIASES = {"chen": ("l2-b", "cls-w", "hints-a"), "hint": ("hints-a",), "none": ()}


def method_settings(text):
    """The settings (argparse dests) the terms of ``--method text`` read, sorted: the
    distillation weights and temperatures a resumed run must share with its checkpoint.

    ``'chen'`` -> ``['hint_mode', 'kd_bg_weight', 'kd_gamma', 'kd_lambda', 'kd_margin',
    'kd_mu', 'kd_nu', 'kd_temperature']``; ``'gan'`` and ``'none'`` -> ``[]`` (the critics'
    settings are run settings of their own). Unknown parts are ignored (``--method`` itself
    is checked where it is parsed).
    """
    parts = set()
    for raw in (text or "").lower().split("+"):
        p = raw.strip().replace("_", "-")
        parts.update(ALIASES.get(p, (p,)))
    return sorted({r for p in parts if p in TERMS for r in TERMS[p].reads})


def components():
    """Every :data:`TERMS` component, in canonical run-name order."""
    return [c for c in COMPONENTS if c in TERMS] + [c for c in TERMS if c not in COMPONENTS]


def parse_method(text, detector="ssd"):
    """``'gan+hint'`` -> ``frozenset({'gan', 'hints-a'})``; ``'none'`` -> empty set.

    Parameters
    ----------
    text : str
        ``--method``: aliases (``gan``, ``chen``, ``hint``, ``none``) and :data:`TERMS`
        components joined by ``+``, case and ``_``/``-`` insensitive.
    detector : str
        A key of :data:`DETECTORS`: components defined for another detector are refused.

    Raises
    ------
    ValueError
        Naming the bad part: unknown, not defined for ``detector``, or two components of one
        :data:`TERMS` group.
    """
    parts = set()
    for raw in text.lower().split("+"):
        p = raw.strip().replace("_", "-")
        if p in ALIASES:
            parts.update(ALIASES[p])
        elif p in TERMS:
            parts.add(p)
        else:
            what = "unknown part %r" % raw if p else "empty part (a '+' too many)"
            raise ValueError("--method %s: %s; use %s, or a '+' of %s"
                             % (text, what, ", ".join(_named_methods(detector)),
                                ", ".join(available_components(detector))))
    for p in sorted(parts, key=components().index):
        if detector not in TERMS[p].detectors:
            raise ValueError("--method %s: %s is not defined for %s: %s"
                             % (text, p, DETECTORS[detector], TERMS[p].why_not))
    groups = collections.OrderedDict()
    for p in TERMS:
        if p in parts and TERMS[p].group is not None:
            groups.setdefault(TERMS[p].group, []).append(p)
    for both in groups.values():
        if len(both) > 1:
            raise ValueError("--method %s: %s cannot be combined (choose one)"
                             % (text, " and ".join(both)))
    return frozenset(parts)


def _named_methods(detector):
    """The methods the papers name (``gan``, ``chen``, ``ko``, ``fgfi``, ``hint``, ``none``)
    that are defined for ``detector``: an alias when all its components are."""
    return [m for m in ("gan", "chen", "ko", "fgfi", "hint", "none")
            if all(detector in TERMS[c].detectors for c in ALIASES.get(m, (m,)))]


def available_components(detector):
    """The components defined for ``detector``, in canonical order."""
    return [c for c in components() if detector in TERMS[c].detectors]


def method_name(parts):
    """Canonical name for logs and checkpoints: ``gankd``, ``chen``, ``none``, ``l2-b+cls-w``,
    ``gankd+fgfi``."""
    if not parts:
        return "none"
    if parts == frozenset({"gan"}):
        return "gankd"
    if parts == frozenset(ALIASES["chen"]):
        return "chen"
    return "+".join(c for c in components() if c in parts).replace("gan", "gankd")


def term_columns(parts):
    """Log columns of the distillation terms of ``parts`` (not ``gan``), in :data:`TERMS`
    order."""
    return [t.column for p, t in TERMS.items() if p in parts and t.block is not None]


def needs(parts, what):
    """Whether a component of ``parts`` needs ``what`` (a :data:`TERMS` ``needs`` entry)."""
    return any(what in TERMS[p].needs for p in parts)


def map_terms(parts, blocks, args, s_maps, t_maps, n):
    """The weighted map terms of ``parts`` on one device: for each component with a
    :data:`TERMS` ``weight``, ``args.<weight> * sum_i block_i(s_i, t_i).sum() / n``.

    Parameters
    ----------
    parts : frozenset of str
    blocks : dict of component -> list of HybridBlock
        One block per map (:func:`build_term_blocks`).
    args : argparse.Namespace
    s_maps, t_maps : list of NDArray, each (B, C_i, H_i, W_i)
        The student's maps (adapted to the teacher's channels where the detector adapts
        them) and the teacher's, of one device.
    n : float
        Global batch size: the terms are per-image sums, averaged over the whole batch.

    Returns
    -------
    OrderedDict of log column -> NDArray scalar, in :data:`TERMS` order.
    """
    out = collections.OrderedDict()
    for p, t in TERMS.items():
        if p in parts and t.weight is not None:
            out[t.column] = getattr(args, t.weight) * sum(
                b(s, tm).sum() for b, s, tm in zip(blocks[p], s_maps, t_maps)) / n
    return out


class UnweightedTermError(RuntimeError):
    """A :data:`TERMS` entry weighted inside the objectives (``weight=None``) names a detector
    whose objective does not weigh it: a run would train without the term it asked for."""


def output_terms(detector):
    """The components of :data:`TERMS` defined for ``detector`` that its objective must
    weigh itself: those with a loss block and no ``weight`` (the output-level terms: soft
    labels, bounded regression, KL, imitation), in table order."""
    return [p for p, t in TERMS.items()
            if detector in t.detectors and t.block is not None and t.weight is None]


def check_output_terms(detector, weighted, objective):
    """Refuse to start when an output-level term of ``detector`` (:func:`output_terms`) is not
    one the detector's objective weighs.

    A map term is weighted for every detector by :func:`map_terms`; an output-level term
    reads the detector's own outputs and normalisers, so each objective lists the terms it
    implements (``OUTPUT_TERMS``). A :data:`TERMS` entry added for a detector without its
    weighting there would otherwise build its block and log nothing, and the student would
    train without it under the method's name.

    Parameters
    ----------
    detector : str
        A key of :data:`DETECTORS`.
    weighted : iterable of str
        The components the objective weighs (``KDObjective.OUTPUT_TERMS``).
    objective : str
        The objective's name, for the message.

    Raises
    ------
    UnweightedTermError
        Naming the terms, the detector and the objective.
    """
    missing = [p for p in output_terms(detector) if p not in set(weighted)]
    if missing:
        raise UnweightedTermError(
            "TERMS lists %s for %s, but %s does not weigh %s: add %s weighting to %s.__call__ "
            "or remove %r from the entry's detectors (docs/extending.md)"
            % (", ".join(missing), DETECTORS[detector], objective,
               "it" if len(missing) == 1 else "them", "its" if len(missing) == 1 else "their",
               objective, detector))


def build_term_blocks(parts, args, channels):
    """The loss blocks of ``parts``' distillation terms, in :data:`TERMS` order.

    Parameters
    ----------
    parts : frozenset of str
    args : argparse.Namespace
        The flags of :func:`add_method_args`.
    channels : list of int
        The teacher's channels of each map the term sees (the hint and imitation adapters'
        output); blocks of one map per device get ``channels[0]``.

    Returns
    -------
    OrderedDict of component -> HybridBlock, or list of HybridBlock (one per map) for the
    components that need the teacher's maps.
    """
    out = collections.OrderedDict()
    for p, t in TERMS.items():
        if p in parts and t.block is not None:
            if "teacher_maps" in t.needs:
                out[p] = [t.block(args, ch) for ch in channels]
            else:
                out[p] = t.block(args, None)
    return out


def _method_arg(detector):
    """argparse type: check ``--method`` at parse time, so a typo is a usage error."""
    def check(text):
        try:
            parse_method(text, detector)
        except ValueError as err:
            # argparse prefixes "argument --method: " already
            raise argparse.ArgumentTypeError(
                str(err).replace("--method %s: " % text, "", 1)) from err
        return text
    check.__name__ = "method"
    return check


def add_method_args(parser, detector="ssd"):
    """``--method`` (checked for ``detector``), Chen et al.'s weights (shared by five
    components) and the :data:`TERMS` flags of the components defined for ``detector``, with
    the papers' defaults.

    Raises
    ------
    ValueError
        When a :data:`TERMS` entry defined for ``detector`` reads (``reads``, ``weight``) a
        value that no flag sets: a new term's typo stops every script at once, not the
        training at its first step.
    """
    dests = set()

    def add(*flags, **kwargs):
        dests.add(parser.add_argument(*flags, **kwargs).dest)

    aliases = {"ssd": "gan (the paper), chen, ko, hint, none",
               "frcnn": "gan (the paper), chen (Chen et al. on the RPN, RCNN and the backbone "
                        "hint), fgfi (Wang et al. 2019, Table 3's comparison row), hint, none"}
    add("--method", type=_method_arg(detector), default="gan",
        help=aliases[detector] + ", or components joined by '+': "
        + ", ".join(available_components(detector)))
    add("--kd-lambda", type=nonnegative_float, default=kd.CHEN_LAMBDA,
        help="Chen: weight of the regression loss (paper: 1)")
    add("--kd-gamma", type=nonnegative_float, default=kd.CHEN_GAMMA,
        help="Chen: weight of the hint loss (paper: 0.5)")
    add("--kd-mu", type=unit_interval, default=kd.CHEN_MU,
        help="Chen Eq. 2: hard/soft balance of the classification loss")
    add("--kd-nu", type=nonnegative_float, default=kd.CHEN_NU,
        help="Chen Eq. 4: weight of the teacher-bounded loss (paper: 0.5)")
    add("--kd-margin", type=nonnegative_float, default=kd.CHEN_MARGIN,
        help="Chen Eq. 4: margin m of the teacher bound")
    add("--kd-bg-weight", type=nonnegative_float, default=kd.CHEN_BG_WEIGHT,
        help="Chen Eq. 3: background class weight of CLS-W (paper: 1.5)")
    add("--kd-temperature", type=positive_float, default=kd.CHEN_TEMPERATURE,
        help="Chen: soft-label temperature (paper: 1 for detection)")
    add("--hint-mode", choices=("l2", "l1"), default="l2",
        help="Chen Eq. 5/6: L2 or L1 hint distance")
    for c in available_components(detector):     # the terms' own flags
        for f in TERMS[c].flags:
            add(f.option, dest=f.dest, type=f.type, default=f.default,
                help=f.help)
    add("--monitor-teacher", action="store_true",
        help="run the teacher in stage 1 even when no term needs it (--method "
             "none), so that the log's student-teacher distance "
             "cosine_length_loss_metric is computed for the control too (one "
             "teacher forward per step; never optimised)")
    for c in available_components(detector):
        unset = [d for d in TERMS[c].reads + (TERMS[c].weight,) if d and d not in dests]
        if unset:
            raise ValueError("TERMS[%r] reads %s, which no flag sets (add a Flag with that "
                             "dest to its flags)" % (c, ", ".join(unset)))
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

    #: the output-level terms (:func:`output_terms`) weighted in :meth:`__call__`
    OUTPUT_TERMS = ("cls", "cls-w", "ko", "l2-b", "l2")

    def __init__(self, parts, args, teacher_channels, ctx):
        self.parts = parts
        self.args = args
        self.needs_teacher_head = needs(parts, "teacher_head")
        self.blocks = gluon.nn.HybridSequential(prefix="kd_")
        with self.blocks.name_scope():
            made = build_term_blocks(parts, args, teacher_channels)
            # the map terms' blocks, one per map, each term's in one container (the hint
            # adaptation layers are trained with the student, Chen Sec. 3.4)
            self.map_blocks = collections.OrderedDict()
            for p, blocks in made.items():
                if TERMS[p].weight is not None:
                    self.map_blocks[p] = gluon.nn.HybridSequential(
                        prefix="hint_" if p in ("hints", "hints-a") else p.replace("-", "_") + "_")
                    for b in blocks:
                        self.map_blocks[p].add(b)
                    self.blocks.add(self.map_blocks[p])
        self.soft = made.get("cls", made.get("cls-w"))
        self.kl = made.get("ko")
        self.bounded = made.get("l2-b")
        self.l2 = made.get("l2")
        self.blocks.initialize(ctx=ctx)

    def term_names(self):
        """Log columns of the terms this objective computes, in a fixed order."""
        return term_columns(self.parts)

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
        a = self.args
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
        if self.map_blocks:                                # e.g. Chen Eq. 1: gamma L_hint
            per_device = [map_terms(self.parts, self.map_blocks, a, s_dev, t_dev, batch)
                          for s_dev, t_dev in zip(s_maps, t_maps)]
            for name in per_device[0]:
                terms[name] = [d[name] for d in per_device]
        total = [w_cls * c.sum() + w_box * b.sum() for c, b in zip(cls_loss, box_loss)]
        for name in self.term_names():                     # in TERMS order
            total = [t + v for t, v in zip(total, terms[name])]
        assert len(total) == n_dev
        return total, terms
