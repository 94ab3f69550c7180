"""What ``--help`` says of the training scripts' shared flags, and what they parse to."""
import contextlib
import importlib.util
import io
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("train_ssd", "train_ssd_gan_kd", "train_faster_rcnn", "train_faster_rcnn_gan_kd")


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts",
                                                                     name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _help(module):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.parse_args(["--help"])
    return " ".join(out.getvalue().split())


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_reads_correctly(name):
    module = _script(name)
    text = _help(module)
    # the description is the docstring's whole first paragraph, not its first line
    first = " ".join(module.__doc__.split("\n\n")[0].split())
    assert first in text and first.endswith(".")
    assert "--no-progress no progress bars (they are shown by default)" in text
    assert "(default: True)" not in text.split("--no-progress", 2)[-1][:80]
    # --gpus "": the default 0,1 is refused on a machine without GPUs
    assert module.parse_args(["--gpus", ""]).progress is True
    assert module.parse_args(["--gpus", "", "--no-progress"]).progress is False
