"""Checkpoint sets that stay whole (engine/checkpoint.py).

Parts are immutable files named by their content; manifests name them with sizes and SHA-256
sums and are written last. Checked here: no save changes a file an earlier manifest names; a
kill at every step of a sequence of saves leaves every manifest whole and consistent; a full
disk or a silently truncated write stops with one line and changes nothing; torn, corrupt,
swapped, foreign and path-escaping checkpoints are refused with one line naming the file; the
run folder's claim (earlier run, lock) and ``--resume auto``'s choice.
"""
import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gankd_gluon.engine.checkpoint import (CheckpointWriteError, claim_run_folder,
                                           clean_run_folder, compare_settings,
                                           deployable_exporter, is_manifest, load_checkpoint,
                                           prune_checkpoints, save_checkpoint, select_resume)
from gankd_gluon.models.weights import CheckpointError, read_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _net_and_trainer(value):
    net = gluon.nn.Dense(2, in_units=3)
    net.initialize(mx.init.Constant(value))
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.1})
    return net, trainer


def _step(net, trainer):
    with autograd.record():
        loss = net(mx.nd.ones((1, 3))).sum()
    loss.backward()
    trainer.step(1)


def _weight(path):
    return mx.nd.load(str(path))["weight"].asnumpy()


def _files(folder):
    return sorted(os.listdir(folder))


def test_parts_are_content_named_and_a_later_save_never_changes_them(tmp_path):
    net, trainer = _net_and_trainer(1.0)
    _step(net, trainer)
    prefix = str(tmp_path / "run")
    best = save_checkpoint(prefix, "best", {"net": net}, {"opt": trainer}, {"epoch": 1})
    old = json.load(open(best))
    assert set(old["parts"]) == {"net", "trainer:opt"}
    for part, name in old["parts"].items():
        digest = old["sha256"][part]
        assert name.endswith(".%s.%s" % (digest[:16], "states" if ":" in part else "params"))
        assert os.path.getsize(tmp_path / name) == old["sizes"][part]
    os.rename(best, tmp_path / "run-old.json")          # an earlier manifest, kept aside
    net.weight.set_data(mx.nd.full((2, 3), 5.0))
    _step(net, trainer)
    best = save_checkpoint(prefix, "best", {"net": net}, {"opt": trainer}, {"epoch": 2})
    new = json.load(open(best))
    assert new["parts"]["net"] != old["parts"]["net"]
    # the earlier manifest still names whole files of its own save
    assert _weight(tmp_path / old["parts"]["net"])[0, 0] == pytest.approx(1.0 - 0.1)
    other, other_trainer = _net_and_trainer(0.0)
    load_checkpoint(str(tmp_path / "run-old.json"), {"net": other}, {"opt": other_trainer},
                    mx.cpu())
    assert other.weight.data()[0, 0].asscalar() == pytest.approx(0.9)
    # convenience names link the newest save of the tag
    assert os.path.samefile(tmp_path / "run-best.net.params", tmp_path / new["parts"]["net"])
    assert not glob.glob(str(tmp_path / "*.tmp-*"))


def test_same_as_names_the_same_files_and_pruning_keeps_what_others_name(tmp_path):
    net, trainer = _net_and_trainer(1.0)
    prefix = str(tmp_path / "run")
    e1 = save_checkpoint(prefix, "epoch-s1-e0001", {"net": net}, {"opt": trainer},
                         {"stage": 1, "epoch": 1})
    before = os.stat(tmp_path / json.load(open(e1))["parts"]["net"]).st_mtime_ns
    best = save_checkpoint(prefix, "best", {"net": net}, {"opt": trainer},
                           {"stage": 1, "epoch": 1}, same_as=e1)
    assert json.load(open(best))["parts"] == json.load(open(e1))["parts"]
    assert os.stat(tmp_path / json.load(open(e1))["parts"]["net"]).st_mtime_ns == before
    net.weight.set_data(mx.nd.full((2, 3), 7.0))
    save_checkpoint(prefix, "epoch-s1-e0002", {"net": net}, {"opt": trainer},
                    {"stage": 1, "epoch": 2})
    prune_checkpoints(prefix, keep_last=1)
    assert not os.path.exists(e1) and not os.path.exists(tmp_path / "run-epoch-s1-e0001.net.params")
    # best's parts survive (named by best), the pruned checkpoint's own names are gone
    load_checkpoint(best, {"net": net}, {"opt": trainer}, mx.cpu())
    assert net.weight.data()[0, 0].asscalar() == 1.0
    parts = [f for f in _files(tmp_path) if f.startswith("run.")]
    # best's and epoch 2's weights; one optimizer state (no step: the same bytes, one name)
    assert len(parts) == 3


