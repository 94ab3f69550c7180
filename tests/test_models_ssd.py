"""Teacher split, student mirroring, zoo checkpoint compatibility and export."""
import mxnet as mx
import numpy as np
import pytest
from gluoncv.data import VOCDetection
from gluoncv.model_zoo import get_model
from mxnet import autograd, gluon

from gankd_gluon.models import ssd as ssd_module
from gankd_gluon.models.critics import DNet
from gankd_gluon.models.ssd import (backbone_params, build_ssd, build_student, build_teacher,
                                    count_params, deployable, export_detector, feature_channels,
                                    fold_adapters, fold_border_offset, initialize_new_params,
                                    split_ssd, teacher_layout)

VOC = VOCDetection.CLASSES


def _materialise(net, size):
    initialize_new_params(net, mx.cpu())
    with autograd.train_mode():
        net(mx.nd.zeros((1, 3, size, size)))
    return net


def test_layout_equals_gluoncv_presets_at_512():
    lay = teacher_layout("resnet50_v1", 512, "voc")
    assert lay.steps == [16, 32, 64, 128, 256, 512]
    assert lay.sizes == [51.2, 102.4, 189.4, 276.4, 363.52, 450.6, 492]
    coco = teacher_layout("resnet50_v1", 512, "coco")
    assert coco.sizes[1] == 133.12          # ssd_512_resnet50_v1_coco differs from _voc
    vgg = teacher_layout("vgg16_atrous", 512, "voc")
    assert vgg.num_maps == 7 and vgg.steps == [8, 16, 32, 64, 128, 256, 512]
    small = teacher_layout("mobilenet1.0", 128, "voc")
    assert small.steps == [16, 32, 64, 128, 128, 128]      # no anchor centre outside the image
    assert small.sizes[0] == pytest.approx(12.8)
    with pytest.raises(ValueError, match="data-shape"):
        teacher_layout("vgg16_atrous", 256)


@pytest.mark.parametrize("teacher, shape, dataset", [("resnet50_v1", 512, "voc"),
                                                     ("resnet50_v1", 512, "coco"),
                                                     ("vgg16_atrous", 512, "voc"),
                                                     ("vgg16_atrous", 320, "voc"),
                                                     ("mobilenet1.0", 320, "voc"),
                                                     ("mobilenet1.0", 128, "voc")])
