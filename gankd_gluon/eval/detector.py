"""Where an evaluated detector comes from: one place to add a source.

Sources (``add_detector_args`` makes them mutually exclusive flags):

- ``--network NAME [--params FILE]``: a GluonCV model-zoo detector built with
  ``pretrained=False`` and loaded from FILE; without ``--params`` the zoo's own
  ``pretrained=True`` download (which needs internet).
- ``--symbol PREFIX``: a network exported with ``HybridBlock.export``
  (``PREFIX-symbol.json`` + ``PREFIX-0000.params``, input ``data``), e.g. the
  ``<run>-best-student`` / ``<run>-best-net`` exports the training scripts write.
- ``--checkpoint MANIFEST`` (only where the script asks for it): a checkpoint of
  ``scripts/train_faster_rcnn.py`` or ``train_faster_rcnn_gan_kd.py``
  (:func:`load_frcnn_checkpoint`) or of ``train_ssd.py`` or ``train_ssd_gan_kd.py`` (:func:`load_ssd_checkpoint`, a student
  with its adapters folded as it is exported), rebuilt with the run's own settings.
- ``--detections DIR``: no network; devkit result files are scored instead.

A new source is one more flag in :func:`add_detector_args` and one more branch in
:func:`load_detector` (and in :func:`detector_kind`).

:func:`detector_kind` tells, from the flags and without reading any weights, whether the network
is a Faster R-CNN (evaluated with GluonCV's short-side resize) or an SSD (square resize).
"""
import json
import os
import warnings

import mxnet as mx
from mxnet import gluon

from ..models.weights import CheckpointError, load_blocks, read_manifest, zoo_params_path
from ..usage import UsageError

__all__ = ["FASTER_RCNN", "SSD", "add_detector_args", "load_detector", "detector_kind",
           "build_zoo_detector", "import_symbol_detector", "read_checkpoint_manifest",
           "load_frcnn_checkpoint", "load_ssd_checkpoint", "model_meta"]

#: :func:`detector_kind` values
FASTER_RCNN, SSD = "faster_rcnn", "ssd"

# operators only a two-stage detector has in its symbol (GluonCV's FasterRCNN, faster_rcnn.py:
# F.ROIPooling for roi_mode='pool', F.contrib.ROIAlign for 'align')
_ROI_OPS = ("ROIPooling", "_contrib_ROIAlign")


def add_detector_args(parser, detections_help=None, checkpoint=False):
    """Add ``--network/--params``, ``--symbol`` and ``--detections`` to an argparse parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    detections_help : str, optional
        Help text of ``--detections`` (its format differs between VOC and COCO).
    checkpoint : bool
        Also add ``--checkpoint MANIFEST`` (a Faster R-CNN training checkpoint), for scripts
        that can evaluate a Faster R-CNN.
    """
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--network", type=str, default=None,
                       help="GluonCV model-zoo detector name, e.g. ssd_512_mobilenet1.0_voc "
                            "(weights from --params, else the zoo's download)")
    group.add_argument("--symbol", type=str, default=None,
                       help="prefix of an exported detector: PREFIX-symbol.json and "
                            "PREFIX-0000.params (HybridBlock.export)")
    if checkpoint:
        group.add_argument("--checkpoint", type=str, default=None, metavar="MANIFEST",
                           help="a checkpoint of a training script (train_ssd.py, "
                                "train_ssd_gan_kd.py, train_faster_rcnn*.py): "
                                "<save-dir>/<run>/<run>-<tag>.json (tag best, final, "
                                "epoch-...); the network is rebuilt with the run's settings "
                                "(a distilled SSD student with its adapters folded)")
    group.add_argument("--detections", type=str, default=None,
                       help=detections_help or "score saved detections instead of running a "
                                               "network")
    parser.add_argument("--params", type=str, default=None,
                        help="weights (.params, save_parameters format) for --network")


