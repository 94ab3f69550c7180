"""Multi-machine training, on MXNet's parameter-server kvstore (ps-lite) or on Horovod: the thin
layer MXNet lacks.

MXNet does the work: ``dist_sync`` / ``dist_device_sync`` kvstores aggregate gradients on the
servers. What it does not do (measured on mxnet 1.9.1, CPU): stop when a peer dies (a killed
worker or server leaves the others hanging for ever; ``tests/test_distributed.py`` kills one),
or start on Python 3.11 (the wheel's ``tools/launch.py`` runs ``dmlc_tracker/tracker.py``,
which calls ``Thread.isAlive``, removed in Python 3.9). So this module adds

* :class:`DistEnv`: the kvstore, this worker's rank and the worker count; each of a run's
  trainers numbers its keys in a range of its own (:class:`KeyRangeStore`);
* :class:`HorovodEnv`: the same interface on Horovod (GluonCV's ``--horovod``): one process per
  device, gradients allreduced without servers; :func:`make_env` picks one from the flags;
* :func:`allreduce_sum`: a scalar summed over workers (the SSD loss normaliser);
* :class:`StepWatchdog`: a thread that ends the process with a clear message when no step
  completes for ``timeout`` seconds (``startup_timeout`` until the first one);
* :func:`exit_now`: ends a worker at once with a given status (a normal interpreter exit waits in
  the kvstore's exit barrier for peers that may never come);
* the launcher that starts scheduler, servers and workers is :mod:`.launcher` (no MXNet in
  it).
"""
import logging
import os
import sys
import threading
import time

import mxnet as mx
from mxnet import gluon

__all__ = ["DistEnv", "HorovodEnv", "make_env", "DistributedSetupError", "HOROVOD_INSTALL",
           "allreduce_sum", "allreduce_array", "sync_trainers", "StepWatchdog",
           "KeyRangeStore", "exit_now", "kvstore_job_running", "EXIT_WATCHDOG"]

# Key layout on the servers: trainer number t (0, 1, ...) owns keys [t * 2**20, (t+1) * 2**20),
# the scalars of allreduce_sum/allreduce_array start at 2**30 (the C API's keys are int32)
_KEYS_PER_TRAINER = 1 << 20
_FIRST_SCALAR_KEY = 1 << 30

# exit status of a watchdog stop: a runtime fault (cli.EXIT_FAULT), not "interrupted, resumable"
EXIT_WATCHDOG = 1

# set when this process joins a dist_* kvstore job (see exit_now)
_KVSTORE_JOB = []


def kvstore_job_running():
    """True once this process has created a ``dist_*`` kvstore (:class:`DistEnv`)."""
    return bool(_KVSTORE_JOB)

# Horovod has no wheel on PyPI: pip builds it from the sdist against the installed mxnet, which
# only an unisolated build sees (README, "Several machines").
HOROVOD_INSTALL = ("pip install wheel && HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 "
                   "HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 "
                   "pip install --no-build-isolation horovod==0.28.1")


class DistributedSetupError(RuntimeError):
    """A distributed run that cannot start: Horovod missing, two engines asked for, no DMLC_*
    environment, a device list that does not fit one device per process."""


def make_env(args):
    """The distributed environment the flags ask for: :class:`HorovodEnv` with ``--horovod``,
    else :class:`DistEnv` of ``--kvstore``."""
    if getattr(args, "horovod", False):
        if args.kvstore.startswith("dist"):
            raise DistributedSetupError("--horovod and --kvstore %s are two distributed engines; "
                                        "use one (Horovod needs no kvstore servers)"
                                        % args.kvstore)
        return HorovodEnv()
    return DistEnv(args.kvstore)


