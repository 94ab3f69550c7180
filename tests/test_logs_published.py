"""Where the published logs are found, the tests' skip without them, and their download
(against a local file:// 'repository', no internet)."""
import hashlib
import os
import subprocess
import sys

import pytest

from gankd_gluon.logs import published
from gankd_gluon.logs.published import FetchError, fetch_published_logs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "fetch_published_logs.py")


@pytest.fixture
def fake_repository(tmp_path, monkeypatch):
    """A folder served as file:// holding two 'logs', and FILES set to their checksums."""
    repo = tmp_path / "repo"
    repo.mkdir()
    files = {}
    for name in published.FILES:
        data = ("Namespace(save_prefix=%r)\n" % name).encode()
        (repo / name).write_bytes(data)
        files[name] = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(published, "FILES", files)
    return "file://" + str(repo), repo


def test_download_checks_and_keeps(fake_repository, tmp_path):
    url, repo = fake_repository
    dest = tmp_path / "logs"
    done = fetch_published_logs(str(dest), url)
    assert [how for _, how in done] == ["downloaded", "downloaded"]
    for name in published.FILES:
        assert (dest / name).read_bytes() == (repo / name).read_bytes()
    assert [how for _, how in fetch_published_logs(str(dest), url)] == ["present", "present"]
    assert sorted(os.listdir(dest)) == sorted(published.FILES)       # no temporary files


def test_changed_or_missing_file_is_refused_and_nothing_written(fake_repository, tmp_path):
    url, repo = fake_repository
    first = sorted(published.FILES)[0]
    (repo / first).write_bytes(b"something else\n")
    dest = tmp_path / "logs"
    with pytest.raises(FetchError, match=r"%s: SHA-256 .* is not the expected" % first):
        fetch_published_logs(str(dest), url)
    assert not dest.exists() or first not in os.listdir(dest)
    fetch_published_logs(str(dest), url, verify=False)                # --no-verify keeps it
    assert (dest / first).read_bytes() == b"something else\n"
    os.remove(repo / first)
    with pytest.raises(FetchError, match="%s: download failed" % first):
        fetch_published_logs(str(tmp_path / "other"), url)


def test_script_exit_status(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, SCRIPT, "--dest", str(tmp_path / "d"), "--base-url",
                           "file://" + str(tmp_path / "nowhere")], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: file://") and "download failed" \
        in lines[0]
    assert not (tmp_path / "d").exists()


def test_location_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(published.ENV_VAR, str(tmp_path))
    assert published.published_logs_dir() == str(tmp_path)
    assert published.published_log(published.SSD_LOG) is None
    (tmp_path / published.SSD_LOG).write_text("x")
    assert published.published_log(published.SSD_LOG) == str(tmp_path / published.SSD_LOG)
    monkeypatch.delenv(published.ENV_VAR)
    assert published.published_logs_dir() == os.path.join(os.path.dirname(ROOT), "shared",
                                                          "published_logs")


def test_tests_that_need_the_logs_skip_with_one_reason_without_them(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, GANKD_PUBLISHED_LOGS=str(tmp_path / "absent"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           os.path.join(ROOT, "tests", "test_compare_logs.py"), "-k",
                           "helpers_on_published_logs or published_run_selection"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "2 skipped" in proc.stdout and "error" not in proc.stdout.lower()
    reasons = {line.split(": ", 1)[1] for line in proc.stdout.splitlines()
               if line.startswith("SKIPPED")}
    assert reasons == {"the authors' published logs are not in %s ($GANKD_PUBLISHED_LOGS, else "
                       "../shared/published_logs): get them with `python "
                       "scripts/fetch_published_logs.py`" % (tmp_path / "absent")}
