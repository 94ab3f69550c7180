"""Faster R-CNN teacher and student for GAN-KD (paper Table 3), on GluonCV's model zoo.

The networks are GluonCV's own ``faster_rcnn_<backbone>_voc`` presets
(``model_zoo/rcnn/faster_rcnn/predefined_models.py``): student ``resnet50_v1b``, teacher
``resnet101_v1d``. Both split the same way (gluoncv 0.10.5
``gluoncv/model_zoo/rcnn/faster_rcnn/predefined_models.py``): ``net.features`` is the C4
backbone (stride 16, 1024 channels), the map the RPN and the RoI pooling read and the map the
critics compare; ``net.top_features`` (layer4) runs after RoI pooling.

What this module adds to the presets, and why:

* :func:`build_faster_rcnn` changes settings the presets hard-code (passing them to
  ``get_model`` raises ``TypeError: got multiple values``): the classes (``synthetic``), the
  per-device batch, and the RPN/RoI sampling sizes that a CPU demo on small images needs
  (:data:`ZOO_SETTINGS` are the presets' values and the defaults everywhere). ``roi_mode`` is
  set after the build (``net._roi_mode``, read in every forward: :func:`set_roi_mode`).
* :func:`build_teacher` loads a trained teacher (a zoo file or one from
  ``scripts/train_faster_rcnn.py``) and freezes it; a failed download names the file and flags.
* :class:`FeatureTap` reads the student's stride-16 map out of its training forward (a Gluon
  forward hook), so the detection losses, the critics and the imitation losses share one
  forward of the student.
* :func:`rpn_raw_outputs` and :func:`rcnn_on_rois` run the teacher's RPN head on its own map
  and its RCNN head on the *student's* sampled RoIs, which Chen et al.'s RPN/RCN distillation
  needs (``--method chen``).
"""
import contextlib
import math
import os
import warnings

import mxnet as mx
from mxnet import autograd
from mxnet.gluon import HybridBlock, nn

from .ssd import WeightsNotFoundError, freeze

__all__ = ["STUDENT", "TEACHER", "BACKBONES", "ZOO_SETTINGS", "ROI_MODES", "zoo_name",
           "build_faster_rcnn", "build_teacher", "load_trained_params", "initialize_params",
           "set_roi_mode", "set_hybrid", "FeatureTap", "MapAdapter", "rpn_raw_outputs",
           "rcnn_on_rois", "feature_channels", "map_size"]

STUDENT = "resnet50_v1b"      # faster_rcnn_resnet50_v1b_voc (paper Table 3)
TEACHER = "resnet101_v1d"     # faster_rcnn_resnet101_v1d_voc
BACKBONES = (STUDENT, TEACHER)
ROI_MODES = ("pool", "align")

#: The presets' values (predefined_models.py, faster_rcnn_resnet50_v1b_voc and
#: faster_rcnn_resnet101_v1d_voc): input short side / long-side cap, RoIs sampled per image
#: for the RCNN head, RoI pooling output, RPN proposals before / after NMS in training and
#: test. The published run used them (GluonCV's train_faster_rcnn.py); only CPU demos lower them.
ZOO_SETTINGS = {"short": 600, "max_size": 1000, "num_sample": 128, "roi_size": 14,
                "rpn_train_pre_nms": 12000, "rpn_train_post_nms": 2000,
                "rpn_test_pre_nms": 6000, "rpn_test_post_nms": 300}
_ANCHORS_PER_PIXEL = 15        # scales (2, 4, 8, 16, 32) x ratios (.5, 1, 2), both presets
_STRIDE = 16


def zoo_name(backbone, dataset="voc"):
    """GluonCV model-zoo name, e.g. ``faster_rcnn_resnet50_v1b_voc``."""
    return "faster_rcnn_%s_%s" % (backbone, dataset)


def map_size(side):
    """Side of the stride-16 map for an input side (C4 of ResNet-v1b/v1d: ceil(side / 16))."""
    return int(math.ceil(side / float(_STRIDE)))


@contextlib.contextmanager
def _preset_overrides(overrides):
    """Make the zoo presets build with ``overrides`` replacing their hard-coded arguments.

    The presets call ``get_faster_rcnn(name=..., classes=VOC, short=600, ..., **kwargs)`` with
    fixed keyword arguments, so the only way to change, e.g., ``num_sample`` without copying
    the preset is to intercept that one call. Everything not overridden stays GluonCV's.
    """
    from gluoncv.model_zoo.rcnn.faster_rcnn import predefined_models
    original = predefined_models.get_faster_rcnn

    def get_faster_rcnn(**kwargs):
        kwargs.update(overrides)
        return original(**kwargs)
    predefined_models.get_faster_rcnn = get_faster_rcnn
    try:
        yield
    finally:
        predefined_models.get_faster_rcnn = original


