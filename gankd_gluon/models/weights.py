"""Where a network's stored weights are read from: GluonCV's model store and the training
checkpoints.

- :func:`zoo_params_path`: the file GluonCV's model store looks for (and downloads to).
- :func:`read_manifest`, :func:`read_checkpoint`, :func:`load_blocks`: a checkpoint written by
  :mod:`gankd_gluon.engine.checkpoint` (the format is described there), read and verified the
  one way the training engine (resume, ``--init-from``) and the evaluation scripts
  (``--checkpoint``) both use. A refused checkpoint raises :class:`CheckpointError` with one line
  naming the flag, the file and what was expected (exit 2).

This module imports no other package of gankd_gluon, so both the engine and eval stand on it.
"""
import hashlib
import json
import os

import mxnet as mx
import numpy as np
from mxnet import gluon

__all__ = ["zoo_params_path", "CheckpointError", "read_manifest", "read_checkpoint",
           "load_blocks"]


def zoo_params_path(name):
    """Where GluonCV's model store looks for (and downloads) the weights of ``name``.

    Returns
    -------
    str
        ``$MXNET_HOME/models/<name>-<hash>.params`` (``~/.mxnet/models`` without MXNET_HOME),
        as ``gluoncv.model_zoo.model_store.get_model_file`` (gluoncv 0.10.5,
        ``gluoncv/model_zoo/model_store.py``) names it.
    """
    from gluoncv.model_zoo.model_store import short_hash
    root = os.path.join(os.environ["MXNET_HOME"], "models") if "MXNET_HOME" in os.environ \
        else os.path.join("~", ".mxnet", "models")
    try:
        file_name = "%s-%s.params" % (name, short_hash(name))
    except (KeyError, ValueError):
        file_name = "%s-<hash>.params" % name  # not in the store: download fails anyway
    return os.path.join(os.path.expanduser(root), file_name)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, torn, corrupt, foreign, or does not fit the run (bad input:
    exit 2)."""


def _sha256(path):
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def read_manifest(manifest_path, flag="--checkpoint", need_args=False):
    """The JSON manifest of a checkpoint, as written, without looking at the files it names.

    Parameters
    ----------
    manifest_path : str
        ``<save-dir>/<run>/<run>-<tag>.json``.
    flag : str
        The flag that named the manifest; every message starts with it and the path.
    need_args : bool
        Refuse a manifest without the run's arguments (``args``, ``vars(args)`` of the run),
        which rebuilding the run's network needs.

    Returns
    -------
    dict
        ``parts`` (part name -> file beside the manifest), ``args``, ``kind``, ``sha256``,
        ``sizes``, ``tag``, ``epoch``, ``best_map``, ...

    Raises
    ------
    CheckpointError
        No such file, not JSON, or no ``parts`` (or ``args``) in it.
    """
    where = "%s %s" % (flag, manifest_path)
    if not os.path.isfile(manifest_path):
        raise CheckpointError("%s: no such checkpoint manifest (the training scripts write "
                              "<save-dir>/<run>/<run>-<tag>.json)" % where)
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as err:        # UnicodeDecodeError is a ValueError
        raise CheckpointError("%s: not a checkpoint manifest (%s)" % (where, err)) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("parts"), dict):
        raise CheckpointError("%s: not a checkpoint manifest (no 'parts')" % where)
    if need_args and not isinstance(manifest.get("args"), dict):
        raise CheckpointError("%s: not a checkpoint manifest (no 'args')" % where)
    return manifest


def _inside(folder, name):
    """``name`` is a plain file name (no folder, no ``..``) of a file in ``folder``."""
    return (isinstance(name, str) and name and name == os.path.basename(name)
            and name not in (".", "..") and "\\" not in name and "\x00" not in name)


def _kind_differs(saved, wanted, keys=None):
    if not isinstance(saved, dict):
        return ["no kind of run recorded (this run: %s)" % _describe(wanted, keys)]
    keys = sorted(wanted) if keys is None else keys
    return ["%s %s (this run: %s)" % (k, json.dumps(saved.get(k)), json.dumps(wanted.get(k)))
            for k in keys if k in wanted and _norm(saved.get(k)) != _norm(wanted.get(k))]


def _describe(kind, keys):
    keys = sorted(kind) if keys is None else keys
    return ", ".join("%s %s" % (k, json.dumps(kind.get(k))) for k in keys if k in kind)


def _norm(value):
    return json.loads(json.dumps(value, default=str))


def read_checkpoint(manifest_path, need=(), flag="--resume", kind=None, kind_keys=None,
                    verify=True):
    """The manifest of a checkpoint, refused unless it names every part in ``need`` as a
    complete, unchanged file in its own folder.

    Parameters
    ----------
    manifest_path : str
        ``<prefix>-<tag>.json``.
    need : iterable of str or None
        Part names: block names, ``trainer:<name>`` for optimizer states; None: every part
        the manifest names.
    flag : str
        The command-line flag that named the manifest; every message starts with it and the path.
    kind : dict or None
        This run's kind (:func:`save_checkpoint`); a manifest of another kind is refused.
    kind_keys : list of str or None
        The keys of ``kind`` compared (default: all).
    verify : bool
        Check each needed part's size and SHA-256 sum (reads the files).

    Returns
    -------
    dict : the loop state, ``parts`` (part name -> file beside the manifest), ``sha256``,
    ``sizes``, ``kind`` and ``args``.

    Raises
    ------
    CheckpointError
        One line: the flag, the manifest, the file and what was expected.
    """
    where = "%s %s" % (flag, manifest_path)
    manifest = read_manifest(manifest_path, flag)
    for field in ("sha256", "sizes"):
        if not isinstance(manifest.get(field), dict):
            raise CheckpointError("%s: the manifest has no part %s (written by an older "
                                  "version, or not by this project); refusing it"
                                  % (where, "checksums" if field == "sha256" else field))
    if kind is not None:
        differ = _kind_differs(manifest.get("kind"), kind, kind_keys)
        if differ:
            raise CheckpointError("%s: a checkpoint of another kind of run: %s; refusing it"
                                  % (where, ", ".join(differ)))
    folder = os.path.dirname(os.path.abspath(manifest_path))
    parts = manifest["parts"]
    need = list(parts) if need is None else list(need)
    missing = [n for n in need if n not in parts]
    if missing:
        raise CheckpointError("%s: the checkpoint is missing %s (it has %s); refusing it"
                              % (where, ", ".join(missing), ", ".join(sorted(parts))
                                 or "no parts"))
    for n in need:
        name = parts[n]
        if not _inside(folder, name):
            raise CheckpointError("%s: part %s names %r, not a file in the manifest's own "
                                  "folder; refusing it" % (where, n, name))
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise CheckpointError("%s: the checkpoint is missing %s (no file %s); refusing it"
                                  % (where, n, path))
        want_size, want_sha = manifest["sizes"].get(n), manifest["sha256"].get(n)
        if not isinstance(want_size, int) or not isinstance(want_sha, str):
            raise CheckpointError("%s: no size or checksum for part %s; refusing it"
                                  % (where, n))
        size = os.path.getsize(path)
        if size != want_size:
            raise CheckpointError("%s: %s is %d bytes, the manifest expects %d (truncated or "
                                  "replaced); refusing it" % (where, path, size, want_size))
        if verify and _sha256(path)[0] != want_sha:
            raise CheckpointError("%s: %s does not match its SHA-256 in the manifest (%s...; "
                                  "corrupted, or swapped for another file); refusing it"
                                  % (where, path, want_sha[:16]))
    return manifest


def _fits(saved, wanted):
    """Shape ``saved`` fits ``wanted``, whose 0 entries (or all, None) are still unknown
    (deferred initialisation)."""
    return wanted is None or (len(saved) == len(wanted)
                              and all(w in (0, s) for s, w in zip(saved, wanted)))


def _check_params(where, name, path, block, differing):
    """Refuse a parameter file that does not fit ``block`` or holds NaN/Inf, before any load.

    ``where`` opens each message (flag and manifest), ``differing`` closes a mismatch one
    (the settings of the checkpoint's run that differ from this run's, or '')."""
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError:
        raise CheckpointError("%s: %s is not an MXNet parameter file; refusing it"
                              % (where, path)) from None
    if not isinstance(saved, dict):
        raise CheckpointError("%s: %s holds unnamed arrays, not a block's parameters; "
                              "refusing it" % (where, path))
    ours = block._collect_params_with_prefix()     # the structural names save_parameters writes
    only = [(sorted(set(saved) - set(ours)), "in the checkpoint"),
            (sorted(set(ours) - set(saved)), "in this run")]
    if only[0][0] or only[1][0]:
        raise CheckpointError("%s: %s parameters differ from this run's (%s)%s" % (
            where, name, "; ".join("%s%s only %s" % (names[0], " and %d more" % (len(names) - 1)
                                                     if len(names) > 1 else "", side)
                                   for names, side in only if names), differing))
    for key, arr in saved.items():
        param = ours[key]
        if not _fits(arr.shape, param.shape):
            raise CheckpointError("%s: %s parameter %s has shape %s in the checkpoint, %s in "
                                  "this run%s" % (where, name, key, arr.shape, param.shape,
                                                  differing))
        values = arr.asnumpy()
        if not np.isfinite(values).all():
            raise CheckpointError("%s: non-finite values in %s %s (%s); refusing it"
                                  % (where, name, key, path))
        # constants are set by the network's settings, not trained: GluonCV's SSD anchors
        # have the same shape at every input size, only their values tell the sizes apart
        if isinstance(param, gluon.Constant) and param._data is not None and not np.allclose(
                values, param.list_data()[0].asnumpy(), rtol=1e-5, atol=1e-6):
            raise CheckpointError("%s: %s constant %s differs from this run's (a network of "
                                  "other settings)%s" % (where, name, key, differing))


def _differing(manifest, settings):
    """'; its run had --x A (this run: B)' for each of ``settings`` the manifest's run set
    otherwise, or ''."""
    run = manifest.get("args") if isinstance(manifest.get("args"), dict) else {}
    diff = ["--%s %s (this run: %s)" % (k.replace("_", "-"), run[k], v)
            for k, v in sorted((settings or {}).items()) if k in run and run[k] != v]
    return "; its run had " + ", ".join(diff) if diff else ""


def load_blocks(manifest_path, blocks, ctx, flag="--checkpoint", settings=None, kind=None,
                kind_keys=None, manifest=None):
    """Load the parts ``blocks`` of a checkpoint into those blocks; returns the manifest.

    Refuses (:class:`CheckpointError`, the message opening with ``flag`` and the path) a
    checkpoint that lacks one of the parts, whose files are torn, corrupt or outside its folder,
    of another kind of run, or whose parameters do not fit the blocks (names, shapes, constants
    such as anchors) or hold NaN/Inf; every block's parameters are checked before any is loaded.

    Parameters
    ----------
    manifest_path : str
        ``<save-dir>/<run>/<run>-<tag>.json``.
    blocks : dict of str -> Block
        Parts to load (``load_parameters``); other parts of the checkpoint are left alone.
    ctx : Context or list of Context
    flag : str
        The flag that named the manifest, for the messages.
    settings : dict of str -> value, optional
        This run's values of the settings that shape the network (``args`` names): a mismatch
        message lists those the checkpoint's run had otherwise.
    kind, kind_keys : see :func:`read_checkpoint`.
    manifest : dict, optional
        The manifest as :func:`read_checkpoint` returned it, already verified for these parts
        (the training engine verifies the optimizer states' parts too); None reads it.
    """
    if manifest is None:
        manifest = read_checkpoint(manifest_path, list(blocks), flag, kind=kind,
                                   kind_keys=kind_keys)
    folder = os.path.dirname(os.path.abspath(manifest_path))
    parts = manifest["parts"]
    where = "%s %s" % (flag, manifest_path)
    for name, block in blocks.items():
        _check_params(where, name, os.path.join(folder, parts[name]), block,
                      _differing(manifest, settings))
    for name, block in blocks.items():
        block.load_parameters(os.path.join(folder, parts[name]), ctx=ctx)
    return manifest
