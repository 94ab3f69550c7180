"""SSD data loaders (train with targets, validation with padded labels).

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
import os
import random

import mxnet as mx
import numpy as np
from gluoncv.data.batchify import Pad, Stack, Tuple
from gluoncv.data.sampler import SplitSampler
from gluoncv.data.transforms import bbox as tbbox
from gluoncv.data.transforms import image as timage
from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform, SSDDefaultValTransform
from mxnet import gluon

__all__ = ['AUGMENTATIONS', 'SSDFlipTrainTransform', 'get_ssd_train_loader', 'get_ssd_val_loader']

AUGMENTATIONS = ('default', 'flip')


class SSDFlipTrainTransform(SSDDefaultTrainTransform):
    """Light SSD training transform: resize, random horizontal flip, normalise, SSD targets.

    GluonCV's default SSD augmentation (colour distortion, random expansion, constrained random
    crop, random interpolation) costs 0.26-0.53 s per batch of 16 on a 2-core CPU, 25-65% of a
    small model's step; this one costs about 0.07 s (GLUONCV_FACTS.md section 10). Use it for CPU
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


class _WorkerSeededTransform(object):
    """Calls ``fn`` after reseeding numpy's and Python's RNG once in each worker process.

    MXNet's DataLoader forks its workers and does not reseed them
    (mxnet/gluon/data/dataloader.py ``_worker_initializer``), so every worker starts from the
    parent's numpy state and, batch for batch, draws the same augmentation decisions as the
    other workers (GluonCV's transforms use ``np.random``). The base seed is drawn in the parent,
    so seeding the parent still changes every worker's stream.
    """

    def __init__(self, fn):
        self._fn = fn
        self._pid = os.getpid()
        self._base = int(np.random.randint(2 ** 31))

    def __call__(self, *args):
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            seed = (self._base + pid) % (2 ** 32)
            np.random.seed(seed)
            random.seed(seed)
        return self._fn(*args)


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
        Per loader (per worker process under distributed training).
    num_workers : int
        Worker processes (``thread_pool=False``); 0 loads in the main process.
    augment : {'default', 'flip'}
        ``'default'``: GluonCV's ``SSDDefaultTrainTransform`` (the paper's recipe);
        ``'flip'``: :class:`SSDFlipTrainTransform`.
    shard : (int, int) or None
        ``(num_parts, part_index)``: read only that part of the dataset, shuffled within the part
        (GluonCV ``SplitSampler``, as its scripts do under Horovod); each distributed worker gets
        its own part, and ``len(dataset) % num_parts`` trailing items are unused.

    Returns
    -------
    gluon.data.DataLoader
        Batches ``(img, cls_targets, box_targets)``: (B, 3, H, W) float32, (B, N) float32,
        (B, N, 4) float32, on ``cpu_shared(0)`` with workers (move them with
        ``as_in_context``). ``last_batch='rollover'``: every batch is full.
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
    kwargs = {}
    if shard is None:
        kwargs['shuffle'] = True
    else:
        num_parts, part_index = shard
        if not 0 <= part_index < num_parts:
            raise ValueError('shard (num_parts, part_index) needs 0 <= part_index < num_parts, '
                             'got %s' % (shard,))
        if len(dataset) < num_parts * batch_size:
            raise ValueError('dataset of %d images is too small for %d shards of batch %d'
                             % (len(dataset), num_parts, batch_size))
        kwargs['sampler'] = SplitSampler(len(dataset), num_parts, part_index)
    return gluon.data.DataLoader(dataset.transform(_WorkerSeededTransform(transform)),
                                 batch_size, last_batch='rollover', batchify_fn=batchify_fn,
                                 num_workers=num_workers, thread_pool=False, **kwargs)


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
    return gluon.data.DataLoader(dataset.transform(SSDDefaultValTransform(width, height)),
                                 batch_size, shuffle=False, last_batch='keep',
                                 batchify_fn=batchify_fn, num_workers=num_workers,
                                 thread_pool=False)
