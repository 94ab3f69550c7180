"""Split names of one's own dataset (``--train-split`` / ``--val-split``): a VOC-layout set split
as ``train.txt``/``val.txt`` (CVAT's and Roboflow's exports) and COCO jsons named
``instances_<name>.json`` train and evaluate; the defaults are today's names; a missing split
names the files that are there and the flag to pass; a changed split on resume is a changed
setting."""
import argparse
import json
import os
import sys

import pytest

from gankd_gluon.data import datasets as D
from gankd_gluon.data.synthetic import make_synthetic_voc
from gankd_gluon.engine.checkpoint import compare_settings
from gankd_gluon.engine.cli import run_main
from gankd_gluon.usage import EXIT_OK

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
import eval_coco  # noqa: E402
import eval_voc  # noqa: E402
import train_ssd  # noqa: E402
from test_readme import ROOT, readme_block  # noqa: E402

NUM_TRAIN, NUM_TEST = 8, 4
TINY = ["--gpus", "", "--data-shape", "64", "--network", "mobilenet0.25", "--batch-size", "4",
        "--num-workers", "0", "--pretrained-base", "none", "--augment", "flip", "--epochs", "1",
        "--no-progress"]


@pytest.fixture
def root(tmp_path):
    """A VOC2007-only dataset split as ImageSets/Main/train.txt and val.txt, and its COCO
    jsons as ``annotations/instances_mytrain.json`` / ``instances_myval.json`` (images in
    ``mytrain/`` and ``myval/``, found by ``file_name``)."""
    data = str(tmp_path / "mine")
    make_synthetic_voc(data, seed=0, num_train=NUM_TRAIN, num_test=NUM_TEST,
                       image_size=(64, 64))
    main = os.path.join(data, "VOCdevkit", "VOC2007", "ImageSets", "Main")
    os.rename(os.path.join(main, "trainval.txt"), os.path.join(main, "train.txt"))
    os.rename(os.path.join(main, "test.txt"), os.path.join(main, "val.txt"))
    annotations = os.path.join(data, "coco", "annotations")
    for old, new in (("trainval", "mytrain"), ("test", "myval")):
        path = os.path.join(annotations, "instances_%s.json" % old)
        with open(path) as f:
            gt = json.load(f)
        os.remove(path)
        for img in gt["images"]:
            del img["coco_url"]
        with open(os.path.join(annotations, "instances_%s.json" % new), "w") as f:
            json.dump(gt, f)
        os.symlink(os.path.join(data, "VOCdevkit", "VOC2007", "JPEGImages"),
                   os.path.join(data, "coco", new))
    return data


# ------------------------------------------------------------------------------------------
# names and defaults
# ------------------------------------------------------------------------------------------
def test_defaults_are_the_kinds_own_names():
    assert D.split_names("voc") == ("trainval", "test")
    assert D.split_names("synthetic") == ("trainval", "test")
    assert D.split_names("coco") == ("train2017", "val2017")
    assert D.split_names("synthetic_coco") == ("trainval", "test")
    assert D.split_names("coco", "mytrain") == ("mytrain", "val2017")
    assert D.split_names("voc", val_split="val") == ("trainval", "val")
    with pytest.raises(ValueError, match="--train-split 'a/b': a split name, not a path"):
        D.split_names("voc", "a/b")


@pytest.mark.parametrize("text, words", [
    ("", "empty"), ("  ", "empty"), ("a/b", "not a path"), ("a\\b", "not a path"),
    ("..", "not a path"), ("train.txt", "without .txt (train)"),
    ("instances_x.json", "without .json (instances_x)"), (" train", "spaces"),
])
def test_split_name_arg_refuses(text, words):
    with pytest.raises(argparse.ArgumentTypeError, match=words.replace("(", r"\(")
                       .replace(")", r"\)")):
        D.split_name_arg(text)


def test_split_name_arg_takes_a_name():
    assert D.split_name_arg("val") == "val"
    assert D.split_name_arg("my_train-2") == "my_train-2"


@pytest.mark.parametrize("dataset, train, val", [
    ("voc", "trainval", "test"), ("coco", "train2017", "val2017"),
    ("synthetic", "trainval", "test"), ("synthetic_coco", "trainval", "test")])