def test_a_part_whose_file_is_gone_is_written_again(tmp_path):
    """``same_as`` names an earlier save's files only while they are whole."""
    net, trainer = _net_and_trainer(2.0)
    prefix = str(tmp_path / "run")
    a = save_checkpoint(prefix, "a", {"net": net}, {}, {})
    os.remove(tmp_path / json.load(open(a))["parts"]["net"])
    b = save_checkpoint(prefix, "b", {"net": net}, {"opt": trainer}, {}, same_as=a)
    assert load_checkpoint(b, {"net": net}, {"opt": trainer}, mx.cpu())["tag"] == "b"
    # the same bytes under the same name: a's part is whole again
    assert load_checkpoint(a, {"net": net}, {}, mx.cpu())["tag"] == "a"


class _CountingTrainer(gluon.Trainer):
    """A trainer that counts its ``save_states`` calls (the files written for it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.saves = 0

    def save_states(self, fname):
        self.saves += 1
        super().save_states(fname)


def test_reuse_names_a_resting_trainers_states_and_writes_the_rest(tmp_path):
    """Stage 2 of a run: the stage-1 trainer ``g`` has not stepped since save ``a``; ``reuse``
    names a's file of its states (the same inode, nothing written for it); the stepped
    trainer's states and the changed weights are written."""
    net = gluon.nn.Dense(2, in_units=3)
    net.initialize(mx.init.Constant(1.0))
    g = _CountingTrainer(net.collect_params(), "adam", {"learning_rate": 0.1})
    sgd = _CountingTrainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    _step(net, g)
    prefix = str(tmp_path / "run")
    a = save_checkpoint(prefix, "epoch-s1-e0001", {"net": net}, {"g": g, "sgd": sgd}, {})
    old = json.load(open(a))["parts"]
    inode = os.stat(tmp_path / old["trainer:g"]).st_ino
    _step(net, sgd)
    b = save_checkpoint(prefix, "epoch-s2-e0001", {"net": net}, {"g": g, "sgd": sgd}, {},
                        reuse={"trainer:g": a})
    new = json.load(open(b))["parts"]
    assert new["trainer:g"] == old["trainer:g"]
    assert os.stat(tmp_path / new["trainer:g"]).st_ino == inode
    assert (g.saves, sgd.saves) == (1, 2)
    assert new["net"] != old["net"] and new["trainer:sgd"] != old["trainer:sgd"]
    # what b names loads, g's Adam state included
    net2 = gluon.nn.Dense(2, in_units=3)
    net2.initialize()
    g2 = gluon.Trainer(net2.collect_params(), "adam", {"learning_rate": 0.1})
    sgd2 = gluon.Trainer(net2.collect_params(), "sgd", {"learning_rate": 0.1})
    load_checkpoint(b, {"net": net2}, {"g": g2, "sgd": sgd2}, mx.cpu())
    assert g2._optimizer.num_update == 1 and sgd2._optimizer.num_update == 1
    # the controls: the states are written again where a's file is gone, where it is not of
    # the size a records, and where the manifest named is in another folder
    os.remove(tmp_path / old["trainer:g"])
    c = save_checkpoint(prefix, "epoch-s2-e0002", {"net": net}, {"g": g, "sgd": sgd}, {},
                        reuse={"trainer:g": a})
    assert g.saves == 2 and json.load(open(c))["parts"]["trainer:g"] == old["trainer:g"]
    assert os.path.isfile(tmp_path / old["trainer:g"])
    with open(tmp_path / old["trainer:g"], "ab") as f:
        f.write(b"x")
    save_checkpoint(prefix, "epoch-s2-e0003", {"net": net}, {"g": g, "sgd": sgd}, {},
                    reuse={"trainer:g": a})
    assert g.saves == 3
    assert os.path.getsize(tmp_path / old["trainer:g"]) == json.load(open(a))["sizes"][
        "trainer:g"]
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    shutil.copy(a, elsewhere / "run-epoch-s1-e0001.json")
    shutil.copy(tmp_path / old["trainer:g"], elsewhere / old["trainer:g"])
    save_checkpoint(prefix, "epoch-s2-e0004", {"net": net}, {"g": g, "sgd": sgd}, {},
                    reuse={"trainer:g": str(elsewhere / "run-epoch-s1-e0001.json")})
    assert g.saves == 4


def _exporter(net, prefix, calls):
    net.hybridize()
    net(mx.nd.ones((1, 3)))

    def write(p):
        calls.append(p)
        net.export(p)
    return deployable_exporter(write, prefix, "net")


