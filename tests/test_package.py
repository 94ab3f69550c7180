"""The package's import-time version check (``gankd_gluon/__init__.py``), and that the scripts
which only run other scripts start without importing MXNet (a few seconds per process)."""
import subprocess
import sys

import gankd_gluon


def test_mxnet_version_read_from_its_files_is_the_imported_one():
    import mxnet
    assert gankd_gluon._mxnet_version() == mxnet.__version__ == gankd_gluon.REQUIRED_MXNET


def test_wrong_mxnet_version_is_refused(monkeypatch):
    monkeypatch.setattr(gankd_gluon, "_mxnet_version", lambda: "1.8.0")
    try:
        gankd_gluon._check_versions()
    except ImportError as err:
        assert "needs mxnet 1.9.1 (found 1.8.0)" in str(err)
    else:
        raise AssertionError("a wrong MXNet version was accepted")
    monkeypatch.setattr(gankd_gluon, "_mxnet_version", lambda: None)
    try:
        gankd_gluon._check_versions()
    except ImportError as err:
        assert "is not installed" in str(err)
    else:
        raise AssertionError("a missing MXNet was accepted")


def test_reproduce_does_not_import_mxnet():
    code = ("import sys, gankd_gluon.experiments.reproduce as r; "
            "r.parse_args(['--table', '1', '--row', '3', '--scale', 'smoke']); "
            "print('mxnet' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
