"""Export metadata: round trip, defaults from the model, refusals of disagreeing flags."""
import argparse
import json

import pytest

from gankd_gluon.models.export_meta import (FORMAT, MEAN, STD, ExportMetaError, build_meta,
                                            check_against, export_prefix, git_commit, read_meta,
                                            write_meta)


def test_round_trip(tmp_path):
    args = argparse.Namespace(data_shape=128, student="mobilenet0.25", lr=0.001)
    meta = build_meta("ssd", ("cat", "dog"), {"data_shape": 128}, args, "run-best.json",
                      commit="abc")
    prefix = str(tmp_path / "run-best-student")
    path = write_meta(prefix, meta)
    assert path == prefix + "-meta.json"
    assert not list(tmp_path.glob("*.tmp-*"))
    back = read_meta(prefix)
    assert back == meta
    assert back == {"format": FORMAT, "kind": "ssd", "classes": ["cat", "dog"],
                    "input": {"data_shape": 128}, "mean": list(MEAN), "std": list(STD),
                    "args": {"data_shape": 128, "student": "mobilenet0.25", "lr": 0.001},
                    "checkpoint": "run-best.json", "commit": "abc"}
    # any of the export's files names it
    for name in ("-symbol.json", "-0000.params", "-meta.json"):
        assert read_meta(prefix + name) == meta
    assert export_prefix(prefix + "-0012.params") == prefix
    assert read_meta(str(tmp_path / "other")) is None          # an export without metadata


def test_unreadable_meta_names_the_file(tmp_path):
    (tmp_path / "x-meta.json").write_text("{not json")
    with pytest.raises(ExportMetaError, match=r"x-meta.json: not readable"):
        read_meta(str(tmp_path / "x"))
    (tmp_path / "y-meta.json").write_text(json.dumps({"format": FORMAT, "kind": "yolo"}))
    with pytest.raises(ExportMetaError, match=r"y-meta.json: not export metadata"):
        read_meta(str(tmp_path / "y"))


def test_build_meta_refuses_sizes_of_the_other_kind():
    with pytest.raises(ValueError, match="short"):
        build_meta("faster_rcnn", ("a",), {"data_shape": 512}, commit="")
    with pytest.raises(ValueError, match="kind"):
        build_meta("yolo", ("a",), {"data_shape": 512}, commit="")
    frcnn = build_meta("faster_rcnn", ("a",), {"short": 600, "max_size": 1000}, commit="")
    assert frcnn["input"] == {"short": 600, "max_size": 1000}


def test_check_against_fills_in_and_refuses():
    ssd = build_meta("ssd", ("cat", "dog"), {"data_shape": 128}, commit="")
    assert check_against(ssd, "--symbol s", data_shape=None) == {"data_shape": 128}
    assert check_against(ssd, "--symbol s", ["cat", "dog"], data_shape=128) == {"data_shape": 128}
    with pytest.raises(ExportMetaError) as err:
        check_against(ssd, "--symbol s", data_shape=512)
    assert str(err.value) == ("--data-shape 512 disagrees with --symbol s, trained at "
                              "--data-shape 128: leave the flag out, or pass --override-meta")
    assert check_against(ssd, "--symbol s", override=True, data_shape=512) == {"data_shape": 512}
    with pytest.raises(ExportMetaError, match=r"predicts 2 classes \(cat, dog\), the data has 1 "
                                              r"\(cat\)"):
        check_against(ssd, "--symbol s", ["cat"], data_shape=None)
    with pytest.raises(ExportMetaError) as err:
        check_against(ssd, "--symbol s", ["dog", "cat"], data_shape=None)
    assert str(err.value) == ("--symbol s predicts 2 classes (cat, dog), the data has 2 (dog, "
                              "cat): pass --classes cat,dog (the model's, in its label order), "
                              "or use the data it was trained on, or pass --override-meta")
    with pytest.raises(ExportMetaError) as err:         # detect.py: no data, only names
        check_against(ssd, "--symbol s", ["dog"], classes_from="--classes names",
                      fix="leave --classes out (the model's are used)", data_shape=None)
    assert str(err.value) == ("--symbol s predicts 2 classes (cat, dog), --classes names 1 "
                              "(dog): leave --classes out (the model's are used), or pass "
                              "--override-meta")
    assert check_against(ssd, "--symbol s", ["cat"], True, data_shape=None) == {"data_shape": 128}
    with pytest.raises(ExportMetaError, match="--short: --symbol s is an SSD export, whose input "
                                              "is --data-shape 128"):
        check_against(ssd, "--symbol s", short=600)
    frcnn = build_meta("faster_rcnn", ("a",), {"short": 96, "max_size": 128}, commit="")
    assert check_against(frcnn, "m", short=None, max_size=None) == {"short": 96, "max_size": 128}
    with pytest.raises(ExportMetaError, match="--max-size 1000 disagrees"):
        check_against(frcnn, "m", short=96, max_size=1000)
    assert check_against(frcnn, "m", override=True, short=None, max_size=1000) == {
        "short": 96, "max_size": 1000}


def test_export_meta_is_a_checksummed_part_and_each_tag_names_its_manifest(tmp_path):
    """The export's -meta.json is one more content-named file of the export, with its SHA-256
    in the manifest; each tag's convenience copy names that tag's manifest."""
    import hashlib
    import mxnet as mx
    from mxnet import gluon
    from gankd_gluon.engine.checkpoint import deployable_exporter, save_checkpoint

    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(2, in_units=3))
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 3)))
    meta = build_meta("ssd", ("a",), {"data_shape": 64}, commit="c")
    prefix = str(tmp_path / "run")
    export = deployable_exporter(lambda p: net.export(p), prefix, "student", meta=meta)
    best = save_checkpoint(prefix, "best", {"net": net}, {}, {"epoch": 0}, export=export)
    final = save_checkpoint(prefix, "final", {"net": net}, {}, {"epoch": 0}, same_as=best,
                            export=export)
    entry = json.load(open(best))["export"]
    assert json.load(open(final))["export"] == entry
    part = tmp_path / entry["files"]["-meta.json"]
    assert entry["sha256"]["-meta.json"] == hashlib.sha256(part.read_bytes()).hexdigest()
    assert read_meta(str(tmp_path / entry["prefix"]))["checkpoint"] is None
    assert read_meta(str(tmp_path / "run-best-student"))["checkpoint"] == "run-best.json"
    assert read_meta(str(tmp_path / "run-final-student"))["checkpoint"] == "run-final.json"
    assert read_meta(str(tmp_path / "run-final-student"))["classes"] == ["a"]
    # the next start removes the copy of a deleted manifest's tag and repairs a missing one
    from gankd_gluon.engine.checkpoint import clean_run_folder
    (tmp_path / "run-final.json").unlink()
    (tmp_path / "run-best-student-meta.json").unlink()
    clean_run_folder(prefix)
    assert not (tmp_path / "run-final-student-meta.json").exists()
    assert read_meta(str(tmp_path / "run-best-student"))["checkpoint"] == "run-best.json"
    assert part.exists()


def test_git_commit_of_a_checkout_and_outside(tmp_path):
    commit = git_commit()
    assert commit is None or len(commit.split("-")[0]) == 40
    assert git_commit(str(tmp_path)) is None