def test_the_export_is_named_by_the_manifest_and_reused_while_weights_stay(tmp_path):
    net, trainer = _net_and_trainer(1.0)
    prefix = str(tmp_path / "run")
    calls = []
    export = _exporter(net, prefix, calls)
    best = save_checkpoint(prefix, "best", {"net": net}, {}, {}, export=export)
    entry = json.load(open(best))["export"]
    assert len(calls) == 1 and ".tmp-" in calls[0]     # written under a temporary prefix
    params = tmp_path / entry["files"]["-0000.params"]
    assert list(mx.nd.load(str(params)).values())[0].asnumpy()[0, 0] == 1.0
    assert os.path.samefile(tmp_path / "run-best-net-0000.params", params)
    final = save_checkpoint(prefix, "final", {"net": net}, {}, {}, same_as=best, export=export)
    assert len(calls) == 1 and json.load(open(final))["export"] == entry
    net.weight.set_data(mx.nd.full((2, 3), 3.0))
    final = save_checkpoint(prefix, "final", {"net": net}, {}, {}, export=export)
    assert len(calls) == 2 and json.load(open(final))["export"] != entry
    assert list(mx.nd.load(str(params)).values())[0].asnumpy()[0, 0] == 1.0   # best's unchanged
    net2 = gluon.SymbolBlock.imports(str(tmp_path / "run-final-net-symbol.json"), ["data"],
                                     str(tmp_path / "run-final-net-0000.params"))
    assert net2(mx.nd.ones((1, 3)))[0, 0].asscalar() == pytest.approx(9.0)
    assert not glob.glob(str(tmp_path / "*.tmp-*"))


# ------------------------------------------------------------------ writes that fail
class _Truncating(gluon.nn.Dense):
    """``nd.save`` cut short without an error, as MXNet does on a full disk."""

    def save_parameters(self, filename, deduplicate=False):
        super().save_parameters(filename)
        with open(filename, "r+b") as f:
            f.truncate(os.path.getsize(filename) - 10)


def test_a_silently_truncated_write_is_caught_and_changes_nothing(tmp_path):
    net, _ = _net_and_trainer(1.0)
    prefix = str(tmp_path / "run")
    best = save_checkpoint(prefix, "best", {"net": net}, {}, {"epoch": 1})
    before = {f: open(tmp_path / f, "rb").read() for f in _files(tmp_path)}
    bad = _Truncating(2, in_units=3)
    bad.initialize()
    with pytest.raises(CheckpointWriteError, match=r"^could not write \S+run\.net\.params\.tmp-"
                                                   r"\d+ \(.+\); [\d.]+ MB free on that disk"):
        save_checkpoint(prefix, "best", {"net": bad}, {}, {"epoch": 2})
    assert {f: open(tmp_path / f, "rb").read() for f in _files(tmp_path)} == before
    assert json.load(open(best))["epoch"] == 1


class _TruncatingStates(gluon.Trainer):
    """Optimizer states cut short without an error (the last 10 bytes of the pickle)."""

    def save_states(self, fname):
        super().save_states(fname)
        with open(fname, "r+b") as f:
            f.truncate(os.path.getsize(fname) - 10)


def test_a_silently_truncated_states_write_is_caught_and_changes_nothing(tmp_path):
    net, trainer = _net_and_trainer(1.0)
    _step(net, trainer)
    prefix = str(tmp_path / "run")
    best = save_checkpoint(prefix, "best", {"net": net}, {"opt": trainer}, {"epoch": 1})
    before = {f: open(tmp_path / f, "rb").read() for f in _files(tmp_path)}
    bad = _TruncatingStates(net.collect_params(), "adam", {"learning_rate": 0.1})
    _step(net, bad)
    # (the cut falls inside the pickle's last opcode: the walk says how many bytes it missed)
    with pytest.raises(CheckpointWriteError, match=r"^could not write \S+run\.opt\.states\."
                                                   r"tmp-\d+ \(.*(only \d+ remain|exhausted)"
                                                   r".*\); [\d.]+ MB free on that disk"):
        save_checkpoint(prefix, "best", {"net": net}, {"opt": bad}, {"epoch": 2})
    # every file there was is as it was; the new weights part, written before the states,
    # is named by no manifest (removed at the run's next start) and no temporary file is left
    assert {f: open(tmp_path / f, "rb").read() for f in before} == before
    assert [f for f in _files(tmp_path) if f not in before] == \
        [os.path.basename(p) for p in glob.glob(str(tmp_path / "run.net.*.params"))
         if os.path.basename(p) not in before]
    assert json.load(open(best))["epoch"] == 1