def build_zoo_detector(name, ctx, params=None, classes=None):
    """A GluonCV model-zoo detector with local or downloaded weights.

    Parameters
    ----------
    name : str
        Model-zoo name (``ssd_512_mobilenet1.0_voc``, ``ssd_512_resnet50_v1_custom``, ...).
    ctx : list of mx.Context
    params : str, optional
        A ``save_parameters`` file. Without it the zoo's ``pretrained=True`` weights are used.
    classes : sequence of str, optional
        The evaluated dataset's classes. ``*_custom`` networks are built with them; other
        networks whose classes differ get ``reset_class(classes)`` before ``params`` is loaded
        (a network trained on another dataset with a zoo architecture).

    Returns
    -------
    gluon.HybridBlock
    """
    from gluoncv import model_zoo
    if name.lower() not in model_zoo.get_model_list():
        raise UsageError("--network %s is not a GluonCV model-zoo name (e.g. "
                         "ssd_512_mobilenet1.0_voc, ssd_512_resnet50_v1_custom)" % name)
    kwargs = {"pretrained_base": False}
    if name.lower().endswith("_custom"):
        if classes is None:
            raise ValueError("%s needs the class names of the dataset" % name)
        kwargs["classes"] = list(classes)
    if params is None:
        if kwargs.get("classes") is not None:
            raise UsageError("%s has no zoo weights: pass --params FILE" % name)
        wanted = zoo_params_path(name)
        try:
            net = model_zoo.get_model(name, pretrained=True, ctx=ctx[0] if ctx else mx.cpu())
        except Exception as err:  # network errors come as requests/urllib/OSError types
            from ..models.ssd import WeightsNotFoundError
            raise WeightsNotFoundError(
                "could not get the pretrained weights of %s: GluonCV looked for %s and its "
                "download failed (%s: %s). Put that file there, or pass local weights with "
                "--params FILE" % (name, wanted, type(err).__name__, err)) from err
        if classes is not None and list(net.classes) != list(classes):
            raise UsageError("%s predicts %d classes %s, the dataset has %d %s: pass --params "
                             "with weights trained on this dataset"
                             % (name, len(net.classes), list(net.classes), len(classes),
                                list(classes)))
        net.collect_params().reset_ctx(ctx)
        net.hybridize()
        return net
    if not os.path.isfile(params):
        from ..models.ssd import WeightsNotFoundError
        raise WeightsNotFoundError("--params %s: no such file" % params)
    with warnings.catch_warnings():
        # FeatureExpander's "Cannot decide type ... data": harmless, the input is float32
        warnings.simplefilter("ignore", UserWarning)
        net = model_zoo.get_model(name, pretrained=False, **kwargs)
    if classes is not None and hasattr(net, "reset_class") and list(net.classes) != list(classes):
        # reset_class reads the old predictors' context: give them (placeholder) values first;
        # load_parameters below overwrites every parameter
        net.initialize(ctx=ctx)
        net.reset_class(list(classes))
    try:
        net.load_parameters(params, ctx=ctx)
    except (AssertionError, ValueError, mx.base.MXNetError) as err:
        hint = ""
        try:
            loaded = mx.nd.load(params)
        except mx.base.MXNetError:
            loaded = {}
        keys = list(loaded) if isinstance(loaded, dict) else []
        if any(k.startswith("_target_generator.") for k in keys):
            # written by a Faster R-CNN training run (the RCNN target generator's constants)
            hint = (" (weights of a scripts/train_faster_rcnn*.py checkpoint: pass "
                    "--checkpoint <run>-<tag>.json, which also restores the run's RoI mode "
                    "and sizes)")
        raise RuntimeError("could not load %s into %s (%d classes)%s: %s"
                           % (params, name, len(getattr(net, "classes", [])), hint, err)) from err
    net.hybridize()  # as GluonCV's eval scripts: one cached graph instead of op-by-op calls
    return net