def _check_settings(settings):
    """Refuse RPN sizes the smallest input cannot supply (GluonCV slices ``post_nms``
    proposals out of the anchors and fails deep inside the RPN otherwise)."""
    side = map_size(settings["short"])
    anchors = side * side * _ANCHORS_PER_PIXEL
    for key in ("rpn_train_post_nms", "rpn_test_post_nms"):
        if settings[key] > anchors:
            raise ValueError(
                "--%s %d: a %d px input has only %d RPN anchors (%dx%d map x %d); lower it "
                "(or raise --short)" % (key.replace("_", "-"), settings[key], settings["short"],
                                        anchors, side, side, _ANCHORS_PER_PIXEL))
    if settings["num_sample"] > settings["rpn_train_post_nms"]:
        raise ValueError("--num-sample %d exceeds --rpn-train-post-nms %d (the RCNN samples "
                         "its RoIs from the proposals)" % (settings["num_sample"],
                                                           settings["rpn_train_post_nms"]))


def set_roi_mode(net, roi_mode):
    """RoI pooling (``'pool'``, ROIPooling) or RoIAlign (``'align'``, sample_ratio 2).

    The presets hard-code ``roi_mode='align'``; FasterRCNN reads ``_roi_mode`` in every
    forward (gluoncv 0.10.5 ``gluoncv/model_zoo/rcnn/faster_rcnn/faster_rcnn.py``, lines
    389-395), so setting it after the build is enough (``tests/test_frcnn_models.py`` checks
    both modes), plus a new trace if the net was hybridized.
    """
    if roi_mode not in ROI_MODES:
        raise ValueError("--roi-mode must be 'pool' or 'align', got %r" % (roi_mode,))
    net._roi_mode = roi_mode                        # pylint: disable=protected-access
    if getattr(net, "_active", False):
        net.hybridize()
    return net


# the preset's cut of the ImageNet network: features = [conv1, bn1, relu, maxpool, layer1,
# layer2, layer3], top_features = [layer4] (predefined_models.py)
_BACKBONE_PARTS = {"conv1": "features.0", "bn1": "features.1", "layer1": "features.4",
                   "layer2": "features.5", "layer3": "features.6", "layer4": "top_features.0"}


def _load_backbone(net, backbone, path):
    """Load a local ImageNet ``.params`` file of ``backbone`` into the detector's backbone.

    The file is read by the ImageNet network itself (either of MXNet's key styles), saved
    with structural names, renamed to the detector's (``layer1.0.conv1.weight`` ->
    ``features.4.0.conv1.weight``) and loaded; the classifier is dropped.
    """
    import tempfile
    from gluoncv.model_zoo import get_model
    if not os.path.isfile(path):
        raise WeightsNotFoundError("--pretrained-base %s: no such file" % path)
    base = get_model(backbone, pretrained=False, dilated=False, use_global_stats=True)
    try:
        base.load_parameters(path, ignore_extra=True)
    except (AssertionError, mx.MXNetError, ValueError) as err:
        raise ValueError("--pretrained-base %s is not a %s ImageNet file: %s"
                         % (path, backbone, str(err).splitlines()[0])) from err
    with tempfile.TemporaryDirectory() as tmp:
        base.save_parameters(os.path.join(tmp, "base.params"))
        renamed = {}
        for key, value in mx.nd.load(os.path.join(tmp, "base.params")).items():
            head, _, rest = key.partition(".")
            if head in _BACKBONE_PARTS:
                renamed["%s.%s" % (_BACKBONE_PARTS[head], rest)] = value
        mx.nd.save(os.path.join(tmp, "renamed.params"), renamed)
        net.load_parameters(os.path.join(tmp, "renamed.params"), allow_missing=True)


