"""The tiny Faster R-CNN the Faster R-CNN tests share (helper, no tests): its sizes as keywords
of ``build_faster_rcnn`` and as the training scripts' flags, the scripts' common CPU flags, a
seeded initialised network, a saved teacher, the generated dataset they train on, and the
files of a Faster R-CNN run that the evaluation scripts' flags look at.

96 px images, 8 sampled RoIs of 7x7, a few hundred proposals: a ResNet50 forward and backward in
well under a second on one CPU core. What the tests check (losses, the GAN step, checkpoints,
resume, evaluation) does not depend on the sizes.
"""
import json
import os
import sys

import mxnet as mx

from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_voc
from gankd_gluon.models.faster_rcnn import build_faster_rcnn, initialize_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHORT = 96
SMALL = dict(short=SHORT, max_size=SHORT, num_sample=8, roi_size=7, rpn_train_pre_nms=256,
             rpn_train_post_nms=64, rpn_test_pre_nms=128, rpn_test_post_nms=8)
# the same sizes as flags of train_faster_rcnn.py / train_faster_rcnn_gan_kd.py
SIZE_FLAGS = [item for key, value in SMALL.items()
              for item in ("--" + key.replace("_", "-"), str(value))]
# a CPU run without pretrained weights, workers or progress bars, logging every batch
COMMON = ["--dataset", "synthetic", "--gpus", "", "--batch-size", "2", "--num-workers", "0",
          "--pretrained-base", "none", "--log-interval", "1", "--no-progress"] + SIZE_FLAGS


def tiny_frcnn(network, classes=SYNTHETIC_CLASSES, roi_mode="align", seed=0, ctx=mx.cpu(),
               target_generator=False, **overrides):
    """A Faster R-CNN at the tiny sizes (``overrides`` replace some), initialised as
    ``train_faster_rcnn.py`` does after ``mx.random.seed(seed)`` and run once in predict mode
    so that every deferred shape is set. ``target_generator``: create the training target
    generator's constants first, as a training run does (its saved files hold them)."""
    mx.random.seed(seed)
    net = build_faster_rcnn(network, classes, roi_mode, **dict(SMALL, **overrides))
    if target_generator:
        _ = net.target_generator
    initialize_params(net, ctx)
    side = overrides.get("short", SHORT)
    with mx.autograd.predict_mode():
        net(mx.nd.zeros((1, 3, side, side), ctx=ctx))
    return net


def save_teacher(path, network="resnet101_v1d", seed=0):
    """A teacher for ``--teacher-params``: the tiny ``network`` (Table 3's ResNet101 by default)
    with seeded random weights, saved to ``path``. Its weights only have to stay fixed;
    training one is ``train_faster_rcnn.py``'s job. Returns ``path``."""
    tiny_frcnn(network, seed=seed).save_parameters(str(path))
    return path


def make_data(root, num_train=2, num_test=2, seed=0, **kwargs):
    """The generated dataset at the tiny size (96 px images unless ``kwargs`` say otherwise) in
    ``root``; returns ``root`` as a str."""
    kwargs.setdefault("image_size", (SHORT, SHORT))
    make_synthetic_voc(str(root), seed=seed, num_train=num_train, num_test=num_test, **kwargs)
    return str(root)


def fake_checkpoint(folder):
    """A manifest as ``train_faster_rcnn.py`` writes it (the run's args, part ``net``), without
    weights: enough for the evaluation scripts' flags. Returns its path."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import train_faster_rcnn
    path = os.path.join(str(folder), "run-best.json")
    with open(path, "w") as f:
        json.dump({"args": vars(train_faster_rcnn.parse_args(COMMON)),
                   "parts": {"net": "run-best.net.params"}, "tag": "best"}, f, default=str)
    return path


def fake_symbol(folder):
    """The part of an exported Faster R-CNN symbol that says what it is (a ``ROIPooling``
    node). Returns the export prefix."""
    prefix = os.path.join(str(folder), "frcnn")
    with open(prefix + "-symbol.json", "w") as f:
        json.dump({"nodes": [{"op": "null", "name": "data", "inputs": []},
                             {"op": "ROIPooling", "name": "roipool0", "inputs": [[0, 0, 0]]}]},
                  f)
    return prefix
