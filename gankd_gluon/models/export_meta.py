"""Exports that describe themselves: ``<prefix>-meta.json`` beside ``<prefix>-symbol.json``.

``HybridBlock.export`` writes a graph and its weights, nothing about the images the network
expects. The training scripts write a third file with what a user of the export needs:

``format``
    ``gankd-export/1``.
``kind``
    ``ssd`` or ``faster_rcnn``: how images are resized (square, or by the short side).
``classes``
    The class names, in the order of the network's class ids.
``input``
    ``{"data_shape": S}`` (SSD: square S x S input) or ``{"short": S, "max_size": M}``
    (Faster R-CNN).
``mean``, ``std``
    Per-channel normalisation of RGB pixels scaled to [0, 1], GluonCV's presets'
    (``x = (pixel / 255 - mean) / std``).
``args``, ``checkpoint``, ``commit``
    The training run's arguments, the checkpoint manifest the weights came from (file name
    beside the export; None in the content-named export several manifests share, set in each
    ``<run>-<tag>-<what>-meta.json``), the git commit of the code that trained it (None
    outside a checkout).

:func:`read_meta` reads it back (None for an export without one), :func:`check_against` refuses
command-line settings that disagree with it.
"""
import json
import os
import subprocess

__all__ = ["META_SUFFIX", "FORMAT", "MEAN", "STD", "ExportMetaError", "build_meta", "write_meta",
           "read_meta", "check_against", "git_commit", "export_prefix"]

META_SUFFIX = "-meta.json"
FORMAT = "gankd-export/1"
#: GluonCV's SSD and Faster R-CNN presets (data/transforms/presets/ssd.py, rcnn.py): ImageNet's
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
_KIND_NAME = {"ssd": "an SSD", "faster_rcnn": "a Faster R-CNN"}


class ExportMetaError(ValueError):
    """An export's metadata is unreadable, or the command line disagrees with it."""


def git_commit(path=None):
    """The commit checked out where this package lives (or at ``path``), or None.

    Returns
    -------
    str or None
        40 hex digits, with ``-dirty`` appended when tracked files have uncommitted changes.
    """
    where = path or os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def build_meta(kind, classes, input_size, args=None, checkpoint=None, commit=None):
    """The metadata of an export.

    Parameters
    ----------
    kind : {'ssd', 'faster_rcnn'}
    classes : sequence of str
        Class names in class-id order (``net.classes``).
    input_size : dict
        ``{'data_shape': S}`` for an SSD, ``{'short': S, 'max_size': M}`` for a Faster R-CNN,
        in pixels.
    args : dict or argparse.Namespace, optional
        The training run's arguments.
    checkpoint : str, optional
        File name of the checkpoint manifest the weights come from.
    commit : str, optional
        Default: :func:`git_commit`.

    Returns
    -------
    dict
        JSON-serialisable.

    Raises
    ------
    ValueError
        Unknown ``kind``, or ``input_size`` without the keys of that kind.
    """
    wanted = {"ssd": {"data_shape"}, "faster_rcnn": {"short", "max_size"}}
    if kind not in wanted:
        raise ValueError("kind must be 'ssd' or 'faster_rcnn', got %r" % (kind,))
    if set(input_size) != wanted[kind]:
        raise ValueError("a %s export's input size has %s, got %s"
                         % (kind, sorted(wanted[kind]), sorted(input_size)))
    if args is not None and not isinstance(args, dict):
        args = vars(args)
    return {"format": FORMAT, "kind": kind, "classes": [str(c) for c in classes],
            "input": {k: int(v) for k, v in input_size.items()}, "mean": list(MEAN),
            "std": list(STD), "args": dict(args) if args else {}, "checkpoint": checkpoint,
            "commit": commit if commit is not None else git_commit()}


def write_meta(prefix, meta):
    """Write ``<prefix>-meta.json`` atomically (temporary file, then rename); returns its path."""
    path = prefix + META_SUFFIX
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True, default=str)
    os.replace(tmp, path)
    return path


def read_meta(prefix):
    """The metadata of the export ``prefix``, or None when it has no ``-meta.json``.

    Parameters
    ----------
    prefix : str
        Export prefix; a path ending in ``-symbol.json``, ``-0000.params`` or ``-meta.json`` is
        taken as its prefix.

    Returns
    -------
    dict or None

    Raises
    ------
    ExportMetaError
        The file exists but is not JSON of this format (the message names the file).
    """
    path = export_prefix(prefix) + META_SUFFIX
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as err:
        raise ExportMetaError("%s: not readable as export metadata (%s)" % (path, err)) from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT \
            or meta.get("kind") not in ("ssd", "faster_rcnn") \
            or not isinstance(meta.get("classes"), list) or not isinstance(meta.get("input"), dict):
        raise ExportMetaError("%s: not export metadata of format %s (needs kind, classes, input)"
                              % (path, FORMAT))
    return meta