def build_faster_rcnn(backbone, classes, roi_mode="align", per_device_batch_size=1,
                      pretrained_base=False, **settings):
    """A GluonCV Faster R-CNN preset with our classes, batch and (demo) sizes.

    Parameters
    ----------
    backbone : {'resnet50_v1b', 'resnet101_v1d'}
        Selects the ``faster_rcnn_<backbone>_voc`` preset (its anchors, train patterns, NMS).
    classes : sequence of str
    roi_mode : {'pool', 'align'}
        Paper Table 3 rows; set after the build (:func:`set_roi_mode`).
    per_device_batch_size : int
        Images per device in training (the network's RoI sampler is built for it).
    pretrained_base : bool or str
        True: GluonCV's ImageNet weights (download on first use); False: none; a path: a local
        ImageNet ``.params`` file of ``backbone``.
    **settings
        Any of :data:`ZOO_SETTINGS` (``roi_size`` an int); missing ones keep the preset's.

    Returns
    -------
    gluoncv.model_zoo.rcnn.faster_rcnn.FasterRCNN
        Parameters not initialised, except a pretrained backbone (:func:`initialize_params`).
    """
    from gluoncv.model_zoo import get_model
    if backbone not in BACKBONES:
        raise ValueError("unknown Faster R-CNN backbone %r; choose one of %s"
                         % (backbone, ", ".join(BACKBONES)))
    unknown = set(settings) - set(ZOO_SETTINGS)
    if unknown:
        raise TypeError("unknown Faster R-CNN settings %s" % sorted(unknown))
    full = dict(ZOO_SETTINGS, **settings)
    _check_settings(full)
    overrides = dict(full, classes=tuple(classes), roi_size=(full["roi_size"],) * 2,
                     per_device_batch_size=int(per_device_batch_size))
    if pretrained_base is True:
        from gluoncv.model_zoo.model_store import get_model_file
        from .weights import zoo_params_path
        try:
            get_model_file(backbone, root=os.path.join("~", ".mxnet", "models"))
        except Exception as err:  # network errors come in many types from requests/urllib
            raise WeightsNotFoundError(
                "could not get the ImageNet weights of %r from GluonCV's model zoo (%s: %s). "
                "GluonCV looked for %s. Put the file there, or pass --pretrained-base FILE, or "
                "--pretrained-base none to start from scratch."
                % (backbone, type(err).__name__, err, zoo_params_path(backbone))) from err
    with warnings.catch_warnings(), _preset_overrides(overrides):
        warnings.simplefilter("ignore", UserWarning)
        net = get_model(zoo_name(backbone), pretrained=False,
                        pretrained_base=pretrained_base is True)
    if isinstance(pretrained_base, str):
        _load_backbone(net, backbone, pretrained_base)
    return set_roi_mode(net, roi_mode)


