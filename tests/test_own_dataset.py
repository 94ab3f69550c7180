"""Own datasets: own class names (VOC and COCO layouts) and annotations as real tools write
them; each kind of input with the values a correct loader gives. Fast tests on a tiny
generated set; the end-to-end runs are in test_own_dataset_e2e.py."""
import codecs
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from gankd_gluon.data import datasets as D
from gankd_gluon.data.classes import ClassListError, parse_classes, read_text_lines
from gankd_gluon.data.synthetic import make_synthetic_voc
from gankd_gluon.engine.cli import run_main
from gankd_gluon.usage import EXIT_USAGE
from gankd_gluon.eval.coco import coco_evaluate
from gankd_gluon.eval.devkit import score_devkit_dir
from gankd_gluon.eval.results import dataset_ground_truth

OWN = ("helmet", "vest", "glove", "boot", "goggles")
NUM_TRAIN, NUM_TEST = 6, 4


@pytest.fixture
def root(tmp_path):
    """A VOC2007-only dataset whose classes are OWN (the generated shapes renamed)."""
    make_synthetic_voc(str(tmp_path), seed=0, num_train=NUM_TRAIN, num_test=NUM_TEST,
                       image_size=(96, 96), class_names=OWN)
    return str(tmp_path)


def voc(root, *parts):
    return os.path.join(root, "VOCdevkit", "VOC2007", *parts)


def set_split(root, lines, split="trainval", encoding=None, raw=None):
    path = voc(root, "ImageSets", "Main", split + ".txt")
    with open(path, "wb") as f:
        f.write(raw if raw is not None else "".join(i + "\n" for i in lines).encode(
            encoding or "utf-8"))
    return path


# ------------------------------------------------------------------------------------------
# --classes
# ------------------------------------------------------------------------------------------
def test_parse_classes_list_and_file(tmp_path):
    assert parse_classes("Helmet, vest,glove") == ("helmet", "vest", "glove")
    path = tmp_path / "classes.txt"
    path.write_bytes(codecs.BOM_UTF8 + b"# my classes\r\nhelmet\r\n\r\nvest\t\r\n")
    assert parse_classes(str(path)) == ("helmet", "vest")


@pytest.mark.parametrize("value, words", [
    ("a,,b", "--classes a,,b: name 2 is empty"),
    ("a,b,a", "'a' is repeated (first at 1)"),
    ("", "no class names"),
    # a mistyped path is not one class name (it would become comp4_det_test_my.txt.txt)
    ("my_classes.txt", "--classes my_classes.txt: no such file"),
    ("lists/ppe", "--classes lists/ppe: no such file"),
    ("cat,dog/x", "name 2: 'dog/x' has a path separator inside"),
    ("cat,a=b", "name 2: 'a=b' has '=', '[' or ']' inside"),
    ("person[1]", "name 1: 'person[1]' has '=', '[' or ']' inside"),
    ("cat,dog\\x", "name 2: 'dog\\\\x' has a path separator inside"),
])
def test_parse_classes_refuses(value, words):
    with pytest.raises(ClassListError) as err:
        parse_classes(value)
    assert words in str(err.value)


def test_parse_classes_dotted_name_is_a_name():
    assert parse_classes("traffic.light") == ("traffic.light",)


def test_parse_classes_file_errors(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"helmet\nvest\nhelmet\n")
    with pytest.raises(ClassListError, match=r"c.txt line 3: 'helmet' is repeated"):
        parse_classes(str(path))
    path.write_bytes(b"helmet\nv\xe9st\n")
    with pytest.raises(ClassListError, match=r"c.txt line 2: byte 0xe9 at column 2 is not UTF-8"):
        parse_classes(str(path))


