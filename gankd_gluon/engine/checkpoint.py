"""Atomic checkpoints with exact resume.

A checkpoint is a directory entry ``<prefix>-<tag>``: one ``.params`` file per block, one
``.states`` file per trainer, and a ``.json`` manifest written last, that lists the parts and
holds the loop state (epoch, stage, best mAP, args). Every file is written to a temporary name
and renamed (``os.replace`` is atomic on POSIX), so a crash or SIGKILL mid-save leaves the
previous checkpoint intact, and a manifest only ever names complete files.

Checkpoints taken with no training step between them (``best``, then the epoch's own checkpoint,
then ``final``) hold the same weights and optimizer states: the later ones hard-link the earlier
one's files instead of writing them again (``same_as``), so a run keeps one copy on disk. A link
is a second name for the same file: deleting (pruning) one name leaves the other intact, and a
later save replaces a name with a new file rather than writing into the shared one.
"""
import glob
import json
import os

import mxnet as mx
import numpy as np
from mxnet import gluon

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "CheckpointError",
           "prune_checkpoints", "latest_checkpoint", "link_atomic", "deployable_exporter"]


class CheckpointError(RuntimeError):
    """A checkpoint is missing a part, does not fit the run's network, or holds non-finite
    values."""


def _atomic(path, write):
    tmp = path + ".tmp-%d" % os.getpid()
    write(tmp)
    os.replace(tmp, path)


def link_atomic(src, path):
    """Make ``path`` a hard link to ``src`` (replacing ``path`` atomically); returns False,
    having changed nothing, where ``src`` is missing or the file system has no hard links."""
    tmp = path + ".tmp-%d" % os.getpid()
    try:
        os.link(src, tmp)
    except OSError:
        return False
    os.replace(tmp, path)
    return True


def _parts_of(manifest_path):
    try:
        with open(manifest_path) as f:
            return json.load(f).get("parts", {})
    except (OSError, ValueError):
        return {}


def save_checkpoint(prefix, tag, blocks, trainers, state, same_as=None):
    """Write a checkpoint ``<prefix>-<tag>.json`` and its parts.

    Parameters
    ----------
    prefix : str
        Path prefix, e.g. ``logs/run/ssd_512_mobilenet1.0_resnet50_v1_voc_gankd``.
    tag : str
        ``epoch0003_stage1``, ``best``, ``final``, ...
    blocks : dict of str -> Block
        Saved with ``save_parameters`` (structural names).
    trainers : dict of str -> gluon.Trainer
        Saved with ``save_states`` (optimizer state, update counts, lr scheduler).
    state : dict
        JSON-serialisable loop state.
    same_as : str or None
        Manifest of a checkpoint holding exactly these weights and trainer states (no step
        since): its part files are hard-linked instead of written again (written where linking
        fails).

    Returns
    -------
    str : the manifest path.
    """
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    base = "%s-%s" % (prefix, tag)
    parts = {}
    old = _parts_of(same_as) if same_as else {}
    old_dir = os.path.dirname(os.path.abspath(same_as)) if same_as else ""

    def put(part, path, write):
        if not (part in old and link_atomic(os.path.join(old_dir, old[part]), path)):
            _atomic(path, write)
        parts[part] = os.path.basename(path)
    for name, block in blocks.items():
        put(name, "%s.%s.params" % (base, name), block.save_parameters)
    for name, trainer in trainers.items():
        put("trainer:" + name, "%s.%s.states" % (base, name), trainer.save_states)
    manifest = dict(state, parts=parts, tag=tag)
    path = base + ".json"

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True, default=str)
    _atomic(path, write)
    return path


def read_checkpoint(manifest_path, need=(), flag="--resume"):
    """The manifest of a checkpoint, refused (``CheckpointError``) unless it names every part in
    ``need`` and those files exist.

    Parameters
    ----------
    manifest_path : str
        ``<prefix>-<tag>.json``.
    need : iterable of str
        Part names: block names, ``trainer:<name>`` for optimizer states.
    flag : str
        The command-line flag that named the manifest; every message starts with it and the path.

    Returns
    -------
    dict : the loop state, ``parts`` (part name -> file beside the manifest) and ``args``.
    """
    if not os.path.isfile(manifest_path):
        raise CheckpointError("%s %s: no such checkpoint manifest" % (flag, manifest_path))
    with open(manifest_path) as f:
        try:
            manifest = json.load(f)
        except ValueError as err:
            raise CheckpointError("%s %s: not a checkpoint manifest (%s)"
                                  % (flag, manifest_path, err)) from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("parts"), dict):
        raise CheckpointError("%s %s: not a checkpoint manifest (no 'parts')"
                              % (flag, manifest_path))
    folder = os.path.dirname(os.path.abspath(manifest_path))
    parts = manifest["parts"]
    missing = [n for n in need
               if n not in parts or not os.path.isfile(os.path.join(folder, parts[n]))]
    if missing:
        raise CheckpointError("%s %s: the checkpoint is missing %s (it has %s); refusing it"
                              % (flag, manifest_path, ", ".join(missing),
                                 ", ".join(sorted(parts)) or "no parts"))
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
    saved = mx.nd.load(path)
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