class DistEnv:
    """The kvstore of a run and this process's place in it.

    Parameters
    ----------
    kvstore : str
        ``device``/``local`` (one machine) or ``dist_sync``/``dist_device_sync`` (several; the
        process must have been started with the DMLC_* variables, e.g. by :func:`.launcher.launch`).
    """

    one_device_per_process = False

    def __init__(self, kvstore="device"):
        self.name = kvstore
        self.is_dist = kvstore.startswith("dist")
        if self.is_dist:
            if "DMLC_ROLE" not in os.environ:
                raise DistributedSetupError("--kvstore %s needs the DMLC_* environment of a "
                                            "distributed job; start it with "
                                            "scripts/launch_dist.py (see README)" % kvstore)
            self.kv = mx.kv.create(kvstore)
            _KVSTORE_JOB.append(kvstore)
            self.rank, self.num_workers = self.kv.rank, self.kv.num_workers
        else:
            self.kv = kvstore               # gluon.Trainer creates a local kvstore from the name
            self.rank, self.num_workers = 0, 1
        self._keys = {}
        self._trainers = []     # trainer names in creation order: the index is its key range

    @property
    def is_root(self):
        """Rank 0 alone writes logs and checkpoints and validates."""
        return self.rank == 0

    def trainer(self, params, optimizer, optimizer_params, name):
        """A ``gluon.Trainer`` on this kvstore; the optimizer runs on every worker
        (``update_on_kvstore=False``), the servers only sum gradients.

        Parameters
        ----------
        params : ParameterDict or list of Parameter
        optimizer : str
        optimizer_params : dict
        name : str
            Unique within the run (e.g. ``s1_G``, ``s1_D``). On a distributed kvstore the
            trainer gets the next range of keys (:class:`KeyRangeStore`): ``gluon.Trainer``
            numbers its keys from 0 (``Trainer._param2idx``, MXNet 1.9.1), so two trainers on
            one kvstore would push different arrays to the same server key (``pskv.size``
            mismatch at the first broadcast). Every worker creates its trainers in the same
            order, so the ranges agree between workers.

        Raises
        ------
        ValueError
            If ``name`` was already used in this run.
        """
        if name in self._trainers:
            raise ValueError("trainer name %r used twice in one run" % name)
        self._trainers.append(name)
        kv = self.kv
        if self.is_dist:
            kv = KeyRangeStore(self.kv, (len(self._trainers) - 1) * _KEYS_PER_TRAINER,
                               _KEYS_PER_TRAINER)
        return gluon.Trainer(params, optimizer, optimizer_params, kvstore=kv,
                             update_on_kvstore=False)

    def allreduce_sum(self, key, value):
        """See :func:`allreduce_sum`."""
        if not self.is_dist:
            return value
        if key not in self._keys:
            self._keys[key] = _FIRST_SCALAR_KEY + len(self._keys)
            self.kv.init(self._keys[key], mx.nd.zeros((1,)))
        out = mx.nd.zeros((1,))
        self.kv.pushpull(self._keys[key], mx.nd.array([value]), out=out)
        return float(out.asscalar())

    def allreduce_array(self, key, array):
        """See :func:`allreduce_array`."""
        if not self.is_dist:
            return array
        if key not in self._keys:
            self._keys[key] = _FIRST_SCALAR_KEY + len(self._keys)
            self.kv.init(self._keys[key], mx.nd.zeros(array.shape))
        out = mx.nd.zeros(array.shape, ctx=array.context)
        self.kv.pushpull(self._keys[key], array, out=out)
        return out

    def sync(self, trainers, blocks):
        """See :func:`sync_trainers`. ``blocks`` is unused: the kvstore starts from worker 0's
        parameters."""
        if not self.is_dist:
            return
        for tr in trainers:
            # pylint: disable=protected-access
            if not tr._kv_initialized:
                tr._init_kvstore()
            if tr._params_to_init:
                tr._init_params()
        self.kv._barrier()   # pylint: disable=protected-access


