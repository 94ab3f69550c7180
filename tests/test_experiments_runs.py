"""What the experiment runners share (gankd_gluon/experiments/runs.py): the generated dataset
is reused only when it was made with the same settings."""
import json
import os

from gankd_gluon.experiments.runs import ensure_dataset, shell_command


def _ids(root, split):
    path = os.path.join(root, "VOCdevkit", "VOC2007", "ImageSets", "Main", split + ".txt")
    with open(path) as f:
        return f.read().split()


def test_dataset_is_reused_only_with_the_same_settings(tmp_path):
    root = str(tmp_path / "data")
    said = []
    assert ensure_dataset(root, 0, 2, 1, say=said.append, image_size=(32, 32)) is True
    assert said[-1].startswith("dataset: generated 2 train + 1 test default images")
    with open(os.path.join(root, "generated.json")) as f:
        assert json.load(f) == {"seed": 0, "num_train": 2, "num_test": 1,
                                "image_size": [32, 32], "difficulty": "default"}
    assert ensure_dataset(root, 0, 2, 1, say=said.append, image_size=(32, 32)) is False
    assert said[-1] == "dataset: cached at %s" % root
    # another image size, difficulty or count is another dataset: made again
    assert ensure_dataset(root, 0, 2, 1, say=said.append, image_size=(48, 48)) is True
    assert ensure_dataset(root, 0, 2, 1, say=said.append, image_size=(48, 48),
                          difficulty="easy") is True
    assert ensure_dataset(root, 0, 3, 1, say=said.append, image_size=(48, 48),
                          difficulty="easy") is True
    assert len(_ids(root, "trainval")) == 3 and len(_ids(root, "test")) == 1


def test_a_set_without_its_record_is_made_again(tmp_path):
    root = str(tmp_path / "data")
    ensure_dataset(root, 0, 2, 1, say=lambda _: None, image_size=(32, 32))
    os.remove(os.path.join(root, "generated.json"))
    assert ensure_dataset(root, 0, 2, 1, say=lambda _: None, image_size=(32, 32)) is True


def test_shell_command_quotes_an_empty_value():
    assert shell_command("train_ssd.py", ["--gpus", "", "--lr", "0.1"]) == \
        "python scripts/train_ssd.py --gpus '' --lr 0.1"


def test_checkpoint_status_names_each_way_a_run_is_not_done(tmp_path):
    """The one test of 'is this training step done' (reproduce's chains, the ablation, the
    study): absent, incomplete (a part of the set or an export missing), differs (a recorded
    setting, or an unrecorded one that the command line gives), stale (an input rewritten
    since), else done; command-line strings and parsed values compare alike."""
    import json
    from gankd_gluon.experiments.runs import checkpoint_status, same_setting
    manifest = tmp_path / "r-final.json"
    assert checkpoint_status(str(manifest), {})[0] == "absent"
    manifest.write_text("{not json")
    assert checkpoint_status(str(manifest), {})[0] == "absent"
    (tmp_path / "r-final.net.params").write_text("w")
    manifest.write_text(json.dumps({"args": {"lr": 0.001, "epochs": 4, "hybridize": True,
                                             "steps": [1, 2]},
                                    "parts": {"net": "r-final.net.params"}}))
    wanted = {"lr": "1e-3", "epochs": 4, "hybridize": "true", "steps": (1, 2)}
    assert checkpoint_status(str(manifest), wanted) == ("done", "finished: %s" % manifest)
    assert checkpoint_status(str(manifest), dict(wanted, lr=0.01)) == \
        ("differs", "lr=0.001 (command: 0.01)")
    assert checkpoint_status(str(manifest), dict(wanted, steps=(1, 3)))[0] == "differs"
    # a setting the manifest does not record: equal unless the command line gives it
    assert checkpoint_status(str(manifest), dict(wanted, new=1))[0] == "done"
    assert checkpoint_status(str(manifest), dict(wanted, new=1), given={"new"})[0] == "differs"
    status, why = checkpoint_status(str(manifest), wanted, files=[str(tmp_path / "x.json")])
    assert status == "incomplete" and why.endswith("(missing %s)" % (tmp_path / "x.json"))
    teacher = tmp_path / "teacher.params"
    teacher.write_text("t")
    t = os.path.getmtime(str(manifest))
    os.utime(str(teacher), (t - 10, t - 10))
    assert checkpoint_status(str(manifest), wanted, inputs=[str(teacher)])[0] == "done"
    os.utime(str(teacher), (t + 10, t + 10))
    assert checkpoint_status(str(manifest), wanted, inputs=[str(teacher)]) == \
        ("stale", str(teacher))
    (tmp_path / "r-final.net.params").unlink()
    assert checkpoint_status(str(manifest), wanted)[0] == "incomplete"
    assert same_setting(0.5, "0.5") and same_setting(None, "None") and not same_setting(1, "x")
