"""Shared fixtures. Published logs are read from ../shared/published_logs, never copied here."""
import os

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
