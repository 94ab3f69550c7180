"""SSD data loaders (train with targets, validation with padded labels) and the Faster R-CNN
training loader.

Follows upstream GluonCV ``scripts/detection/ssd/train_ssd.py`` ``get_dataloader``: targets are
generated in the loader (``SSDDefaultTrainTransform(w, h, anchors)``) so that CPU workers share
the work, batches are ``Tuple(Stack(), Stack(), Stack())`` for training and
``Tuple(Stack(), Pad(pad_val=-1))`` for validation. The anchors come from the network itself::

    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, height, width)))
    train_loader = get_ssd_train_loader(train_set, anchors, (width, height), 16)

Bad images never raise inside a worker: the datasets of :mod:`gankd_gluon.data.datasets` check
every file when they are built and substitute any image that still fails to decode.
"""

import atexit
import contextlib
import multiprocessing.pool
import multiprocessing.process
import os
import signal
import threading
import weakref

import mxnet as mx
from gluoncv.data.batchify import Pad, Stack, Tuple
from gluoncv.data.transforms import bbox as tbbox
from gluoncv.data.transforms import image as timage
from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform, SSDDefaultValTransform
from mxnet import gluon

from .samplers import GlobalBatchSampler, SampleSeededDataset

__all__ = ['AUGMENTATIONS', 'SSDFlipTrainTransform', 'get_ssd_train_loader', 'get_ssd_val_loader',
           'get_frcnn_train_loader', 'DataLoader', 'close_loaders']

AUGMENTATIONS = ('default', 'flip')

# DataLoaders with worker processes, stopped by close_loaders (at the latest at exit)
_LOADERS = weakref.WeakSet()


class DataLoader(gluon.data.DataLoader):
    """``gluon.data.DataLoader`` whose worker processes survive a SIGTERM sent to the process
    group and are stopped without waiting for ever.

    MXNet 1.9.1 forks the workers with SIGINT ignored, so that Ctrl-C reaches only the main
    process, but not SIGTERM. A SIGTERM sent to the whole process group (``kill -TERM -PGID``,
    Slurm's ``scancel``, systemd's default stop) then kills the workers in the middle of a
    validation, whose batches never come, and a worker killed while it waited for a task dies
    holding the pool's task-queue lock, so that ``Pool.terminate`` (the DataLoader's
    ``__del__``, ``multiprocessing``'s exit handler) waits for that lock for ever: the run saved
    its checkpoint but never exits. Here the workers are forked with SIGTERM ignored too (the
    main process handles it: the training loop saves and stops; a SIGTERM that arrives while
    the workers are forked is held and then delivered to the main process), and :func:`close_loaders`, the
    ``__del__`` of this class and an exit handler stop the pool with SIGKILL, releasing a queue
    lock a killed worker left taken, instead of SIGTERM. The workers only load data: killing
    them loses nothing. Same arguments as ``gluon.data.DataLoader``. (CPython
    ``Lib/multiprocessing/pool.py``, ``Pool._terminate_pool``; MXNet 1.9.1
    ``python/mxnet/gluon/data/dataloader.py``, ``DataLoader.__init__`` and ``__del__``.)
    """

    def __init__(self, *args, **kwargs):
        with _workers_ignore_sigterm():       # a SIGTERM held meanwhile may raise on leaving
            super().__init__(*args, **kwargs)
            if isinstance(getattr(self, '_worker_pool', None), multiprocessing.pool.Pool):
                _LOADERS.add(self)

    def __del__(self):
        pool = getattr(self, '_worker_pool', None)
        if isinstance(pool, multiprocessing.pool.Pool):
            _stop_pool(pool)


# set while a DataLoader forks its workers: each child then ignores SIGTERM from its first
# instruction (os.register_at_fork's after_in_child runs in the child of os.fork, which the
# 'fork' start method of multiprocessing uses)
_FORKING_WORKERS = threading.Event()


def _ignore_sigterm_in_worker():
    if _FORKING_WORKERS.is_set():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


os.register_at_fork(after_in_child=_ignore_sigterm_in_worker)