def test_training_args_record_the_names_read(dataset, train, val, monkeypatch):
    """Left out, the split flags are set to the kind's names (so the log's Namespace line and
    the checkpoint record them); given as the default, the args are the same."""
    monkeypatch.setattr(sys, "argv", ["train_ssd.py"])
    base = ["--gpus", "", "--dataset", dataset]
    args = train_ssd.parse_args(base)
    assert (args.train_split, args.val_split) == (train, val)
    explicit = train_ssd.parse_args(base + ["--train-split", train, "--val-split", val])
    assert vars(explicit) == vars(args)


def test_eval_scripts_take_only_the_evaluation_split(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["eval_voc.py"])
    args = eval_voc.parse_args(["--dataset", "synthetic", "--detections", "d", "--val-split",
                                "val"])
    assert args.val_split == "val" and not hasattr(args, "train_split")


def test_changed_split_on_resume_is_a_changed_setting():
    saved = {"train_split": "trainval", "val_split": "test", "lr": 0.1}
    assert compare_settings(saved, dict(saved)) == ([], [])
    changed = dict(saved, train_split="train", val_split="val")
    assert compare_settings(saved, changed) == (
        ['--train-split "trainval" -> "train"', '--val-split "test" -> "val"'], [])
    assert compare_settings(saved, changed, ["--val-split"]) == (
        ['--train-split "trainval" -> "train"'], ['--val-split "test" -> "val"'])
    # a checkpoint written before the flags existed read the default files: not compared
    assert compare_settings({"lr": 0.1}, changed) == ([], [])


# ------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------
def test_voc_train_and_val_split_files(root):
    train, val = D.get_splits("synthetic", root, train_split="train", val_split="val")
    assert (len(train), len(val)) == (NUM_TRAIN, NUM_TEST)
    assert train.report.name == "SyntheticVOCDetection(2007train)"
    assert val.report.name == "SyntheticVOCDetection(2007val)"


@pytest.mark.parametrize("role, flag", [("train", "--train-split"), ("test", "--val-split")])
def test_missing_voc_split_names_the_flag(root, role, flag):
    main = os.path.join(root, "VOCdevkit", "VOC2007", "ImageSets", "Main")
    with pytest.raises(D.DatasetNotFoundError) as err:
        D.get_dataset("voc", root, role, train_years=(2007,) if role == "train" else None)
    missing = os.path.join(main, "trainval.txt" if role == "train" else "test.txt")
    assert str(err.value) == ("split file not found: %s. %s holds train.txt, val.txt: pass %s "
                              "NAME with one of them (train, val)" % (missing, main, flag))


def test_voc_per_class_lists_are_not_offered_as_splits(root):
    main = os.path.join(root, "VOCdevkit", "VOC2007", "ImageSets", "Main")
    open(os.path.join(main, "circle_train.txt"), "w").close()     # the devkit's per-class list
    open(os.path.join(main, "my_set.txt"), "w").close()           # an underscore in a name
    with pytest.raises(D.DatasetNotFoundError, match=r"holds my_set.txt, train.txt, val.txt: "
                                                     r"pass --val-split NAME with one of them "
                                                     r"\(my_set, train, val\)"):
        D.get_dataset("voc", root, "test")


def test_coco_jsons_of_own_names(root):
    train, val = D.get_splits("synthetic_coco", root, train_split="mytrain", val_split="myval")
    assert (len(train), len(val)) == (NUM_TRAIN, NUM_TEST)
    assert train.report.name == "SyntheticCOCODetection(instances_mytrain)"
    annotations = os.path.join(root, "coco", "annotations")
    with pytest.raises(D.DatasetNotFoundError) as err:
        D.get_dataset("synthetic_coco", root, "train")
    assert str(err.value) == (
        "annotation file not found: %s. %s holds instances_mytrain.json, instances_myval.json: "
        "pass --train-split NAME with one of them (mytrain, myval; the COCO layout reads "
        "annotations/instances_NAME.json)"
        % (os.path.join(annotations, "instances_trainval.json"), annotations))


def test_coco_json_without_the_instances_prefix_is_named(root):
    annotations = os.path.join(root, "coco", "annotations")
    for name in os.listdir(annotations):
        os.rename(os.path.join(annotations, name),
                  os.path.join(annotations, name[len("instances_"):]))
    with pytest.raises(D.DatasetNotFoundError, match=r"holds mytrain.json, myval.json: the COCO "
                                                     r"layout reads annotations/instances_NAME"
                                                     r".json; rename yours to instances_NAME"
                                                     r".json and pass --val-split NAME"):
        D.get_dataset("synthetic_coco", root, "test", split_name="myval")


