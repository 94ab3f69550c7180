"""--method parsing and the one place where distillation terms are weighted."""
import argparse

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gankd_gluon.engine import methods
from gankd_gluon.engine.methods import KDObjective, add_method_args, method_name, parse_method
from gankd_gluon.engine.steps import SSD_OUTPUT_TERMS, SSDOutputs
from gankd_gluon.losses import fgfi, kd


def test_parse_method_aliases_and_table4_names():
    assert parse_method("gan") == {"gan"}
    assert parse_method("none") == set()
    assert parse_method("chen") == {"l2-b", "cls-w", "hints-a"}
    assert parse_method("hint") == {"hints-a"}
    assert parse_method("gan+hint") == {"gan", "hints-a"}
    assert parse_method("L2-B+CLS-W") == {"l2-b", "cls-w"}
    assert method_name(parse_method("gan")) == "gankd"
    assert method_name(parse_method("chen")) == "chen"
    assert method_name(parse_method("gan+hint")) == "gankd+hints-a"
    with pytest.raises(ValueError, match="unknown part 'foo'"):
        parse_method("gan+foo")
    with pytest.raises(ValueError, match="cls and cls-w cannot be combined"):
        parse_method("cls+cls-w")
    with pytest.raises(ValueError, match="cls-w and ko"):
        parse_method("chen+ko")


def test_faster_rcnn_grammar_is_the_same_table():
    """One grammar: fgfi only for Faster R-CNN, ko only for SSD, exclusive groups for both."""
    assert parse_method("gan", "frcnn") == {"gan"}
    assert parse_method("chen", "frcnn") == {"l2-b", "cls-w", "hints-a"}
    assert parse_method("fgfi", "frcnn") == {"fgfi"}
    assert parse_method("gan+fgfi", "frcnn") == {"gan", "fgfi"}
    assert parse_method("none", "frcnn") == frozenset()
    assert [method_name(parse_method(m, "frcnn")) for m in
            ("gan", "chen", "fgfi", "gan+fgfi", "none")] == \
        ["gankd", "chen", "fgfi", "gankd+fgfi", "none"]
    with pytest.raises(ValueError, match="not defined for Faster R-CNN"):
        parse_method("ko", "frcnn")
    with pytest.raises(ValueError, match="choose one"):
        parse_method("chen+fgfi", "frcnn")
    with pytest.raises(ValueError, match="fgfi is not defined for SSD"):
        parse_method("fgfi")
    with pytest.raises(ValueError, match="unknown part 'foo'"):
        parse_method("gan+foo", "frcnn")


def test_columns_and_needs_come_from_the_table():
    from gankd_gluon.engine.methods import TERMS, needs, term_columns
    assert term_columns(parse_method("chen")) == ["KD_soft", "KD_L2B", "KD_hint"]
    assert term_columns(parse_method("gan+fgfi", "frcnn")) == ["KD_FGFI"]
    assert term_columns(parse_method("gan")) == []
    assert needs(parse_method("ko"), "teacher_head") and not needs(parse_method("hint"),
                                                                     "teacher_head")
    assert all(t.why_not for t in TERMS.values() if len(t.detectors) < 2)


def test_method_flag_is_checked_for_the_detector():
    parser = add_method_args(argparse.ArgumentParser(), "frcnn")
    assert parser.parse_args(["--method", "gan+fgfi"]).fgfi_lambda == fgfi.FGFI_LAMBDA
    with pytest.raises(SystemExit):
        parser.parse_args(["--method", "ko"])
    with pytest.raises(SystemExit):
        add_method_args(argparse.ArgumentParser()).parse_args(["--method", "fgfi"])


def test_unknown_part_offers_only_the_detectors_methods():
    """The list after an unknown part names what this detector runs: no fgfi for SSD, no ko
    for Faster R-CNN; an empty part says so."""
    with pytest.raises(ValueError) as ssd:
        parse_method("gan+foo", "ssd")
    assert "use gan, chen, ko, hint, none, or" in str(ssd.value)
    with pytest.raises(ValueError) as frcnn:
        parse_method("gan+foo", "frcnn")
    assert "use gan, chen, fgfi, hint, none, or" in str(frcnn.value)
    with pytest.raises(ValueError, match="empty part"):
        parse_method("gan++hint")


def test_a_bad_method_names_the_flag_once(capsys):
    """argparse's error line names --method; the reason follows, not the flag again."""
    with pytest.raises(SystemExit):
        add_method_args(argparse.ArgumentParser(prog="x")).parse_args(["--method", "gan+foo"])
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("x: error: argument --method: unknown part 'foo'; use gan, chen")
    assert line.count("--method") == 1