def import_symbol_detector(prefix, ctx, epoch=0):
    """An exported detector (``HybridBlock.export(prefix)``).

    Parameters
    ----------
    prefix : str
        Reads ``<prefix>-symbol.json`` and ``<prefix>-%04d.params`` (epoch).
    ctx : list of mx.Context
    epoch : int

    Returns
    -------
    gluon.SymbolBlock
        Input ``data`` (B, 3, H, W); outputs as the exported block's.
    """
    symbol_file = "%s-symbol.json" % prefix
    params_file = "%s-%04d.params" % (prefix, epoch)
    for path in (symbol_file, params_file):
        if not os.path.isfile(path):
            from ..models.ssd import WeightsNotFoundError
            raise WeightsNotFoundError("--symbol %s: %s not found (HybridBlock.export(prefix) "
                                    "writes PREFIX-symbol.json and PREFIX-0000.params)"
                                    % (prefix, path))
    with warnings.catch_warnings():
        # "Cannot decide type for the following arguments ... data": harmless, float32 input
        warnings.simplefilter("ignore", UserWarning)
        return gluon.SymbolBlock.imports(symbol_file, ["data"], params_file, ctx=ctx)


def read_checkpoint_manifest(path):
    """The manifest of the ``--checkpoint`` at ``path``, with the run's arguments
    (:func:`~gankd_gluon.models.weights.read_manifest`, the reader the training engine uses).

    Raises
    ------
    CheckpointError
        No such file, or not a checkpoint manifest.
    """
    return read_manifest(path, "--checkpoint", need_args=True)


def _manifest_kind(manifest):
    run = manifest["args"]
    if "roi_mode" in run:               # engine/frcnn_runs.py's flags
        return FASTER_RCNN
    if "data_shape" in run:             # engine/ssd_runs.py's
        return SSD
    return None


def _symbol_kind(prefix):
    from ..models.export_meta import read_meta
    meta = read_meta(prefix)
    if meta is not None:
        return meta["kind"]
    try:
        with open("%s-symbol.json" % prefix) as f:
            nodes = json.load(f).get("nodes", [])
    except (OSError, ValueError, AttributeError):
        return None                     # import_symbol_detector says what is missing
    if any(n.get("op") in _ROI_OPS for n in nodes):
        return FASTER_RCNN
    # GluonCV's SSDAnchorGenerator constants, e.g. 'ssd0_ssdanchorgenerator0_anchor_0'
    if any(n.get("op") == "null" and "ssdanchorgenerator" in n.get("name", "") for n in nodes):
        return SSD
    return None


def detector_kind(args):
    """What the command line's network is, read from the flags and file headers only.

    Parameters
    ----------
    args : argparse.Namespace
        As :func:`load_detector`.

    Returns
    -------
    {'faster_rcnn', 'ssd', None}
        ``faster_rcnn``: a ``faster_rcnn_*`` zoo name, an exported symbol with RoI pooling or
        RoIAlign, or a Faster R-CNN training checkpoint. ``ssd``: an ``ssd_*`` zoo name, an
        exported symbol with GluonCV's SSD anchor generators, or an SSD training checkpoint.
        None: anything else, and ``--detections``.
    """
    if getattr(args, "detections", None):
        return None
    if getattr(args, "checkpoint", None):
        return _manifest_kind(read_checkpoint_manifest(args.checkpoint))
    if getattr(args, "symbol", None):
        return _symbol_kind(args.symbol)
    name = (getattr(args, "network", None) or "").lower()
    if name.startswith("faster_rcnn"):
        return FASTER_RCNN
    if name.startswith("ssd"):
        return SSD
    return None


def run_classes_of(manifest):
    """The classes a checkpoint's network predicts: the manifest's ``kind.classes`` (every
    manifest since own class names), else the run's ``--classes``, else its dataset's
    default names.

    Returns
    -------
    tuple of str
    """
    from ..data.datasets import dataset_classes
    kind = manifest.get("kind") if isinstance(manifest.get("kind"), dict) else {}
    run = manifest.get("args") or {}
    if kind.get("classes"):
        return tuple(kind["classes"])
    if run.get("classes"):
        return tuple(run["classes"])
    return dataset_classes(run["dataset"])


