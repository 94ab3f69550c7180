"""Batch sampling that is the same on one machine and on many.

:class:`GlobalBatchSampler` draws one permutation per epoch (from numpy's global RNG, which the
training loop seeds per epoch) and cuts it into *global* batches; part ``k`` of ``n`` yields
slice ``k`` of each global batch. So a distributed worker reads only its shard, and the shards
of ``n`` workers are exactly the device slices of a one-process run over ``n`` devices
(``split_and_load`` gives device ``k`` slice ``k``): the two runs see the same images on the
same replica, which is what makes them comparable parameter for parameter. The incomplete
last global batch is dropped, so every epoch starts afresh and resume is exact.

Random augmentation is tied to the sample, not to the process that loads it: the sampler yields
``(index, seed)`` pairs, and :class:`SampleSeededDataset` seeds numpy's and Python's RNG with
that seed before transforming the item. So an image gets the same crop and flip whichever
DataLoader worker or distributed worker loads it (MXNet forks its workers without reseeding
them, which otherwise makes workers draw identical augmentations, batch for batch).
"""
import random

import numpy as np

__all__ = ["GlobalBatchSampler", "SampleSeededDataset"]


class GlobalBatchSampler:
    """Per-part batches of a shuffled sequence of global batches.

    Parameters
    ----------
    length : int
        Dataset size.
    global_batch : int
        Images per step over all parts.
    num_parts, part_index : int
        This part (distributed worker) and how many there are; ``global_batch`` must divide
        evenly.
    shuffle : bool
        A new permutation per epoch from ``np.random`` (seeded by the loop per epoch).

    Yields lists of ``global_batch // num_parts`` pairs ``(dataset index, sample seed)`` for
    :class:`SampleSeededDataset`; the seeds derive from one draw of ``np.random`` per epoch.
    """

    def __init__(self, length, global_batch, num_parts=1, part_index=0, shuffle=True):
        if global_batch % num_parts:
            raise ValueError("batch size %d does not split evenly over %d workers"
                             % (global_batch, num_parts))
        if not 0 <= part_index < num_parts:
            raise ValueError("part_index %d outside [0, %d)" % (part_index, num_parts))
        if length < global_batch:
            raise ValueError("dataset of %d images is smaller than one batch of %d"
                             % (length, global_batch))
        self.length = length
        self.global_batch = global_batch
        self.num_parts = num_parts
        self.part_index = part_index
        self.shuffle = shuffle
        self.local_batch = global_batch // num_parts

    def __iter__(self):
        order = np.random.permutation(self.length) if self.shuffle else np.arange(self.length)
        epoch_seed = int(np.random.randint(2 ** 31))
        for b in range(len(self)):
            start = b * self.global_batch + self.part_index * self.local_batch
            yield [(int(i), (epoch_seed + 7919 * int(i)) % (2 ** 32))
                   for i in order[start:start + self.local_batch]]

    def __len__(self):
        return self.length // self.global_batch


class SampleSeededDataset:
    """Wraps a dataset so that item ``(index, seed)`` is produced with the RNGs seeded by
    ``seed`` (numpy and Python: GluonCV's transforms use both).

    Parameters
    ----------
    dataset : gluon Dataset
        Usually ``dataset.transform(train_transform)``.
    """

    def __init__(self, dataset):
        self._dataset = dataset

    def __len__(self):
        return len(self._dataset)

    def __getitem__(self, key):
        idx, seed = key
        np.random.seed(seed)
        random.seed(seed)
        return self._dataset[idx]