class KeyRangeStore(mx.kvstore.KVStoreBase):
    """A view of a kvstore whose keys ``0..size-1`` are the store's keys ``first..first+size-1``.

    Gives each ``gluon.Trainer`` of a run its own keys on one ``dist_sync`` kvstore (a second
    dist kvstore in the same process would not help: the servers keep one table of keys for
    all of a worker's kvstores). ``gluon.Trainer`` accepts any ``KVStoreBase`` (MXNet 1.9.1,
    ``model._create_kvstore``); this one cannot run an optimizer, so the update stays on the
    workers.

    Parameters
    ----------
    kv : mxnet.kvstore.KVStore
        The run's kvstore.
    first, size : int
        The range of the underlying keys this view may use.

    Raises
    ------
    KeyError
        On a key outside ``0..size-1`` (a trainer with more parameter arrays than ``size``).
    """

    def __init__(self, kv, first, size):
        self._kv = kv
        self._first = first
        self._size = size

    def _key(self, key):
        if isinstance(key, (list, tuple)):
            return [self._key(k) for k in key]
        if not 0 <= key < self._size:
            raise KeyError("kvstore key %r outside this trainer's range of %d keys"
                           % (key, self._size))
        return self._first + key

    def broadcast(self, key, value, out, priority=0):
        self._kv.broadcast(self._key(key), value, out, priority=priority)

    def pushpull(self, key, value, out=None, priority=0):
        self._kv.pushpull(self._key(key), value, out=out, priority=priority)

    def init(self, key, value):
        self._kv.init(self._key(key), value)

    def push(self, key, value, priority=0):
        self._kv.push(self._key(key), value, priority=priority)

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        self._kv.pull(self._key(key), out=out, priority=priority, ignore_sparse=ignore_sparse)

    def row_sparse_pull(self, key, out=None, priority=0, row_ids=None):
        self._kv.row_sparse_pull(self._key(key), out=out, priority=priority, row_ids=row_ids)

    @staticmethod
    def is_capable(capability):
        """No optimizer on the servers (``update_on_kvstore=False``); nothing else either."""
        return False

    def set_optimizer(self, optimizer):
        raise NotImplementedError("KeyRangeStore sums gradients only; the optimizer runs on "
                                  "the workers")

    @property
    def type(self):
        return self._kv.type

    @property
    def rank(self):
        return self._kv.rank

    @property
    def num_workers(self):
        return self._kv.num_workers


def exit_now(status, message=None):
    """End this process at once with ``status``, after writing ``message`` (one line, stderr)
    and flushing the logs and the standard streams.

    A distributed worker that stops, on an error or on a signal, cannot leave through the
    interpreter's normal exit: MXNet's ``KVStoreDist`` destructor waits in a barrier for every
    other worker (``ps::Finalize``), which a failed or interrupted job never reaches, so the
    process would hang with its error already printed (seen at start-up on loopback). This
    skips the destructors; the files this process wrote are closed by the flush.
    """
    if message:
        sys.stderr.write(message.rstrip("\n") + "\n")
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def import_horovod():
    """``horovod.mxnet``, or :class:`DistributedSetupError` naming the install command."""
    try:
        import horovod.mxnet as hvd     # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise DistributedSetupError("--horovod needs Horovod built with MXNet (%s); install it "
                                    "with: %s" % (err, HOROVOD_INSTALL)) from err
    return hvd


class HorovodEnv:
    """Horovod as the distributed engine (GluonCV's ``--horovod``), with :class:`DistEnv`'s
    interface.

    One process per device, started by ``horovodrun`` (``horovodrun --gloo -np 2 -H
    localhost:2 python scripts/train_ssd_gan_kd.py --horovod ...``); rank and size come from
    Horovod. Gradients are allreduced between processes (Gloo on the CPU, NCCL on GPUs when
    Horovod is built with it): no scheduler, no servers.
    """

    name = "horovod"
    is_dist = True
    one_device_per_process = True
    kv = None

    def __init__(self):
        self.hvd = import_horovod()
        self.hvd.init()
        self.rank, self.num_workers = self.hvd.rank(), self.hvd.size()
        self.local_rank = self.hvd.local_rank()

    @property
    def is_root(self):
        """Rank 0 alone writes logs and checkpoints and validates."""
        return self.rank == 0

    def trainer(self, params, optimizer, optimizer_params, name):
        """``hvd.DistributedTrainer`` whose update is the one-process update of the global batch.

        Our losses are already divided by the global batch and positive count
        (:class:`~.steps.Normalizer`), so the update needs the *sum* of the workers' gradients,
        as ``dist_sync``'s servers give. DistributedTrainer (horovod 0.28.1,
        ``horovod/mxnet/__init__.py``) averages instead, in one of two ways, with ``f`` =
        ``gradient_predivide_factor``: without NCCL >= 2.10 (every CPU build) it allreduces
        ``sum(g / f)`` and multiplies ``Trainer._scale`` by ``f / size``; with it, the
        allreduce itself returns ``sum(g / f) * f / size``. Either way the gradient reaching
        the optimizer is ``sum(g) / size * rescale_grad / batch_size``, whatever ``f``. So the
        trainer starts with ``rescale_grad = size`` (``gluon.Trainer`` takes ``_scale`` from
        it) and steps with ``step(1)`` as everywhere: the optimizer sees ``sum(g)`` (on the CPU
        build exactly: ``_scale = size * 1 / size = 1``). ``name`` keeps the tensor names of
        the run's several trainers apart.
        """
        opts = dict(optimizer_params or {}, rescale_grad=float(self.num_workers))
        return self.hvd.DistributedTrainer(params, optimizer, opts, prefix=name + ".")

    def allreduce_sum(self, key, value):
        """See :func:`allreduce_sum`: one Horovod allreduce with the sum op, named ``key``."""
        out = self.hvd.allreduce(mx.nd.array([value]), op=self.hvd.Sum, name=key)
        return float(out.asscalar())

    def allreduce_array(self, key, array):
        """See :func:`allreduce_array`: one asynchronous Horovod allreduce (sum)."""
        return self.hvd.allreduce(array, op=self.hvd.Sum, name=key)

    def sync(self, trainers, blocks):
        """See :func:`sync_trainers`: every block's parameters (BatchNorm statistics and the
        frozen teacher included) broadcast from rank 0. Trainer states need nothing: they are
        created on the first step from the same weights, or loaded by every rank from the same
        checkpoint on resume."""
        for name in sorted(blocks):
            self.hvd.broadcast_parameters(blocks[name].collect_params(), root_rank=0,
                                          prefix=name + ".")


