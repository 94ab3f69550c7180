"""The launcher of a ps-lite job (MXNet's ``dist_sync`` kvstore) on one machine: scheduler,
servers and workers started with the DMLC_* variables and supervised, so that the first
failure or a SIGTERM/SIGINT stops every role and leaves no process behind
(``scripts/launch_dist.py``).

MXNet 1.9.1's own launcher (``tools/launch.py``) runs ``dmlc_tracker/tracker.py``, which calls
``Thread.isAlive``, removed in Python 3.9. This module imports no MXNet (its import takes about
2 s of CPU): the launcher only starts processes; each role imports MXNet itself.
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

from ..usage import EXIT_FAULT, EXIT_INTERRUPTED

__all__ = ["dmlc_env", "launch"]


def dmlc_env(role, scheduler_host, scheduler_port, num_workers, num_servers, node_host=None):
    """The DMLC_* variables of one role of a ps-lite job.

    ``node_host`` is the address this process binds; set it (``127.0.0.1`` on one machine), or
    ps-lite binds the first non-loopback interface (ps-lite ``src/van.cc``, ``Van::Start``:
    ``DMLC_NODE_HOST``, else ``DMLC_INTERFACE``, else the first available interface).
    """
    env = {"DMLC_ROLE": role, "DMLC_PS_ROOT_URI": scheduler_host,
           "DMLC_PS_ROOT_PORT": str(scheduler_port), "DMLC_NUM_WORKER": str(num_workers),
           "DMLC_NUM_SERVER": str(num_servers)}
    if node_host:
        env["DMLC_NODE_HOST"] = node_host
    return env


# Scheduler and servers run inside `import mxnet` when DMLC_ROLE says so, and exit after the job.
_SERVER_CMD = [sys.executable, "-c", "import mxnet"]

_PR_SET_PDEATHSIG = 1      # <linux/prctl.h>


def _child_setup(launcher_pid):
    """In each role, before exec: a session of its own (a terminal's Ctrl-C reaches only the
    launcher, which passes it on once; the role and its children, e.g. DataLoader workers,
    share one process group the launcher can kill), and on Linux SIGKILL when the launcher
    dies, even by SIGKILL (``prctl(PR_SET_PDEATHSIG)``), so no role outlives it."""
    os.setsid()
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != launcher_pid:       # the launcher died before the prctl
            os._exit(1)


def launch(worker_cmd, num_workers, num_servers=1, port=9091, host="127.0.0.1",
           roles=("scheduler", "server", "worker"), poll=0.2, timeout=None, stdout=None,
           node_host=None, local_workers=None, local_servers=None, grace=60.0, settle=30.0):
    """Start the roles of a ps-lite job on this machine and supervise them.

    Parameters
    ----------
    worker_cmd : list of str
        The worker command (e.g. ``python scripts/train_ssd.py ... --kvstore dist_sync``).
    num_workers, num_servers : int
        Sizes of the whole job (all machines).
    port, host : int, str
        The scheduler's address.
    node_host : str or None
        This machine's bind address (default ``host``: right on one machine).
    local_workers, local_servers : int or None
        How many of the job's workers/servers run on this machine (default: all).
    roles : tuple of str
        Which roles run here: all three on one machine; on a cluster, the scheduler machine
        runs ``scheduler`` (+ servers/workers), others ``server``/``worker`` with the
        scheduler's ``host`` and ``port``.
    timeout : float or None
        Terminate everything after this many seconds.
    grace : float
        Seconds, after a SIGTERM or SIGINT to the launcher, that the workers get to stop on
        their own (rank 0 finishes its step and saves ``interrupted``) before every role is
        terminated.
    settle : float or None
        When every worker of the job runs here: seconds the scheduler and servers here get to
        end after the last worker exited 0. They end within a second of a job whose workers
        used the kvstore; a worker command that never joined it (no ``--kvstore dist_sync``)
        leaves them waiting for ever, so the job stops with status 1 and a message saying so.
        None: wait (with ``timeout``, if given).

    Returns
    -------
    int
        0 if every process exited 0, else the first non-zero exit status (1 for a role killed
        by a signal or left waiting after the workers, 124 at ``timeout``); after SIGTERM or
        SIGINT, 3 (``EXIT_INTERRUPTED``) if a worker here exited with it (rank 0 saved
        ``interrupted``), 0 if every worker here finished the run, else ``128 + signal``.
        On the first failure the other processes get SIGTERM, then SIGKILL after 5 s: a dead
        peer never leaves the rest hanging. On SIGTERM/SIGINT the signal goes to the workers
        first; servers and scheduler stay up until the workers are done (rank 0 needs them to
        finish its step) or ``grace`` has passed. Every role runs in a session of its own,
        killed as a whole at the end, so no process (nor a child of one) is left behind; with
        SIGKILL to the launcher the kernel kills the roles (Linux), without a checkpoint.
    """
    procs = []
    requested = []

    def on_signal(signum, _frame):
        requested.append(signum)

    old = {}
    for s in (signal.SIGTERM, signal.SIGINT):
        try:
            old[s] = signal.signal(s, on_signal)
        except ValueError:          # not the main thread
            pass
    me = os.getpid()

    def start(role, cmd, n):
        for _ in range(n):
            env = dict(os.environ, **dmlc_env(role, host, port, num_workers, num_servers,
                                              node_host or host))
            # pylint: disable-next=subprocess-popen-preexec-fn
            procs.append((role, subprocess.Popen(
                cmd, env=env, stdout=stdout, stderr=None if stdout is None else subprocess.STDOUT,
                preexec_fn=lambda: _child_setup(me))))
    started = time.time()
    status = 0
    all_workers_here = local_workers is None or local_workers == num_workers
    workers_done = None
    try:
        if "scheduler" in roles:
            start("scheduler", _SERVER_CMD, 1)
        if "server" in roles:
            start("server", _SERVER_CMD, num_servers if local_servers is None else local_servers)
        if "worker" in roles:
            start("worker", list(worker_cmd),
                  num_workers if local_workers is None else local_workers)
        while True:
            if requested:
                status = _interrupt(procs, requested[0], grace, poll)
                break
            codes = [(r, p.poll()) for r, p in procs]
            failed = [(r, c) for r, c in codes if c not in (None, 0)]
            if failed:
                role, status = failed[0]
                if status < 0:
                    # killed by a signal (Popen gives -signum): a runtime fault of the job,
                    # not a status of ours (sys.exit(-9) would exit with 247)
                    sys.stderr.write("launch: a %s was killed by %s; stopping the job\n"
                                     % (role, signal.Signals(-status).name))
                    status = EXIT_FAULT
                else:
                    sys.stderr.write("launch: a %s exited with status %d; stopping the job\n"
                                     % (role, status))
                break
            if all(c == 0 for _, c in codes):
                return 0
            if settle is not None and all_workers_here and "worker" in roles and \
                    all(c == 0 for r, c in codes if r == "worker"):
                workers_done = workers_done or time.time()
                if time.time() - workers_done > settle:
                    sys.stderr.write(
                        "launch: every worker exited 0, but the scheduler and servers were "
                        "still waiting %.0f s later: did the worker command join the kvstore "
                        "(--kvstore dist_sync)? stopping the job\n" % settle)
                    status = EXIT_FAULT
                    break
            if timeout is not None and time.time() - started > timeout:
                sys.stderr.write("launch: job exceeded %.0f s; stopping it\n" % timeout)
                status = 124
                break
            time.sleep(poll)
    finally:
        _terminate([p for _, p in procs])
        for s, h in old.items():
            signal.signal(s, h)
    return status


def _interrupt(procs, signum, grace, poll):
    """Pass ``signum`` to the workers, give them ``grace`` seconds; the exit status."""
    name = signal.Signals(signum).name
    workers = [p for r, p in procs if r == "worker"]
    sys.stderr.write("launch: %s; passing it to %d worker(s) and waiting up to %.0f s for rank "
                     "0 to save 'interrupted'\n" % (name, len(workers), grace))
    for p in workers:
        if p.poll() is None:
            p.send_signal(signum)
    deadline = time.time() + grace
    # rank 0 exits with EXIT_INTERRUPTED once saved; the other workers stop only when the job
    # is taken down (one whose watchdog fires meanwhile must not end rank 0's save)
    while time.time() < deadline and workers:
        codes = [p.poll() for p in workers]
        if EXIT_INTERRUPTED in codes or all(c is not None for c in codes):
            break
        time.sleep(poll)
    codes = [p.poll() for p in workers]
    if EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED
    if workers and all(c == 0 for c in codes):
        return 0                        # the signal came after the last step: the run is done
    sys.stderr.write("launch: no worker here saved 'interrupted' within %.0f s\n" % grace)
    return 128 + signum


def _terminate(procs, grace=5.0):
    """SIGTERM every live process, SIGKILL what is left after ``grace`` s, then kill each
    role's process group (its children, e.g. DataLoader workers)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
