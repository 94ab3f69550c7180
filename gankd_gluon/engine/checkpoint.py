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

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "prune_checkpoints",
           "latest_checkpoint", "link_atomic", "deployable_exporter"]


class CheckpointError(RuntimeError):
    """A checkpoint is missing a part, or holds non-finite values."""


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


def load_checkpoint(manifest_path, blocks, trainers, ctx):
    """Load a checkpoint into ``blocks`` and ``trainers``; returns the loop state.

    Refuses (``CheckpointError``) a checkpoint that lacks a part the run needs or whose
    parameters hold NaN/Inf, before anything is loaded.
    """
    if not os.path.isfile(manifest_path):
        raise CheckpointError("--resume %s: no such checkpoint manifest" % manifest_path)
    with open(manifest_path) as f:
        try:
            manifest = json.load(f)
        except ValueError as err:
            raise CheckpointError("--resume %s: not a checkpoint manifest (%s)"
                                  % (manifest_path, err)) from err
    folder = os.path.dirname(os.path.abspath(manifest_path))
    parts = manifest.get("parts", {})
    need = list(blocks) + ["trainer:" + t for t in trainers]
    missing = [n for n in need if n not in parts or not os.path.isfile(os.path.join(folder, parts[n]))]
    if missing:
        raise CheckpointError("checkpoint %s is missing %s; refusing to resume from it"
                              % (manifest_path, ", ".join(missing)))
    for name in blocks:
        path = os.path.join(folder, parts[name])
        for key, arr in mx.nd.load(path).items():
            if not np.isfinite(arr.asnumpy()).all():
                raise CheckpointError("checkpoint %s holds non-finite values in %s (%s); "
                                      "refusing to resume from it" % (manifest_path, key, path))
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
