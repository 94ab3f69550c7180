"""Checkpoint sets that stay whole, and the run folder they live in.

A run writes into ``<save-dir>/<run>/``. Each save writes its parts as **immutable files named
by their content** (``<run>.<part>.<sha256[:16]>.params`` / ``.states``; the deployable export
``<run>-<what>-<sha256[:16]>-symbol.json`` / ``-0000.params`` / ``-meta.json``), then the
manifest
``<run>-<tag>.json`` (``best``, ``final``, ``interrupted``, ``epoch-s<S>-e<EEEE>``) naming them
with their sizes and SHA-256 sums, the kind of run and the loop state. A file is written to a
temporary name, flushed to disk (``fsync``), read back (MXNet's ``nd.save`` can truncate
silently on a full disk), and only then renamed; the manifest is written the same way and
last. No save ever writes into a file a manifest names, so a kill at any moment leaves every
manifest naming a complete, consistent set; what a killed save left behind (temporary files,
parts no manifest names) is removed at the run's next start (:func:`clean_run_folder`).

Saves with no training step between them (``best``, the epoch's checkpoint, ``final``) name
the same part files instead of writing them again, and so do the optimizer states of a
trainer that has not stepped since its last save (stage 1's, in every stage-2 checkpoint).
For tools that take a plain file (``--teacher-params``, ``eval_voc.py --symbol``), each tag's
parts are also hard-linked as ``<run>-<tag>.<part>.params`` and
``<run>-<tag>-<what>-symbol.json`` (its ``-meta.json`` is a copy naming the tag's manifest in
``checkpoint``): these convenience names are replaced after the manifest, may lag it after a
kill, and are repaired at the next start; the manifest is the record.

Loading (:func:`load_checkpoint`, over :mod:`gankd_gluon.models.weights`'s
:func:`~gankd_gluon.models.weights.read_checkpoint`, which the evaluation scripts use too)
verifies each part's size and checksum and that it lies in the manifest's own folder, and
refuses a checkpoint of another kind of run, with one line naming the file and what was
expected (:class:`~gankd_gluon.models.weights.CheckpointError`).
"""
import errno
import fcntl
import glob
import hashlib
import json
import os
import pickle
import pickletools
import re
import shutil
import signal
import time

import mxnet as mx

from ..models.weights import CheckpointError, _norm, _sha256, load_blocks, read_checkpoint

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointWriteError", "prune_checkpoints", "latest_checkpoint", "link_atomic",
           "deployable_exporter", "clean_run_folder", "check_run_folder", "claim_run_folder",
           "select_resume",
           "compare_settings", "RUN_SETTINGS", "run_manifests"]

_EXPORTED = ("-symbol.json", "-0000.params")
_META = "-meta.json"                     # models.export_meta.META_SUFFIX
_PART_RE = re.compile(r"\.[0-9a-f]{16}\.(params|states)$")
_EXPORT_RE = re.compile(r"-[0-9a-f]{16}(-symbol\.json|-0000\.params|-meta\.json)$")