def test_anchor_constants_are_gluoncvs_own_computation(teacher, shape, dataset):
    """Every anchor constant of a built SSD, first build and repeat (memoized), equals GluonCV's
    SSDAnchorGenerator._generate_anchors computed afresh for that map's sizes, ratios and step
    (at 320 the steps are not whole: 320 / 3 px)."""
    from gluoncv.model_zoo.ssd.anchor import SSDAnchorGenerator
    lay = teacher_layout(teacher, shape, dataset)
    base = "vgg16_atrous" if teacher == "vgg16_atrous" else "mobilenet0.25"
    hits = []
    for _ in range(2):
        before = ssd_module.ANCHOR_CACHE_STATS["hits"]
        net = build_ssd(base, lay, VOC[:2])
        hits.append(ssd_module.ANCHOR_CACHE_STATS["hits"] - before)
        assert SSDAnchorGenerator._generate_anchors is ssd_module._memoized_generate_anchors
        gens = list(net.anchor_generators)
        assert len(gens) == lay.num_maps
        alloc = 128                     # GluonCV's SSD: 128x128, halved per map, at least 16
        for gen, step in zip(gens, lay.steps):
            gen.anchors.initialize(ctx=mx.cpu())
            fresh = ssd_module._GLUONCV_GENERATE_ANCHORS(gen, gen._sizes, gen._ratios, step,
                                                         (alloc, alloc), (0.5, 0.5))
            alloc = max(alloc // 2, 16)
            got = gen.anchors.data().asnumpy()
            assert got.shape == fresh.shape
            assert np.array_equal(got, fresh.astype(np.float32))
    assert hits[1] == lay.num_maps          # the repeat computed nothing
    if shape == 320:
        assert any(step != int(step) for step in lay.steps)


def test_memoized_anchors_key_on_every_argument_and_hand_out_copies(monkeypatch):
    ssd_module.gluoncv_ssd_class()
    orig, memo = ssd_module._GLUONCV_GENERATE_ANCHORS, ssd_module._memoized_generate_anchors
    calls = []
    monkeypatch.setattr(ssd_module, "_GLUONCV_GENERATE_ANCHORS",
                        lambda *a: calls.append(a[1:]) or orig(*a))
    monkeypatch.setattr(ssd_module, "_ANCHORS", type(ssd_module._ANCHORS)())
    args = ((12.8, 25.6), [1, 2, 0.5], 16, (4, 4), (0.5, 0.5))
    first = memo(None, *args)
    fresh = orig(None, *args)
    assert first.dtype == fresh.dtype == np.float64 and np.array_equal(first, fresh)
    # by hand: cell (0, 0) at step 16 is centred at (8, 8); its anchors are the squares of the
    # two sizes, then size 12.8 at ratio 2 (w = 12.8 * sqrt 2, h = 12.8 / sqrt 2) and 1/2
    assert first[0, 0, 0, 0, :8].tolist() == [8, 8, 12.8, 12.8, 8, 8, 25.6, 25.6]
    assert first[0, 0, 0, 0, 10:12].tolist() == pytest.approx([12.8 * 2 ** 0.5, 12.8 / 2 ** 0.5])
    assert first[0, 0, 1, 2, :2].tolist() == [40, 24]     # cell (row 1, col 2): cx 40, cy 24
    first[...] = -1                                       # a caller's change stays its own
    again = memo(None, *args)
    assert np.array_equal(again, fresh) and again is not first
    again[...] = -2
    assert np.array_equal(memo(None, *args), fresh)
    assert len(calls) == 1                                # the repeats were not computed
    # every argument is in the key: a step of 64 / 3 px (not whole), other sizes, ratios,
    # grid, offsets each give GluonCV's array for them
    for i, changed in enumerate([(12.8, 30.0), [1, 2], 64 / 3, (4, 5), (0.0, 0.5)]):
        other = list(args)
        other[i] = changed
        got = memo(None, *other)
        assert np.array_equal(got, orig(None, *other))
        assert got.shape != fresh.shape or not np.array_equal(got, fresh)
    assert len(calls) == 6
    near = memo(None, args[0], args[1], 21, args[3], args[4])    # beside the 64 / 3 px step
    assert np.array_equal(near, orig(None, args[0], args[1], 21, args[3], args[4]))
    assert len(calls) == 7
    # the types too: GluonCV's method takes float32 ratios' square roots in float32, so the
    # same values as Python floats give other anchors (by up to 6e-7 px here)
    f32 = [np.float32(1), np.float32(2), np.float32(0.5)]
    as_f32 = memo(None, (12.8, 25.6), f32, 16, (4, 4), (0.5, 0.5))
    assert np.array_equal(as_f32, orig(None, (12.8, 25.6), f32, 16, (4, 4), (0.5, 0.5)))
    assert not np.array_equal(as_f32, fresh)
    assert len(calls) == 8


def test_zoo_params_load_into_teacher_unchanged(tmp_path):
    """A GluonCV ssd_512_resnet50_v1_voc .params file loads as the teacher, and the split
    (features, head) reproduces the whole net's training outputs bit for bit."""
    zoo = _materialise(get_model("ssd_512_resnet50_v1_voc", pretrained=False,
                                 pretrained_base=False), 512)
    path = str(tmp_path / "ssd_512_resnet50_v1_voc.params")
    zoo.save_parameters(path)
    teacher = build_teacher("resnet50_v1", VOC, teacher_layout("resnet50_v1", 512), params=path)
    assert all(p.grad_req == "null" for p in teacher.collect_params().values())
    x = mx.nd.random.uniform(shape=(1, 3, 512, 512))
    features, head = split_ssd(teacher)
    with autograd.train_mode():
        ref = zoo(x)
        out = head(*features(x))
    for a, b in zip(ref, out):
        assert np.array_equal(a.asnumpy(), b.asnumpy())
    assert feature_channels(features, 512, 6) == [1024, 2048, 512, 512, 256, 256]


def test_teacher_params_errors_name_the_file(tmp_path):
    lay = teacher_layout("mobilenet1.0", 128)
    with pytest.raises(FileNotFoundError, match="nope.params"):
        build_teacher("mobilenet1.0", VOC, lay, params=str(tmp_path / "nope.params"))
    other = _materialise(build_ssd("mobilenet1.0", lay, ("a", "b")), 128)
    path = str(tmp_path / "two_classes.params")
    other.save_parameters(path)
    with pytest.raises(ValueError, match="two_classes.params"):
        build_teacher("mobilenet1.0", VOC, lay, params=path)


def test_no_internet_teacher_error_names_flags(monkeypatch):
    import gluoncv.model_zoo.model_store as store

    def offline(*a, **k):
        raise OSError("no network")
    monkeypatch.setattr(store, "get_model_file", offline)
    with pytest.raises(FileNotFoundError) as err:
        build_teacher("resnet50_v1", VOC, teacher_layout("resnet50_v1", 512))
    assert "ssd_512_resnet50_v1_voc" in str(err.value) and "--teacher-params" in str(err.value)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    lay = teacher_layout("mobilenet1.0", 128)
    t = _materialise(build_ssd("mobilenet1.0", lay, ("a", "b", "c")), 128)
    path = str(tmp_path_factory.mktemp("teacher") / "t.params")
    t.save_parameters(path)
    teacher = build_teacher("mobilenet1.0", ("a", "b", "c"), lay, params=path)
    return teacher, lay


@pytest.mark.parametrize("student,channels", [
    ("mobilenet0.25", [128, 256, 512, 512, 256, 256]),
    ("resnet18_v1", [256, 512, 512, 512, 256, 256]),
])
def test_student_mirrors_teacher_layout_with_adapters(tiny_pair, student, channels):
    teacher, lay = tiny_pair
    t_ch = feature_channels(teacher.features, 128, 6)
    assert t_ch == [512, 1024, 512, 512, 256, 256]
    net = build_student(student, teacher, t_ch, lay, ("a", "b", "c"), head="teacher",
                        pretrained_base=False)
    assert net.features.student_channels == channels
    # adapters only where channels differ (maps 0 and 1 here)
    assert len(net.features.adapters) == sum(a != b for a, b in zip(channels, t_ch))
    # the balancing's "backbone": the ImageNet network, neither the adapters nor extra layers
    base = {p.name for p in backbone_params(net.features)}
    adapters = set(net.features.adapters.collect_params().keys())
    assert adapters and base and not base & adapters
    assert not any("_expand_" in n for n in base)
    assert base | adapters | {n for n in net.features.collect_params() if "_expand_" in n} \
        >= {n for n, p in net.features.collect_params().items() if p.grad_req != "null"}
    x = mx.nd.random.uniform(shape=(2, 3, 128, 128))
    with autograd.train_mode():
        s_maps = net.features(x)
        t_maps = teacher.features(x)
        s_out, t_out = net(x), teacher(x)
    assert [m.shape for m in s_maps] == [m.shape for m in t_maps]
    assert np.array_equal(s_out[2].asnumpy(), t_out[2].asnumpy())       # same anchors
    # head='teacher': the student's head starts as a copy of the teacher's trained head
    for name in ("class_predictors", "box_predictors"):
        sp = sorted(getattr(net, name).collect_params().items())
        tp = sorted(getattr(teacher, name).collect_params().items())
        for (_, a), (_, b) in zip(sp, tp):
            assert np.array_equal(a.data().asnumpy(), b.data().asnumpy())


def test_vgg_teacher_gives_seven_maps_and_seven_critics():
    lay = teacher_layout("vgg16_atrous", 320)
    vgg = _materialise(build_ssd("vgg16_atrous", lay, ("a",)), 320)
    t_ch = feature_channels(vgg.features, 320, 7)
    student = build_student("mobilenet0.25", vgg, t_ch, lay, ("a",), pretrained_base=False)
    x = mx.nd.zeros((1, 3, 320, 320))
    with autograd.predict_mode():
        maps = student.features(x)
    assert len(maps) == 7 and maps[0].shape[2] == 40          # stride 8
    dnet = DNet([m.shape[2] for m in maps])
    dnet.initialize()
    assert dnet(*maps).shape == (1, 7)


def test_exported_student_runs_without_project_code(tiny_pair, tmp_path):
    teacher, lay = tiny_pair
    t_ch = feature_channels(teacher.features, 128, 6)
    net = build_student("mobilenet0.25", teacher, t_ch, lay, ("a", "b", "c"),
                        pretrained_base=False)
    sym, params = export_detector(net, str(tmp_path / "student"), 128)
    imported = gluon.SymbolBlock.imports(sym, ["data"], params)
    x = mx.nd.random.uniform(shape=(2, 3, 128, 128))
    # export re-arms the trace: training outputs (3 classes + background) come back at once
    with autograd.train_mode():
        assert net(x)[0].shape[-1] == 4
    net.hybridize()
    ref = net(x)
    out = imported(x)
    assert len(out) == 3 and out[2].shape == (2, 100, 4)
    for a, b in zip(ref, out):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-5)


