"""The package's layers (``.importlinter``) and an import graph without cycles.

``experiments`` over ``engine`` over ``eval`` over ``models | losses | data | logs`` over
``usage``; ``scripts/`` on top. import-linter (``lint-imports``) checks the contract; the
cycles and the scripts are checked here with grimp, the import graph import-linter builds
on. Imports inside functions count.
"""
import ast
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "gankd_gluon")
CONFIG = os.path.join(ROOT, ".importlinter")


def _lint_imports(package_parent):
    """Run ``lint-imports`` with the repository's contract on the ``gankd_gluon`` found in
    ``package_parent``; returns the finished process."""
    env = dict(os.environ, PYTHONPATH=package_parent)
    code = "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run([sys.executable, "-c", code, "--config", CONFIG, "--no-cache"],
                           cwd=package_parent, env=env, capture_output=True, text=True,
                           timeout=300)


def test_layers_contract_is_kept():
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout, proc.stdout


def test_contract_catches_an_upward_import(tmp_path):
    """The checker is not vacuous: a copy of the package with one import from a lower floor
    to a higher one (models -> eval, as models/faster_rcnn.py once did) breaks the contract,
    and the report names the module and the line."""
    copy = tmp_path / "gankd_gluon"
    shutil.copytree(PACKAGE, str(copy), ignore=shutil.ignore_patterns("__pycache__"))
    victim = copy / "models" / "critics.py"
    victim.write_text(victim.read_text() + "\n\ndef _upward():\n"
                                           "    from ..eval.detector import load_detector\n"
                                           "    return load_detector\n")
    proc = _lint_imports(str(tmp_path))
    assert proc.returncode != 0, proc.stdout
    assert "BROKEN" in proc.stdout and "gankd_gluon.models.critics" in proc.stdout, proc.stdout


def _import_graph():
    import grimp                                # installed with import-linter
    import importlib.util
    sys.path.insert(0, ROOT)
    spec = importlib.util.find_spec("gankd_gluon")
    assert os.path.dirname(spec.origin) == PACKAGE, spec.origin     # this checkout's package
    try:
        return grimp.build_graph("gankd_gluon", cache_dir=None)
    finally:
        sys.path.remove(ROOT)


def import_cycles(graph):
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycles():
    cycles = import_cycles(_import_graph())
    assert cycles == [], "import cycles (each a set of modules importing each other): %s" % cycles


def test_cycle_finder_finds_a_cycle():
    """The cycle check is not vacuous: two modules importing each other are one component."""
    class Graph:
        modules = {"p.a", "p.b", "p.c"}
        _edges = {"p.a": {"p.b"}, "p.b": {"p.a", "p.c"}, "p.c": set()}

        def find_modules_directly_imported_by(self, m):
            return self._edges[m]

    assert import_cycles(Graph()) == [["p.a", "p.b"]]


def test_nothing_in_the_package_imports_scripts_or_tests():
    """``scripts/`` is the top floor and ``tests/`` outside the floors: the package imports
    neither (it may load a script file by path, ``experiments/scripts.py``, for tests)."""
    found = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                        [node.module or ""] if isinstance(node, ast.ImportFrom) and not
                        node.level else [])
                found += ["%s:%d %s" % (os.path.relpath(path, ROOT), node.lineno, m)
                          for m in mods if m.split(".")[0] in ("scripts", "tests")]
    assert found == []