# the settings that define a run: a resume with other values is refused unless the user names
# them in --allow-changed (argparse ``dest`` names of the SSD and Faster R-CNN scripts)
RUN_SETTINGS = ("network", "student", "teacher", "head", "dataset", "data_shape", "method",
                "stage", "critic_norm", "critic_channels", "roi_mode", "short", "max_size",
                "train_years", "train_split", "val_split", "epochs", "gan_epochs", "GAN_epochs", "lr", "lrG", "lrD",
                "lr_decay", "lr_decay_epoch", "gan_lr_decay_epoch", "lr_decay_GAN_epoch",
                "batch_size", "optimizer", "momentum", "wd", "beta1", "d_steps",
                "clamp_lower", "clamp_upper")


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (full disk, no permission); the previous checkpoints
    are intact (a runtime fault: exit 1)."""


# ------------------------------------------------------------------ fault injection
class _KillPoints:
    """``GANKD_FAULT=kill-save:N``: SIGKILL this process at the N-th step of its saves (each
    part, export and manifest written, each rename and link), for the kill-during-save tests."""

    def __init__(self):
        self.count = 0

    def __call__(self):
        spec = os.environ.get("GANKD_FAULT", "")
        if not spec.startswith("kill-save:"):
            return
        self.count += 1
        if self.count == int(spec.split(":", 1)[1]):
            os.kill(os.getpid(), signal.SIGKILL)


_kill_point = _KillPoints()


# ------------------------------------------------------------------ verified writes
def _free(folder):
    try:
        return "%.1f MB free" % (shutil.disk_usage(folder).free / 2 ** 20)
    except OSError:
        return "free space unknown"


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _write_failed(paths, err):
    """Remove the temporary ``paths`` and raise :class:`CheckpointWriteError` for ``err``."""
    for p in paths:
        _remove(p)
    folder = os.path.dirname(os.path.abspath(paths[0]))
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, OSError) and err.errno is not None:
        reason = os.strerror(err.errno)
    raise CheckpointWriteError("could not write %s (%s); %s on that disk; the previous "
                               "checkpoints are intact" % (paths[0], reason, _free(folder)))


_WRITE_ERRORS = (OSError, mx.base.MXNetError, ValueError, EOFError, pickle.UnpicklingError)


def _fsync(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_verified(tmp, write, verify):
    """``write(tmp)``, ``fsync``, ``verify(tmp)``; returns (sha256, size). On any failure the
    temporary file is removed and :class:`CheckpointWriteError` names it and the free space."""
    try:
        write(tmp)
        _fsync(tmp)
        verify(tmp)
        return _sha256(tmp)
    except _WRITE_ERRORS as err:
        _write_failed([tmp], err)


def _verify_params(keys):
    def verify(path):
        loaded = mx.nd.load(path)        # a truncated file does not parse
        if set(loaded) != set(keys):
            raise ValueError("read back %d of %d arrays" % (len(loaded), len(keys)))
    return verify


def _verify_states(path):
    """A trainer's states file (``Trainer.save_states``: one pickle) read back whole: the
    pickle's opcodes, read in turn from the file, run to its STOP, and the file ends there.
    This finds a cut or padded file as unpickling it would, without building every optimizer
    state again (0.02 s instead of 0.64 s for 266 MB of Adam states on a 2-core machine,
    ``benchmarks/save_cost.py``).

    Raises
    ------
    ValueError
        The file is empty, ends inside the pickle, or goes on after its STOP.
    """
    with open(path, "rb") as f:
        end = None
        for _, _, end in pickletools.genops(f):
            pass
        if end is None:
            raise ValueError("0 bytes read back")
        extra = len(f.read(1 << 20))
    if extra:
        raise ValueError("%s bytes after the pickle's end" % (
            extra if extra < 1 << 20 else "more than %d" % (1 << 20)))


def _verify_export(tmp_prefix):
    with open(tmp_prefix + "-symbol.json") as f:
        json.load(f)
    mx.nd.load(tmp_prefix + "-0000.params")


def _put_immutable(tmp, folder, name):
    """Rename a verified temporary file to its content name (same name = same bytes)."""
    _kill_point()
    os.replace(tmp, os.path.join(folder, name))


def link_atomic(src, path):
    """Make ``path`` a hard link to ``src`` (replacing ``path`` atomically; a copy where the file
    system has no hard links); returns False, having changed nothing, where ``src`` is
    missing."""
    if not os.path.isfile(src):
        return False
    tmp = path + ".tmp-%d" % os.getpid()
    try:
        os.link(src, tmp)
    except OSError:
        try:
            shutil.copyfile(src, tmp)
        except OSError:
            _remove(tmp)
            return False
    os.replace(tmp, path)
    return True


# ------------------------------------------------------------------ saving
def _parts_of(manifest_path):
    """``(parts, sha256, sizes, export)`` of a readable manifest, else empty ones."""
    try:
        with open(manifest_path) as f:
            m = json.load(f)
        return (dict(m.get("parts", {})), dict(m.get("sha256", {})), dict(m.get("sizes", {})),
                m.get("export"))
    except (OSError, ValueError, TypeError, AttributeError):
        return {}, {}, {}, None


def _convenience(prefix, tag, part):
    ext = "states" if part.startswith("trainer:") else "params"
    return "%s-%s.%s.%s" % (prefix, tag, part.split(":", 1)[-1], ext)


def save_checkpoint(prefix, tag, blocks, trainers, state, same_as=None, export=None,
                    kind=None, reuse=None):
    """Write the checkpoint ``<prefix>-<tag>.json``: its parts first (immutable, verified),
    then the export, then the manifest, then the convenience links.

    Parameters
    ----------
    prefix : str
        Path prefix, e.g. ``logs/run/ssd_512_mobilenet1.0_resnet50_v1_voc_gankd``.
    tag : str
        ``epoch-s1-e0003``, ``best``, ``final``, ``interrupted``.
    blocks : dict of str -> Block
        Saved with ``save_parameters`` (structural names).
    trainers : dict of str -> gluon.Trainer
        Saved with ``save_states`` (optimizer state, update counts, lr scheduler).
    state : dict
        JSON-serialisable loop state (epoch, stage, best mAP, args).
    same_as : str or None
        Manifest of a checkpoint holding exactly these weights and trainer states (no step
        since): its part files (and export) are named again instead of written (written where
        they are gone).
    export : callable or None
        ``export(prefix)`` (:func:`deployable_exporter`) -> the export entry, written before
        the manifest, which names it.
    kind : dict or None
        The kind of run (detector, networks, classes, data shape, method, stage); a load with
        another ``kind`` is refused.
    reuse : dict of str -> str, or None
        Part (``trainer:<name>``, or a block's name) -> manifest of an earlier save of this
        run whose file of that part holds exactly its content now (e.g. the optimizer states
        of a stage that has not trained since): that file is named again instead of written.
        The part is written where that manifest is unreadable or in another folder, or names
        no file of the part, or the file is gone or not of the size it records.

    Returns
    -------
    str : the manifest path.

    Raises
    ------
    CheckpointWriteError
        A write failed or read back short (e.g. a full disk); nothing a manifest names changed.
    """
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    run = os.path.basename(prefix)
    old_parts, old_sha, old_sizes, old_export = (_parts_of(same_as) if same_as
                                                 else ({}, {}, {}, None))
    old_dir = os.path.dirname(os.path.abspath(same_as)) if same_as else folder
    parts, sha, sizes = {}, {}, {}
    # part -> (file name, sha256, size) that may be named again instead of written
    known = {}
    for part, manifest in (reuse or {}).items():
        if os.path.dirname(os.path.abspath(manifest)) == folder:
            names, sums, lengths, _ = _parts_of(manifest)
            known[part] = (names.get(part), sums.get(part), lengths.get(part))
    if old_dir == folder:
        known.update((p, (old_parts[p], old_sha.get(p), old_sizes.get(p))) for p in old_parts)

    def put(part, ext, write, verify):
        name, digest, size = known.get(part, (None, None, None))
        if (isinstance(name, str) and digest is not None
                and os.path.isfile(os.path.join(folder, name))
                and os.path.getsize(os.path.join(folder, name)) == size):
            parts[part], sha[part], sizes[part] = name, digest, size
            return
        stem = "%s.%s" % (run, part.split(":", 1)[-1])
        tmp = os.path.join(folder, "%s.%s.tmp-%d" % (stem, ext, os.getpid()))
        digest, size = _write_verified(tmp, write, verify)
        _kill_point()
        name = "%s.%s.%s" % (stem, digest[:16], ext)
        _put_immutable(tmp, folder, name)
        parts[part], sha[part], sizes[part] = name, digest, size

    for name, block in blocks.items():
        keys = list(block._collect_params_with_prefix())
        put(name, "params", block.save_parameters, _verify_params(keys))
    for name, trainer in trainers.items():
        put("trainer:" + name, "states", trainer.save_states, _verify_states)
    entry = None
    if export is not None:
        if (same_as and old_export and old_dir == folder
                and _export_complete(folder, old_export)):
            entry = old_export
        else:
            entry = export(prefix)
    manifest = dict(state, parts=parts, sha256=sha, sizes=sizes, tag=tag,
                    saved_at=time.time())
    if kind is not None:
        manifest["kind"] = kind
    if entry is not None:
        manifest["export"] = entry
    path = "%s-%s.json" % (prefix, tag)
    text = json.dumps(manifest, indent=1, sort_keys=True, default=str)

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    def verify(tmp):
        with open(tmp) as f:
            if f.read() != text:
                raise ValueError("read back differs")
    tmp = path + ".tmp-%d" % os.getpid()
    _write_verified(tmp, write, verify)
    _fsync_dir(folder)                   # the parts' new names reach the disk before it
    _kill_point()
    os.replace(tmp, path)
    _fsync_dir(folder)
    _kill_point()
    _link_convenience(prefix, tag, manifest)
    return path


def _export_complete(folder, entry):
    try:
        return all(os.path.getsize(os.path.join(folder, entry["files"][s]))
                   == entry["sizes"][s] for s in entry["files"])
    except (OSError, KeyError, TypeError):
        return False


def _link_convenience(prefix, tag, manifest):
    folder = os.path.dirname(os.path.abspath(prefix))
    for part, name in manifest["parts"].items():
        link_atomic(os.path.join(folder, name), _convenience(prefix, tag, part))
        _kill_point()
    entry = manifest.get("export")
    if entry:
        for s in entry["files"]:
            _link_export_file(prefix, tag, entry, s)
            _kill_point()


def _link_export_file(prefix, tag, entry, suffix):
    """``<prefix>-<tag>-<what><suffix>``: a hard link to the export's file; for its
    ``-meta.json``, a copy whose ``checkpoint`` names the tag's manifest (the export's own
    names none: several tags' manifests share it)."""
    folder = os.path.dirname(os.path.abspath(prefix))
    src = os.path.join(folder, entry["files"][suffix])
    dst = "%s-%s-%s%s" % (prefix, tag, entry["what"], suffix)
    if suffix != _META:
        if os.path.isfile(src) and not (os.path.isfile(dst) and os.path.samefile(src, dst)):
            link_atomic(src, dst)
        return
    with open(src) as f:
        meta = json.load(f)
    meta["checkpoint"] = "%s-%s.json" % (os.path.basename(prefix), tag)
    text = json.dumps(meta, indent=1, sort_keys=True, default=str)
    try:
        with open(dst) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    tmp = "%s.tmp-%d" % (dst, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, dst)


def deployable_exporter(write, prefix, what, meta=None):
    """The ``export(prefix)`` callable :func:`save_checkpoint` takes.

    ``write(p)`` exports the deployable model as ``p-symbol.json`` + ``p-0000.params``
    (``HybridBlock.export``); with ``meta`` (``models.export_meta.build_meta``'s dict), a third
    file ``p-meta.json`` describes it (its ``checkpoint`` None: the manifests name the export).
    ``export(prefix)`` writes them under a temporary prefix, flushes and reads them back, and
    renames them to ``<prefix>-<what>-<sha16>`` (content names, never overwritten); the
    checkpoint's manifest records them, and ``<prefix>-<tag>-<what>`` links to them (its
    ``-meta.json`` a copy naming that manifest). Returns the manifest's ``export`` entry:
    ``what``, ``prefix`` (file name prefix), ``files``, ``sha256`` and ``sizes`` per suffix.
    """
    suffixes = _EXPORTED + ((_META,) if meta is not None else ())

    def write_all(tmp):
        write(tmp)
        if meta is not None:
            with open(tmp + _META, "w") as f:
                json.dump(dict(meta, checkpoint=None), f, indent=1, sort_keys=True,
                          default=str)

    def export(_prefix=prefix):
        folder = os.path.dirname(os.path.abspath(prefix))
        os.makedirs(folder, exist_ok=True)
        tmp = "%s-%s.tmp-%d" % (prefix, what, os.getpid())
        try:
            write_all(tmp)
            for s in suffixes:
                _fsync(tmp + s)
            _verify_export(tmp)
            if meta is not None:
                with open(tmp + _META) as f:
                    json.load(f)
            sums = {s: _sha256(tmp + s) for s in suffixes}
        except _WRITE_ERRORS as err:
            _write_failed([tmp + s for s in suffixes], err)
        _kill_point()
        key = hashlib.sha256("".join(sums[s][0] for s in suffixes).encode()).hexdigest()[:16]
        name = "%s-%s-%s" % (os.path.basename(prefix), what, key)
        for s in suffixes:
            _put_immutable(tmp + s, folder, name + s)
        return {"what": what, "prefix": name, "files": {s: name + s for s in suffixes},
                "sha256": {s: sums[s][0] for s in suffixes},
                "sizes": {s: sums[s][1] for s in suffixes}}
    return export


# ------------------------------------------------------------------ reading
def load_checkpoint(manifest_path, blocks, trainers, ctx, flag="--resume", settings=None,
                    kind=None, kind_keys=None):
    """Load a checkpoint into ``blocks`` and ``trainers``; returns the manifest (loop state).

    Refuses (``CheckpointError``, the message opening with ``flag`` and the path) a checkpoint
    that lacks a part the run needs, whose files are torn, corrupt or outside its folder, of
    another kind of run, whose parameters do not fit the run's blocks (names, shapes,
    constants such as anchors), or whose parameters or optimizer states hold NaN/Inf; the
    parameters are checked before anything is loaded.

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
    kind, kind_keys : see :func:`~gankd_gluon.models.weights.read_checkpoint`.
    """
    from .guards import first_non_finite, trainer_state_arrays
    manifest = read_checkpoint(manifest_path, list(blocks) + ["trainer:" + t for t in trainers],
                               flag, kind=kind, kind_keys=kind_keys)
    load_blocks(manifest_path, blocks, ctx, flag, settings, manifest=manifest)
    folder = os.path.dirname(os.path.abspath(manifest_path))
    parts = manifest["parts"]
    where = "%s %s" % (flag, manifest_path)
    for name, trainer in trainers.items():
        path = os.path.join(folder, parts["trainer:" + name])
        try:
            trainer.load_states(path)
        except (mx.base.MXNetError, pickle.UnpicklingError, EOFError, ValueError, TypeError,
                AttributeError, KeyError, IndexError) as err:
            raise CheckpointError("%s: %s is not the optimizer state of this run's trainer %s "
                                  "(%s); refusing it" % (where, path, name,
                                                         type(err).__name__)) from None
        bad = first_non_finite(trainer_state_arrays({name: trainer}))
        if bad is not None:
            raise CheckpointError("%s: non-finite values in %s (%s); refusing it"
                                  % (where, bad, path))
    return manifest


# ------------------------------------------------------------------ the run folder
def is_manifest(path):
    """Whether a ``.json`` file of a run's folder is a checkpoint manifest: not an export's
    ``-symbol.json`` (its graph) or ``-meta.json`` (its description)."""
    return path.endswith(".json") and not path.endswith(("-symbol.json", _META))


def run_manifests(prefix):
    """All manifests ``<prefix>-*.json`` of a run (sorted names; exports' ``-symbol.json`` and
    ``-meta.json`` files are not manifests)."""
    return sorted(p for p in glob.glob(glob.escape(prefix) + "-*.json") if is_manifest(p))


def _epoch_manifests(prefix):
    return sorted(glob.glob(glob.escape(prefix) + "-epoch*.json"))


def prune_checkpoints(prefix, keep_last):
    """Delete all but the newest ``keep_last`` epoch checkpoints (their manifests first, then
    the files no remaining manifest names), and an ``interrupted`` checkpoint older than the
    newest epoch checkpoint; ``best`` and ``final`` are kept."""
    manifests = _epoch_manifests(prefix)
    doomed = manifests[:max(0, len(manifests) - keep_last)]
    interrupted = "%s-interrupted.json" % prefix
    if manifests and os.path.isfile(interrupted):
        try:
            with open(interrupted) as f, open(manifests[-1]) as g:
                if _position(json.load(f)) < _position(json.load(g)):
                    doomed.append(interrupted)
        except (OSError, ValueError, TypeError, AttributeError):
            pass
    for m in doomed:
        _kill_point()
        _remove(m)
    clean_run_folder(prefix, temporaries=False)


def latest_checkpoint(prefix):
    """The newest epoch checkpoint manifest of a run, or None (tags sort by stage, epoch)."""
    manifests = _epoch_manifests(prefix)
    return manifests[-1] if manifests else None


def clean_run_folder(prefix, temporaries=True):
    """Remove what killed saves left in a run's folder: temporary files (``*.tmp-<pid>``),
    part and export files no manifest names, convenience names of missing manifests; and
    re-link the convenience names of each manifest to its parts. Call with the run's lock
    held (:func:`claim_run_folder`). Returns the removed paths."""
    folder = os.path.dirname(os.path.abspath(prefix))
    run = os.path.basename(prefix)
    if not os.path.isdir(folder):
        return []
    referenced, tags = set(), {}
    for m in run_manifests(prefix):
        parts, sha, sizes, export = _parts_of(m)
        tag = os.path.basename(m)[len(run) + 1:-len(".json")]
        tags[tag] = {"parts": parts, "export": export}
        referenced.update(v for v in parts.values() if isinstance(v, str))
        if isinstance(export, dict) and isinstance(export.get("files"), dict):
            referenced.update(export["files"].values())
    removed = []
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if not name.startswith(run) or not os.path.isfile(path):
            continue
        if ".tmp-" in name:
            if temporaries:
                removed.append(path)
            continue
        rest = name[len(run):]
        if rest.startswith(".") and _PART_RE.search(name):            # a part file
            if name not in referenced:
                removed.append(path)
        elif rest.startswith("-") and _EXPORT_RE.search(name):        # an export file
            if name not in referenced:
                removed.append(path)
        elif rest.startswith("-") and _convenience_tag(run, name, tags) is False:
            removed.append(path)                                       # of a deleted manifest
    for path in removed:
        _remove(path)
    for tag, m in tags.items():
        try:
            _repair_links(prefix, tag, m)
        except (OSError, KeyError, TypeError, AttributeError):
            pass
    return removed


def _convenience_tag(run, name, tags):
    """The tag a convenience name belongs to; False for one of a tag with no manifest; None
    for a file that is not a convenience name."""
    m = re.match(re.escape(run) + r"-(.+?)\.[^.]+\.(params|states)$", name)
    if m is None:
        m = re.match(re.escape(run) + r"-(.+)-[^-]+(-symbol\.json|-0000\.params|-meta\.json)$",
                     name)
    if m is None:
        return None
    return m.group(1) if m.group(1) in tags else False


def _repair_links(prefix, tag, m):
    folder = os.path.dirname(os.path.abspath(prefix))
    for part, name in m["parts"].items():
        src, dst = os.path.join(folder, name), _convenience(prefix, tag, part)
        if os.path.isfile(src) and not (os.path.isfile(dst) and os.path.samefile(src, dst)):
            link_atomic(src, dst)
    export = m["export"]
    if isinstance(export, dict):
        for s in export["files"]:
            _link_export_file(prefix, tag, export, s)


def check_run_folder(prefix, overwrite, flag_prefix="--save-prefix"):
    """Refuse (``CheckpointError``) to start afresh in a folder holding checkpoints of an
    earlier run, unless ``overwrite``; reads only."""
    folder = os.path.dirname(os.path.abspath(prefix))
    existing = run_manifests(prefix) if os.path.isdir(folder) else []
    if existing and not overwrite:
        raise CheckpointError(
            "%s %s: %s already holds %d checkpoint(s) of an earlier run (e.g. %s); continue it "
            "with --resume auto, choose another --save-prefix, or pass --overwrite to replace "
            "them" % (flag_prefix, os.path.basename(prefix), folder, len(existing),
                      os.path.basename(existing[-1])))


def claim_run_folder(prefix, resuming, overwrite, flag_prefix="--save-prefix"):
    """Take a run's folder for this process, before anything is written.

    Refuses (``CheckpointError``) a folder that holds checkpoints of an earlier run unless
    the run resumes (``--resume``) or ``overwrite`` (``--overwrite``: they are deleted), and a
    folder another live run holds (its lock, ``<folder>/.lock``, is held with ``flock``, which
    the kernel releases when that process dies however it dies). Then removes what killed
    saves left behind (:func:`clean_run_folder`).

    Returns
    -------
    file : the open lock file; the lock lasts as long as it stays open.
    """
    folder = os.path.dirname(os.path.abspath(prefix))
    existing = run_manifests(prefix) if os.path.isdir(folder) else []
    if not resuming:
        check_run_folder(prefix, overwrite, flag_prefix)
    os.makedirs(folder, exist_ok=True)
    lock = open(os.path.join(folder, ".lock"), "a+")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise CheckpointError("%s %s: another run (pid %s) is writing to %s; wait for it to "
                              "end or choose another --save-prefix"
                              % (flag_prefix, os.path.basename(prefix), holder, folder)) \
            from None
    lock.seek(0)
    lock.truncate()
    lock.write("%d\n" % os.getpid())
    lock.flush()
    if existing and overwrite and not resuming:
        for m in existing:
            _remove(m)
    clean_run_folder(prefix)
    return lock


def _position(manifest):
    """Where a checkpoint stands in its run: (stage, epochs done), an interrupted epoch
    counting as half done; ties go to the later save."""
    epoch = float(manifest.get("epoch", 0))
    if not manifest.get("epoch_completed", True):
        epoch -= 0.5
    return (int(manifest.get("stage", 0)), epoch, float(manifest.get("saved_at", 0)))


def select_resume(prefix, need=None, kind=None, kind_keys=None):
    """``--resume auto``: the newest valid checkpoint of the run (any of its manifests: epoch
    checkpoints, ``interrupted``, ``best``, ``final``; newest by stage, epoch, an interrupted
    epoch counting as half done, then by save time), verified as
    :func:`~gankd_gluon.models.weights.read_checkpoint` does.

    Returns
    -------
    path : str or None
        None where the run's folder holds no checkpoint manifest at all (a fresh start).
    notes : list of str
        One line each: the one taken, each newer one skipped and why, or that none was found
        and where the search looked.

    Raises
    ------
    CheckpointError
        Checkpoints exist but none is valid (the reasons, one per manifest, in one line).
    """
    folder = os.path.dirname(os.path.abspath(prefix))
    candidates = run_manifests(prefix)
    if not candidates:
        return None, ["--resume auto: no checkpoint found (looked for %s-*.json in %s); "
                      "starting from scratch" % (os.path.basename(prefix), folder)]
    ranked = []
    for p in candidates:
        try:
            with open(p) as f:
                ranked.append((_position(json.load(f)), p))
        except (OSError, ValueError, TypeError, AttributeError):
            ranked.append(((-1, 0.0, 0.0), p))
    ranked.sort(reverse=True)
    notes, skipped = [], []
    for _, p in ranked:
        try:
            manifest = read_checkpoint(p, need, "--resume auto:", kind=kind,
                                       kind_keys=kind_keys)
        except CheckpointError as err:
            reason = str(err).split(": ", 2)[-1]
            skipped.append("skipped %s (%s)" % (os.path.basename(p), reason))
            continue
        if not isinstance(manifest.get("stage"), int) or not isinstance(
                manifest.get("epoch"), int):
            skipped.append("skipped %s (no stage and epoch recorded)" % os.path.basename(p))
            continue
        notes.append("--resume auto: took %s" % p)
        notes.extend("--resume auto: %s" % s for s in skipped)
        return p, notes
    raise CheckpointError("--resume auto: no valid checkpoint in %s: %s"
                          % (folder, "; ".join(skipped)))


def compare_settings(saved_args, args, allowed=(), keys=RUN_SETTINGS):
    """The run-defining settings in which this run differs from a checkpoint's run.

    Parameters
    ----------
    saved_args : dict
        The checkpoint's ``args``.
    args : dict
        This run's arguments (``vars(namespace)``).
    allowed : iterable of str
        Settings the user said may differ (``--allow-changed``; flag or dest spelling).
    keys : iterable of str
        The settings compared (those present in both).

    Returns
    -------
    refused, accepted : list of str
        ``--flag OLD -> NEW`` for each difference, split by whether it was allowed.
    """
    allow = {a.strip().lstrip("-").replace("-", "_").lower() for a in allowed if a.strip()}
    refused, accepted = [], []
    for k in keys:
        if k not in args or not isinstance(saved_args, dict) or k not in saved_args:
            continue
        old, new = _norm(saved_args[k]), _norm(args[k])
        if old != new:
            text = "--%s %s -> %s" % (k.replace("_", "-"), json.dumps(old), json.dumps(new))
            (accepted if k.lower() in allow else refused).append(text)
    return refused, accepted
