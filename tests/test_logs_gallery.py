"""logs/README.md and logs/gallery/ regenerate with one call, with and without our logs."""
import os

import pytest

from gankd_gluon.logs.gallery import build_gallery, main, parse_args
from test_compare_logs import write_ssd_log


@pytest.mark.slow
def test_build_gallery_with_and_without_ours(published_ssd_log, tmp_path):
    published_dir = os.path.dirname(published_ssd_log)
    readme = tmp_path / "logs" / "README.md"
    gallery = tmp_path / "logs" / "gallery"
    build_gallery(published_dir, str(gallery), str(readme))
    text = readme.read_text()
    assert "## Our runs" in text and "Not filled yet" in text
    assert "Validation mAPs 0.78271, 0.78201, 0.78021, 0.78010, 0.78052" in text
    assert "45 runs (`Namespace` lines), 39 validation blocks" in text
    assert "![map.png](gallery/frcnn_run45_vs_run44/map.png)" in text
    for name in ("ssd_run2_vs_run1", "frcnn_run45_vs_run44"):
        assert sorted(os.listdir(gallery / name)) == ["losses.png", "map.png",
                                                      "per_class_ap.png", "report.md"]
    assert "NOT COMPARABLE" in (gallery / "ssd_vs_frcnn" / "report.md").read_text()

    ours = write_ssd_log(tmp_path / "demo_train.log")
    build_gallery(published_dir, str(gallery), str(readme), ours=[ours])
    text = readme.read_text()
    assert "Not filled yet" not in text
    assert "### SSD: `demo_train.log`" in text
    assert "![losses.png](gallery/ours_demo_train/losses.png)" in text


def test_gallery_cli_missing_published_dir(tmp_path, capsys):
    args = parse_args(["--published-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "g"),
                       "--readme", str(tmp_path / "README.md")])
    assert main(args) == 2
    assert "error:" in capsys.readouterr().err