def test_read_text_lines_utf16(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("000001\r\nna\u00efve 2\r\n".encode("utf-16"))
    assert read_text_lines(str(path)) == [(1, "000001"), (2, "na\u00efve 2")]


def test_own_classes_voc2007_only(root):
    train, test = D.get_splits("voc", root, classes=OWN, train_years=(2007,))
    assert train.classes == OWN and test.classes == OWN
    assert (len(train), len(test)) == (NUM_TRAIN, NUM_TEST)
    assert train.report.counts["unknown_class"] == 0
    labels = np.concatenate([train[i][1] for i in range(len(train))])
    assert set(labels[:, 4].astype(int)) <= set(range(5))
    # the file form gives the same classes and labels
    path = os.path.join(root, "classes.txt")
    with open(path, "w") as f:
        f.write("\n".join(OWN) + "\n")
    again = D.get_dataset("voc", root, "train", train_years=(2007,), classes=parse_classes(path))
    np.testing.assert_array_equal(again[0][1], train[0][1])


def test_without_classes_the_error_lists_the_names_found(root):
    with pytest.raises(D.DataError) as err:
        D.get_dataset("voc", root, "train", train_years=(2007,))
    text = str(err.value)
    assert "--classes" in text and "boot, glove, goggles, helmet, vest" in text
    assert "\n" not in text


def test_test_split_without_classes_lists_the_names_found(root):
    """The test split keeps images without objects; one whose objects are all of other classes
    (an own dataset read with VOC's names) stops as the training split does, naming the flag."""
    with pytest.raises(D.DataError) as err:
        D.get_dataset("voc", root, "test")
    text = str(err.value)
    with open(voc(root, "ImageSets", "Main", "test.txt")) as f:
        test_ids = f.read().split()
    names = set()
    for image_id in test_ids:
        with open(voc(root, "Annotations", image_id + ".xml")) as f:
            names.update(t.split("</name>")[0] for t in f.read().split("<name>")[1:])
    assert names and names <= set(OWN)
    assert "2007test" in text and "\n" not in text
    assert "pass --classes %s " % ",".join(sorted(names)) in text
    # objects of no class at all (negative images only) are not an error
    for name in os.listdir(voc(root, "Annotations")):
        path = voc(root, "Annotations", name)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text[:text.index("<object>")] + "</annotation>\n")
    test = D.get_dataset("voc", root, "test", classes=OWN)
    assert len(test) == NUM_TEST and test.report.kept_objects == 0


def test_voc2012_missing_names_the_split_file(root):
    with pytest.raises(D.DatasetNotFoundError, match=r"VOC2012.ImageSets.Main.trainval.txt"):
        D.get_dataset("voc", root, "train", classes=OWN)


def test_split_files_of_other_names_are_named(root):
    """An own dataset split as train.txt/val.txt: the error names them and test.txt, not how
    to download Pascal VOC."""
    main = voc(root, "ImageSets", "Main")
    os.rename(os.path.join(main, "test.txt"), os.path.join(main, "val.txt"))
    with pytest.raises(D.DatasetNotFoundError) as err:
        D.get_dataset("voc", root, "test", classes=OWN)
    text = str(err.value)
    assert text == ("split file not found: %s. %s holds trainval.txt, val.txt: pass --val-split "
                    "NAME with one of them (trainval, val)" % (os.path.join(main, "test.txt"),
                                                               main))
    assert len(D.get_dataset("voc", root, "test", classes=OWN, split_name="val")) == NUM_TEST


def test_subset_of_classes_drops_the_others(root):
    train = D.get_dataset("voc", root, "train", train_years=(2007,), classes=("vest", "helmet"))
    assert train.classes == ("vest", "helmet")
    assert set(train.report.unknown_classes) <= {"glove", "boot", "goggles"}


# ------------------------------------------------------------------------------------------
# the annotation's frame and the image file
# ------------------------------------------------------------------------------------------
def _set_size(root, image_id, width, height):
    path = voc(root, "Annotations", image_id + ".xml")
    with open(path) as f:
        text = f.read()
    text = text.replace("<width>96</width>", "<width>%d</width>" % width)
    text = text.replace("<height>96</height>", "<height>%d</height>" % height)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_frame_differs_from_pixels_skips_the_image(root):
    """XML says 1024x1024, the file is a 96x96 tile: skipped, never trained on wrong boxes."""
    xml = _set_size(root, "000002", 1024, 1024)
    train = D.get_dataset("voc", root, "train", train_years=(2007,), classes=OWN)
    assert len(train) == NUM_TRAIN - 1 and train.report.counts["frame_mismatch"] == 1
    assert xml in train.summary() and "<size> says 1024x1024, 000002.jpg is 96x96" in \
        train.summary()
    assert "000002" in train.report.skipped_ids
    for i in range(1, NUM_TRAIN + 1):
        _set_size(root, "%06d" % i, 1024, 1024)
    with pytest.raises(D.DataError, match="no usable images .*frame_mismatch"):
        D.get_dataset("voc", root, "train", train_years=(2007,), classes=OWN)


