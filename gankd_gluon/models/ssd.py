"""SSD teacher/student construction for GAN-KD (paper Sec. 3.1, Fig. 1).

Everything here wraps GluonCV's model zoo: detectors are ``gluoncv.model_zoo.ssd.SSD`` instances
built with :func:`gluoncv.model_zoo.ssd.get_ssd`, so they train, evaluate (``set_nms``) and export
(``HybridBlock.export``) exactly like GluonCV's own SSDs.

* The **teacher** is a trained SSD512 (``ssd_512_<teacher>_voc`` / ``_coco``). :func:`split_ssd`
  splits it into its feature extractor (the paper's "Teacher Net") and its head ("SSD-Head":
  class/box predictors + anchors, as :class:`SSDHead`).
* The **student** is a smaller backbone whose feature expander mirrors the teacher's layout (same
  number of maps at the same strides: the 6-map SSD512 presets of gluoncv 0.10.5
  ``gluoncv/model_zoo/ssd/presets.py`` share strides 16..512 and anchors). Where its channel
  counts differ from the teacher's, 1x1 adaptation convs (Chen et al. 2017, Sec. 3.4) bridge
  them, so the student maps can be fed both to the critics and to the teacher's head
  (:class:`StudentFeatures`).
* The **trained student** is the student backbone + adapters + head: a plain GluonCV ``SSD``
  whose ``features`` child is a :class:`StudentFeatures`.
* The **deployable student** (:func:`fold_adapters`) is that network with each adapter folded
  into the class and box predictors after it: a plain GluonCV SSD of the student backbone, with
  the parameter count and cost of a student trained without a teacher.
"""
import collections
import math
import os
import threading

import mxnet as mx
from mxnet import autograd
from mxnet.gluon import HybridBlock, nn

__all__ = ["TEACHERS", "STUDENTS", "SSDLayout", "teacher_layout", "build_ssd", "build_teacher",
           "build_student", "split_ssd", "SSDHead", "StudentFeatures", "initialize_new_params",
           "freeze", "WeightsNotFoundError", "copy_head", "zoo_name", "feature_channels",
           "export_detector", "fold_adapters", "fold_border_offset", "deployable", "count_params", "map_channels",
           "build_run_network", "load_export_params", "gluoncv_ssd_class"]


class WeightsNotFoundError(FileNotFoundError):
    """Weights could not be found locally or downloaded; the message names the file and flags."""


# Feature taps of each backbone at strides 8, 16 and 32 (checked by symbol shape inference at
# 512x512). Strides 16/32 are GluonCV's own SSD512 presets (model_zoo/ssd/presets.py); stride 8
# is the last activation at that stride, used only when the teacher is VGG16 (7 maps, from
# stride 8). mobilenet0.75/0.25 and mobilenetv2_1.0 have no SSD512 preset; their taps below give
# them the presets' geometry (found by the same shape inference).
_TAPS = {
    "mobilenet1.0": ("relu10_fwd", "relu22_fwd", "relu26_fwd"),
    "mobilenet0.75": ("relu10_fwd", "relu22_fwd", "relu26_fwd"),
    "mobilenet0.5": ("relu10_fwd", "relu22_fwd", "relu26_fwd"),
    "mobilenet0.25": ("relu10_fwd", "relu22_fwd", "relu26_fwd"),
    "mobilenetv2_1.0": ("features_linearbottleneck6_relu60_relu6",
                        "features_linearbottleneck13_relu60_relu6", "features_relu61_relu6"),
    "resnet18_v1": ("stage2_activation1", "stage3_activation1", "stage4_activation1"),
    "resnet50_v1": ("stage2_activation3", "stage3_activation5", "stage4_activation2"),
    # mid-bottleneck ReLUs as in GluonCV's ssd_512_resnet101_v2_voc preset (256/512 channels)
    "resnet101_v2": ("stage2_activation3", "stage3_activation22", "stage4_activation2"),
}
TEACHERS = ("vgg16_atrous", "resnet50_v1", "resnet101_v2", "resnet18_v1", "mobilenet1.0")
STUDENTS = ("mobilenet1.0", "mobilenet0.75", "mobilenet0.5", "mobilenet0.25", "mobilenetv2_1.0",
            "resnet18_v1")

# Anchor settings of GluonCV's SSD512 presets, as fractions of 512 so they scale with the input.
_SIZES_6 = (51.2, 102.4, 189.4, 276.4, 363.52, 450.6, 492)
_SIZES_6_R50_COCO = (51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72)  # ssd_512_resnet50_v1_coco
_SIZES_7 = (51.2, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6)        # ssd_512_vgg16_atrous_*
_RATIOS_6 = [[1, 2, 0.5]] + [[1, 2, 0.5, 3, 1.0 / 3]] * 3 + [[1, 2, 0.5]] * 2
_RATIOS_7 = [[1, 2, 0.5]] + [[1, 2, 0.5, 3, 1.0 / 3]] * 4 + [[1, 2, 0.5]] * 2
_FILTERS_6 = (512, 512, 256, 256)     # extra layers of every 6-map SSD512 preset
_FILTERS_7 = (256, 256, 256, 256)     # student extras mirroring VGG16's four stride-2 extras