def test_fgfi_flags_default_to_the_papers_values_in_help():
    """--help shows Wang et al.'s values as the defaults, not None, each default once."""
    parser = add_method_args(argparse.ArgumentParser(
        formatter_class=argparse.ArgumentDefaultsHelpFormatter), "frcnn")
    args = parser.parse_args([])
    assert (args.fgfi_lambda, args.fgfi_psi) == (fgfi.FGFI_LAMBDA, fgfi.FGFI_PSI)
    assert "(default: None)" not in parser.format_help()
    assert "(default)" not in parser.format_help()      # said once, by the formatter


@pytest.mark.parametrize("field", ["reads", "weight", "hard"])
def test_a_term_reading_a_flag_nobody_sets_stops_the_parser(monkeypatch, field):
    """A new TERMS entry whose reads / weight / hard names no flag's dest (a typo) is refused when
    the scripts build their parser, not at the first training step."""
    good = methods.Term("KD_at", None, ("at_weight",), ("teacher_maps",), ("ssd",), None,
                        None, weight="at_weight",
                        flags=(methods.Flag("--at-weight", "at_weight", float, 1.0, "w"),))
    monkeypatch.setitem(methods.TERMS, "at", good)
    assert add_method_args(argparse.ArgumentParser()).parse_args([]).at_weight == 1.0
    add_method_args(argparse.ArgumentParser(), "frcnn")       # not defined there: not checked
    typo = {"reads": ("at_wieght",), "weight": "at_wieght", "hard": ("cls", "at_wieght")}
    bad = good._replace(**{field: typo[field]})
    monkeypatch.setitem(methods.TERMS, "at", bad)
    with pytest.raises(ValueError, match="TERMS\\['at'\\] reads at_wieght"):
        add_method_args(argparse.ArgumentParser())


def _args(**kw):
    args = add_method_args(argparse.ArgumentParser()).parse_args([])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_defaults_are_the_papers():
    a = _args()
    assert (a.kd_lambda, a.kd_gamma, a.kd_nu, a.kd_bg_weight, a.kd_temperature) == \
        (1.0, 0.5, 0.5, 1.5, 1.0)                     # Chen et al. 2017
    assert a.ko_alpha == kd.KO_YOO_ALPHA and a.method == "gan"


def _tiny():
    """One image, 6 anchors, 2 classes + background; anchor 0 is positive, so hard-negative
    mining (3 negatives per positive) keeps 3 of the 5 negatives."""
    rng = np.random.RandomState(0)
    cls_p = mx.nd.array(rng.randn(1, 6, 3))
    t_cls = mx.nd.array(rng.randn(1, 6, 3))
    box_p = mx.nd.array(rng.randn(1, 6, 4))
    t_box = mx.nd.array(rng.randn(1, 6, 4))
    box_t = mx.nd.array(rng.randn(1, 6, 4))
    cls_t = mx.nd.array([[1, 0, 0, 0, 0, 0]])
    s_map = [mx.nd.array(rng.randn(1, 2, 2, 2))]
    t_map = [mx.nd.array(rng.randn(1, 2, 2, 2))]
    return cls_p, t_cls, box_p, t_box, cls_t, box_t, s_map, t_map


def _ssd_objective(method, args):
    return KDObjective(parse_method(method), args, [2], [mx.cpu()], "ssd", SSD_OUTPUT_TERMS)


def _ssd_total(obj, terms, ce, sl1):
    """The SSD adapter's total: the hard losses with the objective's weights, plus the terms."""
    w_cls, w_box = obj.hard_weights()
    return obj.total(w_cls * ce.sum() + w_box * sl1.sum(), terms)