def _student(tiny_pair, head="teacher", adapter_bias=None):
    teacher, lay = tiny_pair
    t_ch = feature_channels(teacher.features, 128, 6)
    net = build_student("mobilenet0.25", teacher, t_ch, lay, ("a", "b", "c"), head=head,
                        pretrained_base=False)
    if adapter_bias is not None:
        rng = np.random.RandomState(adapter_bias)
        for a in net.features.adapters:
            a.bias.set_data(mx.nd.array(rng.normal(size=a.bias.shape)))
    return net


def test_fold_is_exact_inside_each_map_and_differs_at_the_border_by_the_adapter_bias(tiny_pair):
    """Adapters with (large) biases: inside a map the folded predictors give the unfolded
    outputs; at the border they differ by exactly fold_border_offset, computed by hand from
    the predictor weights and adapter bias (a fold that drops the bias term, or transposes the
    adapter, fails inside; one that forgets the border fails at the border)."""
    net = _student(tiny_pair, adapter_bias=0)
    folded = fold_adapters(net)
    x = mx.nd.random.uniform(shape=(2, 3, 128, 128))
    with autograd.predict_mode():
        maps, fmaps = net.features(x), folded.features(x)
    assert [m.shape[1] for m in fmaps] == net.features.student_channels
    for i in (0, 1):                                   # maps 0 and 1 have adapters (8x8, 4x4)
        h, w = maps[i].shape[2:]
        offsets = fold_border_offset(net, i, h, w)
        for name, offset in zip(("class_predictors", "box_predictors"), offsets):
            ref = getattr(net, name)[i](maps[i]).asnumpy()
            out = getattr(folded, name)[i](fmaps[i]).asnumpy()
            np.testing.assert_allclose(out[:, :, 1:-1, 1:-1], ref[:, :, 1:-1, 1:-1], atol=2e-5)
            diff = out - ref
            assert np.abs(diff).max() > 0.1                # the border does differ
            np.testing.assert_allclose(diff, np.broadcast_to(offset.asnumpy(), diff.shape),
                                       atol=2e-5)
            assert np.abs(offset.asnumpy()[:, 1:-1, 1:-1]).max() < 1e-5
    for i in (2, 3, 4, 5):                             # no adapter: predictors copied
        np.testing.assert_array_equal(net.class_predictors[i].predictor.weight.data().asnumpy(),
                                      folded.class_predictors[i].predictor.weight.data().asnumpy())


