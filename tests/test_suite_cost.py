"""benchmarks/suite_cost.py's disk sampler: bytes as ``du -sb`` counts them (hard links once)
and the folders that hold them, on a tree made here."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import suite_cost  # noqa: E402


def test_tree_bytes_counts_hard_links_once_and_splits_by_folder(tmp_path):
    (tmp_path / "gw0" / "a").mkdir(parents=True)
    (tmp_path / "gw1" / "b").mkdir(parents=True)
    (tmp_path / "gw0" / "a" / "x.params").write_bytes(b"0" * 1000)
    os.link(str(tmp_path / "gw0" / "a" / "x.params"), str(tmp_path / "gw0" / "a" / "best.params"))
    (tmp_path / "gw1" / "b" / "y.params").write_bytes(b"1" * 300)
    dirs = sum(os.lstat(str(p)).st_size for p in (tmp_path / "gw0", tmp_path / "gw1",
                                                  tmp_path / "gw0" / "a", tmp_path / "gw1" / "b"))
    total = suite_cost.tree_bytes(str(tmp_path))
    assert total == 1300 + dirs
    total2, parts = suite_cost.tree_bytes(str(tmp_path), depth=2)
    assert total2 == total
    assert parts[os.path.join("gw0", "a")] == 1000 and parts[os.path.join("gw1", "b")] == 300
    assert suite_cost.tree_bytes(str(tmp_path / "gone")) == 0