# GluonCV's SSDAnchorGenerator computes its anchor constants in a pure-Python double loop over a
# 128x128 grid (0.03-0.05 s per map, 0.2-0.3 s per SSD512); a teacher, its student and every
# deployable export share one geometry, so the same arrays were computed 4-6 times per run.
_GLUONCV_GENERATE_ANCHORS = None
_ANCHORS = collections.OrderedDict()      # key -> array, least recently used first
_ANCHORS_MAX = 32                         # geometries kept (3 MB each at most)
_ANCHORS_LOCK = threading.Lock()
ANCHOR_CACHE_STATS = {"hits": 0, "misses": 0}


def _anchor_key(value):
    """A hashable form of an argument that keeps every scalar's type (a float32 step computes
    in float32 in GluonCV's method, a Python float in float64)."""
    if isinstance(value, (list, tuple)):
        return tuple(_anchor_key(v) for v in value)
    return type(value).__name__, value


def _memoized_generate_anchors(self, sizes, ratios, step, alloc_size, offsets):
    """``SSDAnchorGenerator._generate_anchors`` of GluonCV, run once per geometry per process.

    On the first request of a geometry GluonCV's own method runs with the caller's arguments;
    a repeat (the same values of the same types) gets a copy of that array, so a caller
    changing it changes nothing kept. The last 32 geometries are kept.

    Returns
    -------
    numpy.ndarray (1, 1, H, W, 4 * num_depth)
        Centre-form anchors ``(cx, cy, w, h)`` in input pixels, ``(H, W) = alloc_size``;
        float64 for Python or float64 arguments (GluonCV's ``np.array`` of them).
    """
    key = _anchor_key((sizes, ratios, step, alloc_size, offsets))
    with _ANCHORS_LOCK:
        found = _ANCHORS.get(key)
        if found is not None:
            _ANCHORS.move_to_end(key)
            ANCHOR_CACHE_STATS["hits"] += 1
            return found.copy()
    anchors = _GLUONCV_GENERATE_ANCHORS(self, sizes, ratios, step, alloc_size, offsets)
    with _ANCHORS_LOCK:
        ANCHOR_CACHE_STATS["misses"] += 1
        _ANCHORS[key] = anchors.copy()
        while len(_ANCHORS) > _ANCHORS_MAX:
            _ANCHORS.popitem(last=False)
    return anchors


def gluoncv_ssd_class():
    """GluonCV's ``SSD`` class, with its anchor generation memoized per process.

    Every SSD this package builds comes from here. The first call replaces
    ``gluoncv.model_zoo.ssd.anchor.SSDAnchorGenerator._generate_anchors`` with
    :func:`_memoized_generate_anchors` (GluonCV's method stays the computation; only repeats are
    skipped); later calls, from any thread, change nothing.
    """
    global _GLUONCV_GENERATE_ANCHORS
    from gluoncv.model_zoo.ssd.anchor import SSDAnchorGenerator
    from gluoncv.model_zoo.ssd.ssd import SSD
    with _ANCHORS_LOCK:
        current = SSDAnchorGenerator.__dict__["_generate_anchors"]
        if current is not _memoized_generate_anchors:
            _GLUONCV_GENERATE_ANCHORS = current
            SSDAnchorGenerator._generate_anchors = _memoized_generate_anchors
    return SSD


class SSDLayout:
    """Geometry shared by a teacher and its student: maps, strides and anchors.

    Parameters
    ----------
    num_maps : int
        6 (ResNet/MobileNet SSD512 presets, strides 16..512) or 7 (VGG16-atrous, strides 8..512).
    data_shape : int
        Square input size in pixels.
    sizes, ratios, steps : list
        Anchor settings, as ``get_ssd`` takes them.
    """

    def __init__(self, num_maps, data_shape, sizes, ratios, steps):
        self.num_maps = num_maps
        self.data_shape = data_shape
        self.sizes = list(sizes)
        self.ratios = [list(r) for r in ratios]
        self.steps = list(steps)

    def __repr__(self):
        return "SSDLayout(num_maps=%d, data_shape=%d, steps=%s)" % (
            self.num_maps, self.data_shape, self.steps)