def load_frcnn_checkpoint(path, ctx, classes=None):
    """The Faster R-CNN of a ``train_faster_rcnn.py`` / ``train_faster_rcnn_gan_kd.py`` checkpoint.

    The manifest stores the run's arguments (``engine/loop.py``), so the network is rebuilt as
    the run built it (:func:`~gankd_gluon.models.faster_rcnn.build_faster_rcnn`: backbone
    ``--network`` or ``--student``, ``--roi-mode``, ``--roi-size``, the ``--rpn-*`` sizes, the
    dataset's classes) and loaded from the part ``net`` (plain training) or ``student``
    (distillation).

    Parameters
    ----------
    path : str
        ``<save-dir>/<run>/<run>-<tag>.json``.
    ctx : list of mx.Context
    classes : sequence of str, optional
        The evaluated dataset's classes; must be the run's.

    Returns
    -------
    gluoncv.model_zoo.rcnn.faster_rcnn.FasterRCNN
        Hybridized, frozen.
    """
    from ..models.faster_rcnn import ZOO_SETTINGS, build_faster_rcnn, load_trained_params
    from ..models.ssd import freeze
    manifest = read_checkpoint_manifest(path)
    run, parts = manifest["args"], manifest["parts"]
    if _manifest_kind(manifest) != FASTER_RCNN:
        raise CheckpointError("--checkpoint %s is not a Faster R-CNN checkpoint (an SSD run's "
                              "network is evaluated from its export: --symbol "
                              "<run>-<tag>-student or <run>-<tag>-net)" % path)
    part = "net" if "net" in parts else "student"
    params = os.path.join(os.path.dirname(os.path.abspath(path)), parts.get(part, ""))
    if part not in parts or not os.path.isfile(params):
        raise CheckpointError("--checkpoint %s: its network weights (part 'net' or 'student') "
                              "are missing" % path)
    run_classes = run_classes_of(manifest)
    if classes is not None and tuple(classes) != tuple(run_classes):
        raise UsageError("--checkpoint %s was trained on --dataset %s (%d classes %s), the "
                         "evaluated dataset has %d %s" % (path, run["dataset"], len(run_classes),
                                                         list(run_classes), len(classes),
                                                         list(classes)))
    backbone = run["network"] if part == "net" else run["student"]
    settings = {k: run.get(k, v) for k, v in ZOO_SETTINGS.items()}
    net = build_faster_rcnn(backbone, run_classes, run["roi_mode"], pretrained_base=False,
                            **settings)
    try:
        load_trained_params(net, params, ctx)
    except (AssertionError, ValueError, mx.base.MXNetError) as err:
        raise RuntimeError("could not load %s into a %s Faster R-CNN (%d classes): %s"
                           % (params, backbone, len(run_classes), str(err).splitlines()[0])) \
            from err
    net.hybridize()
    return freeze(net)


def model_meta(args):
    """What the command line's model says about itself: its kind, classes and input size.

    Parameters
    ----------
    args : argparse.Namespace
        :func:`add_detector_args`'s flags.

    Returns
    -------
    dict or None
        :func:`~gankd_gluon.models.export_meta.build_meta`'s keys: the ``-meta.json`` of a
        ``--symbol`` export, or built from a ``--checkpoint`` manifest's run arguments. None for
        a zoo ``--network``, ``--detections`` and an export without metadata.

    Raises
    ------
    ExportMetaError
        An unreadable ``-meta.json``.
    CheckpointError
        An unreadable manifest.
    """
    from ..models.export_meta import build_meta, read_meta
    if getattr(args, "detections", None):
        return None
    if getattr(args, "symbol", None):
        return read_meta(args.symbol)
    if getattr(args, "checkpoint", None):
        manifest = read_checkpoint_manifest(args.checkpoint)
        run, kind = manifest["args"], _manifest_kind(manifest)
        if kind is None:
            return None
        classes = run_classes_of(manifest)
        size = {"data_shape": run["data_shape"]} if kind == SSD else \
            {"short": run["short"], "max_size": run["max_size"]}
        meta = build_meta(kind, classes, size, run, os.path.basename(args.checkpoint), commit="")
        meta["commit"] = manifest.get("commit")      # the run's, not this checkout's
        return meta
    return None


