"""docs/extending.md, followed: a new distillation term added through exactly the places the
document names (its loss block, one ``engine.methods.TERMS`` entry) reaches the command line,
the method grammar, the log columns and the student's objective of both detectors, and
trains one step with the value computed by hand."""
import argparse
import os
import re
import textwrap

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon
from mxnet.gluon import HybridBlock, nn

from gankd_gluon.engine import methods
from gankd_gluon.engine.frcnn_steps import FRCNN_OUTPUT_TERMS
from gankd_gluon.engine.steps import SSD_OUTPUT_TERMS, GANStep, SSDAdapter, split_batch
from gankd_gluon.usage import nonnegative_float

N, SIDE, LR, WEIGHT = 2, 3, 0.1, 0.5


class AdaptedL1(HybridBlock):
    """The toy loss block (step 1 of docs/extending.md): ``sum |A s + c - t|`` per image, with
    ``A`` a 1x1 adaptation of the student's map; student first, no weight inside.

    Inputs: s, t (B, C, H, W). Output: (B,)."""

    def __init__(self, channels, **kwargs):
        super(AdaptedL1, self).__init__(**kwargs)
        with self.name_scope():
            self.adapt = nn.Conv2D(channels, 1, in_channels=channels)

    def hybrid_forward(self, F, s, t):
        return F.sum(F.abs(self.adapt(s) - t), axis=0, exclude=True)


#: step 2 of docs/extending.md: the one table entry
TOY = methods.Term("KD_toy", lambda args, channels: AdaptedL1(channels), ("toy_weight",),
                   ("teacher_maps",), ("ssd", "frcnn"), None, None, weight="toy_weight",
                   flags=(methods.Flag("--toy-weight", "toy_weight", float, 1.0,
                                       "weight of the toy adapted L1"),))


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(methods.TERMS, "toy-l1", TOY)


class _Maps(HybridBlock):
    """A one-map feature block: ``[W x + b]``, (B, 2, SIDE, SIDE)."""

    def __init__(self, **kwargs):
        super(_Maps, self).__init__(**kwargs)
        with self.name_scope():
            self.conv = nn.Conv2D(2, 1, in_channels=3)

    def hybrid_forward(self, F, x):
        return [self.conv(x)]


class _Head(HybridBlock):
    """Class and box predictions from the map: (B, 1, 2) and (B, 1, 4)."""

    def __init__(self, **kwargs):
        super(_Head, self).__init__(**kwargs)
        with self.name_scope():
            self.cls = nn.Dense(2, in_units=2 * SIDE * SIDE)
            self.box = nn.Dense(4, in_units=2 * SIDE * SIDE)

    def hybrid_forward(self, F, m):
        return self.cls(m).expand_dims(1), self.box(m).expand_dims(1)


def _det_loss(cls_preds, box_preds, cls_targets, box_targets):
    """SSDMultiBoxLoss's call and return: per image 0.5 |cls|^2 / N and 0.5 |box|^2 / N."""
    cls = [0.5 * (c ** 2).sum(axis=(1, 2)) / N for c in cls_preds]
    box = [0.5 * (b ** 2).sum(axis=(1, 2)) / N for b in box_preds]
    return [c + b for c, b in zip(cls, box)], cls, box


def _set(param, value):
    param.set_data(mx.nd.array(value))


def _doc_entry():
    """The ``TERMS`` entry of docs/extending.md's example, evaluated as written."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "extending.md"), encoding="utf-8") as f:
        text = f.read()
    code = textwrap.dedent(re.search(r"```python\n(.*?)```", text, re.S).group(1))
    return code, eval(code.strip().rstrip(","), {"Term": methods.Term, "Flag": methods.Flag, "MyLoss": AdaptedL1,
                             "nonnegative_float": nonnegative_float})


def test_the_documented_entry_names_every_field_and_works(monkeypatch):
    """The doc's example gives every ``Term`` field by name (the reader sees which is which,
    ``reads`` included), and the entry works as the doc says on both detectors."""
    code, (name, term) = _doc_entry()
    assert all(field + "=" in code for field in methods.Term._fields), code
    monkeypatch.setitem(methods.TERMS, name, term)
    for detector in ("ssd", "frcnn"):
        args = methods.add_method_args(argparse.ArgumentParser(), detector).parse_args(
            ["--method", "gan+" + name, "--my-weight", "0.5"])
        assert methods.parse_method(args.method, detector) == {"gan", name}
        assert args.my_weight == 0.5
        assert methods.term_columns({name}) == ["KD_my"]


def test_readme_lists_every_method_and_points_here():
    """README's --method section names every TERMS component, for both scripts, and sends a
    reader who wants to add one to docs/extending.md."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Distillation methods (`--method`)"):]
    section = section[:section.index("\n## ", 1)]
    missing = [c for c in methods.components() if "`%s`" % c not in section]
    assert not missing, missing
    missing = [t.column for t in methods.TERMS.values()
               if t.block is not None and "`%s`" % t.column not in section]
    assert not missing, missing
    assert "train_faster_rcnn_gan_kd.py" in section and "docs/extending.md" in section


