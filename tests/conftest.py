"""Shared fixtures. Published logs are read from $GANKD_PUBLISHED_LOGS, else
../shared/published_logs, never copied here; tests that need them skip when they are absent
(``scripts/fetch_published_logs.py`` downloads them).

Disk: the end-to-end modules train full-size SSD and Faster R-CNN nets (checkpoints of 50-500 MB
each). A test's own ``tmp_path`` is deleted when it passes (``pytest.ini``:
``tmp_path_retention_policy = failed``), and the directories a module's fixtures make are deleted
when the module ends with no failure, so a run holds one module's outputs at a time.
``GANKD_KEEP_TMP=1`` keeps everything.
"""
import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _published(name):
    """A published log, or a skip (one reason: where the tests look and how to get them)."""
    from gankd_gluon.logs.published import ENV_VAR, published_log, published_logs_dir
    path = published_log(name)
    if path is None:
        pytest.skip("the authors' published logs are not in %s ($%s, else "
                    "../shared/published_logs): get them with `python "
                    "scripts/fetch_published_logs.py`" % (published_logs_dir(), ENV_VAR))
    return path


@pytest.fixture(scope="session")
def published_ssd_log():
    from gankd_gluon.logs.published import SSD_LOG
    return _published(SSD_LOG)


@pytest.fixture(scope="session")
def published_frcnn_log():
    from gankd_gluon.logs.published import FRCNN_LOG
    return _published(FRCNN_LOG)


@pytest.fixture(scope="module", autouse=True)
def _delete_module_scratch(request, tmp_path_factory):
    """Delete the directories this module's fixtures made under pytest's base temp, once the
    module is done, unless one of its tests failed (then they are kept to look at)."""
    base = tmp_path_factory.getbasetemp()
    before = set(os.listdir(base))
    failed = request.session.testsfailed
    yield
    if os.environ.get("GANKD_KEEP_TMP") or request.session.testsfailed != failed:
        return
    for name in set(os.listdir(base)) - before:
        shutil.rmtree(os.path.join(base, name), ignore_errors=True)