# ------------------------------------------------------------------------------------------
# end to end: train one epoch, evaluate, on each layout
# ------------------------------------------------------------------------------------------
def test_voc_train_val_split_trains_and_evaluates(root, tmp_path, capsys):
    out = str(tmp_path / "out")
    args = train_ssd.parse_args(["--dataset", "synthetic", "--dataset-root", root,
                                 "--train-split", "train", "--val-split", "val",
                                 "--save-dir", out, "--log-dir", out, "--save-prefix", "r"] + TINY)
    assert run_main(train_ssd.main, args) == EXIT_OK
    with open(os.path.join(out, "r_train.log")) as f:
        log = f.read()
    assert "train_split='train'" in log and "val_split='val'" in log
    assert "data: SyntheticVOCDetection(2007train): kept %d images" % NUM_TRAIN in log
    manifest = os.path.join(out, "r", "r-final.json")
    with open(manifest) as f:
        saved = json.load(f)["args"]
    assert (saved["train_split"], saved["val_split"]) == ("train", "val")
    dets = str(tmp_path / "dets")
    capsys.readouterr()
    args = eval_voc.parse_args(["--dataset", "synthetic", "--dataset-root", root, "--val-split",
                                "val", "--checkpoint", manifest, "--save-detections", dets,
                                "--no-progress", "--out", str(tmp_path / "ap.json")])
    assert run_main(eval_voc.main, args) == EXIT_OK
    assert capsys.readouterr().out.split()[-1].startswith("mAP=")
    # the devkit names result files by the set they score: <comp>_det_<set>_<class>.txt
    assert sorted(os.listdir(dets)) == sorted("comp4_det_val_%s.txt" % c
                                              for c in D.dataset_classes("synthetic"))
    with open(str(tmp_path / "ap.json")) as f:
        assert json.load(f)["split"] == "val"
    args = eval_voc.parse_args(["--dataset", "synthetic", "--dataset-root", root, "--val-split",
                                "val", "--detections", dets, "--no-progress"])
    assert run_main(eval_voc.main, args) == EXIT_OK


def test_coco_own_json_names_train_and_evaluate(root, tmp_path, capsys):
    out = str(tmp_path / "out")
    args = train_ssd.parse_args(["--dataset", "synthetic_coco", "--dataset-root", root,
                                 "--train-split", "mytrain", "--val-split", "myval",
                                 "--save-dir", out, "--log-dir", out, "--save-prefix", "r"] + TINY)
    assert run_main(train_ssd.main, args) == EXIT_OK
    with open(os.path.join(out, "r_train.log")) as f:
        assert "data: SyntheticCOCODetection(instances_mytrain): kept %d images" % NUM_TRAIN \
            in f.read()
    capsys.readouterr()
    args = eval_coco.parse_args(["--dataset", "synthetic_coco", "--dataset-root", root,
                                 "--val-split", "myval", "--checkpoint",
                                 os.path.join(out, "r", "r-final.json"), "--no-progress",
                                 "--out", str(tmp_path / "ap.json")])
    assert run_main(eval_coco.main, args) == EXIT_OK
    with open(str(tmp_path / "ap.json")) as f:
        result = json.load(f)
    assert result["split"] == "myval" and result["num_images"] == NUM_TEST


@pytest.mark.slow
def test_readme_train_val_split_commands(tmp_path):
    """README "Your own dataset": a dataset split as train.txt/val.txt, trained and evaluated
    with --train-split train --val-split val, as written."""
    import subprocess
    commands = readme_block("Split files of other names are read by name")
    assert [c.split()[:2] for c in commands] == [
        ["python", "scripts/make_synthetic_voc.py"], ["mv", "cvat/VOCdevkit/VOC2007/ImageSets/"
                                                      "Main/trainval.txt"],
        ["mv", "cvat/VOCdevkit/VOC2007/ImageSets/Main/test.txt"],
        ["python", "scripts/train_ssd.py"], ["python", "scripts/eval_voc.py"]]
    os.symlink(os.path.join(ROOT, "scripts"), str(tmp_path / "scripts"))
    env = dict(os.environ, PYTHONPATH=ROOT,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    outputs = []
    for command in commands:
        proc = subprocess.run(command, shell=True, cwd=str(tmp_path), env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
        outputs.append(proc.stdout)
    names = ["helmet", "vest", "glove", "boot", "goggles"]
    assert [line.split("=")[0] for line in outputs[4].split()] == names + ["mAP"]
    assert sorted(os.listdir(str(tmp_path / "dets"))) == sorted(
        "comp4_det_val_%s.txt" % n for n in names)
