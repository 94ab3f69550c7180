"""gankd_gluon.eval.detector: where the evaluated network comes from, and what it is."""
import argparse
import json

import mxnet as mx
import numpy as np
import pytest

from gankd_gluon.eval.detector import add_detector_args, load_detector
from gankd_gluon.models.weights import zoo_params_path
from gankd_gluon.models.ssd import WeightsNotFoundError

import eval_fixtures as fx

CLASSES = ("circle", "square", "triangle", "star", "cross")


def _args(argv, checkpoint=False):
    parser = argparse.ArgumentParser()
    add_detector_args(parser, checkpoint=checkpoint)
    return parser.parse_args(argv)


def test_sources_are_exclusive_and_required():
    with pytest.raises(SystemExit):
        _args([])
    with pytest.raises(SystemExit):
        _args(["--network", "a", "--symbol", "b"])
    assert load_detector(_args(["--detections", "d"]), [mx.cpu()]) is None


def test_unknown_network_name():
    with pytest.raises(ValueError, match="not a GluonCV model-zoo name"):
        load_detector(_args(["--network", "ssd_512_mobilenet0.75_voc", "--params", "x"]),
                      [mx.cpu()], CLASSES)


def test_failed_download_names_the_file_and_the_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    import gluoncv.model_zoo.model_store as store

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")
    monkeypatch.setattr(store, "download", offline)  # as here: no internet
    with pytest.raises(WeightsNotFoundError) as err:
        load_detector(_args(["--network", "ssd_512_mobilenet1.0_voc"]), [mx.cpu()])
    message = str(err.value)
    wanted = zoo_params_path("ssd_512_mobilenet1.0_voc")
    assert wanted.startswith(str(tmp_path)) and wanted.endswith(".params")
    assert wanted in message and "--params FILE" in message


def test_missing_files(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="--params .*nope.params: no such file"):
        load_detector(_args(["--network", "ssd_512_mobilenet1.0_voc", "--params",
                             str(tmp_path / "nope.params")]), [mx.cpu()], CLASSES)
    with pytest.raises(WeightsNotFoundError, match="net-symbol.json not found"):
        load_detector(_args(["--symbol", str(tmp_path / "net")]), [mx.cpu()])
    with pytest.raises(ValueError, match="--params goes with --network"):
        load_detector(_args(["--symbol", "x", "--params", "y"]), [mx.cpu()])


@pytest.mark.slow
def test_zoo_voc_name_with_local_weights_for_other_classes(tmp_path):
    # a zoo architecture trained on the generated set: the _voc name, reset to its 5 classes
    net = fx.random_ssd(CLASSES)
    x = mx.nd.random.uniform(shape=(1, 3, 128, 128))
    expected = [o.asnumpy() for o in net(x)]
    path = str(tmp_path / "w.params")
    net.save_parameters(path)
    for name in ("ssd_512_mobilenet1.0_custom", "ssd_512_mobilenet1.0_voc"):
        loaded = load_detector(_args(["--network", name, "--params", path]), [mx.cpu()], CLASSES)
        assert list(loaded.classes) == list(CLASSES)
        for a, b in zip(expected, loaded(x)):
            np.testing.assert_allclose(a, b.asnumpy(), rtol=1e-5, atol=1e-5)
    # the same weights do not fit 20 VOC classes: the message names file and network
    with pytest.raises(RuntimeError, match="could not load .*w.params into ssd_512_mobilenet1.0"):
        load_detector(_args(["--network", "ssd_512_mobilenet1.0_voc", "--params", path]),
                      [mx.cpu()])


def _manifest(tmp_path, name, run, parts):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        json.dump({"args": run, "parts": parts, "tag": "best"}, f)
    return path


def test_detector_kind_from_flags_and_file_headers(tmp_path):
    from gankd_gluon.eval.detector import detector_kind
    assert detector_kind(_args(["--network", "faster_rcnn_resnet50_v1b_voc"])) == "faster_rcnn"
    assert detector_kind(_args(["--network", "ssd_512_mobilenet1.0_voc"])) == "ssd"
    assert detector_kind(_args(["--network", "yolo3_darknet53_voc"])) is None
    assert detector_kind(_args(["--detections", "d"])) is None
    for name, node in (("frcnn", {"op": "_contrib_ROIAlign", "name": "roialign0"}),
                       ("ssd", {"op": "null", "name": "ssd0_ssdanchorgenerator0_anchor_0"}),
                       ("other", {"op": "null", "name": "w"})):
        with open(str(tmp_path / (name + "-symbol.json")), "w") as f:
            json.dump({"nodes": [{"op": "null", "name": "data"}, node]}, f)
    kinds = [detector_kind(_args(["--symbol", str(tmp_path / n)]))
             for n in ("frcnn", "ssd", "other", "missing")]
    assert kinds == ["faster_rcnn", "ssd", None, None]   # missing: the loader says what is
    plain = _manifest(tmp_path, "a.json", {"roi_mode": "pool", "network": "resnet50_v1b"},
                      {"net": "a.net.params"})
    ssd = _manifest(tmp_path, "b.json", {"data_shape": 512}, {"student": "b.student.params"})
    assert detector_kind(_args(["--checkpoint", plain], checkpoint=True)) == "faster_rcnn"
    assert detector_kind(_args(["--checkpoint", ssd], checkpoint=True)) == "ssd"