_FULL_DISK = textwrap.dedent("""
    import json, os, resource, signal, sys
    import mxnet as mx
    from mxnet import gluon
    from gankd_gluon.engine.checkpoint import save_checkpoint, CheckpointWriteError
    prefix = sys.argv[1]
    net = gluon.nn.Dense(256, in_units=256)
    net.initialize(mx.init.Constant(1.0))
    save_checkpoint(prefix, "best", {"net": net}, {}, {"epoch": 1})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # writes past the limit fail (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100000, 100000))
    net.weight.set_data(mx.nd.full((256, 256), 2.0))
    try:
        save_checkpoint(prefix, "best", {"net": net}, {}, {"epoch": 2})
    except CheckpointWriteError as err:
        print(err)
        sys.exit(1)
""")


def test_a_full_disk_stops_with_one_line_and_the_previous_checkpoint_intact(tmp_path):
    """A file size limit (RLIMIT_FSIZE) stands in for a full disk: the 256 KB part cannot be
    written in full."""
    prefix = str(tmp_path / "run")
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, prefix], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert proc.returncode == 1, proc.stderr
    line = proc.stdout.strip()
    assert "\n" not in line
    assert line.startswith("could not write %s.net.params.tmp-" % prefix)
    assert "MB free on that disk; the previous checkpoints are intact" in line
    assert not glob.glob(str(tmp_path / "*.tmp-*"))
    net = gluon.nn.Dense(256, in_units=256)
    net.initialize()
    state = load_checkpoint(prefix + "-best.json", {"net": net}, {}, mx.cpu())
    assert state["epoch"] == 1 and net.weight.data()[0, 0].asscalar() == 1.0


# ------------------------------------------------------------------ a kill at every step
_SAVES = textwrap.dedent("""
    import json, os, signal, sys
    import mxnet as mx
    from mxnet import autograd, gluon
    from gankd_gluon.engine.checkpoint import (deployable_exporter, prune_checkpoints,
                                               save_checkpoint)


    def saves(prefix):
        a, b = gluon.nn.Dense(2, in_units=3), gluon.nn.Dense(3, in_units=2)
        for n in (a, b):
            n.initialize()
        trainer = gluon.Trainer(a.collect_params(), "sgd", {"learning_rate": 0.1,
                                                            "momentum": 0.9})
        a.hybridize()
        a(mx.nd.ones((1, 3)))
        export = deployable_exporter(a.export, prefix, "net")
        version = [0]

        def train(v):      # every array of the save holds the value v
            version[0] = v
            with autograd.record():
                loss = a(mx.nd.ones((1, 3))).sum()
            loss.backward()
            trainer.step(1)
            for n in (a, b):
                for p in n.collect_params().values():
                    p.set_data(mx.nd.full(p.shape, v))

        def save(tag, stage, epoch, same_as=None, with_export=False, completed=True):
            return save_checkpoint(prefix, tag, {"a": a, "b": b}, {"opt": trainer},
                                   {"stage": stage, "epoch": epoch, "epoch_completed": completed,
                                    "version": version[0]},
                                   same_as=same_as, export=export if with_export else None,
                                   kind={"detector": "test"})
        train(1)
        e1 = save("epoch-s1-e0001", 1, 1)
        best = save("best", 1, 1, same_as=e1, with_export=True)
        train(2)
        best = save("best", 1, 2, with_export=True)
        save("epoch-s1-e0002", 1, 2, same_as=best)
        prune_checkpoints(prefix, keep_last=1)
        train(3)
        save("interrupted", 1, 3, completed=False)
        train(4)
        e3 = save("epoch-s1-e0003", 1, 3)
        prune_checkpoints(prefix, keep_last=1)
        save("final", 1, 3, same_as=e3, with_export=True)


    # one process imports MXNet; each try forks a child that runs the saves with a kill at
    # step n (MXNet's engine restarts its threads in a forked child, as DataLoader workers do)
    root, results = sys.argv[1], []
    for n in range(1, 400):
        prefix = os.path.join(root, "k%03d" % n, "run")
        os.makedirs(os.path.dirname(prefix))
        pid = os.fork()
        if pid == 0:
            os.environ["GANKD_FAULT"] = "kill-save:%d" % n
            try:
                saves(prefix)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        results.append([prefix, killed])
        if not killed:
            break
    print(json.dumps(results))
""")


def _check_folder(prefix):
    """Every manifest of the folder names a whole set of one save; returns the tags."""
    folder = os.path.dirname(prefix)
    tags = []
    for manifest in sorted(glob.glob(prefix + "-*.json")):
        if not is_manifest(manifest):
            continue
        m = read_checkpoint(manifest, None, "check")           # sizes and checksums
        v = m["version"]
        for part in ("a", "b"):
            arrays = mx.nd.load(os.path.join(folder, m["parts"][part]))
            assert all((x.asnumpy() == v).all() for x in arrays.values()), (manifest, part)
        if "export" in m:
            params = mx.nd.load(os.path.join(folder, m["export"]["files"]["-0000.params"]))
            assert all((x.asnumpy() == v).all() for x in params.values()), manifest
        tags.append(m["tag"])
    return tags