def test_chen_objective_weights_each_term_as_the_paper():
    """total = mu CE + (1-mu) soft + lambda (SmoothL1 + nu L_b) + gamma hint (Chen Eq. 1-4),
    with soft on the hard loss's anchors and L_b on positives, both over num_pos."""
    cls_p, t_cls, box_p, t_box, cls_t, box_t, s_map, t_map = _tiny()
    args = _args(kd_mu=0.3, kd_lambda=2.0, kd_nu=0.5, kd_gamma=0.25, kd_margin=0.0)
    obj = _ssd_objective("chen", args)
    ce, sl1 = mx.nd.array([0.7]), mx.nd.array([0.2])
    assert obj.hard_weights() == (0.3, 2.0)
    with autograd.record():       # num_pos 2: the positives of the whole batch (2 images)
        terms = obj(SSDOutputs(cls_p, box_p, t_cls, t_box, cls_t, box_t, 2.0), s_map, t_map,
                    1.0)
        total = _ssd_total(obj, terms, ce, sl1)
    mask = kd.ssd_mining_mask(cls_p, cls_t).asnumpy()     # positive + 3 hardest negatives
    assert mask.sum() == 4 and mask[0, 0] == 1
    soft = (kd.SoftTargetCrossEntropy(1.5)(cls_p, t_cls).asnumpy() * mask).sum() / 2.0
    assert soft != pytest.approx(
        kd.SoftTargetCrossEntropy(1.5)(cls_p, t_cls).asnumpy().sum() / 2.0)  # mask matters
    lb = kd.TeacherBoundedL2(0.0)(box_p, t_box, box_t).asnumpy()[0, 0] / 2.0
    hint = obj.map_blocks["hints-a"][0](s_map[0], t_map[0]).asnumpy().sum()
    expected = 0.3 * 0.7 + 0.7 * soft + 2.0 * 0.2 + 2.0 * 0.5 * lb + 0.25 * hint
    assert total.asscalar() == pytest.approx(expected, rel=1e-5)
    assert terms["KD_soft"].asscalar() == pytest.approx(0.7 * soft, rel=1e-5)
    assert terms["KD_L2B"].asscalar() == pytest.approx(2.0 * 0.5 * lb, rel=1e-5)
    assert terms["KD_hint"].asscalar() == pytest.approx(0.25 * hint, rel=1e-5)
    assert list(terms) == ["KD_soft", "KD_L2B", "KD_hint"] == obj.term_names()


def test_ko_objective_is_alpha_ce_plus_beta_kl():
    cls_p, t_cls, box_p, t_box, cls_t, box_t, s_map, t_map = _tiny()
    obj = _ssd_objective("ko", _args(ko_alpha=0.25, ko_temperature=2.0))
    ce, sl1 = mx.nd.array([0.7]), mx.nd.array([0.2])
    terms = obj(SSDOutputs(cls_p, box_p, t_cls, t_box, cls_t, box_t, 2.0), s_map, t_map, 1.0)
    total = _ssd_total(obj, terms, ce, sl1)
    mask = kd.ssd_mining_mask(cls_p, cls_t).asnumpy()
    kl = (kd.KLDistillation(2.0)(cls_p, t_cls).asnumpy() * mask).sum() / 2.0
    # box loss unweighted: Ko & Yoo distil classification only
    assert obj.hard_weights() == (0.25, 1.0)
    assert total.asscalar() == pytest.approx(0.25 * 0.7 + 0.75 * kl + 0.2, rel=1e-5)
    assert obj.params() is None                            # no trainable KD parameters


def test_plain_l2_objective_weighs_regression_by_lambda_and_nu():
    """``l2`` alone: the hard regression loss gets lambda (Chen Eq. 1), the L2 to the
    teacher's offsets lambda nu on the positive anchors over num_pos; classification keeps 1."""
    cls_p, t_cls, box_p, t_box, cls_t, box_t, s_map, t_map = _tiny()
    obj = _ssd_objective("l2", _args(kd_lambda=3.0, kd_nu=0.5))
    ce, sl1 = mx.nd.array([0.7]), mx.nd.array([0.2])
    terms = obj(SSDOutputs(cls_p, box_p, t_cls, t_box, cls_t, box_t, 2.0), s_map, t_map, 1.0)
    l2 = ((box_p.asnumpy() - t_box.asnumpy()) ** 2).sum(axis=-1)[0, 0]   # the one positive
    assert l2 == pytest.approx(kd.TeacherL2()(box_p, t_box).asnumpy()[0, 0], rel=1e-6)
    assert obj.hard_weights() == (1.0, 3.0)
    assert terms["KD_L2"].asscalar() == pytest.approx(3.0 * 0.5 * l2 / 2.0, rel=1e-5)
    assert _ssd_total(obj, terms, ce, sl1).asscalar() == pytest.approx(
        0.7 + 3.0 * 0.2 + 3.0 * 0.5 * l2 / 2.0, rel=1e-5)


