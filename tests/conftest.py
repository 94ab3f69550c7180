"""Shared fixtures. Published logs are read from $GANKD_PUBLISHED_LOGS, else
../shared/published_logs, never copied here; tests that need them skip when they are absent
(``scripts/fetch_published_logs.py`` downloads them).

Disk: the end-to-end modules train full-size SSD and Faster R-CNN nets (checkpoints of 50-500 MB
each). A test's own ``tmp_path`` is deleted when it passes (``pytest.ini``:
``tmp_path_retention_policy = failed``), and the directories a module's fixtures make are deleted
when the module ends with no failure, so a run holds one module's outputs at a time. That holds
for directories made by module- and function-scoped fixtures: pytest sets up a test's
session-scoped fixtures before the module's, so a session fixture's directory outlives every
module (use one only for what the whole session shares). ``GANKD_KEEP_TMP=1`` keeps everything.

Order: with ``-n 2 --dist loadfile`` each worker takes the next whole module from one queue when
it is nearly idle. The queue puts the modules that took longest in the last measured run first
(``tests/durations.json``, written by ``python benchmarks/suite_cost.py --save-durations
tests/durations.json``), so that no long module starts last and leaves one worker idle at the
end; modules not in the file come after them, in file order. xdist's own reordering (by number
of tests) is turned off so that this order holds.
"""
import json
import logging
import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DURATIONS = os.path.join(ROOT, "tests", "durations.json")


def module_durations(path=DURATIONS):
    """``{module file name: seconds}`` of the last measured run, or ``{}`` without the file."""
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)["modules"]


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):      # pytest-xdist >= 3.6
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items):
    """Longest-measured modules first (stable: tests keep their order inside a module)."""
    seconds = module_durations()
    items.sort(key=lambda item: -seconds.get(os.path.basename(str(item.fspath)), 0.0))


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


def _restore_logger(name="gankd"):
    """Put the scripts' logger back as it was: a script's ``main`` run in-process
    (``setup_logger``) leaves it writing to that test's captured stderr and log file, where a
    later test's log call fails ("--- Logging error ---" on its stderr)."""
    logger = logging.getLogger(name)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            handler.close()
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(scope="module", autouse=True)
def _module_leaves_the_logger_as_it_found_it():
    """For the handlers a module's fixtures add (set up before any test's own fixtures)."""
    yield from _restore_logger()


@pytest.fixture(autouse=True)
def _test_leaves_the_logger_as_it_found_it():
    yield from _restore_logger()
