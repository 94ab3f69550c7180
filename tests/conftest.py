"""Shared fixtures. Published logs are read from ../shared/published_logs, never copied here.

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
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
PUBLISHED_LOGS = os.path.join(SHARED, "published_logs")
PUBLISHED_SSD_LOG = os.path.join(PUBLISHED_LOGS, "ssd_512_mobilenet1_0_resnet50_v1_voc_g_d_new_train.log")
PUBLISHED_FRCNN_LOG = os.path.join(PUBLISHED_LOGS, "faster_rcnn_resnet50_resnet101_v1b_g_d_voc_train.log")


@pytest.fixture(scope="session")
def published_ssd_log():
    if not os.path.exists(PUBLISHED_SSD_LOG):
        pytest.fail("published SSD log not found at %s (tests read ../shared/published_logs)"
                    % PUBLISHED_SSD_LOG)
    return PUBLISHED_SSD_LOG


@pytest.fixture(scope="session")
def published_frcnn_log():
    if not os.path.exists(PUBLISHED_FRCNN_LOG):
        pytest.fail("published Faster R-CNN log not found at %s" % PUBLISHED_FRCNN_LOG)
    return PUBLISHED_FRCNN_LOG


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
