"""Where an evaluated detector comes from: one place to add a source.

Sources (``add_detector_args`` makes them mutually exclusive flags):

- ``--network NAME [--params FILE]``: a GluonCV model-zoo detector built with
  ``pretrained=False`` and loaded from FILE; without ``--params`` the zoo's own
  ``pretrained=True`` download (which needs internet).
- ``--symbol PREFIX``: a network exported with ``HybridBlock.export``
  (``PREFIX-symbol.json`` + ``PREFIX-0000.params``, input ``data``).
- ``--detections DIR``: no network; devkit result files are scored instead.

A new source (e.g. a project checkpoint) is one more flag in :func:`add_detector_args` and one
more branch in :func:`load_detector`.
"""
import os
import warnings

import mxnet as mx
from mxnet import gluon

__all__ = ["add_detector_args", "load_detector", "build_zoo_detector", "import_symbol_detector",
           "zoo_params_path"]


def add_detector_args(parser, detections_help=None):
    """Add ``--network/--params``, ``--symbol`` and ``--detections`` to an argparse parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    detections_help : str, optional
        Help text of ``--detections`` (its format differs between VOC and COCO).
    """
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--network", type=str, default=None,
                       help="GluonCV model-zoo detector name, e.g. ssd_512_mobilenet1.0_voc "
                            "(weights from --params, else the zoo's download)")
    group.add_argument("--symbol", type=str, default=None,
                       help="prefix of an exported detector: PREFIX-symbol.json and "
                            "PREFIX-0000.params (HybridBlock.export)")
    group.add_argument("--detections", type=str, default=None,
                       help=detections_help or "score saved detections instead of running a "
                                               "network")
    parser.add_argument("--params", type=str, default=None,
                        help="weights (.params, save_parameters format) for --network")


def zoo_params_path(name):
    """Where GluonCV's model store looks for (and downloads) the weights of ``name``.

    Returns
    -------
    str
        ``$MXNET_HOME/models/<name>-<hash>.params`` (``~/.mxnet/models`` without MXNET_HOME),
        as ``gluoncv.model_zoo.model_store.get_model_file``.
    """
    from gluoncv.model_zoo.model_store import short_hash
    root = os.path.join(os.environ["MXNET_HOME"], "models") if "MXNET_HOME" in os.environ \
        else os.path.join("~", ".mxnet", "models")
    try:
        file_name = "%s-%s.params" % (name, short_hash(name))
    except (KeyError, ValueError):
        file_name = "%s-<hash>.params" % name  # not in the store: download fails anyway
    return os.path.join(os.path.expanduser(root), file_name)


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
        raise ValueError("--network %s is not a GluonCV model-zoo name (e.g. "
                         "ssd_512_mobilenet1.0_voc, ssd_512_resnet50_v1_custom)" % name)
    kwargs = {"pretrained_base": False}
    if name.lower().endswith("_custom"):
        if classes is None:
            raise ValueError("%s needs the class names of the dataset" % name)
        kwargs["classes"] = list(classes)
    if params is None:
        if kwargs.get("classes") is not None:
            raise ValueError("%s has no zoo weights: pass --params FILE" % name)
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
            raise ValueError("%s predicts %d classes %s, the dataset has %d %s: pass --params "
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
        raise RuntimeError("could not load %s into %s (%d classes): %s"
                           % (params, name, len(getattr(net, "classes", [])), err)) from err
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


def load_detector(args, ctx, classes=None):
    """The detector named by the command line, or None for ``--detections``.

    Parameters
    ----------
    args : argparse.Namespace
        With ``network``, ``params``, ``symbol``, ``detections`` (:func:`add_detector_args`).
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
            raise ValueError("--params goes with --network; --symbol reads PREFIX-0000.params")
        return import_symbol_detector(args.symbol, ctx)
    if getattr(args, "network", None):
        return build_zoo_detector(args.network, ctx, params=args.params, classes=classes)
    raise ValueError("no detector: pass --network NAME [--params FILE], --symbol PREFIX or "
                     "--detections DIR")
