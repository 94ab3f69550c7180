"""Checkpoints that hold the same state share their files (hard links), and stay independent:
pruning one name, or saving new weights under a name, never changes another checkpoint. A
checkpoint that does not fit the run's blocks is refused, naming the flag, before any load."""
import glob
import json
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gankd_gluon.engine.checkpoint import (CheckpointError, deployable_exporter, link_atomic,
                                           load_checkpoint, prune_checkpoints, read_checkpoint,
                                           save_checkpoint)


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
    return mx.nd.load(path)["weight"].asnumpy()


def test_same_as_links_every_part_and_the_copy_loads(tmp_path):
    net, trainer = _net_and_trainer(1.0)
    _step(net, trainer)
    prefix = str(tmp_path / "run")
    a = save_checkpoint(prefix, "best", {"net": net}, {"opt": trainer}, {"epoch": 1})
    b = save_checkpoint(prefix, "final", {"net": net}, {"opt": trainer}, {"epoch": 1}, same_as=a)
    parts_a = json.load(open(a))["parts"]
    parts_b = json.load(open(b))["parts"]
    assert set(parts_a) == set(parts_b) == {"net", "trainer:opt"}
    for name in parts_a:
        pa, pb = tmp_path / parts_a[name], tmp_path / parts_b[name]
        assert pa != pb and os.path.samefile(pa, pb)
        assert os.stat(pa).st_nlink == 2
    assert json.load(open(b))["tag"] == "final"
    # the linked checkpoint loads like a written one
    other, other_trainer = _net_and_trainer(0.0)
    _step(other, other_trainer)
    state = load_checkpoint(b, {"net": other}, {"opt": other_trainer}, mx.cpu())
    assert state["epoch"] == 1
    assert np.array_equal(other.weight.data().asnumpy(), net.weight.data().asnumpy())
    assert not glob.glob(str(tmp_path / "*.tmp-*"))


def test_linked_checkpoints_stay_independent(tmp_path):
    net, trainer = _net_and_trainer(1.0)
    prefix = str(tmp_path / "run")
    epoch = save_checkpoint(prefix, "epoch-s1-e0001", {"net": net}, {"opt": trainer}, {})
    best = save_checkpoint(prefix, "best", {"net": net}, {"opt": trainer}, {}, same_as=epoch)
    # pruning the epoch checkpoint removes its names only
    save_checkpoint(prefix, "epoch-s1-e0002", {"net": net}, {"opt": trainer}, {})
    prune_checkpoints(prefix, keep_last=1)
    assert not os.path.exists(epoch)
    assert _weight(str(tmp_path / "run-best.net.params")).tolist() == [[1.0] * 3] * 2
    # a later save under a linked name writes a new file; the other name keeps the old weights
    a = save_checkpoint(prefix, "a", {"net": net}, {"opt": trainer}, {})
    save_checkpoint(prefix, "b", {"net": net}, {"opt": trainer}, {}, same_as=a)
    net.weight.set_data(mx.nd.full((2, 3), 5.0))
    save_checkpoint(prefix, "a", {"net": net}, {"opt": trainer}, {})
    assert _weight(str(tmp_path / "run-a.net.params"))[0, 0] == 5.0
    assert _weight(str(tmp_path / "run-b.net.params"))[0, 0] == 1.0
    assert os.path.isfile(best)


def test_same_as_writes_what_it_cannot_link(tmp_path):
    """A part the earlier checkpoint lacks (or whose file is gone) is written, not skipped."""
    net, trainer = _net_and_trainer(2.0)
    prefix = str(tmp_path / "run")
    a = save_checkpoint(prefix, "a", {"net": net}, {}, {})
    os.remove(tmp_path / "run-a.net.params")
    b = save_checkpoint(prefix, "b", {"net": net}, {"opt": trainer}, {}, same_as=a)
    assert os.stat(tmp_path / "run-b.net.params").st_nlink == 1
    assert os.path.isfile(tmp_path / "run-b.opt.states")
    state = load_checkpoint(b, {"net": net}, {"opt": trainer}, mx.cpu())
    assert state["tag"] == "b"
    with pytest.raises(CheckpointError, match="missing net"):
        load_checkpoint(a, {"net": net}, {}, mx.cpu())
    # and a manifest that is not there links nothing
    c = save_checkpoint(prefix, "c", {"net": net}, {}, {}, same_as=str(tmp_path / "nope.json"))
    assert os.stat(tmp_path / "run-c.net.params").st_nlink == 1 and os.path.isfile(c)


def test_link_atomic(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("new")
    dst.write_text("old")
    assert link_atomic(str(src), str(dst)) and dst.read_text() == "new"
    assert not link_atomic(str(tmp_path / "missing"), str(tmp_path / "x"))
    assert not os.path.exists(tmp_path / "x") and dst.read_text() == "new"


def test_deployable_exporter_writes_atomically_and_links_the_same_weights(tmp_path):
    calls = []

    def write(p):
        calls.append(p)
        for suffix in ("-symbol.json", "-0000.params"):
            open(p + suffix, "w").write("%s %d" % (suffix, len(calls)))

    export = deployable_exporter(write, str(tmp_path / "run"), "student")
    assert export("best") == str(tmp_path / "run-best-student")
    assert len(calls) == 1 and ".tmp-" in calls[0]           # written under a temporary prefix
    assert export("final", same_as="best") == str(tmp_path / "run-final-student")
    assert len(calls) == 1                                     # linked, not written again
    for suffix in ("-symbol.json", "-0000.params"):
        assert os.path.samefile(tmp_path / ("run-best-student" + suffix),
                                tmp_path / ("run-final-student" + suffix))
    export("final")                                            # new weights: written
    assert len(calls) == 2
    assert (tmp_path / "run-final-student-0000.params").read_text() == "-0000.params 2"
    assert (tmp_path / "run-best-student-0000.params").read_text() == "-0000.params 1"
    export("last", same_as="never")                            # nothing to link: written
    assert len(calls) == 3
    assert not glob.glob(str(tmp_path / "*.tmp-*"))


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
