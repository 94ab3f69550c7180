"""Faster R-CNN evaluation (short-side resize, original-frame scoring) and the run settings:
published-log defaults, epoch counting and learning-rate lines."""
import logging
import os
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from gankd_gluon.data.datasets import get_dataset
from gankd_gluon.data.synthetic import make_synthetic_voc
from gankd_gluon.engine.loop import StepSchedule, step_lr
from gankd_gluon.eval.frcnn import FasterRCNNEvalTransform, evaluate_frcnn
from gankd_gluon.logs.parse import parse_namespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import train_faster_rcnn  # noqa: E402
import train_faster_rcnn_gan_kd  # noqa: E402


def test_eval_transform_resizes_the_short_side_and_keeps_the_original_label():
    img = mx.nd.zeros((50, 100, 3), dtype="uint8")
    label = np.array([[10, 5, 60, 40, 2]], dtype=np.float64)            # COCO-style (M, 5)
    data, orig, size = FasterRCNNEvalTransform(short=40, max_size=1000)(img, label)
    assert data.shape == (3, 40, 80)
    np.testing.assert_array_equal(orig, [[10, 5, 60, 40, 2, 0]])
    np.testing.assert_array_equal(size, [100, 50])
    # the long-side cap wins over the short side, as resize_short_within
    assert FasterRCNNEvalTransform(short=40, max_size=60)(img, label)[0].shape == (3, 30, 60)
    _, empty, _ = FasterRCNNEvalTransform(40, 1000)(img, np.zeros((0,)))
    np.testing.assert_array_equal(empty, -np.ones((1, 6)))


class _Oracle(gluon.Block):
    """Returns each test image's ground truth, in the input frame, in dataset order."""

    def __init__(self, dataset):
        super(_Oracle, self).__init__()
        self._labels = [np.asarray(dataset._label_cache[i]) for i in range(len(dataset))]
        self._sizes = [dataset._im_shapes[i] for i in range(len(dataset))]
        self._i = 0

    def forward(self, x):
        label, (w, h) = self._labels[self._i], self._sizes[self._i]
        self._i += 1
        boxes = label[:, :4] * np.array([x.shape[3] / w, x.shape[2] / h] * 2)
        k = label.shape[0]
        return (mx.nd.array(label[None, :, 4:5], ctx=x.context),
                mx.nd.ones((1, k, 1), ctx=x.context), mx.nd.array(boxes[None], ctx=x.context))


@pytest.mark.parametrize("ctx", [[mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]])
def test_evaluate_scores_the_original_frame(tmp_path, ctx):
    make_synthetic_voc(str(tmp_path), seed=1, num_train=1, num_test=5, image_size=(90, 70),
                       image_size_max=(130, 110))
    val = get_dataset("synthetic", str(tmp_path), "test")
    names, values = evaluate_frcnn(_Oracle(val), val, ctx, val.classes, short=48,
                                   max_size=80, progress=False)
    assert names[-1] == "mAP" and values[-1] == pytest.approx(1.0)


PUBLISHED_DIFFERENT = {
    "gpus": "machine-specific ('4,5,6,7' there; the paper used two GPUs)",
    "num_workers": "machine-specific",
    "save_prefix": "names the run (ours says which method and RoI mode ran)",
    "Teacher_param_path": "a local file name there; ours downloads from the zoo unless given",
}


def test_defaults_are_the_published_namespace(published_frcnn_log, monkeypatch):
    # the defaults are for the paper's machine: --gpus 0,1 is refused where MXNet sees no GPU
    monkeypatch.setattr("gankd_gluon.usage._num_gpus", lambda: 2)
    with open(published_frcnn_log) as f:
        line = [ln for ln in f if ln.startswith("Namespace(")][-1]
    published, complete = parse_namespace(line)
    assert complete
    ours = vars(train_faster_rcnn_gan_kd.parse_args([]))
    shared = [k for k in published if k in ours and k not in PUBLISHED_DIFFERENT]
    assert {"GAN_epochs", "train_D_eopch", "lr_decay_GAN_epoch", "lrD", "lrG", "clamp_lower",
            "lr_decay_epoch", "epochs", "batch_size", "beta1", "lr", "wd"} <= set(shared)
    for key in shared:
        assert ours[key] == published[key], key
    assert ours["method"] == "gan" and ours["roi_mode"] == "align"
    plain = vars(train_faster_rcnn.parse_args([]))
    assert plain["network"] == "resnet50_v1b" and plain["lr"] == published["lr"]


def test_schedule_counts_epochs_from_zero_and_logs_changes(caplog):
    assert step_lr(0.0005, 4, 0.5, [5, 20], "at") == 0.0005
    assert step_lr(0.0005, 5, 0.5, [5, 20], "at") == 0.00025
    assert step_lr(0.0001, 36, 0.1, [32, 36], "at") == pytest.approx(1e-6)
    logger = logging.getLogger("test_frcnn_schedule")
    sched = StepSchedule({"G": 0.0005, "D": 0.0005}, 0.5, [5, 20], logger, "GAN", offset=-1,
                         convention="at")
    with caplog.at_level(logging.INFO, logger="test_frcnn_schedule"):
        lrs = [sched(e)["G"] for e in range(1, 8)]       # loop epochs 1.. = log epochs 0..
    assert lrs == [0.0005] * 5 + [0.00025] * 2
    assert [r.getMessage() for r in caplog.records] == [
        "[Epoch 5] Set GAN learning rate to 0.00025"]    # the published line's format
    # a resumed run past a decay says so on its first epoch
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test_frcnn_schedule"):
        StepSchedule({"G": 0.0005}, 0.5, [5, 20], logger, "GAN", offset=-1, convention="at")(8)
    assert [r.getMessage() for r in caplog.records] == [
        "[Epoch 7] Set GAN learning rate to 0.00025"]