def _map_sizes(num_maps, data_shape):
    """Spatial size of each SSD map for a square input (conv 3x3/s2/p1 halves with ceil)."""
    if num_maps == 6:
        hw = [data_shape // 16, data_shape // 32]
        while len(hw) < 6:
            hw.append(int(math.ceil(hw[-1] / 2.0)))
    else:
        hw = [data_shape // 8, data_shape // 16]
        while len(hw) < 6:
            hw.append(int(math.ceil(hw[-1] / 2.0)))
        hw.append(hw[-1] - 1)     # VGG's last extra is k4/s1/p1 (vgg_atrous.py)
    return hw


def teacher_layout(teacher, data_shape=512, dataset="voc"):
    """The layout of a teacher SSD, scaled from GluonCV's SSD512 preset to ``data_shape``.

    At 512 the sizes, ratios and steps equal the preset's exactly, so a model-zoo ``.params`` file
    loads unchanged. At other sizes anchor sizes scale by ``data_shape / 512`` and each step is
    ``data_shape / map size`` (the presets' anchor sizes are pixels of a 512 input, 51.2 to 492:
    unscaled, or with steps larger than the image, they put anchors outside it).
    """
    if data_shape % 32:
        raise ValueError("--data-shape must be a multiple of 32, got %d" % data_shape)
    if teacher == "vgg16_atrous":
        if data_shape < 320:
            raise ValueError("the VGG16-atrous SSD needs --data-shape >= 320 (its last extra "
                             "layer has a 4x4 kernel), got %d" % data_shape)
        num_maps, sizes, ratios = 7, _SIZES_7, _RATIOS_7
    else:
        num_maps, ratios = 6, _RATIOS_6
        sizes = _SIZES_6_R50_COCO if (teacher == "resnet50_v1" and dataset == "coco") else _SIZES_6
    hw = _map_sizes(num_maps, data_shape)
    steps = [data_shape / float(h) for h in hw]
    steps = [int(s) if s == int(s) else s for s in steps]
    sizes = [s * data_shape / 512.0 for s in sizes]     # exact at 512 (power-of-two scaling)
    return SSDLayout(num_maps, data_shape, sizes, ratios, steps)


def zoo_name(base, dataset, data_shape=512):
    """GluonCV model-zoo name of a trained SSD, e.g. ``ssd_512_resnet50_v1_voc``."""
    return "ssd_%d_%s_%s" % (data_shape, base, dataset)


def _backbone(base, pretrained_base):
    """An ImageNet backbone from GluonCV's zoo, or from a local file, or randomly initialised.

    Parameters
    ----------
    pretrained_base : bool or str
        True: the zoo's ImageNet weights (downloaded on first use); False: none; a path: load it.
    """
    from gluoncv.model_zoo import get_model
    if isinstance(pretrained_base, str):
        if not os.path.isfile(pretrained_base):
            raise WeightsNotFoundError("--pretrained-base %s: no such file" % pretrained_base)
        net = get_model(base, pretrained=False)
        net.load_parameters(pretrained_base, ignore_extra=True)
        return net
    if pretrained_base:
        from gluoncv.model_zoo.model_store import get_model_file
        try:
            get_model_file(base, root=os.path.join("~", ".mxnet", "models"))
        except Exception as err:  # network errors come in many types from requests/urllib
            raise WeightsNotFoundError(
                "could not get the ImageNet weights of %r from GluonCV's model zoo (%s: %s). "
                "Put the file in ~/.mxnet/models/ (GluonCV names it %s-<hash>.params), or pass "
                "--pretrained-base FILE, or --pretrained-base none to start from scratch."
                % (base, type(err).__name__, err, base)) from err
        return get_model(base, pretrained=True)
    return get_model(base, pretrained=False)


def build_ssd(base, layout, classes, features=None, filters=None, pretrained_base=False, **kwargs):
    """A GluonCV SSD of ``base`` with the given layout (anchors) and classes.

    Parameters
    ----------
    base : str
        Backbone name: a key of the tap table or ``vgg16_atrous``.
    layout : SSDLayout
    classes : sequence of str
    features, filters : optional
        Override the taps / extra-layer filters (default: the layout's for ``base``).
    pretrained_base : bool or str
        See :func:`_backbone`.

    Returns
    -------
    gluoncv.model_zoo.ssd.SSD
        Parameters not yet initialised (except a pretrained backbone).
    """
    SSD = gluoncv_ssd_class()
    if base == "vgg16_atrous":
        if layout.num_maps != 7:
            raise ValueError("vgg16_atrous SSD has 7 maps")
        from gluoncv.model_zoo.ssd.vgg_atrous import vgg16_atrous_512
        if pretrained_base is True:
            _backbone("vgg16_atrous", True)     # download check with a clear error
        # get_ssd's VGG path: `features` is a block factory, filters unused.
        net = SSD(None, layout.data_shape, vgg16_atrous_512, None, layout.sizes, layout.ratios,
                  layout.steps, classes=classes, pretrained=pretrained_base is True, **kwargs)
        if isinstance(pretrained_base, str):
            if not os.path.isfile(pretrained_base):
                raise WeightsNotFoundError("--pretrained-base %s: no such file" % pretrained_base)
            net.features.load_parameters(pretrained_base, allow_missing=True, ignore_extra=True)
        return net
    if base not in _TAPS:
        raise ValueError("unknown backbone %r; choose one of %s" % (base, sorted(_TAPS)))
    if features is None:
        features = list(_TAPS[base][1:] if layout.num_maps == 6 else _TAPS[base])
    if filters is None:
        filters = list(_FILTERS_6 if layout.num_maps == 6 else _FILTERS_7)
    return SSD(None, layout.data_shape, _expander_factory(base, features, filters, pretrained_base),
               None, layout.sizes, layout.ratios, layout.steps, classes=classes, pretrained=False,
               **kwargs)


def _expander_factory(base, features, filters, pretrained_base, wrap=None):
    """A factory for SSD's ``network=None`` path that builds the backbone and GluonCV's
    ``FeatureExpander`` (with the arguments ``SSD`` itself uses for a named backbone).

    SSD calls it inside its name scope, so parameter names do not depend on how many networks
    the process built before (``features.mobilenet0_conv0_weight`` as in GluonCV's presets),
    and a checkpoint saved by one process loads in another, or twice in one.
    """
    from gluoncv.nn.feature import FeatureExpander

    def make(**_):
        network = _backbone(base, pretrained_base) if pretrained_base else base
        expander = FeatureExpander(network=network, outputs=features, num_filters=filters,
                                   use_1x1_transition=True, use_bn=True, reduce_ratio=1.0,
                                   min_depth=128, global_pool=False, pretrained=False)
        return expander if wrap is None else wrap(expander)
    return make


def initialize_new_params(net, ctx):
    """Initialise the parameters of ``net`` that have no data yet, as GluonCV's train_ssd does.

    Conv weights get He/Kaiming init (Xavier gaussian, fan-in, magnitude 2): with fan-out, a
    from-scratch MobileNet's depthwise convs (fan-out = C*9, fan-in = 9) shrink activations to
    about 1e-15 in inference mode, and every score ties. Parameters that carry their own
    initializer (FeatureExpander's extras, anchors, VGG's L2-norm scale) keep it. BN gamma/var
    one, beta/mean and biases zero (Xavier refuses vectors: mxnet 1.9.1 ``mxnet/initializer.py``,
    ``Xavier._init_weight``).
    Already loaded parameters (a pretrained backbone, a teacher head) are left untouched.
    """
    import warnings
    init = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "already initialized" for loaded params
        for name, p in net.collect_params().items():
            if p._data is not None or p._deferred_init:
                continue
            if p.init is not None:
                p.initialize(ctx=ctx)   # its own initializer: constants (anchors), VGG's scale
            elif name.endswith(("gamma", "running_var", "moving_var")):
                p.initialize(mx.init.One(), ctx=ctx)
            elif name.endswith(("beta", "bias", "running_mean", "moving_mean")):
                p.initialize(mx.init.Zero(), ctx=ctx)
            else:
                p.initialize(init, ctx=ctx)


def freeze(block):
    """Stop gradients into ``block`` (``grad_req='null'``): the teacher is never updated."""
    block.collect_params().setattr("grad_req", "null")
    return block


def build_teacher(teacher, classes, layout, dataset="voc", params=None, ctx=mx.cpu()):
    """A trained teacher SSD, frozen.

    Parameters
    ----------
    teacher : str
        Backbone name (``resnet50_v1``, ``resnet101_v2``, ``vgg16_atrous``, ...).
    classes : sequence of str
    layout : SSDLayout
        Usually ``teacher_layout(teacher, data_shape, dataset)``.
    dataset : str
        ``voc`` or ``coco``: which model-zoo file to download when ``params`` is None.
    params : str or None
        A local ``.params`` file (``--teacher-params``): a GluonCV model-zoo file, a checkpoint
        part of ``scripts/train_ssd.py``, or an export of it (its ``-0000.params`` or its
        prefix; the export's ``-meta.json``, where present, must agree with ``classes`` and
        ``layout.data_shape``).

    Returns
    -------
    SSD with ``grad_req='null'`` everywhere. Run it outside ``autograd.record()`` so its
    BatchNorm layers use their moving statistics.
    """
    net = build_ssd(teacher, layout, classes, pretrained_base=False)
    if params is None:
        name = zoo_name(teacher, dataset, layout.data_shape)
        try:
            from gluoncv.model_zoo.model_store import get_model_file
            params = get_model_file(name, root=os.path.join("~", ".mxnet", "models"))
        except Exception as err:
            raise WeightsNotFoundError(
                "could not get the trained teacher %r from GluonCV's model zoo (%s: %s). Put "
                "the file in ~/.mxnet/models/ (GluonCV names it %s-<hash>.params), or pass "
                "--teacher-params FILE (a zoo file or a teacher from scripts/train_ssd.py)."
                % (name, type(err).__name__, err, name)) from err
    params = _teacher_params_file(params, teacher, classes, layout)
    from .export_meta import class_mismatch, trained_classes
    theirs = trained_classes(params)
    if theirs is not None and list(theirs) != list(classes):
        raise WeightsNotFoundError(class_mismatch("--teacher-params", params, theirs, classes))
    try:
        if _is_export_params(params):
            load_export_params(net, params, ctx)
        else:
            net.load_parameters(params, ctx=ctx)
    except (AssertionError, mx.MXNetError, ValueError) as err:
        raise ValueError("--teacher-params %s does not fit a %s SSD with %d classes at %d px: %s"
                         % (params, teacher, len(classes), layout.data_shape,
                            str(err).splitlines()[0])) from err
    return freeze(net)


def _teacher_params_file(params, teacher, classes, layout):
    """``--teacher-params`` as a file: an export prefix becomes its ``-0000.params``; an
    export's metadata, where present, is checked against the teacher being built."""
    from .export_meta import ExportMetaError, export_prefix, read_meta
    path = params
    if not os.path.isfile(path) and os.path.isfile(params + "-0000.params"):
        path = params + "-0000.params"
    if not os.path.isfile(path):
        raise WeightsNotFoundError("--teacher-params %s: no such file (nor %s-0000.params)"
                                   % (params, params))
    try:
        meta = read_meta(export_prefix(path)) if path.endswith("-0000.params") else None
    except ExportMetaError as err:
        raise WeightsNotFoundError("--teacher-params %s: %s" % (params, err)) from err
    if meta is not None:
        own = meta["input"].get("data_shape")
        if meta["kind"] == "ssd" and list(meta["classes"]) != list(classes):
            from .export_meta import class_mismatch
            raise WeightsNotFoundError(class_mismatch("--teacher-params", params,
                                                      meta["classes"], classes))
        if meta["kind"] != "ssd" or own != layout.data_shape:
            raise WeightsNotFoundError(
                "--teacher-params %s: its -meta.json describes %s %s export at %s px with %d "
                "classes; the run needs an SSD at --data-shape %d with %d classes"
                % (params, "an" if meta["kind"] == "ssd" else "a", meta["kind"], own,
                   len(meta["classes"]), layout.data_shape, len(classes)))
    return path


class SSDHead(HybridBlock):
    """The SSD-Head of a GluonCV SSD: class and box predictors plus anchor generators.

    Shares (does not copy) the child blocks of the SSD it was split from. In any mode it returns
    what ``SSD.hybrid_forward`` returns in train mode (gluoncv 0.10.5
    ``gluoncv/model_zoo/ssd/ssd.py``, the ``autograd.is_training()`` branch).

    Parameters
    ----------
    ssd : gluoncv.model_zoo.ssd.SSD

    Inputs: ``*feats``, each (B, C_i, H_i, W_i). Outputs: cls_preds (B, N, C+1) raw logits,
    box_preds (B, N, 4) encoded offsets, anchors (1, N, 4) centre-form pixels.
    """

    def __init__(self, ssd, **kwargs):
        super(SSDHead, self).__init__(**kwargs)
        self.num_classes = ssd.num_classes
        self.class_predictors = ssd.class_predictors
        self.box_predictors = ssd.box_predictors
        self.anchor_generators = ssd.anchor_generators

    def hybrid_forward(self, F, *feats):
        cls_preds = [F.flatten(F.transpose(cp(f), (0, 2, 3, 1)))
                     for f, cp in zip(feats, self.class_predictors)]
        box_preds = [F.flatten(F.transpose(bp(f), (0, 2, 3, 1)))
                     for f, bp in zip(feats, self.box_predictors)]
        anchors = [F.reshape(ag(f), shape=(1, -1)) for f, ag in zip(feats, self.anchor_generators)]
        cls_preds = F.concat(*cls_preds, dim=1).reshape((0, -1, self.num_classes + 1))
        box_preds = F.concat(*box_preds, dim=1).reshape((0, -1, 4))
        anchors = F.concat(*anchors, dim=1).reshape((1, -1, 4))
        return cls_preds, box_preds, anchors


def split_ssd(ssd):
    """Split a GluonCV SSD into (feature extractor, :class:`SSDHead`), sharing its blocks."""
    return ssd.features, SSDHead(ssd)


class StudentFeatures(HybridBlock):
    """Student feature expander followed by per-map 1x1 adapters to the teacher's channels.

    Parameters
    ----------
    expander : HybridBlock
        GluonCV ``FeatureExpander`` of the student backbone; returns a list of maps.
    teacher_channels : list of int
        Channels of the teacher's maps. The student's are read off the expander's symbol; a 1x1
        conv (no activation: Chen et al. 3.4's linear adaptation) is inserted where they
        differ, identity where they match.
    data_shape : int
        Input size used to infer the student's channels.

    Inputs: x (B, 3, H, W). Outputs: list of maps, map i (B, teacher_channels[i], H_i, W_i).
    """

    def __init__(self, expander, teacher_channels, data_shape, **kwargs):
        super(StudentFeatures, self).__init__(**kwargs)
        self.expander = expander
        outs = expander(mx.sym.var("data"))
        _, shapes, _ = mx.sym.Group(list(outs)).infer_shape(data=(1, 3, data_shape, data_shape))
        student_channels = [s[1] for s in shapes]
        if len(student_channels) != len(teacher_channels):
            raise ValueError("student has %d maps, teacher %d" % (len(student_channels),
                                                                  len(teacher_channels)))
        self._adapt = [cs != ct for cs, ct in zip(student_channels, teacher_channels)]
        # what fold_adapters needs to build the plain student SSD (set by build_student)
        self.backbone, self.layout = None, None
        self.student_channels = list(student_channels)
        self.teacher_channels = list(teacher_channels)
        with self.name_scope():
            self.adapters = nn.HybridSequential(prefix="adapters_")
            for cs, ct, a in zip(student_channels, teacher_channels, self._adapt):
                if a:
                    self.adapters.add(nn.Conv2D(ct, kernel_size=1, in_channels=cs))

    def hybrid_forward(self, F, x):
        feats = self.expander(x)
        out, j = [], 0
        for f, a in zip(feats, self._adapt):
            if a:
                f = self.adapters[j](f)
                j += 1
            out.append(f)
        return out


def backbone_params(student_features):
    """The trainable parameters of a student's ImageNet backbone inside a
    :class:`StudentFeatures` (not its extra layers, GluonCV's ``expand_*``, not its adapters);
    all its trainable parameters for a feature block without those parts."""
    params = [p for p in student_features.collect_params().values() if p.grad_req != "null"]
    # the adapters by block, not by name: their convs are named after StudentFeatures
    # (``..._studentfeatures0_conv0_weight``), not after the ``adapters_`` sequential
    adapters = getattr(student_features, "adapters", None)
    skip = set(adapters.collect_params().keys()) if adapters is not None else set()
    base = [p for p in params if "_expand_" not in p.name and "adapters_" not in p.name
            and p.name not in skip]
    return base or params


def feature_channels(features, data_shape, num_maps):
    """Channels of each map of a feature block, by a forward on a zero image (on its context)."""
    ctx = list(features.collect_params().values())[0].list_ctx()[0]
    with autograd.predict_mode():
        maps = features(mx.nd.zeros((1, 3, data_shape, data_shape), ctx=ctx))
    assert len(maps) == num_maps, (len(maps), num_maps)
    return [m.shape[1] for m in maps]


def copy_head(src, dst):
    """Copy class/box predictor weights of SSD ``src`` into SSD ``dst`` (anchors are constants
    built from the same layout and need no copy). Used for ``--head teacher``: the student's maps
    feed the teacher's trained SSD-Head (paper Fig. 1); the copy is trained, the teacher is not."""
    for name in ("class_predictors", "box_predictors"):
        s_params = getattr(src, name).collect_params()
        d_params = getattr(dst, name).collect_params()
        for (sk, sp), (dk, dp) in zip(sorted(s_params.items()), sorted(d_params.items())):
            if sp.shape != dp.shape:
                raise ValueError("head shapes differ: %s %s vs %s %s" % (sk, sp.shape, dk, dp.shape))
            dp.set_data(sp.data().copyto(dp.list_ctx()[0]))


def build_student(student, teacher_net, teacher_channels, layout, classes, head="teacher",
                  pretrained_base=True, ctx=mx.cpu()):
    """The deployable student SSD: student backbone + extras + adapters + head.

    Parameters
    ----------
    student : str
        Student backbone (``mobilenet1.0``, ``mobilenet0.75``, ``mobilenetv2_1.0``, ``resnet18_v1``).
    teacher_net : SSD
        The trained teacher, for ``head='teacher'`` (its head weights are copied in).
    teacher_channels : list of int
        Channels of the teacher's maps (:func:`feature_channels` on the teacher's features).
    layout : SSDLayout
        The teacher's layout: the student mirrors its maps, strides and anchors.
    head : {'teacher', 'student'}
        ``teacher`` (paper Fig. 1, default): start from the teacher's trained SSD-Head.
        ``student``: a freshly initialised head of the student's own (the published log's
        ``train_student_ori_net_*`` names); the maps are adapted to the teacher's channels
        either way, so the critics compare like with like.
    pretrained_base : bool or str
        ImageNet weights of the student backbone (paper: "pretrained under ImageNet").

    Returns
    -------
    SSD, initialised on ``ctx``; ``net.features`` is a :class:`StudentFeatures`.
    """
    if head not in ("teacher", "student"):
        raise ValueError("--head must be 'teacher' or 'student', got %r" % head)
    SSD = gluoncv_ssd_class()
    if student not in _TAPS:
        raise ValueError("unknown student backbone %r; choose one of %s" % (student, STUDENTS))
    taps = list(_TAPS[student][1:] if layout.num_maps == 6 else _TAPS[student])
    filters = list(_FILTERS_6 if layout.num_maps == 6 else _FILTERS_7)
    make = _expander_factory(student, taps, filters, pretrained_base,
                             wrap=lambda e: StudentFeatures(e, teacher_channels, layout.data_shape))
    net = SSD(None, layout.data_shape, make, None, layout.sizes, layout.ratios, layout.steps,
              classes=classes)
    net.features.backbone, net.features.layout = student, layout
    initialize_new_params(net, ctx)
    # materialise deferred shapes (head in_channels) before copying the teacher's head
    with autograd.train_mode():
        net(mx.nd.zeros((1, 3, layout.data_shape, layout.data_shape), ctx=ctx))
    if head == "teacher":
        copy_head(teacher_net, net)
    return net


def export_detector(net, prefix, data_shape, ctx=mx.cpu()):
    """Export a detector for deployment: ``<prefix>-symbol.json`` + ``<prefix>-0000.params``,
    loadable with ``gluon.SymbolBlock.imports(json, ['data'], params)`` and no code of this
    project. Traced in inference mode (decoded, NMS'd detections), then the net is set to be
    traced again on its next call, so training can continue (a hybridized SSD keeps the mode
    it was first traced in until ``hybridize()`` clears its cached graph: mxnet 1.9.1
    ``mxnet/gluon/block.py``, ``HybridBlock.hybridize``)."""
    net.hybridize()
    with autograd.predict_mode():
        net(mx.nd.zeros((1, 3, data_shape, data_shape), ctx=ctx))
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    net.export(prefix, epoch=0)
    net.hybridize()
    return prefix + "-symbol.json", prefix + "-0000.params"


def _strip_net_prefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


def fold_adapters(net, ctx=mx.cpu()):
    """The deployable student: ``net`` with each 1x1 adapter folded into the predictors after it.

    An adapter (1x1 conv ``W_a`` (C_t, C_s, 1, 1), bias ``b_a`` (C_t,), no activation) and the
    3x3 class/box predictor after it (``W_p`` (O, C_t, 3, 3), ``b_p`` (O,)) are both linear, so
    they compose into one 3x3 convolution on the student's own channels::

        W[o, s, i, j] = sum_t W_p[o, t, i, j] W_a[t, s]
        b[o]          = b_p[o] + sum_{t, i, j} W_p[o, t, i, j] b_a[t]

    The result is a plain GluonCV SSD of the student backbone (:func:`build_ssd`), with the
    layer shapes, parameter names and cost of a student trained without a teacher.

    Inside the map the fold is exact. At the border it is not: the predictor pads the adapted
    map with zeros, where the unfolded network sees 0 but the folded one sees the contribution
    of ``b_a`` through the taps that fall outside the map. The folded predictor's output at a
    border position therefore differs by ``-sum_{outside taps (i, j)} sum_t W_p[o, t, i, j]
    b_a[t]``, zero when the adapters' biases are zero (:func:`fold_border_offset` computes it).

    Parameters
    ----------
    net : gluoncv.model_zoo.ssd.SSD
        A student of :func:`build_student` (``net.features`` a :class:`StudentFeatures`),
        initialised.
    ctx : mx.Context
        Where the folded network's parameters live.

    Returns
    -------
    gluoncv.model_zoo.ssd.SSD
        A new network (``net`` is not changed), with ``net``'s classes, anchors and NMS
        settings, initialised on ``ctx``.

    Raises
    ------
    ValueError
        ``net`` is not a student of :func:`build_student`.

    References
    ----------
    Chen, Choi, Yu, Han, Chandraker. Learning Efficient Object Detection Models with Knowledge
    Distillation. NeurIPS 2017 (Sec. 3.4, the adaptation layer).
    https://papers.nips.cc/paper/6676-learning-efficient-object-detection-models-with-knowledge-distillation
    """
    features = net.features
    if not isinstance(features, StudentFeatures) or features.backbone is None:
        raise ValueError("fold_adapters needs a student of build_student (its features a "
                         "StudentFeatures), got %s" % type(features).__name__)
    layout = features.layout
    plain = build_ssd(features.backbone, layout, net.classes, pretrained_base=False)
    initialize_new_params(plain, ctx)
    with autograd.train_mode():
        plain(mx.nd.zeros((1, 3, layout.data_shape, layout.data_shape), ctx=ctx))
    src = {_strip_net_prefix(k, net.prefix): p
           for k, p in features.expander.collect_params().items()}
    dst = plain.features.collect_params()
    for name, p in dst.items():
        key = _strip_net_prefix(name, plain.prefix)
        if key not in src or src[key].shape != p.shape:
            raise ValueError("fold_adapters: the plain %s SSD's %s has no counterpart in the "
                             "student" % (features.backbone, key))
        p.set_data(src[key].list_data()[0].copyto(ctx))
    j = 0
    for i, adapt in enumerate(features._adapt):
        adapter = features.adapters[j] if adapt else None
        j += int(adapt)
        for name in ("class_predictors", "box_predictors"):
            conv = getattr(net, name)[i].predictor
            target = getattr(plain, name)[i].predictor
            w_p = conv.weight.list_data()[0].as_in_context(ctx)
            b_p = conv.bias.list_data()[0].as_in_context(ctx)
            if adapter is not None:
                w_a = adapter.weight.list_data()[0].as_in_context(ctx)[:, :, 0, 0]  # (C_t, C_s)
                b_a = adapter.bias.list_data()[0].as_in_context(ctx)                # (C_t,)
                o, ct, kh, kw = w_p.shape
                # (O*kh*kw, C_t) x (C_t, C_s) -> (O, C_s, kh, kw)
                flat = w_p.transpose((0, 2, 3, 1)).reshape((-1, ct))
                w = mx.nd.dot(flat, w_a).reshape((o, kh, kw, -1)).transpose((0, 3, 1, 2))
                b = b_p + mx.nd.dot(w_p.sum(axis=(2, 3)), b_a)
            else:
                w, b = w_p, b_p
            target.weight.set_data(w)
            target.bias.set_data(b)
    plain.set_nms(nms_thresh=net.nms_thresh, nms_topk=net.nms_topk, post_nms=net.post_nms)
    return plain


def fold_border_offset(net, map_index, height, width):
    """What :func:`fold_adapters` changes at the border of one map's predictor outputs.

    Parameters
    ----------
    net : SSD
        The unfolded student.
    map_index : int
        A map with an adapter.
    height, width : int
        The map's size.

    Returns
    -------
    cls, box : NDArray, (O_cls, H, W) and (O_box, H, W)
        folded output minus unfolded output at each position of the map (zero inside, where
        all 3x3 taps fall in the map): ``sum_{taps outside} sum_t W_p[o, t, i, j] b_a[t]``.
    """
    features = net.features
    if not features._adapt[map_index]:
        raise ValueError("map %d has no adapter" % map_index)
    adapter = features.adapters[sum(features._adapt[:map_index])]
    b_a = adapter.bias.data()
    out = []
    for name in ("class_predictors", "box_predictors"):
        conv = getattr(net, name)[map_index].predictor
        w_p = conv.weight.data()
        k = mx.nd.dot(w_p.transpose((0, 2, 3, 1)), b_a)            # (O, 3, 3)
        # unfolded: the bias seen only through taps inside the map; folded: through all
        inside = mx.nd.Convolution(mx.nd.ones((1, 1, height, width)), k.expand_dims(1),
                                   kernel=k.shape[1:], pad=(1, 1), num_filter=k.shape[0],
                                   no_bias=True)[0]
        out.append(k.sum(axis=(1, 2)).reshape((-1, 1, 1)) - inside)
    return tuple(out)


def deployable(net, ctx=mx.cpu()):
    """The network to export: a student's folded form (:func:`fold_adapters`), else ``net``."""
    features = getattr(net, "features", None)
    if isinstance(features, StudentFeatures) and features.backbone is not None:
        return fold_adapters(net, ctx)
    return net


def count_params(net):
    """Number of scalars in ``net``'s parameters, the anchors (constants) left out."""
    return sum(int(p.list_data()[0].size) for k, p in net.collect_params().items()
               if "anchorgenerator" not in k)


def map_channels(features, data_shape):
    """Channels of each map of a feature block, by symbol shape inference (no weights needed).

    Parameters
    ----------
    features : HybridBlock
        Returns a list of maps (B, C_i, H_i, W_i) for an input (B, 3, H, W).
    data_shape : int

    Returns
    -------
    list of int
    """
    outs = features(mx.sym.var("data"))
    _, shapes, _ = mx.sym.Group(list(outs)).infer_shape(data=(1, 3, data_shape, data_shape))
    return [s[1] for s in shapes]


def build_run_network(run, classes, ctx=mx.cpu()):
    """The network an SSD training run trains, from its arguments, with untrained weights.

    Parameters
    ----------
    run : dict
        The run's arguments (a checkpoint manifest's ``args``): ``student``, ``teacher`` and
        ``data_shape`` for ``train_ssd_gan_kd.py``, ``network`` and ``data_shape`` for
        ``train_ssd.py``; ``dataset`` picks the COCO anchors of a ResNet-50 teacher.
    classes : sequence of str
    ctx : mx.Context

    Returns
    -------
    net : SSD
        Initialised on ``ctx``, shapes materialised: ready for ``load_parameters`` of the
        checkpoint's part.
    part : {'student', 'net'}
        The checkpoint part that holds its weights.

    Raises
    ------
    ValueError
        The arguments are not an SSD run's.
    """
    kind = "coco" if run.get("dataset") == "coco" else "voc"
    if "student" in run and "teacher" in run:
        layout = teacher_layout(run["teacher"], run["data_shape"], kind)
        t_channels = map_channels(build_ssd(run["teacher"], layout, classes).features,
                                  run["data_shape"])
        # head='student': no teacher weights to copy, the checkpoint holds the trained head
        net = build_student(run["student"], None, t_channels, layout, classes, head="student",
                            pretrained_base=False, ctx=ctx)
        return net, "student"
    if "network" in run and "data_shape" in run:
        layout = teacher_layout(run["network"], run["data_shape"], kind)
        net = build_ssd(run["network"], layout, classes, pretrained_base=False)
        initialize_new_params(net, ctx)
        with autograd.train_mode():
            net(mx.nd.zeros((1, 3, layout.data_shape, layout.data_shape), ctx=ctx))
        return net, "net"
    raise ValueError("not the arguments of an SSD training run (no student/teacher or network, "
                     "data_shape)")


def _is_export_params(path):
    """A ``HybridBlock.export`` parameter file: keys ``arg:<name>`` / ``aux:<name>``."""
    try:
        keys = list(mx.nd.load(path))
    except (mx.MXNetError, TypeError):
        return False
    return bool(keys) and all(k.startswith(("arg:", "aux:")) for k in keys)


def load_export_params(net, path, ctx=mx.cpu()):
    """Load the weights of an exported network (``<prefix>-0000.params``) into ``net``.

    An export names its arrays after the exported block's parameters (``arg:ssd3_mobilenet0_
    conv0_weight``), ``save_parameters`` after the block structure (``features.mobilenet0_
    conv0_weight``). The export's names are matched to ``net``'s with each network's own prefix
    (``ssd3_``) left out, so an SSD exported by this project (a teacher from ``train_ssd.py``,
    a folded student) loads into :func:`build_ssd` of the same backbone, layout and classes.

    Parameters
    ----------
    net : HybridBlock
        Initialised (or deferred); its parameter names start with ``net.prefix``.
    path : str
        An export's ``.params``.
    ctx : mx.Context or list

    Raises
    ------
    ValueError
        Names or shapes differ (the message names the first of each, and how many).
    """
    loaded = {}
    for key, value in mx.nd.load(path).items():
        name = key.split(":", 1)[1]
        # the exported block's prefix: 'ssd3_' of 'ssd3_mobilenet0_conv0_weight'
        loaded[name.split("_", 1)[1] if "_" in name else name] = value
    ours = {_strip_net_prefix(k, net.prefix): p for k, p in net.collect_params().items()}
    missing = sorted(set(ours) - set(loaded))
    extra = sorted(set(loaded) - set(ours))
    if missing or extra:
        raise ValueError("the export's parameters differ from the network's (%s)" % "; ".join(
            "%s%s only %s" % (names[0], " and %d more" % (len(names) - 1) if len(names) > 1
                              else "", side)
            for names, side in ((extra, "in the export"), (missing, "in the network")) if names))
    for key, p in ours.items():
        if p.shape is not None and not all(a in (0, b) for a, b in zip(p.shape, loaded[key].shape)):
            raise ValueError("%s has shape %s in the export, %s in the network"
                             % (key, loaded[key].shape, p.shape))
    for key, p in ours.items():
        p._load_init(loaded[key], ctx)      # as load_parameters does, deferred shapes included