def test_method_settings_are_the_reads_of_the_methods_terms():
    from gankd_gluon.engine.methods import method_settings
    assert method_settings("chen") == ["hint_mode", "kd_bg_weight", "kd_gamma", "kd_lambda",
                                       "kd_margin", "kd_mu", "kd_nu", "kd_temperature"]
    assert method_settings("GAN+Hint") == ["hint_mode", "kd_gamma"]
    assert method_settings("ko") == ["ko_alpha", "ko_temperature"]
    assert method_settings("gan") == method_settings("none") == method_settings(None) == []


def test_every_output_level_term_has_a_function_in_its_detectors_table():
    """The table as it stands: each detector's output-term table has a function for every
    output-level term (weight None) that TERMS defines for it, and only those are
    output-level."""
    from gankd_gluon.engine.frcnn_steps import FRCNN_OUTPUT_TERMS
    assert methods.output_terms("ssd") == ["cls", "cls-w", "ko", "l2-b", "l2"]
    assert methods.output_terms("frcnn") == ["cls", "cls-w", "l2-b", "l2", "fgfi"]
    methods.check_output_terms("ssd", SSD_OUTPUT_TERMS)
    methods.check_output_terms("frcnn", FRCNN_OUTPUT_TERMS)


def test_an_output_term_missing_from_the_detectors_table_stops_the_run_at_start(monkeypatch, tmp_path):
    """A TERMS entry with weight=None listed for SSD, which the SSD adapter's table lacks:
    run_gankd refuses before reading data or writing anything, and the objective refuses to
    be built, naming the term, the detector and the table; Faster R-CNN, for which the entry
    is not listed, is not concerned."""
    from gankd_gluon.engine import runs
    from gankd_gluon.engine.ssd_runs import SSDPart
    toy = methods.Term("KD_toy", lambda args, channels: kd.KLDistillation(), (),
                       ("teacher_head",), ("ssd",), None, None)
    monkeypatch.setitem(methods.TERMS, "toy-out", toy)
    message = ("toy-out for SSD, but SSD_OUTPUT_TERMS \\(gankd_gluon/engine/steps.py\\) has no "
               "function")
    with pytest.raises(methods.UnweightedTermError, match=message):
        methods.check_output_terms("ssd", SSD_OUTPUT_TERMS)
    with pytest.raises(methods.UnweightedTermError, match=message):
        _ssd_objective("chen", _args())
    methods.check_output_terms("frcnn", methods.output_terms("frcnn"))
    args = argparse.Namespace(method="gan", save_dir=str(tmp_path / "runs"),
                              log_dir=str(tmp_path / "logs"))
    with pytest.raises(methods.UnweightedTermError, match="toy-out"):
        runs.run_gankd(args, SSDPart())
    assert not (tmp_path / "runs").exists() and not (tmp_path / "logs").exists()


def test_a_map_term_without_teacher_maps_or_a_bad_hard_loss_stops_the_parser(monkeypatch):
    """Two mistakes a new TERMS entry can make that would otherwise surface mid-training: a
    map term (weight set) whose needs lack 'teacher_maps' (it would get one block, not one
    per map), and a ``hard`` entry naming a detection loss that does not exist."""
    flag = (methods.Flag("--at-weight", "at_weight", float, 1.0, "w"),)
    no_maps = methods.Term("KD_at", lambda a, c: kd.TeacherL2(), ("at_weight",),
                           ("teacher_head",), ("ssd",), None, None, weight="at_weight",
                           flags=flag)
    monkeypatch.setitem(methods.TERMS, "at", no_maps)
    with pytest.raises(ValueError, match="TERMS\\['at'\\] is a map term .* lack 'teacher_maps'"):
        add_method_args(argparse.ArgumentParser())
    bad_hard = no_maps._replace(needs=("teacher_maps",), hard=("bbox", "at_weight"))
    monkeypatch.setitem(methods.TERMS, "at", bad_hard)
    with pytest.raises(ValueError, match="hard=\\('bbox', 'at_weight'\\) reweighs 'bbox'"):
        add_method_args(argparse.ArgumentParser())
    monkeypatch.setitem(methods.TERMS, "at", bad_hard._replace(hard=("box", "at_weight")))
    assert add_method_args(argparse.ArgumentParser()).parse_args([]).at_weight == 1.0