def test_exif_rotated_annotation_is_named(root):
    from PIL import Image
    path = voc(root, "JPEGImages", "000003.jpg")
    img = Image.fromarray(np.zeros((96, 64, 3), np.uint8))      # stored 64 wide, 96 high
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, exif=exif.tobytes())
    _set_size(root, "000003", 96, 64)            # annotated on the rotated view
    train = D.get_dataset("voc", root, "train", train_years=(2007,), classes=OWN)
    assert train.report.counts["frame_mismatch"] == 1
    assert "EXIF-rotated view (orientation 6)" in train.summary()


def test_png_images_found_by_id(root):
    for i in range(1, NUM_TRAIN + 1):
        jpg = voc(root, "JPEGImages", "%06d.jpg" % i)
        cv2.imwrite(jpg[:-4] + ".png", cv2.imread(jpg))
        os.remove(jpg)
    train = D.get_dataset("voc", root, "train", train_years=(2007,), classes=OWN)
    assert len(train) == NUM_TRAIN and train[0][0].shape == (96, 96, 3)


def test_missing_image_names_other_files(root):
    jpg = voc(root, "JPEGImages", "000002.jpg")
    shutil.move(jpg, jpg[:-4] + ".tif")
    train = D.get_dataset("voc", root, "train", train_years=(2007,), classes=OWN)
    assert "file not found (found 000002.tif, not a JPEG/PNG extension" in train.summary()


# ------------------------------------------------------------------------------------------
# split files
# ------------------------------------------------------------------------------------------
def test_split_file_not_utf8_stops_naming_file_and_line(root):
    path = set_split(root, None, raw=b"000001\n000002\n00\xff003\n")
    with pytest.raises(D.DataError) as err:
        D.get_dataset("voc", root, "train", train_years=(2007,), classes=OWN)
    assert "%s line 3: byte 0xff at column 3 is not UTF-8" % path in str(err.value)


def test_split_file_utf16_and_bom_are_read(root):
    ids = ["%06d" % i for i in range(1, NUM_TRAIN + 1)]
    set_split(root, ids, encoding="utf-16")
    assert len(D.get_dataset("voc", root, "train", train_years=(2007,), classes=OWN)) == NUM_TRAIN
    set_split(root, None, raw=codecs.BOM_UTF8 + "\r\n".join(ids).encode())
    assert len(D.get_dataset("voc", root, "train", train_years=(2007,), classes=OWN)) == NUM_TRAIN


def test_repeated_ids_are_read_once_and_reported(root):
    path = set_split(root, ["000001", "000002", "000001", "000003"])
    train = D.get_dataset("voc", root, "train", train_years=(2007,), classes=OWN)
    assert len(train) == 3 and train.report.counts["repeated_id"] == 1
    assert "%s line 3 (id '000001' first at line 1)" % path in train.summary()


def test_unread_elements_are_reported(root):
    path = voc(root, "Annotations", "000002.xml")
    with open(path) as f:
        text = f.read()
    text = text.replace("<pose>", "<robndbox><cx>1</cx></robndbox><pose>", 1)
    with open(path, "w") as f:
        f.write(text)
    train = D.get_dataset("voc", root, "train", train_years=(2007,), classes=OWN)
    assert train.report.unused_fields == {"object/robndbox": 1}
    assert "object/robndbox x1" in train.summary()
    assert len(train) == NUM_TRAIN


# ------------------------------------------------------------------------------------------
# ground truth scored as the devkit scores it
# ------------------------------------------------------------------------------------------
def _devkit_files_from_ground_truth(root, ids, det_dir, shift_first_to_zero=None):
    """Result files that repeat the XML ground truth exactly (1-based values as written)."""
    import xml.etree.ElementTree as ET
    os.makedirs(det_dir, exist_ok=True)
    lines = {c: [] for c in OWN}
    for image_id in ids:
        tree = ET.parse(voc(root, "Annotations", image_id + ".xml"))
        for obj in tree.getroot().iter("object"):
            box = [obj.find("bndbox").find(t).text for t in ("xmin", "ymin", "xmax", "ymax")]
            lines[obj.find("name").text].append("%s 1.0 %s" % (image_id, " ".join(box)))
    for c in OWN:
        with open(os.path.join(det_dir, "comp4_det_test_%s.txt" % c), "w") as f:
            f.write("".join(line + "\n" for line in lines[c]))