def load_ssd_checkpoint(path, ctx, classes=None):
    """The deployable SSD of a ``train_ssd.py`` / ``train_ssd_gan_kd.py`` checkpoint.

    The network is rebuilt from the run's arguments
    (:func:`~gankd_gluon.models.ssd.build_run_network`), loaded from the part ``net`` (plain
    training) or ``student`` (distillation), and a student's adapters are folded into its head
    (:func:`~gankd_gluon.models.ssd.fold_adapters`), as the run's own export is.

    Parameters
    ----------
    path : str
        ``<save-dir>/<run>/<run>-<tag>.json``.
    ctx : list of mx.Context
    classes : sequence of str, optional
        Unused: the run's own classes are the network's (the scripts compare them with the
        data's through :func:`model_meta`).

    Returns
    -------
    gluoncv.model_zoo.ssd.SSD
        Hybridized, frozen, on ``ctx``.

    Raises
    ------
    CheckpointError
        Not an SSD checkpoint, or its weights do not fit the rebuilt network.
    """
    from ..models.ssd import build_run_network, deployable, freeze
    manifest = read_checkpoint_manifest(path)
    if _manifest_kind(manifest) != SSD:
        raise CheckpointError("--checkpoint %s is not an SSD checkpoint" % path)
    run, parts = manifest["args"], manifest["parts"]
    part = "net" if "net" in parts else "student"
    params = os.path.join(os.path.dirname(os.path.abspath(path)), parts.get(part, ""))
    if part not in parts or not os.path.isfile(params):
        raise CheckpointError("--checkpoint %s: its network weights (part 'net' or 'student') "
                              "are missing" % path)
    need = ("student", "teacher") if part == "student" else ("network",)
    lacking = [k for k in need + ("dataset",) if k not in run]
    if lacking:
        raise CheckpointError("--checkpoint %s: its run's arguments lack %s (not a checkpoint "
                              "of train_ssd.py or train_ssd_gan_kd.py)"
                              % (path, ", ".join(lacking)))
    run_classes = run_classes_of(manifest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)    # FeatureExpander's "Cannot decide type"
        net, part = build_run_network(run, run_classes, mx.cpu())
    load_blocks(path, {part: net}, mx.cpu(), flag="--checkpoint")
    net = deployable(net, mx.cpu())
    net.collect_params().reset_ctx(ctx)
    net.hybridize()
    return freeze(net)


def load_detector(args, ctx, classes=None):
    """The detector named by the command line, or None for ``--detections``.

    Parameters
    ----------
    args : argparse.Namespace
        With ``network``, ``params``, ``symbol``, ``detections`` and optionally ``checkpoint``
        (:func:`add_detector_args`).
    ctx : list of mx.Context
    classes : sequence of str, optional
        The evaluated dataset's class names.

    Returns
    -------
    gluon.Block or None
    """
    if getattr(args, "detections", None):
        return None
    if getattr(args, "symbol", None):
        if args.params:
            raise UsageError("--params goes with --network; --symbol reads PREFIX-0000.params")
        return import_symbol_detector(args.symbol, ctx)
    if getattr(args, "checkpoint", None):
        if args.params:
            raise UsageError("--params goes with --network; --checkpoint names its own weights")
        if _manifest_kind(read_checkpoint_manifest(args.checkpoint)) == SSD:
            return load_ssd_checkpoint(args.checkpoint, ctx, classes)
        return load_frcnn_checkpoint(args.checkpoint, ctx, classes)
    if getattr(args, "network", None):
        return build_zoo_detector(args.network, ctx, params=args.params, classes=classes)
    raise UsageError("no detector: pass --network NAME [--params FILE], --symbol PREFIX, "
                     "--checkpoint MANIFEST (where offered) or --detections DIR")
