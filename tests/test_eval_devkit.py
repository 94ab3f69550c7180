"""gankd_gluon.eval.devkit: devkit result files out and back in."""
import logging
import os

import numpy as np
import pytest

from gankd_gluon.usage import InputFileError, UsageError
from gankd_gluon.eval.devkit import (read_devkit_detections, score_devkit_dir,
                                     write_devkit_detections)
from gankd_gluon.eval.results import DetectionSet, GroundTruth

CLASSES = ("cat", "dog")
IDS = ["000005", "000007", "000009"]


def _detections(rng, n=40):
    return DetectionSet(IDS, rng.randint(0, 3, n), rng.randint(0, 2, n),
                        np.float32(rng.rand(n)).astype(np.float64),
                        np.sort(rng.uniform(0, 300, (n, 2, 2)), axis=1).transpose(0, 2, 1)
                        .reshape(n, 4)[:, [0, 2, 1, 3]])


def test_file_format_is_one_based_and_per_class(tmp_path):
    det = DetectionSet(IDS, [1, 0, 1], [1, 1, 1], [0.5, 0.25, 0.75],
                       [[0, 1, 9, 19], [10, 10, 20, 20], [0.5, 1.5, 2.5, 3.5]])
    paths = write_devkit_detections(str(tmp_path), det, CLASSES)
    assert [os.path.basename(p) for p in paths] == ["comp4_det_test_cat.txt",
                                                   "comp4_det_test_dog.txt"]
    assert open(paths[0]).read() == ""  # a class without detections still gets its file
    # lines in set order, xmin ymin xmax ymax + 1 (GluonCV is 0-based, the devkit 1-based)
    assert open(paths[1]).read().splitlines() == [
        "000007 0.5 1.0 2.0 10.0 20.0",
        "000005 0.25 11.0 11.0 21.0 21.0",
        "000007 0.75 1.5 2.5 3.5 4.5"]


def test_round_trip_is_exact(tmp_path):
    det = _detections(np.random.RandomState(0))
    write_devkit_detections(str(tmp_path), det, CLASSES)
    back = read_devkit_detections(str(tmp_path), CLASSES, IDS)
    for cls in range(len(CLASSES)):
        sel, sel_back = det.labels == cls, back.labels == cls
        # bit-identical, in the same order, once the in-loop (+1)-1 round trip is applied
        np.testing.assert_array_equal(back.image_index[sel_back], det.image_index[sel])
        np.testing.assert_array_equal(back.scores[sel_back], det.scores[sel])
        np.testing.assert_array_equal(back.boxes[sel_back], (det.boxes[sel] + 1.0) - 1.0)


def test_scoring_a_directory(tmp_path):
    gt = GroundTruth(IDS, [[[0, 0, 9, 9]], [[0, 0, 9, 9], [20, 20, 29, 29]], np.zeros((0, 4))],
                     [[0], [1, 1], []], [[0], [0, 1], []])
    d = tmp_path / "res"
    d.mkdir()
    # cat: one hit -> 1. dog: a miss (.9) then a hit (.8) on the non-difficult object, a hit on
    # the difficult one (ignored) -> rec [0, 1], prec [0, .5] -> 0.5
    (d / "comp4_det_test_cat.txt").write_text("000005 0.3 1 1 10 10\n")
    (d / "comp4_det_test_dog.txt").write_text(
        "000009 0.9 1 1 10 10\n000007 0.8 1 1 10 10\n\n000007 0.7 21 21 30 30\n")
    names, values = score_devkit_dir(str(d), gt, CLASSES)
    assert names == ["cat", "dog", "mAP"]
    np.testing.assert_allclose(values, [1.0, 0.5, 0.75], atol=1e-12)


def test_missing_class_file_counts_as_no_detections(tmp_path, caplog):
    gt = GroundTruth(IDS[:1], [[[0, 0, 9, 9], [0, 0, 9, 9]]], [[0, 1]])
    (tmp_path / "comp4_det_test_cat.txt").write_text("000005 0.3 1 1 10 10\n")
    (tmp_path / "comp4_det_test_horse.txt").write_text("")
    with caplog.at_level(logging.WARNING):
        _, values = score_devkit_dir(str(tmp_path), gt, CLASSES)
    np.testing.assert_allclose(values, [1.0, 0.0, 0.5], atol=1e-12)
    assert "comp4_det_test_dog.txt" in caplog.text and "horse" in caplog.text


@pytest.mark.parametrize("content, message", [
    ("000005 0.3 1 1 10\n", r"res/comp4_det_test_cat.txt:1: expected 'image_id score"),
    ("000005 0.3 1 1 10 10\n000006 0.3 1 1 10 10\n", r"comp4_det_test_cat.txt:2: image id "
                                                       r"'000006' is not in the evaluated split"),
    ("000005 high 1 1 10 10\n", r"cat.txt:1: score and box must be numbers"),
    ("000005 nan 1 1 10 10\n", r"cat.txt:1: non-finite"),
    (b"000005 0.3 1 1 10 10\n\x89PNG\x00\xff\n", r"cat.txt:2: not text \(byte 1 of the line"),
])
def test_bad_files_name_file_and_line(tmp_path, content, message):
    d = tmp_path / "res"
    d.mkdir()
    path = d / "comp4_det_test_cat.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(UsageError, match=message) as err:
        read_devkit_detections(str(d), CLASSES, IDS)
    assert "\n" not in str(err.value)


def test_a_file_given_for_the_directory_is_named(tmp_path):
    binary = tmp_path / "dets.bin"
    binary.write_bytes(b"\x00\xff\xfe")
    with pytest.raises(UsageError, match=r"--detections .*dets.bin: not a directory"):
        read_devkit_detections(str(binary), CLASSES, IDS)


def test_no_files_or_no_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="comp4_det_test_cat.txt, comp4_det_test_dog.txt"):
        read_devkit_detections(str(tmp_path), CLASSES, IDS)
    with pytest.raises(InputFileError, match="does not exist"):      # also FileNotFoundError
        read_devkit_detections(str(tmp_path / "nope"), CLASSES, IDS)