def initialize_params(net, ctx):
    """Initialise the parameters that have no data yet, as GluonCV's train_faster_rcnn.py does
    (``param.initialize()``: each block's own initializer, else MXNet's default uniform).

    The backbone's BatchNorm layers are frozen (``use_global_stats=True``), so a from-scratch
    backbone has no normalisation: MXNet's default uniform(0.07) keeps the stride-16 map at a
    standard deviation near 0.07, where a He initialisation would grow it to about 100 (both
    measured on ResNet50-v1b at 160 px).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in net.collect_params().values():
            if p._data is None and not p._deferred_init:   # pylint: disable=protected-access
                p.initialize(ctx=ctx)
    return net


def build_teacher(backbone, classes, params=None, ctx=mx.cpu(), **settings):
    """A trained Faster R-CNN teacher, frozen (``grad_req='null'``).

    Parameters
    ----------
    backbone : str
        ``resnet101_v1d`` in the paper.
    classes : sequence of str
    params : str or None
        A ``.params`` file (``--teacher-params``): GluonCV's zoo file or the ``.net.params`` of
        a ``scripts/train_faster_rcnn.py`` run. None: GluonCV's zoo file (VOC classes only).
    ctx : Context
    **settings
        As :func:`build_faster_rcnn`; the weights do not depend on them.

    Returns
    -------
    FasterRCNN. Run its ``features`` outside ``autograd.record()``.
    """
    from .weights import zoo_params_path
    net = build_faster_rcnn(backbone, classes, roi_mode="align", pretrained_base=False,
                            **settings)
    if params is None:
        from gluoncv.data import VOCDetection
        name = zoo_name(backbone)
        if tuple(classes) != tuple(VOCDetection.CLASSES):
            raise WeightsNotFoundError(
                "the zoo teacher %s predicts VOC's 20 classes, this dataset has %d: pass "
                "--teacher-params FILE trained on it (scripts/train_faster_rcnn.py --network %s)"
                % (name, len(classes), backbone))
        try:
            from gluoncv.model_zoo.model_store import get_model_file
            params = get_model_file(name, root=os.path.join("~", ".mxnet", "models"))
        except Exception as err:
            raise WeightsNotFoundError(
                "could not get the trained teacher %r from GluonCV's model zoo (%s: %s). "
                "GluonCV looked for %s. Put the file there, or pass --teacher-params FILE (a "
                "zoo file or a teacher from scripts/train_faster_rcnn.py)."
                % (name, type(err).__name__, err, zoo_params_path(name))) from err
    if not os.path.isfile(params):
        raise WeightsNotFoundError("--teacher-params %s: no such file" % params)
    from .export_meta import class_mismatch, trained_classes
    theirs = trained_classes(params)
    if theirs is not None and list(theirs) != list(classes):
        raise WeightsNotFoundError(class_mismatch("--teacher-params", params, theirs, classes))
    try:
        load_trained_params(net, params, ctx)
    except (AssertionError, mx.MXNetError, ValueError) as err:
        raise ValueError("--teacher-params %s does not fit a %s Faster R-CNN with %d classes: "
                         "%s" % (params, backbone, len(classes), str(err).splitlines()[0])) \
            from err
    return freeze(net)


def load_trained_params(net, path, ctx):
    """Load Faster R-CNN weights saved by GluonCV or by one of our training runs.

    A file saved after training also holds the RCNN target generator's constants (GluonCV
    builds it lazily, at the first training forward; inference does not use them); they are
    skipped, and nothing else may be extra.

    Raises
    ------
    ValueError, AssertionError or MXNetError
        Extra, missing or misshapen parameters.
    """
    names = set(net._collect_params_with_prefix())     # pylint: disable=protected-access
    extra = [k for k in mx.nd.load(path) if k not in names
             and not k.startswith("_target_generator.")]
    if extra:
        raise ValueError("unexpected parameters %s" % ", ".join(sorted(extra)[:5]))
    net.load_parameters(path, ctx=ctx, ignore_extra=True)
    return net


def set_hybrid(net, mode):
    """Hybridize a Faster R-CNN for what comes next; a no-op when already in that mode.

    ``'full'``: one cached graph (plain training, inference, export). ``'parts'``: each child
    block is hybridized but the top-level forward runs imperatively, so a forward hook on
    ``net.features`` sees its output (:class:`FeatureTap`). ``'off'``: no hybridization.
    Anything that re-traces the net behind our back (export, validation) must be followed by
    ``net._gankd_hybrid = None``.
    """
    if mode not in ("full", "parts", "off"):
        raise ValueError("hybrid mode must be full, parts or off, got %r" % (mode,))
    if getattr(net, "_gankd_hybrid", None) == mode:
        return net
    with warnings.catch_warnings():
        # "being hybridized while still having forward hook": the FeatureTap, see above
        warnings.simplefilter("ignore", UserWarning)
        if mode == "full":
            net.hybridize()
        else:
            net.hybridize(False)
            if mode == "parts":
                for child in net._children.values():   # pylint: disable=protected-access
                    child.hybridize()
    net._gankd_hybrid = mode
    return net


class FeatureTap(object):
    """Collects the output of a block (the student's ``net.features``) at every call.

    A Gluon forward hook, so it fires only while the detector's top-level forward runs
    imperatively (``set_hybrid(net, 'parts')``); each call appends one map, in call order (one
    per device). The maps stay in the autograd graph of the forward that made them. A fully
    hybridized detector shows it nothing (its trace runs on Symbols, which are ignored).
    """

    def __init__(self, block):
        self.outputs = []
        with warnings.catch_warnings():
            # MXNet warns that hooks on a child of a HybridBlock "will not take effect": true
            # only while the parent is hybridized, which set_hybrid(net, 'parts') avoids
            warnings.simplefilter("ignore", UserWarning)
            self._handle = block.register_forward_hook(self._hook)

    def _hook(self, _block, _inputs, output):
        if isinstance(output, mx.nd.NDArray):     # not the Symbols of a hybridize trace
            self.outputs.append(output)

    def pop(self):
        """The maps collected since the last pop."""
        out, self.outputs = self.outputs, []
        return out

    def detach(self):
        """Remove the hook."""
        self._handle.detach()


class MapAdapter(HybridBlock):
    """1x1 conv from the student's channels to the teacher's, or the identity if they match.

    The ResNet50-v1b student and ResNet101-v1d teacher both give 1024 channels at stride 16
    (no adapter); other pairs get Chen et al. 3.4's linear 1x1 adaptation so that the critics
    compare like with like. Trained with the student.

    Inputs: x (B, C_s, H, W). Output: (B, C_t, H, W).
    """

    def __init__(self, student_channels, teacher_channels, **kwargs):
        super(MapAdapter, self).__init__(**kwargs)
        self.conv = None
        if student_channels != teacher_channels:
            with self.name_scope():
                self.conv = nn.Conv2D(teacher_channels, 1, in_channels=student_channels)

    def hybridize(self, active=True, **kwargs):
        # A hybridized identity returns its input through a cached graph with no autograd
        # history (MXNet 1.9): a backward through it would then drop the adversarial gradient
        # silently. The identity has nothing to gain from a graph: it stays imperative.
        if self.conv is not None:
            super(MapAdapter, self).hybridize(active, **kwargs)

    def hybrid_forward(self, F, x):
        return x if self.conv is None else self.conv(x)


def feature_channels(net, side=64):
    """Channels of ``net.features`` by symbol shape inference (no forward, no parameters)."""
    out = net.features(mx.sym.var("data"))
    _, shapes, _ = out.infer_shape(data=(1, 3, side, side))
    return shapes[0][1]


def rpn_raw_outputs(net, feat):
    """The RPN head's raw scores and box offsets for every anchor of a map.

    The same ops as GluonCV's ``RPN.hybrid_forward`` (rpn/rpn.py, single level) before the
    proposal layer: what the train-mode forward returns as ``raw_rpn_score`` and
    ``raw_rpn_box`` (outputs 5 and 6 of ``FasterRCNN.hybrid_forward``'s training branch,
    gluoncv 0.10.5 ``faster_rcnn.py``), without proposals or NMS.

    Parameters
    ----------
    net : FasterRCNN
    feat : NDArray (B, C, H, W)

    Returns
    -------
    raw_score : NDArray (B, H*W*15, 1); raw_box : NDArray (B, H*W*15, 4)
    """
    x = net.rpn.conv1(feat)
    raw_score = net.rpn.score(x).transpose(axes=(0, 2, 3, 1)).reshape((0, -1, 1))
    raw_box = net.rpn.loc(x).transpose(axes=(0, 2, 3, 1)).reshape((0, -1, 4))
    return raw_score, raw_box


def rcnn_on_rois(net, feat, rois, indices):
    """``net``'s RCNN head on given RoIs (the student's), as GluonCV's train-mode forward.

    The ops of ``FasterRCNN.hybrid_forward`` after the proposals (faster_rcnn.py:376-418):
    RoI pooling of ``net`` (its own ``_roi_mode``/``_roi_size``), ``top_features``, average
    pooling, class predictor on all RoIs, box predictor on the positive ones.

    Parameters
    ----------
    net : FasterRCNN
        The teacher.
    feat : NDArray (B, C, H, W)
        ``net``'s own stride-16 map.
    rois : NDArray (B, N, 4)
        Sampled RoIs, corner pixels (the student's train output 2).
    indices : NDArray (B, P)
        The positive RoIs whose boxes are regressed (the student's train output 11).

    Returns
    -------
    cls_pred : NDArray (B, N, C+1); box_pred : NDArray (B, P, C, 4)
    """
    F = mx.nd
    batch, num_roi = rois.shape[0], rois.shape[1]
    with autograd.pause():
        batchid = F.repeat(F.arange(0, batch, ctx=rois.context), num_roi).reshape((-1, 1))
        rpn_roi = F.concat(batchid, rois.reshape((-1, 4)), dim=-1)
    scale = 1. / net._strides                              # pylint: disable=protected-access
    if net._roi_mode == "pool":                             # pylint: disable=protected-access
        pooled = F.ROIPooling(feat, rpn_roi, net._roi_size, scale)
    else:
        pooled = F.contrib.ROIAlign(feat, rpn_roi, net._roi_size, scale, sample_ratio=2)
    top = net.top_features(pooled)
    if net.box_features is None:
        box_feat = F.contrib.AdaptiveAvgPooling2D(top, output_size=1)
    else:
        box_feat = net.box_features(top)
    cls_pred = net.class_predictor(box_feat).reshape((batch, num_roi, net.num_class + 1))
    box_feat = box_feat.reshape((batch, num_roi, -1))
    picked = F.concat(*[F.take(box_feat[i], indices[i]) for i in range(batch)], dim=0)
    box_pred = net.box_predictor(picked).reshape((batch, -1, net.num_class, 4))
    return cls_pred, box_pred