def export_prefix(path):
    """``x-symbol.json``, ``x-0000.params`` (any epoch), ``x-meta.json`` or ``x`` -> ``x``."""
    import re
    return re.sub(r"(-symbol\.json|-\d{4}\.params|-meta\.json)$", "", path)


def check_against(meta, source, classes=None, override=False, classes_from="the data has",
                  fix=None, **sizes):
    """Refuse settings that disagree with an export's metadata; fill in the ones not given.

    Parameters
    ----------
    meta : dict
        :func:`read_meta`'s result.
    source : str
        How the command line names the model (``--symbol out/x``), for messages.
    classes : sequence of str, optional
        The classes the caller will score or name detections with (a dataset's).
    override : bool
        Take ``classes`` and ``sizes`` as given even where they disagree (``--override-meta``).
    classes_from : str
        Where ``classes`` come from, for the message (``'the data has'``, ``'--classes
        names'``).
    fix : str or None
        What the message tells the user to do about other classes; default: pass the
        model's names as ``--classes`` (the VOC layout reads a dataset with any names).
    **sizes : int or None
        ``data_shape`` (SSD), ``short`` and ``max_size`` (Faster R-CNN): the flags' values,
        None where not given.

    Returns
    -------
    dict
        The input sizes to use: the given ones, the export's where not given.

    Raises
    ------
    ExportMetaError
        A given size the export does not have, or other classes, without ``override``.
    """
    own = meta["input"]
    out = {}
    for key, value in sizes.items():
        if key not in own:
            if value is not None:
                raise ExportMetaError("--%s: %s is %s export, whose input is %s" % (
                    key.replace("_", "-"), source, _KIND_NAME[meta["kind"]],
                    ", ".join("--%s %s" % (k.replace("_", "-"), v)
                              for k, v in sorted(own.items()))))
            continue
        if value is not None and int(value) != int(own[key]) and not override:
            raise ExportMetaError("--%s %s disagrees with %s, trained at --%s %s: leave the "
                                  "flag out, or pass --override-meta"
                                  % (key.replace("_", "-"), value, source, key.replace("_", "-"),
                                     own[key]))
        out[key] = int(own[key]) if value is None else int(value)
    if classes is not None and list(classes) != list(meta["classes"]) and not override:
        hint = fix or ("pass --classes %s (the model's, in its label order), or use the data "
                       "it was trained on" % ",".join(meta["classes"]))
        raise ExportMetaError("%s predicts %d classes (%s), %s %d (%s): %s, or pass "
                              "--override-meta" % (source, len(meta["classes"]),
                                                   _short(meta["classes"]), classes_from,
                                                   len(classes), _short(classes), hint))
    return out


def _short(names, limit=6):
    names = list(names)
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def trained_classes(params):
    """The class names a weights file was trained on, where its files say so.

    Parameters
    ----------
    params : str
        A ``.params`` file: an export's ``-0000.params`` (its ``-meta.json`` names the
        classes), or a checkpoint part (the manifest in the same folder that names this file,
        or a hard link of it, records ``kind.classes``).

    Returns
    -------
    list of str or None
        None when nothing beside the file names its classes (e.g. a GluonCV zoo file).
    """
    import json
    if params.endswith("-0000.params"):
        try:
            meta = read_meta(export_prefix(params))
        except ExportMetaError:
            meta = None
        if meta is not None:
            return list(meta["classes"])
    folder = os.path.dirname(os.path.abspath(params))
    try:
        names = sorted(f for f in os.listdir(folder) if f.endswith(".json")
                       and not f.endswith(("-meta.json", "-symbol.json")))
    except OSError:
        return None
    for name in names[:500]:
        try:
            with open(os.path.join(folder, name)) as f:
                manifest = json.load(f)
            parts = manifest.get("parts") if isinstance(manifest, dict) else None
            classes = (manifest.get("kind") or {}).get("classes")
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(parts, dict) or not isinstance(classes, list):
            continue
        for part_file in parts.values():
            candidate = os.path.join(folder, str(part_file))
            try:
                if os.path.samefile(candidate, params):
                    return [str(c) for c in classes]
            except OSError:
                continue
    return None


def class_mismatch(flag, params, theirs, ours):
    """One line naming both class lists, for a teacher trained on other classes."""
    return ("%s %s: the teacher predicts %d classes (%s), the data has %d (%s): distil on the "
            "teacher's classes (--classes %s) or train a teacher on these"
            % (flag, params, len(theirs), ", ".join(theirs), len(ours), ", ".join(ours),
               ",".join(theirs)))
