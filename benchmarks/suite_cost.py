"""Cost of the test suite: wall time, peak temporary disk, and the slowest modules. Not a test.

Runs pytest as README's test command does (``-n 2 --dist loadfile`` unless other arguments are
given after ``--``) with a fixed ``--basetemp`` and a private ``TMPDIR`` (so that files the tests
or the processes they start write through ``tempfile`` are counted, and other users' files in
the system temporary directory are not), both under one scratch folder. Every ``--interval``
seconds it measures, as ``du -sb`` does, the bytes under that folder and under pytest's
basetemp; at the end it prints the wall time, the peak of each, pytest's exit code and summary
line, and the ``--top`` modules with the largest summed test time (setup + call + teardown of
each test, from a JUnit XML report; with two workers these sums add up to about twice the wall
time). The scratch folder is deleted afterwards unless ``--keep``. ``--save-durations FILE``
writes those per-module sums as JSON; ``tests/conftest.py`` reads ``tests/durations.json`` to
hand the longest modules to the workers first.

    python benchmarks/suite_cost.py                       # the whole suite, as README/CI runs it
    python benchmarks/suite_cost.py --json /tmp/cost.json -- -q -n 2 --dist loadfile --durations=60
    python benchmarks/suite_cost.py --save-durations tests/durations.json   # after adding tests
    python benchmarks/suite_cost.py -- -q tests/test_losses_kd.py

The sampler sees a file between two samples only if it lives at least ``--interval`` seconds;
a checkpoint written and deleted within the interval can be missed, so the peak is a lower
bound (2 s catches everything the end-to-end modules keep for a whole epoch).
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PYTEST_ARGS = ["-q", "-n", "2", "--dist", "loadfile"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scratch", default=None,
                        help="folder for basetemp and TMPDIR (default: a new folder under the "
                             "system temporary directory); must not exist")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--top", type=int, default=10, help="slowest modules to print")
    parser.add_argument("--json", default=None, help="also write the figures as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--save-durations", default=None, metavar="FILE",
                        help="write the summed test time per module here (tests/durations.json "
                             "orders the modules of the next runs)")
    parser.add_argument("pytest_args", nargs="*",
                        help="pytest arguments after `--` (default: %s)"
                             % " ".join(DEFAULT_PYTEST_ARGS))
    return parser.parse_args(argv)


def tree_bytes(path, depth=0):
    """Bytes under ``path`` as ``du -sb`` counts them (apparent sizes, each inode once); files
    that vanish while it walks are skipped. 0 if ``path`` does not exist. With ``depth`` > 0,
    returns ``(total, parts)`` with ``parts`` the bytes under each folder ``depth`` levels
    below ``path`` (a hard-linked file counts where it is met first)."""
    total, seen, parts = 0, set(), collections.Counter()
    for dirpath, dirnames, filenames in os.walk(path):
        rel = os.path.relpath(dirpath, path).split(os.sep)
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
                where = [c for c in rel if c != "."] + [name]
                if depth and len(where) > depth:
                    parts[os.sep.join(where[:depth])] += st.st_size
    return (total, parts) if depth else total


class Sampler(threading.Thread):
    """Samples the bytes under each of ``paths`` every ``interval`` seconds until ``stop()``;
    ``peaks[path]`` is the largest sample of each, ``peak_parts[path]`` the largest folders
    ``depth`` levels down at that sample (under the basetemp: worker, test's folder), and
    ``samples`` the count."""

    def __init__(self, paths, interval, depth=3):
        super().__init__(daemon=True)
        self.paths, self.interval = list(paths), interval
        self.peaks = {p: 0 for p in self.paths}
        self.peak_times = {p: 0.0 for p in self.paths}
        self.peak_parts = {p: [] for p in self.paths}
        self.depth = depth
        self.samples = 0
        self._stop_event = threading.Event()
        self._t0 = time.monotonic()

    def run(self):
        while True:
            for p in self.paths:
                size, parts = tree_bytes(p, depth=self.depth)
                if size > self.peaks[p]:
                    self.peaks[p], self.peak_times[p] = size, time.monotonic() - self._t0
                    self.peak_parts[p] = parts.most_common(8)
            self.samples += 1
            if self._stop_event.wait(self.interval):
                return

    def stop(self):
        self._stop_event.set()
        self.join()


def module_times(junit_xml):
    """Summed test time per test module (seconds) from a pytest JUnit XML report, largest
    first: a list of ``(module, seconds, tests)``."""
    times, counts = collections.Counter(), collections.Counter()
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")
        # classname is "tests.test_x" or "tests.test_x.TestClass"
        name = next((m + ".py" for m in module if m.startswith("test_")), ".".join(module))
        times[name] += float(case.get("time", 0.0))
        counts[name] += 1
    return [(m, t, counts[m]) for m, t in times.most_common()]


def gib(nbytes):
    return nbytes / 2.0 ** 30


def main(args):
    if args.scratch:
        os.makedirs(args.scratch)  # a fresh folder: nothing in it but this run's files
        scratch = args.scratch
    else:
        scratch = tempfile.mkdtemp(prefix="suite_cost_")
    basetemp = os.path.join(scratch, "basetemp")
    tmpdir = os.path.join(scratch, "tmp")
    os.makedirs(tmpdir)
    junit = os.path.join(scratch, "junit.xml")
    pytest_args = args.pytest_args or DEFAULT_PYTEST_ARGS
    cmd = [sys.executable, "-m", "pytest", "--basetemp", basetemp, "--junitxml", junit,
           "-p", "no:cacheprovider"] + pytest_args
    env = dict(os.environ, TMPDIR=tmpdir)
    print("suite_cost: %s (scratch %s)" % (" ".join(cmd), scratch), flush=True)

    sampler = Sampler([scratch, basetemp], args.interval)
    t0 = time.monotonic()
    cpu0 = os.times()
    sampler.start()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    summary = ""
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.strip():
            summary = line.strip()
    code = proc.wait()
    wall = time.monotonic() - t0
    sampler.stop()
    cpu1 = os.times()
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)

    modules = module_times(junit) if os.path.exists(junit) else []
    result = {
        "command": cmd, "exit_code": code, "summary": summary,
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "peak_tmp_bytes": sampler.peaks[scratch], "peak_tmp_at_s": round(sampler.peak_times[scratch], 1),
        "peak_basetemp_bytes": sampler.peaks[basetemp],
        "peak_parts": [[d, n] for d, n in sampler.peak_parts[scratch]],
        "samples": sampler.samples, "interval_s": args.interval,
        "load_average_end": os.getloadavg(),
        "modules": [{"module": m, "seconds": round(t, 1), "tests": n} for m, t, n in modules],
    }
    print("\nsuite_cost: wall %.1f s (%.2f min), CPU of pytest and its children %.0f s"
          % (wall, wall / 60, cpu))
    print("suite_cost: peak temporary disk %.2f GiB (%d bytes, at %.0f s; basetemp alone %.2f GiB), "
          "%d samples every %g s" % (gib(result["peak_tmp_bytes"]), result["peak_tmp_bytes"],
                                     result["peak_tmp_at_s"], gib(result["peak_basetemp_bytes"]),
                                     sampler.samples, args.interval))
    for d, n in result["peak_parts"]:
        print("suite_cost:   at the peak %.2f GiB in %s" % (gib(n), d))
    print("suite_cost: pytest exit %d: %s" % (code, summary))
    print("suite_cost: load average at the end %.2f %.2f %.2f" % result["load_average_end"])
    if modules:
        print("suite_cost: the %d modules with the largest summed test time:" % args.top)
        for m, t, n in modules[:args.top]:
            print("  %7.1f s  %4d tests  %s" % (t, n, m))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.save_durations and modules:
        with open(args.save_durations, "w") as f:
            json.dump({"command": " ".join(pytest_args), "wall_s": result["wall_s"],
                       "modules": {m: round(t, 1) for m, t, _ in modules}}, f, indent=1)
            f.write("\n")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main(parse_args()))