def test_an_output_level_block_with_parameters_learns_with_the_student(monkeypatch):
    """An output-level term whose block has weights (a learned projection of the logits):
    the objective initialises it, lists it in params() (the student's trainer) and holds it
    in blocks (the checkpoint); parameter-free blocks stay out of both."""
    from mxnet import gluon

    class Projected(gluon.HybridBlock):
        def __init__(self, **kw):
            super(Projected, self).__init__(**kw)
            with self.name_scope():
                self.proj = gluon.nn.Dense(3, flatten=False, in_units=3)

        def hybrid_forward(self, F, s, t):
            return F.sum(F.abs(self.proj(s) - t), axis=-1)

    term = methods.Term("KD_proj", lambda a, c: Projected(), (), ("teacher_head",), ("ssd",),
                        None, None)
    monkeypatch.setitem(methods.TERMS, "proj", term)
    table = dict(SSD_OUTPUT_TERMS, proj=lambda b, a, o, s, t: b(o.cls_pred, o.t_cls).sum())
    obj = KDObjective(parse_method("proj+cls"), _args(), [2], [mx.cpu()], "ssd", table)
    names = list(obj.params().keys())
    assert len(names) == 2 and all("dense" in n for n in names)
    assert len(obj.blocks) == 1                   # the soft-label block has no weights
    cls_p, t_cls, box_p, t_box, cls_t, box_t, s_map, t_map = _tiny()
    terms = obj(SSDOutputs(cls_p, box_p, t_cls, t_box, cls_t, box_t, 1.0), s_map, t_map, 1.0)
    assert list(terms) == ["KD_soft", "KD_proj"] and np.isfinite(terms["KD_proj"].asscalar())


def test_the_ssd_adapter_sums_weighted_hard_losses_and_each_devices_terms():
    """SSDAdapter.student_loss on two devices (1 + 2 images) with ``cls+l2`` (mu 0.3, lambda
    2): each device's total is ``mu CrossEntropy + lambda SmoothL1`` (SSDMultiBoxLoss's
    terms, already over the batch's positives) plus that device's terms, and each term sees
    the positives of the whole batch. Stand-in terms return ``10 num_pos`` and ``100``."""
    from gluoncv.loss import SSDMultiBoxLoss
    from mxnet import gluon
    from gankd_gluon.engine.steps import SSDAdapter

    class Maps(gluon.HybridBlock):                 # one map (B, 2, 2, 2)
        def __init__(self, **kw):
            super(Maps, self).__init__(**kw)
            with self.name_scope():
                self.conv = gluon.nn.Conv2D(2, 1, in_channels=3)

        def hybrid_forward(self, F, x):
            return [self.conv(x)]

    class Head(gluon.HybridBlock):                 # 3 anchors, 2 classes + background
        def __init__(self, **kw):
            super(Head, self).__init__(**kw)
            with self.name_scope():
                self.cls = gluon.nn.Dense(9, in_units=8)
                self.box = gluon.nn.Dense(12, in_units=8)

        def hybrid_forward(self, F, m):
            return self.cls(m).reshape((0, 3, 3)), self.box(m).reshape((0, 3, 4))

    ctx = [mx.cpu(0), mx.cpu(1)]
    feats, head = Maps(), Head()
    for b in (feats, head):
        b.initialize(ctx=ctx)
    table = dict(SSD_OUTPUT_TERMS,
                 cls=lambda b, a, o, s, t: 10.0 * o.num_pos * mx.nd.ones((1,), ctx=s[0].context),
                 l2=lambda b, a, o, s, t: 100.0 * mx.nd.ones((1,), ctx=s[0].context))
    obj = KDObjective(parse_method("l2+cls"), _args(kd_mu=0.3, kd_lambda=2.0), [2], ctx, "ssd",
                      table)
    det = SSDAdapter(None, feats, head, SSDMultiBoxLoss())
    rng = np.random.RandomState(5)
    x = mx.nd.array(rng.uniform(-1, 1, (3, 3, 2, 2)))
    cls_t = mx.nd.array([[1, 0, 0], [2, 0, 0], [1, 2, 0]])     # 4 positives in all
    box_t = mx.nd.array(rng.uniform(-1, 1, (3, 3, 4)))
    batch = [[b[:1].as_in_context(ctx[0]), b[1:].as_in_context(ctx[1])] for b in (x, cls_t, box_t)]
    t_maps, s_maps, state = det.forward(*batch)
    with autograd.record():
        total, losses, _ = det.student_loss(t_maps, s_maps, state, obj, 3.0, *batch)
    for d in range(2):
        hard = 0.3 * losses["CrossEntropy"][d].sum().asscalar() + \
            2.0 * losses["SmoothL1"][d].sum().asscalar()
        assert losses["KD_soft"][d].asscalar() == pytest.approx(40.0)
        assert total[d].asscalar() == pytest.approx(hard + 40.0 + 100.0, rel=1e-5)