def allreduce_array(env, key, array):
    """Sum an NDArray over all workers without a host read (MXNet's engine orders it): the
    kvstore's ``pushpull`` on a dedicated key as :func:`allreduce_sum`, or Horovod's
    allreduce. Shape and key must be the same on every worker."""
    return env.allreduce_array(key, array)


def allreduce_sum(env, key, value):
    """Sum a Python float over all workers (``value`` itself when not distributed).

    kvstore: one ``pushpull`` of a 1-element array on a dedicated key: in ``dist_sync`` the
    server adds the workers' pushes and answers once all are in (a separate ``push`` then
    ``pull`` can be answered before the other workers' pushes arrive: seen on loopback). Keys
    are integers above the Trainer's parameter indices (a kvstore refuses mixed str/int keys),
    numbered in first-use order, which is the same on every worker. Horovod: an allreduce with
    the sum op.
    """
    return env.allreduce_sum(key, value)


def sync_trainers(env, trainers, blocks=None):
    """Start every worker from the same state, before the first step.

    kvstore: put every trainer's parameters on the kvstore, then wait for all workers.
    ``gluon.Trainer`` does this lazily in its first ``step``: worker 0 broadcasts and at once
    pushes its first gradients, and a slower worker's broadcast pull can then fetch those
    gradients as weights (seen on loopback: worker 1 started from the gradient sum). Doing it
    up front behind a barrier removes the race. Horovod: broadcast the parameters of
    ``blocks`` (dict of name -> Block) from rank 0.
    """
    env.sync(trainers, blocks or {})


class StepWatchdog:
    """Ends the process (``os._exit(EXIT_WATCHDOG)``, 1) when no step completes in time.

    A dead peer makes ``dist_sync`` block for ever inside a push/pull; no Python exception
    reaches the loop, so the only bounded exit is from another thread.

    Parameters
    ----------
    timeout : float
        Seconds allowed between two :meth:`beat` calls.
    startup_timeout : float
        Seconds allowed before the first beat (building networks, first graph trace) and after
        :meth:`pause` (validation, checkpoints).
    """

    def __init__(self, timeout, startup_timeout=None, what="training step"):
        self.timeout = timeout
        self.startup_timeout = startup_timeout or 10 * timeout
        self.what = what
        self._last = time.time()
        self._limit = self.startup_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def beat(self):
        self._last = time.time()
        self._limit = self.timeout

    def pause(self):
        """Allow the long limit once (validation, saving) until the next beat."""
        self._last = time.time()
        self._limit = self.startup_timeout

    def stop(self):
        self._stop.set()

    def _watch(self):
        while not self._stop.wait(min(1.0, self.timeout / 4.0)):
            idle = time.time() - self._last
            if idle > self._limit:
                sys.stderr.write("error: no %s completed for %.0f s (limit %.0f s): a peer of "
                                 "this distributed job has probably died; exiting\n"
                                 % (self.what, idle, self._limit))
                sys.stderr.flush()
                os._exit(EXIT_WATCHDOG)
