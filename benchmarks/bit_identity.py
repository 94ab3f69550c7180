"""Bit-identity instrument for engine refactors: a few fixed-seed steps of SSD and Faster R-CNN
GAN-KD at tiny scale on the generated dataset, and the SHA-256 of every saved weight file.

Record the hashes on the code before a refactor, then check after every increment::

    python benchmarks/bit_identity.py --record hashes.json
    python benchmarks/bit_identity.py --check hashes.json

``--check`` exits 1 and names every file whose hash differs (or that appeared / went away).
The runs are those of the end-to-end tests (``tests/test_train_ssd_gan_kd.py``,
``tests/test_frcnn_train.py``), shortened to two or three epochs, with a learning-rate decay
inside each stage, for ``--method`` ``gan``, ``chen``, ``ko`` and ``gan+l2+cls+hints``
(SSD) and ``gan``, ``chen``, ``fgfi`` and ``l2+cls`` (Faster R-CNN): every distillation
term at least once. The hashes
are those of one machine: the same code on another CPU (or another BLAS, or another
thread count) gives other floating-point sums, so record before and check after on the same
machine. ``bit_identity_baseline.json`` beside this script is one such record (Faster R-CNN
at a global batch of 2, the smallest the default critics take), for the 2-core machine of
the project's CI. The teachers (one SSD epoch; an initialised ResNet101
Faster R-CNN) are built once per invocation with the same seeds. Weight files only
(``*.params``), not optimizer states, logs or JSON (which hold paths and times).
Takes a few minutes of one CPU.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

SSD_COMMON = ["--dataset", "synthetic", "--gpus", "", "--data-shape", "128", "--batch-size", "8",
              "--num-workers", "0", "--augment", "flip", "--pretrained-base", "none",
              "--log-interval", "2", "--no-progress"]
FRCNN_COMMON = ["--dataset", "synthetic", "--gpus", "", "--batch-size", "2", "--num-workers",
                "0", "--pretrained-base", "none", "--log-interval", "1", "--no-progress",
                "--short", "96", "--max-size", "96", "--num-sample", "8", "--roi-size", "7",
                "--rpn-train-pre-nms", "256", "--rpn-train-post-nms", "64",
                "--rpn-test-pre-nms", "128", "--rpn-test-post-nms", "8"]
#: every term of the one objective at least once, on each detector it is defined for
SSD_METHODS = ("gan", "chen", "ko", "gan+l2+cls+hints")
FRCNN_METHODS = ("gan", "chen", "fgfi", "l2+cls")


#: exported symbol blocks are named ``<run>-student-<random hex>-0000.params`` (a fresh name per
#: export): their key drops the random part and holds the sorted hashes of all such files
EXPORT = re.compile(r"-[0-9a-f]{16}-(\d{4})\.params$")


def _hashes(folder, root):
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.params"), recursive=True)):
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        key = EXPORT.sub(r"-*-\1.params", os.path.relpath(path, root))
        out[key] = ",".join(sorted(out.get(key, "").split(",") + [digest])).strip(",")
    return out


def run_ssd(root):
    import train_ssd
    import train_ssd_gan_kd
    from gankd_gluon.data.synthetic import make_synthetic_voc
    from gankd_gluon.engine.cli import run_main
    make_synthetic_voc(os.path.join(root, "ssd_data"), seed=0, num_train=16, num_test=8)
    data = ["--dataset-root", os.path.join(root, "ssd_data")]
    args = train_ssd.parse_args(SSD_COMMON + data + [
        "--network", "mobilenet0.5", "--epochs", "1", "--optimizer", "adam",
        "--save-dir", os.path.join(root, "ssd_teacher"), "--log-dir",
        os.path.join(root, "logs"), "--save-prefix", "teacher"])
    assert run_main(train_ssd.main, args) == 0
    teacher = os.path.join(root, "ssd_teacher", "teacher", "teacher-final.net.params")
    hashes = _hashes(os.path.join(root, "ssd_teacher"), root)
    for method in SSD_METHODS:
        out = os.path.join(root, "ssd_" + method)
        args = train_ssd_gan_kd.parse_args(SSD_COMMON + data + [
            "--student", "mobilenet0.25", "--teacher", "mobilenet0.5", "--teacher-params",
            teacher, "--gan-epochs", "2", "--epochs", "1", "--save-interval", "1",
            # the step schedules: stage 1's second epoch decayed (1-based, after epoch 1)
            "--gan-lr-decay-epoch", "1", "--lr-decay", "0.5",
            "--keep-last", "10", "--critic-channels", "16", "--method", method,
            "--save-dir", out, "--log-dir", os.path.join(root, "logs"),
            "--save-prefix", "ssd_" + method])
        assert run_main(train_ssd_gan_kd.main, args) == 0, method
        hashes.update(_hashes(out, root))
    return hashes


def run_frcnn(root):
    import mxnet as mx
    import train_faster_rcnn_gan_kd
    from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_voc
    from gankd_gluon.engine.cli import run_main
    from gankd_gluon.models.faster_rcnn import build_faster_rcnn, initialize_params
    make_synthetic_voc(os.path.join(root, "frcnn_data"), seed=0, num_train=2, num_test=2,
                       image_size=(96, 96))
    mx.random.seed(0)
    teacher = build_faster_rcnn("resnet101_v1d", SYNTHETIC_CLASSES, short=96, max_size=96,
                                num_sample=8, roi_size=7, rpn_train_post_nms=64,
                                rpn_test_post_nms=8)
    initialize_params(teacher, mx.cpu())
    with mx.autograd.predict_mode():
        teacher(mx.nd.zeros((1, 3, 96, 96)))
    tparams = os.path.join(root, "frcnn_teacher.params")
    teacher.save_parameters(tparams)
    hashes = {}
    for method in FRCNN_METHODS:
        out = os.path.join(root, "frcnn_" + method)
        # epochs count from 0 over both stages: stage 1 is 0..1 (GAN: 0 critic warm-up,
        # 1 adversarial), stage 2 is epoch 2
        args = train_faster_rcnn_gan_kd.parse_args(FRCNN_COMMON + [
            "--dataset-root", os.path.join(root, "frcnn_data"), "--teacher-params", tparams,
            # the step schedules (0-based, from the epoch given): logged epochs 1 and 2 decayed
            "--lr-decay-GAN-epoch", "1", "--gan-lr-decay", "0.5", "--lr-decay-epoch", "2",
            "--gan-epochs", "1", "--epochs", "3", "--train-D-eopch", "1", "--save-interval",
            "1", "--keep-last", "10", "--critic-channels", "8", "--method", method,
            "--save-dir", out, "--log-dir", os.path.join(root, "logs"),
            "--save-prefix", "frcnn_" + method])
        assert run_main(train_faster_rcnn_gan_kd.main, args) == 0, method
        hashes.update(_hashes(out, root))
    return hashes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", metavar="JSON", help="write the hashes to this file")
    group.add_argument("--check", metavar="JSON", help="compare with the hashes in this file")
    parser.add_argument("--only", choices=("ssd", "frcnn"), help="one detector only")
    args = parser.parse_args(argv)
    root = tempfile.mkdtemp(prefix="bitid_")
    try:
        hashes = {}
        if args.only in (None, "ssd"):
            hashes.update(run_ssd(root))
        if args.only in (None, "frcnn"):
            hashes.update(run_frcnn(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.record:
        with open(args.record, "w") as f:
            json.dump(hashes, f, indent=1, sort_keys=True)
        print("recorded %d weight files in %s" % (len(hashes), args.record))
        return 0
    with open(args.check) as f:
        want = json.load(f)
    if args.only:
        want = {k: v for k, v in want.items() if k.startswith(args.only + "_")}
    bad = sorted(k for k in set(want) | set(hashes) if want.get(k) != hashes.get(k))
    for k in bad:
        print("DIFFERS %s: %s -> %s" % (k, want.get(k), hashes.get(k)))
    print("%d of %d weight files identical" % (len(want) - len(bad), len(want)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
