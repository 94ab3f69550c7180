"""Start and supervise a multi-machine job on MXNet's parameter-server kvstore (ps-lite).

One machine, scheduler + 1 server + 2 workers on loopback::

    python scripts/launch_dist.py -n 2 -s 1 -- \\
        python scripts/train_ssd_gan_kd.py --kvstore dist_sync --gpus 0 ...

Several machines: ``-n``/``-s`` are the job's totals, the same everywhere;
``--local-workers``/``--local-servers`` say how many run on this machine, and only the
scheduler's machine has ``scheduler`` in ``--roles``. Two machines, one server and one worker
each (CMD as above; checkpoints and logs are written by worker 0 only)::

    # machine A (10.0.0.1)
    python scripts/launch_dist.py -n 2 -s 2 --local-workers 1 --local-servers 1 \\
        --host 10.0.0.1 --roles scheduler,server,worker -- CMD
    # machine B (10.0.0.2)
    python scripts/launch_dist.py -n 2 -s 2 --local-workers 1 --local-servers 1 \\
        --host 10.0.0.1 --node-host 10.0.0.2 --roles server,worker -- CMD

This sets the DMLC_* variables MXNet reads (DMLC_ROLE, DMLC_PS_ROOT_URI, DMLC_PS_ROOT_PORT,
DMLC_NUM_WORKER, DMLC_NUM_SERVER, DMLC_NODE_HOST) and, on the first process that exits
non-zero, terminates the others: MXNet itself leaves the survivors hanging for ever, and the
launcher shipped in the mxnet wheel fails on Python 3.11 (its ``dmlc_tracker/tracker.py`` calls
``Thread.isAlive``, removed in Python 3.9). Each worker
also runs a step watchdog (``--watchdog-timeout``), which bounds a hang when a peer on another
machine dies, where no launcher sees it.

SIGTERM or SIGINT (Ctrl-C) to the launcher goes to the workers: rank 0 finishes its step, saves
the ``interrupted`` checkpoint and exits with 3; then, or after ``--grace`` seconds, every role
is stopped and the launcher exits with 3 (resumable with ``--resume``), or 128 + the signal
when no worker on this machine saved. No process of the job is left behind, also when the
launcher itself is killed with SIGKILL (then without a checkpoint).
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gankd_gluon.usage import nonnegative_int, positive_float, positive_int  # noqa: E402
from gankd_gluon.engine.launcher import launch  # noqa: E402

ROLES = ("scheduler", "server", "worker")


def _port(value):
    number = positive_int(value)
    if number > 65535:
        raise argparse.ArgumentTypeError("%s: a TCP port is at most 65535" % value)
    return number


def _roles(value):
    roles = tuple(r.strip() for r in value.split(",") if r.strip())
    if not roles or any(r not in ROLES for r in roles):
        raise argparse.ArgumentTypeError("%r: comma-separated roles of %s" % (value,
                                                                             ", ".join(ROLES)))
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("-n", "--num-workers", type=positive_int, required=True,
                        help="workers in the whole job")
    parser.add_argument("-s", "--num-servers", type=positive_int, default=1,
                        help="servers in the whole job")
    parser.add_argument("--local-workers", type=nonnegative_int, default=None,
                        help="workers started on this machine (default: all of them)")
    parser.add_argument("--local-servers", type=nonnegative_int, default=None,
                        help="servers started on this machine (default: all of them)")
    parser.add_argument("--host", default="127.0.0.1", help="the scheduler's address")
    parser.add_argument("--node-host", default=None,
                        help="this machine's address (default: --host); ps-lite otherwise binds "
                             "the first non-loopback interface")
    parser.add_argument("--port", type=_port, default=9091, help="the scheduler's port")
    parser.add_argument("--roles", type=_roles, default="scheduler,server,worker",
                        help="roles started here, comma-separated")
    parser.add_argument("--timeout", type=positive_float, default=None,
                        help="stop the whole job after this many seconds")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="after SIGTERM/SIGINT, seconds the workers get to save "
                             "'interrupted' before every role is stopped")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the worker command, after --")
    args = parser.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the worker command after --")
    if shutil.which(args.command[0]) is None:
        parser.error("the worker command %r: not an executable file, nor a program on PATH"
                     % args.command[0])
    for flag, local, total in (("--local-workers", args.local_workers, args.num_workers),
                               ("--local-servers", args.local_servers, args.num_servers)):
        if local is not None and local > total:
            parser.error("%s %d: more than the job's %d" % (flag, local, total))
    return args


def main(args):
    return launch(args.command, args.num_workers, args.num_servers, port=args.port,
                  host=args.host, node_host=args.node_host,
                  roles=tuple(r.strip() for r in args.roles.split(",") if r.strip()),
                  timeout=args.timeout, local_workers=args.local_workers,
                  local_servers=args.local_servers, grace=args.grace)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
