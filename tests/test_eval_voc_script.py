"""scripts/eval_voc.py end to end on the generated dataset.

- ``--detections``: per-class AP equals the independent devkit port (tests/voc_devkit_reference.py)
  on files with difficult objects, duplicates, wrong classes, a class and images without
  detections, and tied scores;
- with a network: a detector replaying ground-truth-derived noisy boxes (so AP is far from 0
  and the comparison means something) gives GluonCV's VOC07MApMetric numbers, and
  ``--save-detections`` then ``--detections`` reproduces them; a real, freshly initialised GluonCV
  SSD runs through ``--network/--params`` and ``--symbol`` as well.
"""
import importlib.util
import json
import os

import mxnet as mx
import numpy as np
import pytest
from gluoncv.utils.metrics.voc_detection import VOC07MApMetric

from gankd_gluon.data.datasets import get_dataset
from gankd_gluon.data.loaders import get_ssd_val_loader
from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_voc
from gankd_gluon.eval.results import dataset_ground_truth

import eval_fixtures as fx
import voc_devkit_reference as ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_SHAPE = 128


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "eval_voc_script", os.path.join(ROOT, "scripts", "eval_voc.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eval_voc = _load_script()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("gen"))
    make_synthetic_voc(root, seed=5, num_train=0, num_test=40, image_size=(64, 64),
                       image_size_max=(128, 112))
    dataset = get_dataset("synthetic", root, "test")
    gt = dataset_ground_truth(dataset)
    gt.sizes = [tuple(float(v) for v in dataset[i][0].shape[1::-1]) for i in range(len(dataset))]
    assert any(d.any() for d in gt.difficult), "the generated split should have difficult objects"
    return root, dataset, gt


def _voc_dir(root):
    return os.path.join(root, "VOCdevkit", "VOC2007")


def _run(argv):
    names, values = eval_voc.main(eval_voc.parse_args(argv + ["--no-progress"]))
    return dict(zip(names, values))


def _images_for_reference(gt):
    """Ground truth as write_voc_tree's tuples (1-based), to build the crafted detections."""
    images = []
    for i, image_id in enumerate(gt.image_ids):
        objects = [(SYNTHETIC_CLASSES[int(l)], tuple(int(v) + 1 for v in b), bool(d))
                   for b, l, d in zip(gt.boxes[i], gt.labels[i], gt.difficult[i])]
        width, height = gt.sizes[i]
        images.append((image_id, (int(width), int(height)), objects))
    return images


@pytest.mark.parametrize("seed, tie_levels", [(0, None), (1, 5), (2, 2)])
def test_detections_match_devkit_reference(generated, tmp_path, capsys, seed, tie_levels):
    root, _, gt = generated
    images = _images_for_reference(gt)
    rng = np.random.RandomState(seed)
    dets = fx.crafted_detections(rng, images, SYNTHETIC_CLASSES, skip_class="star",
                                 skip_images={images[1][0], images[7][0]},
                                 tie_levels=tie_levels, fractional=seed == 2)
    det_dir = str(tmp_path / "dets")
    fx.write_result_files(det_dir, dets)
    out = str(tmp_path / "ap.json")
    got = _run(["--dataset", "synthetic", "--dataset-root", root, "--detections", det_dir,
                "--out", out])
    expected = ref.devkit_ap_from_files(_voc_dir(root), det_dir, SYNTHETIC_CLASSES)
    for name in SYNTHETIC_CLASSES:
        assert got[name] == pytest.approx(expected[name], abs=1e-6), name
    assert got["star"] == 0.0
    assert got["mAP"] == pytest.approx(np.mean(list(expected.values())), abs=1e-6)
    # printed as the published logs, and the same numbers in the JSON file
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["%s=%s" % (k, v) for k, v in got.items()]
    with open(out) as f:
        assert json.load(f)["ap"] == got


def test_network_path_equals_gluoncv_metric_and_round_trips(generated, tmp_path, monkeypatch):
    root, _, gt = generated
    plan = fx.noisy_oracle_plan(np.random.RandomState(7), gt, len(SYNTHETIC_CLASSES))
    scores = np.concatenate([p[1] for p in plan])
    assert len(np.unique(scores)) == len(scores)
    metric = VOC07MApMetric(class_names=list(SYNTHETIC_CLASSES))
    for (labels, s, boxes), gb, gl, gd in zip(plan, gt.boxes, gt.labels, gt.difficult):
        metric.update(boxes[None], labels[None], s[None], gb[None], gl[None], gd[None])
    expected = dict(zip(*metric.get()))
    assert 0.2 < expected["mAP"] < 0.95

    oracle = fx.make_oracle(plan, gt.sizes, DATA_SHAPE)
    monkeypatch.setattr(eval_voc, "load_detector", lambda args, ctx, classes=None: oracle)
    det_dir = str(tmp_path / "dets")
    got = _run(["--dataset", "synthetic", "--dataset-root", root, "--network", "oracle",
                "--data-shape", str(DATA_SHAPE), "--batch-size", "6",
                "--save-detections", det_dir])
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name
    monkeypatch.undo()
    again = _run(["--dataset", "synthetic", "--dataset-root", root, "--detections", det_dir])
    assert again == got  # bit-identical
    reference = ref.devkit_ap_from_files(_voc_dir(root), det_dir, SYNTHETIC_CLASSES)
    for name in SYNTHETIC_CLASSES:
        assert got[name] == pytest.approx(reference[name], abs=1e-6)


def _gluoncv_reference_run(net, dataset):
    """GluonCV's own validate() loop, predictions rescaled to the original images."""
    metric = VOC07MApMetric(class_names=list(SYNTHETIC_CLASSES))
    loader = get_ssd_val_loader(dataset, DATA_SHAPE, 4)
    net.set_nms(nms_thresh=0.45, nms_topk=400)
    index, all_scores = 0, []
    for data, _ in loader:
        ids, scores, boxes = [o.asnumpy() for o in net(data.as_in_context(mx.cpu()))]
        boxes = boxes.clip(0, DATA_SHAPE).astype(np.float64)
        for j in range(data.shape[0]):
            img, label = dataset[index]
            height, width = img.shape[:2]
            b = boxes[j] * np.array([width, height, width, height]) / DATA_SHAPE
            metric.update(b[None], ids[j][None], scores[j][None], label[None, :, :4],
                          label[None, :, 4], label[None, :, 5])
            keep = ids[j, :, 0] >= 0
            all_scores.append(list(zip(ids[j, keep, 0], scores[j, keep, 0])))
            index += 1
    return dict(zip(*metric.get())), all_scores


@pytest.mark.slow
def test_real_gluoncv_ssd_through_the_script(generated, tmp_path):
    root, dataset, _ = generated
    net = fx.random_ssd(SYNTHETIC_CLASSES, seed=0)
    net.hybridize()
    net(mx.nd.zeros((1, 3, DATA_SHAPE, DATA_SHAPE)))  # finish deferred initialisation
    params = str(tmp_path / "ssd.params")
    net.save_parameters(params)
    expected, per_image = _gluoncv_reference_run(net, dataset)
    pairs = [p for image in per_image for p in image]
    assert len(set(pairs)) == len(pairs)  # no tied (class, score): GluonCV orders them as we do

    common = ["--dataset", "synthetic", "--dataset-root", root, "--data-shape", str(DATA_SHAPE),
              "--batch-size", "4"]
    det_dir = str(tmp_path / "dets")
    got = _run(common + ["--network", "ssd_512_mobilenet1.0_custom", "--params", params,
                         "--save-detections", det_dir])
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name
    assert _run(common + ["--detections", det_dir]) == got

    # the same network exported (inference trace) and read back with SymbolBlock.imports
    prefix = str(tmp_path / "export" / "ssd")
    os.makedirs(os.path.dirname(prefix))
    net(mx.nd.zeros((1, 3, DATA_SHAPE, DATA_SHAPE)))
    net.export(prefix)
    exported = _run(common + ["--symbol", prefix])
    for name, value in got.items():
        assert exported[name] == pytest.approx(value, abs=1e-6), name

    # exported after a training-mode trace: the script says what is wrong
    net.hybridize()  # drop the cached inference graph, so the next call traces again
    with mx.autograd.train_mode():
        net(mx.nd.zeros((1, 3, DATA_SHAPE, DATA_SHAPE)))
    net.export(prefix)
    with pytest.raises(RuntimeError, match="training mode"):
        _run(common + ["--symbol", prefix])


def test_coco_dataset_is_refused(generated, capsys):
    root = generated[0]
    with pytest.raises(SystemExit) as err:
        _run(["--dataset", "synthetic_coco", "--dataset-root", root, "--detections", "x"])
    assert err.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("use scripts/eval_coco.py")


def test_metric_area_is_gluoncv_voc_map_metric(generated, tmp_path):
    from gluoncv.utils.metrics.voc_detection import VOCMApMetric
    from gankd_gluon.eval.devkit import read_devkit_detections
    root, _, gt = generated
    dets = fx.crafted_detections(np.random.RandomState(4), _images_for_reference(gt),
                                 SYNTHETIC_CLASSES, fractional=True)
    det_dir = str(tmp_path / "dets")
    fx.write_result_files(det_dir, dets)
    got = _run(["--dataset", "synthetic", "--dataset-root", root, "--detections", det_dir,
                "--metric", "area"])
    det = read_devkit_detections(det_dir, SYNTHETIC_CLASSES, gt.image_ids)
    assert len(np.unique(det.scores)) == len(det)  # no ties: plain GluonCV is the reference
    metric = VOCMApMetric(class_names=list(SYNTHETIC_CLASSES))
    for i in range(len(gt)):
        boxes, labels, scores = det.for_image(i)
        metric.update(boxes[None], labels[None], scores[None], gt.boxes[i][None],
                      gt.labels[i][None], gt.difficult[i][None])
    for name, value in zip(*metric.get()):
        assert got[name] == pytest.approx(value, abs=1e-12), name
    voc07 = _run(["--dataset", "synthetic", "--dataset-root", root, "--detections", det_dir])
    assert voc07["mAP"] != got["mAP"]
