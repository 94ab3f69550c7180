"""Own dataset end to end at tiny scale: a VOC2007-only dataset with 5 own class names trains a
teacher, distils a GAN-KD student from it and evaluates it; the same through COCO json with
non-contiguous category ids. The own names must reach the log's AP lines, the devkit files and
the checkpoint; a teacher of other classes is refused naming both lists."""
import json
import os
import subprocess

import pytest

import dist_fixtures as dist
from test_own_dataset import CAT_IDS, OWN, own_coco

pytestmark = pytest.mark.slow

COMMON = ["--gpus", "", "--data-shape", str(dist.DATA_SHAPE), "--batch-size", "8",
          "--augment", "flip", "--pretrained-base", "none", "--num-workers", "0",
          "--no-progress"]


def _run(argv):
    env = dict(os.environ, PYTHONPATH=dist.ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([dist.PY] + argv, capture_output=True, text=True, env=env, timeout=900)


def _script(name):
    return os.path.join(dist.ROOT, "scripts", name)


def _teacher_and_student(data, out, dataset_flags):
    teacher = _run([_script("train_ssd.py"), "--network", "mobilenet0.25", "--epochs", "1",
                    "--optimizer", "adam", "--save-dir", out, "--log-dir", out,
                    "--save-prefix", "teacher", "--dataset-root", data] + dataset_flags + COMMON)
    assert teacher.returncode == 0, teacher.stderr[-3000:]
    student = _run([_script("train_ssd_gan_kd.py"), "--student", "mobilenet0.25",
                    "--teacher", "mobilenet0.25", "--teacher-params",
                    os.path.join(out, "teacher", "teacher-final-net"),
                    "--gan-epochs", "1", "--epochs", "1", "--critic-channels", "8",
                    "--save-dir", out, "--log-dir", out, "--save-prefix", "student",
                    "--dataset-root", data] + dataset_flags + COMMON)
    assert student.returncode == 0, student.stderr[-3000:]
    return os.path.join(out, "student", "student-final.json")


def test_voc2007_only_own_classes(tmp_path):
    from gankd_gluon.data.synthetic import make_synthetic_voc
    data = str(tmp_path / "mine")
    make_synthetic_voc(data, seed=1, num_train=16, num_test=8, class_names=OWN)
    out = str(tmp_path / "out")
    flags = ["--dataset", "voc", "--train-years", "2007", "--classes", ",".join(OWN)]
    manifest = _teacher_and_student(data, out, flags)
    with open(os.path.join(out, "student_train.log")) as f:
        log = f.read()
    assert all("%s=" % c for c in OWN) and all(("\n%s=" % c) in log for c in OWN)
    assert "data: CheckedVOCDetection(2007trainval): kept 16 images" in log
    with open(manifest) as f:
        assert json.load(f)["kind"]["classes"] == list(OWN)
    dets = str(tmp_path / "dets")
    ev = _run([_script("eval_voc.py"), "--dataset", "voc", "--dataset-root", data, "--classes",
               ",".join(OWN), "--checkpoint", manifest, "--save-detections", dets,
               "--no-progress", "--data-shape", str(dist.DATA_SHAPE)])
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert [line.split("=")[0] for line in ev.stdout.split()] == list(OWN) + ["mAP"]
    assert sorted(os.listdir(dets)) == sorted("comp4_det_test_%s.txt" % c for c in OWN)
    # a teacher trained on other classes is refused with both lists, nothing written
    refused = _run([_script("train_ssd_gan_kd.py"), "--student", "mobilenet0.25",
                    "--teacher", "mobilenet0.25", "--teacher-params",
                    os.path.join(out, "teacher", "teacher-final-net"), "--dataset", "voc",
                    "--train-years", "2007", "--classes", "helmet,vest,glove,boot,mask",
                    "--dataset-root", data, "--save-dir", str(tmp_path / "no"), "--log-dir",
                    str(tmp_path / "no")] + COMMON)
    assert refused.returncode == 2
    line = refused.stderr.strip().splitlines()[-1]
    assert "the teacher predicts 5 classes (helmet, vest, glove, boot, goggles), the data " \
           "has 5 (helmet, vest, glove, boot, mask)" in line
    assert not os.path.exists(str(tmp_path / "no"))


def test_coco_json_own_categories(tmp_path):
    from gankd_gluon.data.synthetic import make_synthetic_voc
    root = str(tmp_path / "gen")
    make_synthetic_voc(root, seed=1, num_train=16, num_test=8, class_names=OWN)
    data = own_coco(root, drop_area=5)
    out = str(tmp_path / "out")
    manifest = _teacher_and_student(data, out, ["--dataset", "coco"])
    with open(os.path.join(out, "student_train.log")) as f:
        log = f.read()
    assert all(("\n%s=" % c) in log for c in OWN)
    assert "COCO AP@[.5:.95]" in log
    assert "data: noted 5 objects: COCO annotations without a numeric area" in log
    with open(manifest) as f:
        assert json.load(f)["kind"]["classes"] == list(OWN)
    res = str(tmp_path / "res.json")
    ev = _run([_script("eval_coco.py"), "--dataset", "coco", "--dataset-root", data,
               "--checkpoint", manifest, "--save-detections", res, "--no-progress",
               "--data-shape", str(dist.DATA_SHAPE)])
    assert ev.returncode == 0, ev.stderr[-3000:]
    names = [line.split("=")[0] for line in ev.stdout.split()]
    assert names[:5] == list(OWN)
    with open(res) as f:
        assert {r["category_id"] for r in json.load(f)} <= set(CAT_IDS)