@pytest.mark.parametrize("head", ["teacher", "student"])
def test_folded_student_detects_as_the_unfolded_one(tiny_pair, head):
    """Adapters trained from their zero-initialised bias: the folded student's decoded,
    NMS'd detections equal the unfolded student's."""
    net = _student(tiny_pair, head=head)
    folded = fold_adapters(net)
    x = mx.nd.random.uniform(shape=(2, 3, 128, 128))
    with autograd.predict_mode():
        ref, out = net(x), folded(x)
    for a, b in zip(ref, out):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4, atol=1e-4)
    assert (ref[0].asnumpy() >= 0).sum() > 0                  # there are detections to compare


@pytest.mark.parametrize("head", ["teacher", "student"])
def test_folded_student_has_the_parameters_of_a_plain_student(tiny_pair, head):
    """The exported distilled student is the size of a student trained without a teacher:
    same parameter names (after the network prefix) and shapes; the unfolded one is larger."""
    _, lay = tiny_pair
    net = _student(tiny_pair, head=head)
    folded = deployable(net)
    plain = _materialise(build_ssd("mobilenet0.25", lay, ("a", "b", "c")), 128)

    def shapes(n):
        return {k[len(n.prefix):]: p.shape for k, p in n.collect_params().items()}
    assert shapes(folded) == shapes(plain)
    assert count_params(folded) == count_params(plain)
    assert count_params(net) > count_params(plain) + 100000      # adapters + wide head
    assert deployable(plain) is plain                             # not a student: unchanged


def test_an_export_is_a_teacher_too(tiny_pair, tmp_path):
    """--teacher-params takes an export (its -0000.params or its prefix) of this project:
    the same arrays under export names; its -meta.json must agree with the run."""
    from gankd_gluon.models.export_meta import build_meta, write_meta
    teacher, lay = tiny_pair
    prefix = str(tmp_path / "teacher-final-net")
    export_detector(teacher, prefix, 128)
    x = mx.nd.random.uniform(shape=(1, 3, 128, 128))
    with autograd.train_mode():
        ref = teacher(x)[0].asnumpy()
    for given in (prefix + "-0000.params", prefix):
        loaded = build_teacher("mobilenet1.0", ("a", "b", "c"), lay, params=given)
        with autograd.train_mode():
            np.testing.assert_array_equal(loaded(x)[0].asnumpy(), ref)
    write_meta(prefix, build_meta("ssd", ("a", "b", "c"), {"data_shape": 256}, commit="x"))
    with pytest.raises(FileNotFoundError, match=r"-meta.json describes an ssd export at 256 px"):
        build_teacher("mobilenet1.0", ("a", "b", "c"), lay, params=prefix)
    write_meta(prefix, build_meta("ssd", ("a", "b", "c"), {"data_shape": 128}, commit="x"))
    with pytest.raises(ValueError, match="does not fit a mobilenet0.25 SSD"):
        build_teacher("mobilenet0.25", ("a", "b", "c"), lay, params=prefix)