@pytest.mark.slow
def test_a_kill_at_any_step_of_any_save_leaves_every_manifest_whole(tmp_path):
    """SIGKILL at step N of the saves (each part, export and manifest written, each rename and
    link, each pruning), for every N: every manifest left names the parts of one save (all
    arrays equal that save's version), checksums hold, and the next start's clean-up removes
    the temporary and unreferenced files and re-links the convenience names."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("GANKD_FAULT", None)
    proc = subprocess.run([sys.executable, "-c", _SAVES, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [killed for _, killed in results] == [True] * (len(results) - 1) + [False]
    assert len(results) > 40                   # the sequence has that many steps
    seen = set()
    for prefix, killed in results[:-1]:
        seen.add(tuple(sorted(_check_folder(prefix))))
        folder = os.path.dirname(prefix)
        clean_run_folder(prefix)
        assert not glob.glob(os.path.join(folder, "*.tmp-*"))
        named = set()
        for manifest in glob.glob(prefix + "-*.json"):
            if not is_manifest(manifest):
                continue
            m = json.load(open(manifest))
            named.update(m["parts"].values())
            named.update(m.get("export", {}).get("files", {}).values())
            for part, name in m["parts"].items():
                link = "%s-%s.%s.%s" % (prefix, m["tag"], part.split(":")[-1],
                                        "states" if ":" in part else "params")
                assert os.path.samefile(link, os.path.join(folder, name))
        content = {f for f in os.listdir(folder) if f.startswith("run.")
                   or f.startswith("run-net-")}
        assert content == named, prefix
    # kills landed while best, the epochs, interrupted and final were each half-written
    assert {("best", "epoch-s1-e0002"), ("best", "epoch-s1-e0002", "interrupted"),
            ("best", "epoch-s1-e0003")} <= seen
    assert _check_folder(results[-1][0]) == ["best", "epoch-s1-e0003", "final"]


# ------------------------------------------------------------------ refusing what is broken
def _saved_pair(tmp_path):
    a, b = gluon.nn.Dense(2, in_units=3), gluon.nn.Dense(2, in_units=3)
    for n, v in ((a, 1.0), (b, 2.0)):
        n.initialize(mx.init.Constant(v))
    path = save_checkpoint(str(tmp_path / "run"), "best", {"student": a, "dnet": b}, {},
                           {"stage": 1, "epoch": 1}, kind={"detector": "ssd", "classes": ["x"]})
    return path, json.load(open(path))


def _edit(path, **fields):
    m = json.load(open(path))
    m.update(fields)
    json.dump(m, open(path, "w"))


@pytest.mark.parametrize("damage, message", [
    ("truncate", r"\S+student\.[0-9a-f]{16}\.params is \d+ bytes, the manifest expects \d+ "
                 r"\(truncated or replaced\); refusing it$"),
    ("empty", r"\S+student\.[0-9a-f]{16}\.params is 0 bytes, the manifest expects"),
    ("flip", r"\S+student\.[0-9a-f]{16}\.params does not match its SHA-256 in the manifest "
             r"\([0-9a-f]{16}\.\.\.; corrupted, or swapped for another file\); refusing it$"),
    ("swap", r"\S+student\.[0-9a-f]{16}\.params does not match its SHA-256"),
    ("foreign", r"a checkpoint of another kind of run: classes \[\"y\"\] \(this run: \[\"x\"\]\), "
                r"detector \"faster_rcnn\" \(this run: \"ssd\"\); refusing it$"),
    ("escape", r"part student names '\.\./outside\.params', not a file in the manifest's own "
               r"folder; refusing it$"),
    ("absolute", r"part student names '/etc/passwd', not a file in the manifest's own folder"),
    ("no-checksums", r"the manifest has no part checksums \(written by an older version, or "
                     r"not by this project\); refusing it$"),
    ("parts-list", r"not a checkpoint manifest \(no 'parts'\)$"),
    ("size-text", r"no size or checksum for part student; refusing it$"),
])
def test_a_broken_checkpoint_is_refused_with_one_line(tmp_path, damage, message):
    path, m = _saved_pair(tmp_path)
    student = tmp_path / m["parts"]["student"]
    if damage == "truncate":
        data = student.read_bytes()
        student.write_bytes(data[:-7])
    elif damage == "empty":
        student.write_bytes(b"")
    elif damage == "flip":
        data = bytearray(student.read_bytes())
        data[-20] ^= 1
        student.write_bytes(bytes(data))
    elif damage == "swap":
        student.write_bytes((tmp_path / m["parts"]["dnet"]).read_bytes())
    elif damage == "foreign":
        _edit(path, kind={"detector": "faster_rcnn", "classes": ["y"]})
    elif damage in ("escape", "absolute"):
        (tmp_path.parent / "outside.params").write_bytes(student.read_bytes())
        _edit(path, parts=dict(m["parts"], student="../outside.params" if damage == "escape"
                               else "/etc/passwd"))
    elif damage == "no-checksums":
        _edit(path, sha256=None)
    elif damage == "parts-list":
        _edit(path, parts=list(m["parts"].values()))
    elif damage == "size-text":
        _edit(path, sizes=dict(m["sizes"], student="12"))
    net, dnet = gluon.nn.Dense(2, in_units=3), gluon.nn.Dense(2, in_units=3)
    for n in (net, dnet):
        n.initialize(mx.init.Constant(-1.0))
    with pytest.raises(CheckpointError, match=r"^--resume \S+run-best\.json: " + message) as e:
        load_checkpoint(path, {"student": net, "dnet": dnet}, {}, mx.cpu(),
                        kind={"detector": "ssd", "classes": ["x"]})
    assert "\n" not in str(e.value)
    assert (net.weight.data().asnumpy() == -1).all()                 # nothing loaded


def test_the_untouched_pair_loads(tmp_path):
    """The control of the test above: the same checkpoint, undamaged, loads."""
    path, _ = _saved_pair(tmp_path)
    net, dnet = gluon.nn.Dense(2, in_units=3), gluon.nn.Dense(2, in_units=3)
    for n in (net, dnet):
        n.initialize(mx.init.Constant(-1.0))
    load_checkpoint(path, {"student": net, "dnet": dnet}, {}, mx.cpu(),
                    kind={"detector": "ssd", "classes": ["x"]})
    assert (net.weight.data().asnumpy() == 1).all() and (dnet.weight.data().asnumpy() == 2).all()


def test_nan_in_an_optimizer_state_is_refused(tmp_path):
    """A NaN state with a checksum that matches (rewritten by hand) is still refused."""
    net, trainer = _net_and_trainer(1.0)
    _step(net, trainer)
    trainer._updaters[0].states[0][0][:] = float("nan")    # Adam's mean of the weight
    with pytest.raises(FloatingPointError):               # never saved ...
        from gankd_gluon.engine.guards import check_weights
        check_weights({"net": net}, {"opt": trainer}, "before saving")
    path = save_checkpoint(str(tmp_path / "run"), "best", {"net": net}, {"opt": trainer}, {})
    other, other_trainer = _net_and_trainer(0.0)
    _step(other, other_trainer)
    with pytest.raises(CheckpointError, match=r"non-finite values in optimizer state "
                                              r"opt:dense\d+_(weight|bias)\[0\] "
                                              r"\(\S+\.states\); refusing it$"):
        load_checkpoint(path, {"net": other}, {"opt": other_trainer}, mx.cpu())


def test_states_of_another_trainer_are_refused_naming_the_file(tmp_path):
    net, trainer = _net_and_trainer(1.0)
    path = save_checkpoint(str(tmp_path / "run"), "best", {"net": net}, {"opt": trainer}, {})
    m = json.load(open(path))
    states = tmp_path / m["parts"]["trainer:opt"]
    params = tmp_path / m["parts"]["net"]
    # a parameter file in the place of the states, with a manifest that matches it
    states.write_bytes(params.read_bytes())
    _edit(path, sha256=dict(m["sha256"], **{"trainer:opt": m["sha256"]["net"]}),
          sizes=dict(m["sizes"], **{"trainer:opt": m["sizes"]["net"]}))
    with pytest.raises(CheckpointError, match=r"^--resume \S+: \S+\.states is not the optimizer "
                                              r"state of this run's trainer opt"):
        load_checkpoint(path, {"net": net}, {"opt": trainer}, mx.cpu())


# ------------------------------------------------------------------ refusing what does not fit
class _Anchored(gluon.HybridBlock):
    """A layer and a constant, as GluonCV's SSD with its anchors (same shape at every input
    size, other values)."""

    def __init__(self, units, anchor):
        super().__init__()
        with self.name_scope():
            self.dense = gluon.nn.Dense(units, in_units=3)
            self.anchors = self.params.get_constant("anchors", mx.nd.full((1, 4), anchor))

    def hybrid_forward(self, F, x, anchors):
        return self.dense(x), anchors


def _saved(tmp_path, units=2, anchor=1.0):
    net = _Anchored(units, anchor)
    net.initialize(mx.init.Constant(0.5))
    path = save_checkpoint(str(tmp_path / "run"), "final", {"student": net}, {},
                           {"stage": 1, "epoch": 2, "args": {"units": units, "anchor": anchor}})
    return path, net


def _fresh(units=2, anchor=1.0):
    net = _Anchored(units, anchor)
    net.initialize(mx.init.Constant(-1.0))
    return net


def test_weights_only(tmp_path):
    path, saved = _saved(tmp_path)
    net = _fresh()
    state = load_checkpoint(path, {"student": net}, {}, mx.cpu(), flag="--init-from")
    assert state["epoch"] == 2 and state["args"]["units"] == 2
    assert np.array_equal(net.dense.weight.data().asnumpy(), saved.dense.weight.data().asnumpy())


@pytest.mark.parametrize("units, anchor, message", [
    (3, 1.0, r"--init-from \S+run-final.json: student parameter dense.weight has shape \(2, 3\) "
             r"in the checkpoint, \(3, 3\) in this run; its run had --units 2 \(this run: 3\)$"),
    (2, 2.0, r"--init-from \S+: student constant anchors differs from this run's \(a network of "
             r"other settings\); its run had --anchor 1.0 \(this run: 2.0\)$"),
])
def test_refuses_other_shapes_and_constants_before_loading(tmp_path, units, anchor, message):
    path, _ = _saved(tmp_path)
    net = _fresh(units, anchor)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, {"student": net}, {}, mx.cpu(), flag="--init-from",
                        settings={"units": units, "anchor": anchor})
    assert (net.dense.weight.data().asnumpy() == -1.0).all()          # nothing loaded


def test_refuses_other_parameter_names(tmp_path):
    path, _ = _saved(tmp_path)
    other = gluon.nn.HybridSequential()
    other.add(gluon.nn.Dense(2, in_units=3), gluon.nn.Dense(2, in_units=2))
    other.initialize()
    with pytest.raises(CheckpointError, match=r"^--resume \S+: student parameters differ from "
                                              r"this run's \(anchors and 2 more only in the "
                                              r"checkpoint; 0.bias and 3 more only in this run\)$"):
        load_checkpoint(path, {"student": other}, {}, mx.cpu())


def test_read_checkpoint_names_the_flag(tmp_path):
    path, _ = _saved(tmp_path)
    assert read_checkpoint(path, ["student"], "--init-from")["tag"] == "final"
    with pytest.raises(CheckpointError, match=r"^--init-from \S+nope.json: no such checkpoint"):
        read_checkpoint(str(tmp_path / "nope.json"), ["student"], "--init-from")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"^--init-from \S+bad.json: not a checkpoint "
                                              r"manifest"):
        read_checkpoint(str(tmp_path / "bad.json"), [], "--init-from")
    with pytest.raises(CheckpointError, match=r"^--init-from \S+: the checkpoint is missing "
                                              r"net \(it has student\); refusing it$"):
        read_checkpoint(path, ["net"], "--init-from")


# ------------------------------------------------------------------ the run folder
def test_an_earlier_runs_folder_is_refused_unless_resumed_or_overwritten(tmp_path):
    prefix = str(tmp_path / "run" / "run")
    lock = claim_run_folder(prefix, resuming=False, overwrite=False)    # a fresh folder
    net, trainer = _net_and_trainer(1.0)
    save_checkpoint(prefix, "best", {"net": net}, {"opt": trainer}, {})
    lock.close()
    with pytest.raises(CheckpointError, match=r"^--save-prefix run: \S+ already holds 1 "
                                              r"checkpoint\(s\) of an earlier run \(e\.g\. "
                                              r"run-best\.json\); continue it with --resume "
                                              r"auto, choose another --save-prefix, or pass "
                                              r"--overwrite to replace them$"):
        claim_run_folder(prefix, resuming=False, overwrite=False)
    claim_run_folder(prefix, resuming=True, overwrite=False).close()
    assert os.path.isfile(prefix + "-best.json")
    claim_run_folder(prefix, resuming=False, overwrite=True).close()
    assert _files(tmp_path / "run") == [".lock"]          # parts and links went with it


def test_two_runs_cannot_hold_one_folder(tmp_path):
    prefix = str(tmp_path / "run" / "run")
    first = claim_run_folder(prefix, resuming=False, overwrite=False)
    with pytest.raises(CheckpointError, match=r"^--save-prefix run: another run \(pid %d\) is "
                                              r"writing to \S+; wait for it to end or choose "
                                              r"another --save-prefix$" % os.getpid()):
        claim_run_folder(prefix, resuming=True, overwrite=False)
    first.close()                           # the holder ended (the kernel drops its lock)
    second = claim_run_folder(prefix, resuming=True, overwrite=False)
    with open(tmp_path / "run" / ".lock") as f:
        with pytest.raises(OSError):
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    second.close()


def test_the_next_start_removes_what_a_killed_save_left(tmp_path):
    net, trainer = _net_and_trainer(1.0)
    prefix = str(tmp_path / "run")
    save_checkpoint(prefix, "best", {"net": net}, {"opt": trainer}, {})
    keep = set(_files(tmp_path))
    (tmp_path / "run.net.params.tmp-123").write_bytes(b"x" * 100)      # a killed write
    (tmp_path / "run.net.0123456789abcdef.params").write_bytes(b"y")   # a part no one names
    (tmp_path / "run-x-0123456789abcdef-symbol.json").write_text("{}")  # an export no one names
    (tmp_path / "run-epoch-s1-e0009.net.params").write_bytes(b"z")     # of a pruned manifest
    (tmp_path / "notes.txt").write_text("mine")                         # not the run's
    os.remove(tmp_path / "run-best.net.params")                         # a link not yet made
    removed = clean_run_folder(prefix)
    assert len(removed) == 4
    assert set(_files(tmp_path)) == keep | {"notes.txt"}
    m = json.load(open(prefix + "-best.json"))
    assert os.path.samefile(tmp_path / "run-best.net.params", tmp_path / m["parts"]["net"])


def _save_at(prefix, tag, stage, epoch, completed=True, value=1.0):
    net, trainer = _net_and_trainer(value)
    return save_checkpoint(prefix, tag, {"net": net}, {"opt": trainer},
                           {"stage": stage, "epoch": epoch, "epoch_completed": completed},
                           kind={"detector": "ssd"})


def test_resume_auto_takes_the_newest_valid_checkpoint(tmp_path):
    prefix = str(tmp_path / "run")
    path, notes = select_resume(prefix)
    assert path is None and notes == ["--resume auto: no checkpoint found (looked for "
                                      "run-*.json in %s); starting from scratch" % tmp_path]
    e1 = _save_at(prefix, "epoch-s1-e0001", 1, 1, value=1.0)
    e2 = _save_at(prefix, "epoch-s1-e0002", 1, 2, value=2.0)
    assert select_resume(prefix)[0] == e2
    # interrupted during epoch 3: newer than epoch 2's checkpoint
    stopped = _save_at(prefix, "interrupted", 1, 3, completed=False, value=3.0)
    assert select_resume(prefix) == (stopped, ["--resume auto: took %s" % stopped])
    # ... but older than a checkpoint of stage 2
    s2 = _save_at(prefix, "epoch-s2-e0001", 2, 1, value=4.0)
    assert select_resume(prefix)[0] == s2
    os.remove(s2)
    # a torn newest one is skipped, saying why
    m = json.load(open(stopped))
    with open(tmp_path / m["parts"]["net"], "ab") as f:
        f.write(b"x")
    path, notes = select_resume(prefix)
    assert path == e2
    assert notes[1].startswith("--resume auto: skipped run-interrupted.json (")
    assert "the manifest expects" in notes[1]
    # of another kind: skipped too, and with none left the choice is refused
    with pytest.raises(CheckpointError, match=r"^--resume auto: no valid checkpoint in \S+: "
                                              r"skipped run-interrupted.json .*; skipped "
                                              r"run-epoch-s1-e0002.json \(a checkpoint of "
                                              r"another kind"):
        select_resume(prefix, kind={"detector": "faster_rcnn"})
    assert e1 not in notes


def test_resume_auto_takes_best_when_it_is_the_newest(tmp_path):
    """A run killed before its first epoch checkpoint (``--save-interval`` 10) has ``best``."""
    prefix = str(tmp_path / "run")
    _save_at(prefix, "epoch-s1-e0001", 1, 1, value=1.0)
    best = _save_at(prefix, "best", 1, 3, value=3.0)
    assert select_resume(prefix)[0] == best


def test_compare_settings():
    saved = {"network": "mobilenet0.25", "lr": 0.001, "batch_size": 8, "seed": 1,
             "lr_decay_epoch": "80,100", "train_years": [2007]}
    same = dict(saved, seed=2, train_years=(2007,))        # seed is not compared; tuple == list
    assert compare_settings(saved, same) == ([], [])
    changed = dict(saved, network="resnet18_v1", lr=0.5)
    assert compare_settings(saved, changed) == (
        ['--network "mobilenet0.25" -> "resnet18_v1"', "--lr 0.001 -> 0.5"], [])
    assert compare_settings(saved, changed, ["--lr"]) == (
        ['--network "mobilenet0.25" -> "resnet18_v1"'], ["--lr 0.001 -> 0.5"])