@contextlib.contextmanager
def _workers_ignore_sigterm():
    """Processes forked inside ignore SIGTERM; a SIGTERM the main process gets meanwhile is held
    and delivered to its own disposition on leaving (setting SIG_IGN in the main process, as
    MXNet does for SIGINT, would discard it: a ``scancel`` landing while the loaders were built
    was lost and the run trained on). Only the main thread may set handlers; elsewhere, and
    when the current handler was not set from Python (``signal.getsignal`` gives None: it
    could not be put back), nothing changes."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    held = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: held.append(signum))
    _FORKING_WORKERS.set()
    try:
        yield
    finally:
        _FORKING_WORKERS.clear()
        signal.signal(signal.SIGTERM, previous)
        if held:
            signal.raise_signal(signal.SIGTERM)        # the run's handler, or the default


def close_loaders():
    """Stop the worker processes of every :class:`DataLoader` now (SIGKILL; see the class);
    runs at interpreter exit too. The loaders cannot be iterated afterwards."""
    for loader in list(_LOADERS):
        _LOADERS.discard(loader)
        _stop_pool(loader._worker_pool)       # pylint: disable=protected-access


def _stop_pool(pool):
    """Terminate a ``multiprocessing.Pool`` whose workers ignore SIGTERM: no replacement workers,
    SIGKILL to the workers, queue locks a killed worker held released, then ``terminate()``.

    Each step uses private attributes of CPython's ``multiprocessing.pool`` (3.8-3.12); a step
    whose attributes are missing is skipped, down to a plain ``terminate()``."""
    # pylint: disable=protected-access
    finalizer = getattr(pool, '_terminate', None)
    if finalizer is not None and not getattr(finalizer, 'still_active', lambda: True)():
        return                                              # terminated already
    handler = getattr(pool, '_worker_handler', None)
    notifier = getattr(pool, '_change_notifier', None)
    state = getattr(multiprocessing.pool, 'TERMINATE', None)
    if handler is not None and notifier is not None and state is not None:
        handler._state = state                              # no more replacement workers
        notifier.put(None)
        handler.join(5)
    workers = [p for p in getattr(pool, '_pool', None) or []
               if isinstance(p, multiprocessing.process.BaseProcess)]
    for proc in workers:
        if proc.exitcode is None:
            proc.kill()
    for proc in workers:
        proc.join(5)
    if workers and all(p.exitcode is not None for p in workers):
        # only workers take these two locks (the pool's threads use the pipes directly)
        for lock in (getattr(getattr(pool, '_inqueue', None), '_rlock', None),
                     getattr(getattr(pool, '_outqueue', None), '_wlock', None)):
            if lock is not None and not lock.acquire(False):
                lock.release()                              # taken by a killed worker
            elif lock is not None:
                lock.release()
    pool.terminate()


atexit.register(close_loaders)   # registered after multiprocessing's exit handler: runs first


class SSDFlipTrainTransform(SSDDefaultTrainTransform):
    """Light SSD training transform: resize, random horizontal flip, normalise, SSD targets.

    GluonCV's default SSD augmentation (colour distortion, random expansion, constrained random
    crop, random interpolation) costs 0.26-0.53 s per batch of 16 on a 2-core CPU, 25-65% of a
    small model's step; this one costs about 0.07 s (measured with mxnet 1.9.1 and gluoncv
    0.10.5, ``num_workers=0``). Use it for CPU
    demos; the paper's runs use ``'default'``. Targets are made exactly as in
    ``SSDDefaultTrainTransform`` (same ``SSDTargetGenerator``, inherited).

    Parameters
    ----------
    width, height : int
        Network input size.
    anchors : NDArray (1, N, 4) or None
        Centre-format anchors on the CPU; None -> ``__call__`` returns ``(img, bbox)`` without
        targets.
    mean, std : sequence of 3 float
    iou_thresh : float
    box_norm : sequence of 4 float

    Notes
    -----
    ``__call__(src, label)`` takes ``src`` NDArray (H, W, 3) uint8 and ``label`` np.ndarray
    (M, >=5) and returns ``img`` NDArray (3, height, width) float32, ``cls_targets`` (N,)
    float32 (0 = background, k + 1 = class k) and ``box_targets`` (N, 4) float32.
    """

    def __call__(self, src, label):
        h, w, _ = src.shape
        img = timage.imresize(src, self._width, self._height, interp=1)
        bbox = tbbox.resize(label, (w, h), (self._width, self._height))
        img, flips = timage.random_flip(img, px=0.5)
        bbox = tbbox.flip(bbox, (self._width, self._height), flip_x=flips[0])
        img = mx.nd.image.to_tensor(img)
        img = mx.nd.image.normalize(img, mean=self._mean, std=self._std)
        if self._anchors is None:
            return img, bbox.astype(img.dtype)
        gt_bboxes = mx.nd.array(bbox[None, :, :4])
        gt_ids = mx.nd.array(bbox[None, :, 4:5])
        cls_targets, box_targets, _ = self._target_generator(self._anchors, None, gt_bboxes, gt_ids)
        return img, cls_targets[0], box_targets[0]


def _checked_anchors(anchors):
    """Anchors on the CPU, after checking they look like SSD anchors.

    Initialising an SSD parameter by parameter with an explicit initializer (e.g. Xavier)
    overwrites the anchor constants ('..._anchor_<i>' parameters) with random numbers; every
    anchor then matches some box and the box loss is NaN, far from the cause.
    """
    if not isinstance(anchors, mx.nd.NDArray) or anchors.ndim != 3 or anchors.shape[0] != 1 \
            or anchors.shape[2] != 4:
        raise ValueError('anchors must be an NDArray of shape (1, N, 4) (centre x, y, w, h), got '
                         '%s' % (getattr(anchors, 'shape', type(anchors)),))
    anchors = anchors.as_in_context(mx.cpu())
    if float(anchors[0, :, 2:].min().asscalar()) <= 0:
        raise ValueError('anchors have non-positive widths or heights: were the anchor constants '
                         'overwritten by an initializer? Initialise the "_anchor_" parameters '
                         'with p.initialize() (their own Constant initializer)')
    return anchors


def _width_height(data_shape):
    if isinstance(data_shape, int):
        return data_shape, data_shape
    width, height = data_shape
    return int(width), int(height)


def get_ssd_train_loader(dataset, anchors, data_shape, batch_size, num_workers=0,
                         augment='default', shard=None):
    """Shuffled SSD training batches with targets.

    Parameters
    ----------
    dataset : gluon Dataset
        Items ``(img (H, W, 3) uint8, label (M, >=5))`` with at least one box each (the
        ``train`` split of :func:`~gankd_gluon.data.datasets.get_dataset`).
    anchors : NDArray (1, N, 4)
        Centre-format anchors from ``net(x)`` in train mode; copied to the CPU here.
    data_shape : int or (int, int)
        Network input size, ``S`` or ``(W, H)``.
    batch_size : int
        Global batch: images per training step over all distributed workers (each worker's
        loader yields ``batch_size // num_parts`` of them).
    num_workers : int
        Worker processes (``thread_pool=False``); 0 loads in the main process.
    augment : {'default', 'flip'}
        ``'default'``: GluonCV's ``SSDDefaultTrainTransform`` (the paper's recipe);
        ``'flip'``: :class:`SSDFlipTrainTransform`.
    shard : (int, int) or None
        ``(num_parts, part_index)`` of a distributed job: this worker reads only its slice of
        every global batch (:class:`~gankd_gluon.data.samplers.GlobalBatchSampler`), which is
        exactly what device ``part_index`` gets in a one-process run over ``num_parts``
        devices. None: ``(1, 0)``.

    Returns
    -------
    gluon.data.DataLoader
        Batches ``(img, cls_targets, box_targets)``: (B, 3, H, W) float32, (B, N) float32,
        (B, N, 4) float32, on ``cpu_shared(0)`` with workers (move them with
        ``as_in_context``). Every batch is full: the incomplete last global batch of an epoch
        is dropped (not rolled over, so that an epoch does not depend on the one before and
        resume is exact).
    """
    width, height = _width_height(data_shape)
    anchors = _checked_anchors(anchors)
    if augment == 'default':
        transform = SSDDefaultTrainTransform(width, height, anchors)
    elif augment == 'flip':
        transform = SSDFlipTrainTransform(width, height, anchors)
    else:
        raise ValueError('augment must be one of %s, got %r' % (AUGMENTATIONS, augment))
    batchify_fn = Tuple(Stack(), Stack(), Stack())
    num_parts, part_index = shard if shard is not None else (1, 0)
    sampler = GlobalBatchSampler(len(dataset), batch_size, num_parts, part_index, shuffle=True)
    # augmentation seeded per sample: the same whichever worker loads it (samplers.py)
    return DataLoader(SampleSeededDataset(dataset.transform(transform)), batch_sampler=sampler,
                      batchify_fn=batchify_fn, num_workers=num_workers, thread_pool=False)


def get_ssd_val_loader(dataset, data_shape, batch_size, num_workers=0):
    """Validation batches in dataset order, labels padded with -1.

    Parameters
    ----------
    dataset : gluon Dataset
        Items ``(img (H, W, 3) uint8, label (M, 5 or 6))`` (the ``test`` split of
        :func:`~gankd_gluon.data.datasets.get_dataset`).
    data_shape : int or (int, int)
        ``S`` or ``(W, H)``.
    batch_size, num_workers : int

    Returns
    -------
    gluon.data.DataLoader
        Batches ``(img, label)``: (B, 3, H, W) float32, (B, M_max, 5 or 6) float32 with boxes in
        input pixels (resized as the image) and rows of -1 as padding. ``last_batch='keep'``:
        every image is seen once.
    """
    width, height = _width_height(data_shape)
    batchify_fn = Tuple(Stack(), Pad(pad_val=-1))
    return DataLoader(dataset.transform(SSDDefaultValTransform(width, height)), batch_size,
                      shuffle=False, last_batch='keep', batchify_fn=batchify_fn,
                      num_workers=num_workers, thread_pool=False)


def get_frcnn_train_loader(dataset, net, batch_size, num_devices, short=600, max_size=1000,
                           num_workers=0, shard=None):
    """GluonCV's Faster R-CNN training batches: ``FasterRCNNDefaultTrainTransform`` (short-side
    resize, random flip, RPN targets made in the loader) and ``FasterRCNNTrainBatchify``
    (GluonCV ``scripts/detection/faster_rcnn/train_faster_rcnn.py``, ``get_dataloader``).

    Parameters
    ----------
    dataset : gluon Dataset
        Items ``(img (H, W, 3) uint8, label (M, 5 or 6))`` with at least one box each.
    net : FasterRCNN
        For the anchors and the feature-map shapes of the RPN targets.
    batch_size : int
        Global batch: images per training step over all distributed workers; each worker's
        loader yields ``batch_size // num_parts`` of them in ``num_devices`` shards.
    num_devices : int
        This worker's devices.
    short, max_size : int
        Input short side and long-side cap, in pixels.
    num_workers : int
        DataLoader worker processes; 0 loads in the main process.
    shard : (int, int) or None
        ``(num_parts, part_index)`` of a distributed job: this worker reads only its slice of
        every global batch (:class:`~gankd_gluon.data.samplers.GlobalBatchSampler`), which is
        what devices ``part_index * num_devices ...`` get in a one-process run over all the
        job's devices. None: ``(1, 0)``.

    Returns
    -------
    DataLoader
        Batches ``(img, label, rpn_cls_t, rpn_box_t, rpn_box_mask)``, each one array per device
        shard, padded to the shard's largest image (one array when there is one device).
        Every batch is full; augmentation is seeded per sample, so resume is exact with
        DataLoader workers too.
    """
    from gluoncv.data.batchify import FasterRCNNTrainBatchify
    from gluoncv.data.transforms.presets.rcnn import FasterRCNNDefaultTrainTransform
    num_parts, part_index = shard if shard is not None else (1, 0)
    transform = FasterRCNNDefaultTrainTransform(short, max_size, net)
    return DataLoader(
        SampleSeededDataset(dataset.transform(transform)),
        batch_sampler=GlobalBatchSampler(len(dataset), batch_size, num_parts, part_index,
                                         shuffle=True),
        batchify_fn=FasterRCNNTrainBatchify(net, num_devices), num_workers=num_workers,
        thread_pool=False)