def test_checkpoint_source_errors(tmp_path):
    from gankd_gluon.models.weights import CheckpointError
    with pytest.raises(SystemExit):                      # only where the script offers it
        _args(["--checkpoint", "x.json"])
    with pytest.raises(CheckpointError, match="--checkpoint .*nope.json: no such checkpoint"):
        load_detector(_args(["--checkpoint", str(tmp_path / "nope.json")], checkpoint=True),
                      [mx.cpu()])
    (tmp_path / "bad.json").write_text("{\"epoch\": 3}")
    with pytest.raises(CheckpointError, match="not a checkpoint manifest"):
        load_detector(_args(["--checkpoint", str(tmp_path / "bad.json")], checkpoint=True),
                      [mx.cpu()])
    ssd = _manifest(tmp_path, "s.json", {"data_shape": 512}, {"student": "s.student.params"})
    with pytest.raises(CheckpointError, match="s.json: its network weights .* are missing"):
        load_detector(_args(["--checkpoint", ssd], checkpoint=True), [mx.cpu()])
    (tmp_path / "s.student.params").write_bytes(b"")
    with pytest.raises(CheckpointError, match="s.json: its run's arguments lack student, "
                                              "teacher, dataset"):
        load_detector(_args(["--checkpoint", ssd], checkpoint=True), [mx.cpu()])
    frcnn = _manifest(tmp_path, "f.json", {"roi_mode": "align", "network": "resnet50_v1b",
                                           "dataset": "synthetic"}, {"net": "f.net.params"})
    with pytest.raises(CheckpointError, match="weights .* are missing"):
        load_detector(_args(["--checkpoint", frcnn], checkpoint=True), [mx.cpu()], CLASSES)
    with pytest.raises(ValueError, match="--params goes with --network"):
        load_detector(_args(["--checkpoint", frcnn, "--params", "y"], checkpoint=True),
                      [mx.cpu()])


def test_input_size_from_an_exports_metadata(tmp_path, capsys):
    """An SSD export with a -meta.json runs at its own size, and its kind comes from it; one
    without says which size it assumes; classes other than the model's are refused."""
    from gankd_gluon.eval.inputs import add_input_args, input_mode
    from gankd_gluon.models.export_meta import ExportMetaError, build_meta, write_meta

    def mode(argv, classes=None):
        parser = argparse.ArgumentParser()
        add_detector_args(parser)
        add_input_args(parser)
        return input_mode(parser.parse_args(argv), classes)
    prefix = str(tmp_path / "net")
    with open(prefix + "-symbol.json", "w") as f:
        json.dump({"nodes": [{"op": "null", "name": "data"},
                             {"op": "null", "name": "ssd0_ssdanchorgenerator0_anchor_0"}]}, f)
    assert mode(["--symbol", prefix]) == ("ssd", {"data_shape": 512})
    assert "warning: --symbol %s has no -meta.json" % prefix in capsys.readouterr().err
    write_meta(prefix, build_meta("ssd", ("a", "b"), {"data_shape": 96}, commit=""))
    assert mode(["--symbol", prefix], ["a", "b"]) == ("ssd", {"data_shape": 96})
    assert "warning" not in capsys.readouterr().err
    with pytest.raises(ExportMetaError, match="predicts 2 classes"):
        mode(["--symbol", prefix], ["a", "b", "c"])
    assert mode(["--symbol", prefix, "--override-meta", "--data-shape", "64"], ["c"]) == (
        "ssd", {"data_shape": 64})
    # the metadata's kind wins over the symbol's operators
    write_meta(prefix, build_meta("faster_rcnn", ("a", "b"), {"short": 96, "max_size": 128},
                                  commit=""))
    assert mode(["--symbol", prefix]) == ("faster_rcnn", {"short": 96, "max_size": 128})
    assert mode(["--symbol", prefix, "--short", "64"]) == (
        "faster_rcnn", {"short": 64, "max_size": 128})
