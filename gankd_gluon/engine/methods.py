"""Which distillation runs: ``--method``, its one grammar for both detectors, the table of
distillation terms, and the one objective built from it for every detector
(:class:`KDObjective`).

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

The loss blocks (:mod:`gankd_gluon.losses`) hold no weights; the objective applies Chen's
lambda, gamma, mu, nu, Ko & Yoo's alpha and Wang et al.'s lambda, and nowhere else. Adding a
method whose term compares feature maps: its loss block in :mod:`gankd_gluon.losses` and one
:data:`TERMS` entry here (with ``weight``; :func:`map_terms` weighs it for every detector). A
term on the detectors' outputs also needs its function in the output-term table of each
detector it is defined for (:data:`~.steps.SSD_OUTPUT_TERMS`,
:data:`~.frcnn_steps.FRCNN_OUTPUT_TERMS`), which reads that detector's tensors and
normalisers.
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
#: Where each detector's output-level terms are computed (named when one is missing)
OUTPUT_TABLES = {"ssd": "SSD_OUTPUT_TERMS (gankd_gluon/engine/steps.py)",
                 "frcnn": "FRCNN_OUTPUT_TERMS (gankd_gluon/engine/frcnn_steps.py)"}

#: A flag of a distillation term: ``parser.add_argument(option, dest=dest, type=type,
#: default=default, help=help)``
Flag = collections.namedtuple("Flag", "option dest type default help")

#: One row per ``--method`` component (the GAN's critics are the step's, not a loss block):
#: ``column`` the log column of its weighted term; ``block(args, channels)`` its loss block
#: (None: no block); ``reads`` the flags (dests) it reads; ``needs`` what the detector must
#: give it (``teacher_head``: the teacher's class / box outputs, ``teacher_maps``: its
#: feature maps, ``imitation_mask``: Wang et al.'s mask near objects); ``detectors`` where it
#: is defined, and ``why_not`` the reason elsewhere; ``group`` components that exclude each
#: other; ``weight``: for a *map term* (a block ``(student map, teacher map) -> loss`` per
#: map, the student's map adapted to the teacher's channels) the dest of the flag it is
#: multiplied by, the objective then weighs it the same for every detector
#: (:func:`map_terms`); None: the detector computes it (its table of output-level terms);
#: ``flags``: :class:`Flag` s of its own that :func:`add_method_args` adds; ``hard``:
#: ``(loss, dest)`` when the term reweighs the detection loss's ``'cls'`` or ``'box'`` terms
#: by that flag (:meth:`KDObjective.hard_weights`). The rows' order is the log columns' order
#: and the order the terms are summed in.
Term = collections.namedtuple(
    "Term", "column block reads needs detectors why_not group weight flags hard")
Term.__new__.__defaults__ = (None, (), None)      # weight, flags, hard


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
    # Chen Eq. 2: mu L_hard + (1 - mu) L_soft
    ("cls", Term("KD_soft", _soft(False), ("kd_mu", "kd_temperature"), ("teacher_head",),
                 _BOTH, None, "cls", hard=("cls", "kd_mu"))),
    ("cls-w", Term("KD_soft", _soft(True), ("kd_mu", "kd_temperature", "kd_bg_weight"),
                   ("teacher_head",), _BOTH, None, "cls", hard=("cls", "kd_mu"))),
    ("ko", Term("KD_KL", _kl, ("ko_alpha", "ko_temperature"), ("teacher_head",), ("ssd",),
                "Ko & Yoo's KL distils SSD's classifier (use cls or cls-w)", "cls", flags=(
                    Flag("--ko-alpha", "ko_alpha", unit_interval, kd.KO_YOO_ALPHA,
                         "Ko & Yoo Eq. 1: weight of CE with ground truth (alpha + beta = 1)"),
                    Flag("--ko-temperature", "ko_temperature", positive_float,
                         kd.KO_YOO_TEMPERATURE,
                         "Ko & Yoo Eq. 1: temperature of the KL term")),
                hard=("cls", "ko_alpha"))),
    # Chen Eq. 1, 4: L_reg = lambda (L_sL1 + nu L_b)
    ("l2-b", Term("KD_L2B", _bounded, ("kd_lambda", "kd_nu", "kd_margin"), ("teacher_head",),
                  _BOTH, None, "l2", hard=("box", "kd_lambda"))),
    ("l2", Term("KD_L2", _l2, ("kd_lambda", "kd_nu"), ("teacher_head",), _BOTH, None, "l2",
                hard=("box", "kd_lambda"))),
    # Chen Eq. 1: gamma L_hint
    ("hints", Term("KD_hint", _hint(False), ("kd_gamma", "hint_mode"), ("teacher_maps",),
                   _BOTH, None, "hints", weight="kd_gamma")),
    ("hints-a", Term("KD_hint", _hint(True), ("kd_gamma", "hint_mode"), ("teacher_maps",),
                     _BOTH, None, "hints", weight="kd_gamma")),
    # fgfi and the hints both imitate the backbone map: one of them
    ("fgfi", Term("KD_FGFI", _fgfi, ("fgfi_lambda", "fgfi_psi"),
                  ("teacher_maps", "imitation_mask"),
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
    """A :data:`TERMS` entry weighted by the detector (``weight=None``) names a detector whose
    table of output-level terms lacks it: a run would train without the term it asked for."""


def output_terms(detector):
    """The components of :data:`TERMS` defined for ``detector`` that the detector must
    compute itself: those with a loss block and no ``weight`` (the output-level terms: soft
    labels, bounded regression, KL, imitation), in table order."""
    return [p for p, t in TERMS.items()
            if detector in t.detectors and t.block is not None and t.weight is None]


def check_output_terms(detector, table, name=None):
    """Refuse to start when an output-level term of ``detector`` (:func:`output_terms`) is
    missing from the detector's table of output-level terms.

    A map term is weighted for every detector by :func:`map_terms`; an output-level term reads
    the detector's own outputs and normalisers, so each detector lists the functions that
    compute them (:data:`~.steps.SSD_OUTPUT_TERMS`, :data:`~.frcnn_steps.FRCNN_OUTPUT_TERMS`).
    A :data:`TERMS` entry added for a detector without its function there would otherwise
    build its block and log nothing, and the student would train without it under the
    method's name.

    Parameters
    ----------
    detector : str
        A key of :data:`DETECTORS`.
    table : iterable of str
        The components the detector computes (the keys of its table).
    name : str or None
        The table's name, for the message (default: the detector adapter's output-term
        table).

    Raises
    ------
    UnweightedTermError
        Naming the terms, the detector and the table.
    """
    missing = [p for p in output_terms(detector) if p not in set(table)]
    name = name or OUTPUT_TABLES.get(detector, "the output-term table of %s" % DETECTORS[detector])
    if missing:
        raise UnweightedTermError(
            "TERMS lists %s for %s, but %s has no function for %s: add %s there or remove %r "
            "from the entry's detectors (docs/extending.md)"
            % (", ".join(missing), DETECTORS[detector], name,
               "it" if len(missing) == 1 else "them", "one" if len(missing) == 1 else "them",
               detector))


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
        When a :data:`TERMS` entry defined for ``detector`` is a map term without
        ``teacher_maps`` in its ``needs``, reweighs a detection loss other than ``'cls'`` or
        ``'box'``, or reads (``reads``, ``weight``, ``hard``) a
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
        t = TERMS[c]
        if t.weight is not None and "teacher_maps" not in t.needs:
            raise ValueError("TERMS[%r] is a map term (weight=%r) but its needs lack "
                             "'teacher_maps': a map term gets one block per map"
                             % (c, t.weight))
        if t.hard is not None and t.hard[0] not in ("cls", "box"):
            raise ValueError("TERMS[%r]: hard=%r reweighs %r; use 'cls' or 'box'"
                             % (c, t.hard, t.hard[0]))
        hard = TERMS[c].hard[1] if TERMS[c].hard else None
        unset = [d for d in TERMS[c].reads + (TERMS[c].weight, hard) if d and d not in dests]
        if unset:
            raise ValueError("TERMS[%r] reads %s, which no flag sets (add a Flag with that "
                             "dest to its flags)" % (c, ", ".join(unset)))
    return parser


class KDObjective:
    """The student's distillation objective for any detector: the terms of ``--method``,
    weighted here and nowhere else, and the weights of the detection loss they change.

    Every term comes from :data:`TERMS`. A *map term* (``weight`` set) is
    ``args.<weight> * sum_i block_i(s_i, t_i).sum() / N`` on any detector (:func:`map_terms`).
    An *output-level term* (``weight`` None: soft labels, bounded regression, KL, imitation)
    reads the detector's own outputs and normalisers, so the detector supplies it:
    ``output_terms`` maps each such component to ``fn(block, args, out, s_maps, t_maps)``, the
    weighted term of one device, with ``out`` the detector's record of that device
    (:data:`~.steps.SSD_OUTPUT_TERMS`, :data:`~.frcnn_steps.FRCNN_OUTPUT_TERMS`); ``block``
    is the term's loss block, built once as ``block(args, None)``, or the list of its blocks
    (one per map) when its ``needs`` has ``teacher_maps``. A block with parameters learns with
    the student (:meth:`params`). A term with a
    ``hard`` entry changes the weight of a detection loss (Chen et al.'s ``mu`` on the
    classification loss and ``lambda`` on the regression loss, Ko & Yoo's ``alpha``).

    Parameters
    ----------
    parts : frozenset of str
        From :func:`parse_method`; ``gan`` is the step's critics, not a term here.
    args : argparse.Namespace
        The flags of :func:`add_method_args` (``kd_*``, ``hint_mode`` and the terms' own).
    teacher_channels : list of int
        The teacher's channels of each map the terms see (the adaptation layers' output).
    ctx : list of Context
    detector : str
        A key of :data:`DETECTORS`.
    output_terms : dict of str -> callable
        The detector's output-level terms (above); every one of :func:`output_terms`
        (``detector``) must be there.

    Raises
    ------
    UnweightedTermError
        When ``output_terms`` lacks an output-level term :data:`TERMS` defines for
        ``detector`` (:func:`check_output_terms`).

    ``needs_teacher_head`` says whether the detector must run the teacher's heads
    (class scores and boxes) for the terms.
    """

    def __init__(self, parts, args, teacher_channels, ctx, detector, output_terms):
        self.output_terms = dict(output_terms)
        check_output_terms(detector, self.output_terms)
        self.parts = frozenset(parts) - {"gan"}
        self.args = args
        self.detector = detector
        self.needs_teacher_head = needs(self.parts, "teacher_head")
        self.blocks = gluon.nn.HybridSequential(prefix="kd_")
        with self.blocks.name_scope():
            made = build_term_blocks(self.parts, args, teacher_channels)
            # one block per map, held by the objective's blocks (their adaptation layers are
            # trained with the student, Chen Sec. 3.4): several maps' in one container per
            # term, a one-map detector's block itself (the checkpoints' structural names)
            self.term_blocks = collections.OrderedDict()
            for p, blocks in made.items():
                if isinstance(blocks, list) and len(blocks) > 1:
                    container = gluon.nn.HybridSequential(
                        prefix="hint_" if p in ("hints", "hints-a") else p.replace("-", "_") + "_")
                    for b in blocks:
                        container.add(b)
                    self.blocks.add(container)
                elif isinstance(blocks, list):
                    self.blocks.add(blocks[0])
                elif blocks.collect_params().keys():   # an output-level block that learns
                    self.blocks.add(blocks)
                self.term_blocks[p] = blocks
        self.map_blocks = collections.OrderedDict(
            (p, b) for p, b in self.term_blocks.items() if TERMS[p].weight is not None)
        self.blocks.initialize(ctx=ctx)

    def needs(self, what):
        """Whether a term needs ``what`` (a :data:`TERMS` ``needs`` entry)."""
        return needs(self.parts, what)

    def term_names(self):
        """Log columns of the terms this objective computes, in :data:`TERMS` order."""
        return term_columns(self.parts)

    def params(self):
        """Trainable parameters of the distillation terms (their adaptation layers), or None."""
        params = self.blocks.collect_params()
        return params if list(params.keys()) else None

    def hard_weights(self):
        """``(w_cls, w_box)``: the weights of the detection loss's classification and
        regression terms (1 unless a term's :data:`TERMS` ``hard`` entry sets one)."""
        w = {"cls": 1.0, "box": 1.0}
        for p, t in TERMS.items():
            if p in self.parts and t.hard is not None:
                w[t.hard[0]] = getattr(self.args, t.hard[1])
        return w["cls"], w["box"]

    def __call__(self, out, s_maps, t_maps, n):
        """The weighted terms of one device, in :data:`TERMS` order; call inside
        ``autograd.record``.

        The log's ``KD_*`` columns are these weighted terms, as added to the objective; the
        detection loss columns stay unweighted, so they compare across methods.

        Parameters
        ----------
        out : object
            The detector's record of this device, passed to its output-level terms.
        s_maps, t_maps : list of NDArray (B, C_i, H_i, W_i)
            The student's maps (adapted to the teacher's channels where the detector adapts
            them) and the teacher's on this device (``t_maps`` None when no term needs them).
        n : float
            Global batch size (the 1/N of per-image terms).

        Returns
        -------
        OrderedDict of log column -> NDArray scalar
        """
        terms = collections.OrderedDict()
        for p, t in TERMS.items():
            if p not in self.parts or t.block is None:
                continue
            if t.weight is not None:
                terms.update(map_terms({p}, self.map_blocks, self.args, s_maps, t_maps, n))
            else:
                terms[t.column] = self.output_terms[p](self.term_blocks[p], self.args, out,
                                                       s_maps, t_maps)
        return terms

    def total(self, detection, terms):
        """``detection + sum(terms)``, summed in :data:`TERMS` order (one device)."""
        for name in self.term_names():
            detection = detection + terms[name]
        return detection