def test_the_table_entry_reaches_flags_grammar_and_columns(toy):
    for detector in ("ssd", "frcnn"):
        args = methods.add_method_args(argparse.ArgumentParser(), detector).parse_args(
            ["--method", "gan+toy-l1", "--toy-weight", "0.5"])
        parts = methods.parse_method(args.method, detector)
        assert parts == {"gan", "toy-l1"} and args.toy_weight == 0.5
        assert methods.method_name(parts) == "gankd+toy-l1"
        assert methods.term_columns(parts) == ["KD_toy"]
    assert methods.term_columns(methods.parse_method("chen+toy-l1")) == \
        ["KD_soft", "KD_L2B", "KD_hint", "KD_toy"]


def test_ssd_step_trains_the_toy_term_by_hand(toy):
    """One student step of GANStep over SSDAdapter with ``--method toy-l1``: the logged term is
    ``w sum_b |A s_b + c - t_b| / N`` and the adaptation layer takes the SGD step of its
    gradient ``w / N sum sign(A s + c - t) s^T``."""
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (N, 3, SIDE, SIDE))
    val = {"ws": rng.normal(0, 0.5, (2, 3, 1, 1)), "bs": rng.normal(0, 0.5, (2,)),
           "wt": rng.normal(0, 0.5, (2, 3, 1, 1)), "bt": rng.normal(0, 0.5, (2,)),
           "a": rng.normal(0, 0.5, (2, 2, 1, 1)), "c": rng.normal(0, 0.5, (2,))}
    teacher, student, head = _Maps(), _Maps(), _Head()
    for b in (teacher, student, head):
        b.initialize()
    _set(teacher.conv.weight, val["wt"])
    _set(teacher.conv.bias, val["bt"])
    _set(student.conv.weight, val["ws"])
    _set(student.conv.bias, val["bs"])
    teacher.collect_params().setattr("grad_req", "null")
    args = methods.add_method_args(argparse.ArgumentParser()).parse_args(
        ["--method", "toy-l1", "--toy-weight", str(WEIGHT)])
    objective = methods.KDObjective(methods.parse_method(args.method), args, [2], [mx.cpu()],
                                    "ssd", SSD_OUTPUT_TERMS)
    adapt = objective.map_blocks["toy-l1"][0].adapt
    _set(adapt.weight, val["a"])
    _set(adapt.bias, val["c"])
    params = student.collect_params()
    params.update(head.collect_params())
    params.update(objective.params())
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": LR})
    step = GANStep(SSDAdapter(teacher, student, head, _det_loss), None, trainer, None,
                   objective=objective)
    batch = split_batch([mx.nd.array(x), mx.nd.zeros((N, 1)), mx.nd.zeros((N, 1, 4))],
                        [mx.cpu()])
    out = step(*batch)

    conv = lambda w, b, v: np.einsum("oc,bchw->bohw", w[:, :, 0, 0], v) + \
        b[None, :, None, None]                                         # noqa: E731
    s, t = conv(val["ws"], val["bs"], x), conv(val["wt"], val["bt"], x)
    r = conv(val["a"], val["c"], s) - t
    assert out["KD_toy"][0].asscalar() == pytest.approx(WEIGHT * np.abs(r).sum() / N,
                                                        rel=1e-5)
    grad_a = WEIGHT / N * np.einsum("bohw,bchw->oc", np.sign(r), s)[:, :, None, None]
    grad_c = WEIGHT / N * np.sign(r).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(adapt.weight.data().asnumpy(), val["a"] - LR * grad_a,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(adapt.bias.data().asnumpy(), val["c"] - LR * grad_c,
                               rtol=1e-5, atol=1e-7)
    assert set(out) >= {"KD_toy", "CrossEntropy", "SmoothL1"}


def test_faster_rcnn_objective_weighs_the_toy_term_the_same(toy):
    """The same objective on Faster R-CNN's stride-16 map: the same
    ``w sum_b |A s_b + c - t_b| / N``, with N the global batch (here twice this device's),
    and the adapter among its parameters; the detector's record is not read by a map term."""
    rng = np.random.RandomState(1)
    s, t = rng.normal(size=(1, 2, SIDE, SIDE)), rng.normal(size=(1, 2, SIDE, SIDE))
    a, c = rng.normal(0, 0.5, (2, 2, 1, 1)), rng.normal(0, 0.5, (2,))
    args = methods.add_method_args(argparse.ArgumentParser(), "frcnn").parse_args(
        ["--method", "toy-l1", "--toy-weight", str(WEIGHT)])
    obj = methods.KDObjective(methods.parse_method(args.method, "frcnn"), args, [2],
                              [mx.cpu()], "frcnn", FRCNN_OUTPUT_TERMS)
    assert obj.term_names() == ["KD_toy"] and not obj.needs_teacher_head
    assert obj.hard_weights() == (1.0, 1.0)
    adapt = obj.map_blocks["toy-l1"][0].adapt
    assert adapt.weight.name in obj.params().keys()
    _set(adapt.weight, a)
    _set(adapt.bias, c)
    with autograd.record():
        terms = obj(None, [mx.nd.array(s)], [mx.nd.array(t)], 2.0)
    r = np.einsum("oc,bchw->bohw", a[:, :, 0, 0], s) + c[None, :, None, None] - t
    assert terms["KD_toy"].asscalar() == pytest.approx(WEIGHT * np.abs(r).sum() / 2.0,
                                                       rel=1e-5)
