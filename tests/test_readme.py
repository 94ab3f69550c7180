"""The README's commands run as written (in a scratch folder that sees the repository's
``scripts/``)."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_block(heading):
    """The first ```bash block after the paragraph that starts with ``heading``."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index(heading)
    match = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    return [line for line in match.group(1).splitlines() if line.strip()]


@pytest.mark.slow
def test_small_run_start_to_finish(tmp_path):
    commands = readme_block("**A small run, start to finish**")
    assert [c.split()[1] for c in commands] == [
        "scripts/make_synthetic_voc.py", "scripts/train_ssd.py", "scripts/train_ssd_gan_kd.py",
        "scripts/eval_voc.py", "scripts/detect.py", "scripts/compare_logs.py"]
    os.symlink(os.path.join(ROOT, "scripts"), str(tmp_path / "scripts"))
    env = dict(os.environ, PYTHONPATH=ROOT,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    outputs = []
    for command in commands:
        proc = subprocess.run(command, shell=True, cwd=str(tmp_path), env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
        outputs.append(proc.stdout)
    assert (tmp_path / "checkpoints" / "student" / "student-best-student-meta.json").exists()
    assert "mAP=" in outputs[3]
    assert (tmp_path / "detections" / "detections.json").exists()
    assert len(list((tmp_path / "detections").glob("*.png"))) == 20
    assert (tmp_path / "logs" / "compare" / "report.md").exists()


@pytest.mark.slow
def test_own_dataset_commands(tmp_path):
    """README "Your own dataset": a VOC2007-only dataset with 5 own names, a teacher, a
    distilled student and its evaluation, as written."""
    commands = readme_block("The generator writes such a dataset")
    assert [c.split()[1] for c in commands] == [
        "scripts/make_synthetic_voc.py", "scripts/train_ssd.py", "scripts/train_ssd_gan_kd.py",
        "scripts/eval_voc.py"]
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
    assert [line.split("=")[0] for line in outputs[3].split()] == names + ["mAP"]
    assert sorted(os.listdir(str(tmp_path / "dets"))) == sorted(
        "comp4_det_test_%s.txt" % n for n in names)
    with open(str(tmp_path / "logs" / "ppe_student_train.log")) as f:
        log = f.read()
    assert all("\n%s=" % n in log for n in names) and "\ndata: " in log


def _script_commands(heading):
    """``(script, argv)`` of each ``python scripts/<script>.py ...`` in the README block after
    ``heading``, behind a launcher (``launch_dist.py ... --`` or ``horovodrun ...``), with the
    ``...`` (the run's other flags) left out."""
    out = []
    for line in readme_block(heading):
        found = re.search(r"python scripts/(train_\w+)\.py (.*)$", line)
        if found:
            out.append((found.group(1), [a for a in found.group(2).split() if a != "..."]))
    return out


@pytest.mark.parametrize("heading, flag", [
    ("`--kvstore dist_sync` (or `dist_device_sync`) trains", "kvstore"),
    ("**Horovod** (`--horovod`, GluonCV's flag)", "horovod")])
def test_multi_machine_commands_parse_for_both_detectors(heading, flag, monkeypatch):
    """README "Several machines": each training command, SSD's and Faster R-CNN's, parses with
    its script's parser as written (the checks that need the machine's GPUs left out)."""
    import importlib
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    commands = _script_commands(heading)
    assert {"train_ssd_gan_kd", "train_faster_rcnn_gan_kd"} <= {s for s, _ in commands}
    for script, argv in commands:
        module = importlib.import_module(script)
        monkeypatch.setattr(module, "parse_checked",
                            lambda parser, argv, *checks: parser.parse_args(argv))
        args = module.parse_args(argv)
        if flag == "kvstore":
            assert args.kvstore == "dist_sync" and not args.horovod, script
        else:
            assert args.horovod and args.kvstore == "device", script
        assert args.gpus == "0,1"
