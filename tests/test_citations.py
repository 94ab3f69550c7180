"""Docstrings and comments cite sources a reader of the repository can find.

A reader has the repository, the papers and the libraries, not the project's shared notes
(design brief, fact sheet, style guide, the folder of paper copies) nor its issue tracker. So
no file of the repository points at them: a paper is cited by authors, title, venue, year and
URL, a library fact by the library's file and version. The one path into the shared folder
that stays is ``../shared/published_logs``, the documented default folder of the authors'
published logs (``scripts/fetch_published_logs.py`` downloads them there).
"""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ("gankd_gluon", "scripts", "tests", "benchmarks", "docs", "logs")
FILES = ("README.md", "setup.py", "requirements.txt", "requirements-gpu.txt",
         "requirements-horovod.txt", ".importlinter", "pytest.ini")
TEXT = (".py", ".md", ".txt", ".ini", ".cfg", ".toml")

#: (pattern, what it points at)
POINTERS = [
    (r"seeds/", "the shared folder's copies of the papers"),
    (r"GLUONCV_FACTS", "the shared fact sheet"),
    (r"\bDESIGN(\.md)?\b", "the shared design brief"),
    (r"\bSTYLE(\.md)?\b", "the shared style guide"),
    (r"(?i)\bissues? ?#?\d+", "the issue tracker"),
    (r"shared/(?!published_logs)", "the shared folder"),
]


def find_pointers(text):
    """``(line number, pointer, what it points at)`` for each pointer in ``text``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in POINTERS:
            match = re.search(pattern, line)
            if match:
                found.append((number, match.group(0), what))
    return found


def _repository_files():
    here = os.path.abspath(__file__)
    for name in FILES:
        path = os.path.join(ROOT, name)
        if os.path.isfile(path):
            yield path
    for folder in FOLDERS:
        for parent, dirs, files in os.walk(os.path.join(ROOT, folder)):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
            for name in files:
                path = os.path.join(parent, name)
                if name.endswith(TEXT) and os.path.abspath(path) != here:
                    yield path


def test_no_pointer_to_the_shared_notes_or_the_issue_tracker():
    found = []
    for path in _repository_files():
        with open(path, errors="replace") as f:
            found += ["%s:%d: %s (%s)" % (os.path.relpath(path, ROOT), n, hit, what)
                      for n, hit, what in find_pointers(f.read())]
    assert found == [], "cite the source itself, not:\n" + "\n".join(found)


@pytest.mark.parametrize("line, hit", [
    ("# NIPS 2017 (seeds/003_b4f700be797772e8.txt)", "seeds/"),
    ("    (GLUONCV_FACTS sec. 5) returns", "GLUONCV_FACTS"),
    ("works with numpy < 1.24 (DESIGN.md section 6)", "DESIGN.md"),
    ("# stage 1 ~35 (DESIGN 5)", "DESIGN"),
    ("no weight inside (STYLE.md habit 6)", "STYLE.md"),
    ("lambda = 0.01 (issue 7, Sec. 4)", "issue 7"),
    ("the checks of Issue #3", "Issue #3"),
    ("default ../shared/notes.md", "shared/"),
])
def test_each_kind_of_pointer_is_found(line, hit):
    assert [h for _, h, _ in find_pointers(line)] == [hit]


@pytest.mark.parametrize("line", [
    "the published logs are read from ../shared/published_logs by default",
    "Hong, Yu, Fan, arXiv:1906.08467, 2019, Sec. 4.2",
    "gluoncv 0.10.5 gluoncv/model_zoo/ssd/ssd.py",
    "a ``cpu_shared`` context",
])
def test_sources_and_the_published_logs_folder_pass(line):
    assert find_pointers(line) == []