def load_checkpoint(manifest_path, blocks, trainers, ctx, flag="--resume", settings=None):
    """Load a checkpoint into ``blocks`` and ``trainers``; returns the manifest (loop state).

    Refuses (``CheckpointError``, the message opening with ``flag`` and the path) a checkpoint
    that lacks a part the run needs, whose parameters do not fit the run's blocks (names,
    shapes, constants such as anchors) or hold NaN/Inf, before anything is loaded.

    Parameters
    ----------
    manifest_path : str
    blocks : dict of str -> Block
        Parts to load (``load_parameters``); other parts of the checkpoint are left alone.
    trainers : dict of str -> gluon.Trainer
        Optimizer states to load (parts ``trainer:<name>``); empty to load weights only.
    ctx : Context or list of Context
    flag : str
        The flag that named the manifest (``--resume``, ``--init-from``), for the messages.
    settings : dict of str -> value, optional
        This run's values of the settings that shape the network (``args`` names): a mismatch
        message lists those the checkpoint's run had otherwise.
    """
    manifest = read_checkpoint(manifest_path, list(blocks) + ["trainer:" + t for t in trainers],
                               flag)
    folder = os.path.dirname(os.path.abspath(manifest_path))
    parts = manifest["parts"]
    where = "%s %s" % (flag, manifest_path)
    for name, block in blocks.items():
        _check_params(where, name, os.path.join(folder, parts[name]), block,
                      _differing(manifest, settings))
    for name, block in blocks.items():
        block.load_parameters(os.path.join(folder, parts[name]), ctx=ctx)
    for name, trainer in trainers.items():
        trainer.load_states(os.path.join(folder, parts["trainer:" + name]))
    return manifest


def _files_of(manifest_path):
    folder = os.path.dirname(os.path.abspath(manifest_path))
    parts = _parts_of(manifest_path)
    return [manifest_path] + [os.path.join(folder, p) for p in parts.values()]


def prune_checkpoints(prefix, keep_last):
    """Delete all but the newest ``keep_last`` epoch checkpoints (``best``/``final`` are kept)."""
    manifests = sorted(glob.glob("%s-epoch*.json" % prefix))
    for m in manifests[:max(0, len(manifests) - keep_last)]:
        for path in _files_of(m):
            if os.path.exists(path):
                os.remove(path)


def latest_checkpoint(prefix):
    """The newest epoch checkpoint manifest of a run, or None (tags sort by stage, epoch)."""
    manifests = sorted(glob.glob("%s-epoch*.json" % prefix))
    return manifests[-1] if manifests else None


_EXPORTED = ("-symbol.json", "-0000.params")


def deployable_exporter(write, prefix, what):
    """The ``export(tag, same_as=None)`` callable of :class:`~gankd_gluon.engine.loop.Run`.

    ``write(p)`` exports the deployable model as ``p-symbol.json`` + ``p-0000.params``
    (``HybridBlock.export``). ``export(tag)`` writes ``<prefix>-<tag>-<what>`` through a
    temporary prefix and renames both files, so a crash never leaves half an export;
    ``export(tag, same_as=t)`` hard-links the files of the export ``t`` of the same weights.
    Returns the exported prefix.
    """
    def export(tag, same_as=None):
        dst = "%s-%s-%s" % (prefix, tag, what)
        if same_as is not None:
            src = "%s-%s-%s" % (prefix, same_as, what)
            if all(link_atomic(src + s, dst + s) for s in _EXPORTED):
                return dst
        tmp = "%s.tmp-%d" % (dst, os.getpid())
        write(tmp)
        for s in _EXPORTED:
            os.replace(tmp + s, dst + s)
        return dst
    return export
