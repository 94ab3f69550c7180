"""Faster R-CNN networks: preset overrides, RoI mode, teacher loading and freezing, the feature
tap, and the teacher-side heads checked against GluonCV's own training forward."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gankd_gluon.models.faster_rcnn import (ZOO_SETTINGS, FeatureTap, MapAdapter,
                                            build_faster_rcnn, build_teacher, feature_channels,
                                            initialize_params, rcnn_on_rois, rpn_raw_outputs,
                                            set_hybrid)
from gankd_gluon.models.ssd import WeightsNotFoundError

from frcnn_fixtures import SMALL

CLASSES = ("circle", "square", "triangle")
GT_BOX = mx.nd.array([[[8, 8, 60, 50], [40, 30, 90, 90]]])
GT_LABEL = mx.nd.array([[[0], [2]]])


@pytest.fixture(scope="module")
def net():
    net = build_faster_rcnn("resnet50_v1b", CLASSES, "pool", **SMALL)
    initialize_params(net, mx.cpu())
    return net


def _train_forward(net, x):
    mx.random.seed(0)
    np.random.seed(0)
    with autograd.train_mode():
        return net(x, GT_BOX, GT_LABEL)


def test_overrides_reach_the_network(net):
    assert list(net.classes) == list(CLASSES) and net.num_class == 3
    assert net._roi_mode == "pool" and net._roi_size == (7, 7)
    assert net._num_sample == 8 and net.rpn._train_post_nms == 64
    assert net._rpn_test_post_nms == 8
    # everything not overridden is the preset's (faster_rcnn_resnet50_v1b_voc)
    assert net.nms_thresh == 0.3 and net.rpn.anchor_generator.num_depth == 15
    out = _train_forward(net, mx.nd.random.uniform(shape=(1, 3, 96, 96)))
    assert out[0].shape == (1, 8, 4) and out[1].shape == (1, 2, 3, 4)     # 8 RoIs, 25% pos


def test_zoo_defaults_and_size_checks():
    assert ZOO_SETTINGS["num_sample"] == 128 and ZOO_SETTINGS["roi_size"] == 14
    with pytest.raises(ValueError, match="rpn-train-post-nms 2000.*only 540 RPN anchors"):
        build_faster_rcnn("resnet50_v1b", CLASSES, short=96, max_size=96)
    with pytest.raises(ValueError, match="roi-mode"):
        build_faster_rcnn("resnet50_v1b", CLASSES, "crop", **SMALL)
    with pytest.raises(ValueError, match="unknown Faster R-CNN backbone"):
        build_faster_rcnn("mobilenet1.0", CLASSES, **SMALL)


def test_roi_mode_switch_keeps_working_hybridized(net):
    x = mx.nd.random.uniform(shape=(1, 3, 96, 96))
    set_hybrid(net, "full")
    with autograd.predict_mode():
        pooled = net(x)[0].shape
    from gankd_gluon.models.faster_rcnn import set_roi_mode
    set_roi_mode(net, "align")
    net._gankd_hybrid = None
    set_hybrid(net, "full")
    with autograd.predict_mode():
        assert net(x)[0].shape == pooled == (1, 3 * 8, 1)
    set_roi_mode(net, "pool")
    net._gankd_hybrid = None


def test_feature_tap_reads_the_training_forward(net):
    tap = FeatureTap(net.features)
    try:
        x = mx.nd.random.uniform(shape=(1, 3, 96, 96))
        set_hybrid(net, "parts")
        _train_forward(net, x)
        maps = tap.pop()
        assert len(maps) == 1 and maps[0].shape == (1, 1024, 6, 6)
        with autograd.predict_mode():
            np.testing.assert_allclose(maps[0].asnumpy(), net.features(x).asnumpy(), rtol=1e-5,
                                       atol=1e-6)
        tap.pop()                                   # the direct call above was seen too
        # a fully hybridized detector hides its children's outputs: nothing collected
        set_hybrid(net, "full")
        _train_forward(net, x)
        assert tap.pop() == []
    finally:
        tap.detach()
        net._gankd_hybrid = None


def test_teacher_heads_match_gluoncv_training_outputs(net):
    """rpn_raw_outputs and rcnn_on_rois, run on the net's own map and RoIs, give its own train
    outputs 5, 6 (raw RPN) and 0, 1 (class logits, boxes of the positive RoIs)."""
    set_hybrid(net, "off")
    x = mx.nd.random.uniform(shape=(1, 3, 96, 96))
    out = _train_forward(net, x)
    with autograd.train_mode():
        feat = net.features(x)
        score, box = rpn_raw_outputs(net, feat)
        cls_pred, box_pred = rcnn_on_rois(net, feat, out[2], out[11])
    for mine, theirs in ((score, out[5]), (box, out[6]), (cls_pred, out[0]), (box_pred, out[1])):
        assert mine.shape == theirs.shape
        np.testing.assert_allclose(mine.asnumpy(), theirs.asnumpy(), rtol=1e-4, atol=1e-5)
    net._gankd_hybrid = None


def test_teacher_loads_frozen_and_errors_name_the_flags(net, tmp_path):
    path = str(tmp_path / "teacher.params")
    _train_forward(net, mx.nd.random.uniform(shape=(1, 3, 96, 96)))   # builds target generator
    net.save_parameters(path)
    teacher = build_teacher("resnet50_v1b", CLASSES, path, **SMALL)
    assert all(p.grad_req == "null" for p in teacher.collect_params().values())
    a = net.collect_params()
    key = [k for k in a if k.endswith("dense0_weight")][0]
    b = [v for k, v in teacher.collect_params().items() if k.endswith("dense0_weight")][0]
    np.testing.assert_array_equal(a[key].data().asnumpy(), b.data().asnumpy())
    with pytest.raises(WeightsNotFoundError, match="no such file"):
        build_teacher("resnet50_v1b", CLASSES, str(tmp_path / "missing.params"), **SMALL)
    with pytest.raises(WeightsNotFoundError, match="--teacher-params"):
        build_teacher("resnet101_v1d", CLASSES, None, **SMALL)      # zoo teacher is VOC's
    with pytest.raises(ValueError, match="does not fit"):
        build_teacher("resnet50_v1b", CLASSES + ("cross",), path, **SMALL)


def test_map_adapter_bridges_channels_only_when_needed():
    same = MapAdapter(1024, 1024)
    same.initialize()
    x = mx.nd.ones((1, 1024, 2, 2))
    assert not same.collect_params().keys() and (same(x) == x).min().asscalar() == 1
    bridge = MapAdapter(512, 1024)
    bridge.initialize()
    assert bridge(mx.nd.ones((1, 512, 2, 2))).shape == (1, 1024, 2, 2)


def test_feature_channels_of_both_table3_backbones(net):
    assert feature_channels(net) == 1024
    teacher = build_faster_rcnn("resnet101_v1d", CLASSES, **SMALL)
    assert feature_channels(teacher) == 1024


def test_local_imagenet_file_loads_into_the_backbone(tmp_path):
    """--pretrained-base FILE: an ImageNet resnet50_v1b file fills features and top_features."""
    from gluoncv.model_zoo import get_model
    base = get_model("resnet50_v1b", pretrained=False)
    base.initialize(mx.init.Normal(0.5))
    base(mx.nd.zeros((1, 3, 32, 32)))
    path = str(tmp_path / "resnet50_v1b.params")
    base.save_parameters(path)
    det = build_faster_rcnn("resnet50_v1b", CLASSES, pretrained_base=path, **SMALL)
    pairs = [(det.features[0].weight, base.conv1.weight),
             (det.features[4][0].conv1.weight, base.layer1[0].conv1.weight),
             (det.features[6][5].bn3.running_var, base.layer3[5].bn3.running_var),
             (det.top_features[0][2].conv3.weight, base.layer4[2].conv3.weight)]
    for mine, theirs in pairs:
        np.testing.assert_array_equal(mine.data().asnumpy(), theirs.data().asnumpy())
    assert det.rpn.conv1[0].weight._data is None          # the heads are left to initialise
    with pytest.raises(WeightsNotFoundError, match="no such file"):
        build_faster_rcnn("resnet50_v1b", CLASSES, pretrained_base=str(tmp_path / "x"), **SMALL)


def test_identity_map_adapter_passes_gradient_when_hybridized():
    """A hybridized identity adapter must not cut the adversarial gradient to the student."""
    import mxnet as mx
    from mxnet import autograd
    from gankd_gluon.models.faster_rcnn import MapAdapter
    for cin, cout in ((4, 4), (4, 6)):
        adapter = MapAdapter(cin, cout)
        adapter.initialize()
        adapter.hybridize()
        x = mx.nd.random.uniform(shape=(2, cin, 3, 3))
        x.attach_grad()
        with autograd.record():
            loss = (adapter(x) * 1.0).sum()
        loss.backward()
        if cin == cout:
            assert (x.grad.asnumpy() == 1).all()
        else:
            expect = adapter.conv.weight.data().sum(axis=0).reshape((1, cin, 1, 1))
            assert abs(x.grad - expect.broadcast_to(x.shape)).max().asscalar() < 1e-5