def test_box_at_xmin_0_scores_as_the_devkit(root, tmp_path):
    """A 0-based tool's xmin=0: the devkit keeps it, and results repeating the ground truth
    score AP 1.0 on every class (the loader used to drop it: 0.945 on that class)."""
    test_ids = ["%06d" % i for i in range(NUM_TRAIN + 1, NUM_TRAIN + NUM_TEST + 1)]
    path = voc(root, "Annotations", test_ids[0] + ".xml")
    with open(path) as f:
        text = f.read()
    start = text.index("<xmin>") + len("<xmin>")
    text = text[:start] + "0" + text[text.index("</xmin>"):]
    with open(path, "w") as f:
        f.write(text)
    test = D.get_dataset("voc", root, "test", classes=OWN)
    assert test.report.counts["box_outside"] == 1 and test.report.counts["invalid_box"] == 0
    det = str(tmp_path / "dets")
    _devkit_files_from_ground_truth(root, test_ids, det)
    names, values = score_devkit_dir(det, dataset_ground_truth(test), OWN)
    present = [v for v in values[:-1] if not np.isnan(v)]
    assert present and present == pytest.approx([1.0] * len(present))
    assert values[-1] == pytest.approx(1.0)


def test_result_lines_of_skipped_images_are_counted(root, tmp_path, caplog):
    test_ids = ["%06d" % i for i in range(NUM_TRAIN + 1, NUM_TRAIN + NUM_TEST + 1)]
    os.remove(voc(root, "JPEGImages", test_ids[1] + ".jpg"))
    test = D.get_dataset("voc", root, "test", classes=OWN)
    assert test_ids[1] in test.report.skipped_ids
    det = str(tmp_path / "dets")
    _devkit_files_from_ground_truth(root, test_ids, det)
    names, values = score_devkit_dir(det, dataset_ground_truth(test), OWN,
                                     skipped_ids=test.report.skipped_ids)
    assert values[-1] == pytest.approx(1.0)
    assert "name 1 images the loader skipped" in caplog.text and test_ids[1] in caplog.text
    with open(os.path.join(det, "comp4_det_test_helmet.txt"), "a") as f:
        f.write("999999 0.5 1 1 5 5\n")
    with pytest.raises(ValueError, match="image id '999999' is not in the evaluated split"):
        score_devkit_dir(det, dataset_ground_truth(test), OWN,
                         skipped_ids=test.report.skipped_ids)


# ------------------------------------------------------------------------------------------
# COCO json written by other tools
# ------------------------------------------------------------------------------------------
CAT_IDS = (3, 7, 8, 20, 21)


def own_coco(root, drop_area=0):
    """``root/mycoco`` in COCO's layout from the generated json: non-contiguous category ids,
    no ``coco_url`` (images found by ``file_name`` under ``train2017/`` and ``val2017/``),
    the first ``drop_area`` annotations without ``area``."""
    out = os.path.join(root, "mycoco")
    os.makedirs(os.path.join(out, "annotations"), exist_ok=True)
    for split, name in (("trainval", "train2017"), ("test", "val2017")):
        with open(os.path.join(root, "coco", "annotations", "instances_%s.json" % split)) as f:
            data = json.load(f)
        remap = {k + 1: CAT_IDS[k] for k in range(5)}
        data["categories"] = [dict(c, id=remap[c["id"]]) for c in data["categories"]][::-1]
        for ann in data["annotations"]:
            ann["category_id"] = remap[ann["category_id"]]
        for ann in data["annotations"][:drop_area]:
            del ann["area"]
        for img in data["images"]:
            del img["coco_url"]
        with open(os.path.join(out, "annotations", "instances_%s.json" % name), "w") as f:
            json.dump(data, f)
        os.symlink(voc(root, "JPEGImages"), os.path.join(out, name))
    return out


def test_coco_own_categories_in_id_order(root):
    out = own_coco(root)
    train, test = D.get_splits("coco", out)
    assert train.classes == OWN and test.classes == OWN
    assert train.contiguous_id_to_json == dict(enumerate(CAT_IDS))
    assert (len(train), len(test)) == (NUM_TRAIN, NUM_TEST)
    with pytest.raises(D.DataError, match="differ from --classes"):
        D.get_dataset("coco", out, "train", classes=("vest", "helmet", "glove", "boot",
                                                     "goggles"))


