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