def test_coco_annotation_without_area(root):
    """Training keeps the object (area = w x h) and COCOeval scores it instead of raising
    KeyError: 'area'; results repeating the ground truth score AP 1.0."""
    out = own_coco(root, drop_area=10 ** 6)
    train = D.get_dataset("coco", out, "train")
    assert train.report.counts["area_computed"] == train.report.kept_objects > 0
    assert train.report.counts["bad_object"] == 0
    test = D.get_dataset("coco", out, "test")
    gt = test.coco
    results = [{"image_id": a["image_id"], "category_id": a["category_id"],
                "bbox": list(a["bbox"]), "score": 1.0} for a in gt.dataset["annotations"]]
    names, values = coco_evaluate(gt, results, OWN, cat_ids=list(CAT_IDS))
    assert values[len(OWN)] == pytest.approx(1.0)


def test_coco_missing_iscrowd_and_string_bbox(root):
    out = own_coco(root)
    path = os.path.join(out, "annotations", "instances_val2017.json")
    with open(path) as f:
        data = json.load(f)
    for ann in data["annotations"]:
        del ann["iscrowd"]
    data["annotations"][0]["bbox"] = [str(v) for v in data["annotations"][0]["bbox"]]
    data["annotations"][0]["rotation"] = 0
    with open(path, "w") as f:
        json.dump(data, f)
    test = D.get_dataset("coco", out, "test")
    assert test.report.counts["iscrowd_defaulted"] == len(data["annotations"])
    assert test.report.unused_fields == {"annotations[].rotation": 1}
    assert test.report.kept_objects == len(data["annotations"])


# ------------------------------------------------------------------------------------------
# a data error that stops a run: one line, exit 2, nothing written
# ------------------------------------------------------------------------------------------
def test_training_data_error_exit_2_writes_nothing(root, tmp_path, capsys):
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts"))
    import train_ssd
    out = tmp_path / "out"
    args = train_ssd.parse_args(["--dataset", "voc", "--dataset-root", root, "--train-years",
                                 "2007", "--gpus", "", "--network", "mobilenet0.25",
                                 "--data-shape", "128", "--save-dir", str(out), "--log-dir",
                                 str(out)])
    assert run_main(train_ssd.main, args) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "--classes boot,glove,goggles,helmet,vest" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_eval_of_an_own_model_without_classes_is_one_line_naming_them(root, tmp_path, capsys):
    """eval_voc.py with a model that names its classes, on an own dataset without --classes:
    one line naming the model's classes and --classes, before the data is read (no warning
    about each object of an unknown class)."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts"))
    import eval_voc
    from gankd_gluon.models.export_meta import build_meta, write_meta
    prefix = str(tmp_path / "net")
    with open(prefix + "-symbol.json", "w") as f:
        json.dump({"nodes": [{"op": "null", "name": "data"},
                             {"op": "null", "name": "ssd0_ssdanchorgenerator0_anchor_0"}]}, f)
    write_meta(prefix, build_meta("ssd", OWN, {"data_shape": 96}, commit=""))
    args = eval_voc.parse_args(["--dataset", "voc", "--dataset-root", root, "--symbol", prefix,
                                "--out", str(tmp_path / "ap.json")])
    assert run_main(eval_voc.main, args) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --symbol %s predicts 5 classes" % prefix)
    assert "pass --classes helmet,vest,glove,boot,goggles (the model's" in err[0]
    assert not (tmp_path / "ap.json").exists()
    # eval_coco.py: the json names the classes, so the fix is other data, not --classes
    import eval_coco
    write_meta(prefix, build_meta("ssd", OWN[::-1], {"data_shape": 96}, commit=""))
    args = eval_coco.parse_args(["--dataset", "coco", "--dataset-root", own_coco(root),
                                 "--symbol", prefix, "--out", str(tmp_path / "ap.json")])
    assert run_main(eval_coco.main, args) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("error: --symbol %s predicts 5 classes (goggles, boot, glove, vest, "
                       "helmet), the json's categories are 5 (helmet, vest, glove, boot, "
                       "goggles): evaluate on data of its classes (a COCO json's classes are "
                       "its categories, in category-id order), or pass --override-meta" % prefix)
    assert not (tmp_path / "ap.json").exists()
