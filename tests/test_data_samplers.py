import numpy as np
import pytest

from gankd_gluon.data.samplers import GlobalBatchSampler


def test_parts_are_the_device_slices_of_the_one_process_batches():
    np.random.seed(3)
    one = list(GlobalBatchSampler(10, 4))
    parts = []
    for k in range(2):
        np.random.seed(3)                       # the loop seeds every epoch the same way
        parts.append(list(GlobalBatchSampler(10, 4, 2, k)))
    assert len(one) == 2                        # 10 // 4: the incomplete tail is dropped
    for b, batch in enumerate(one):            # same indices and same sample seeds
        assert parts[0][b] == batch[:2] and parts[1][b] == batch[2:]
    indices = [i for i, _ in sum(one, [])]
    assert len(indices) == len(set(indices)) == 8               # no repeats


def test_sample_seeds_make_augmentation_independent_of_the_loader():
    """The same (index, seed) gives the same random draw whoever loads it."""
    from gankd_gluon.data.samplers import SampleSeededDataset
    ds = SampleSeededDataset([0, 10, 20])
    draw = lambda key: (ds[key], np.random.rand())            # noqa: E731
    np.random.seed(1)
    a = draw((1, 42))
    np.random.seed(2)                                          # a different process state
    b = draw((1, 42))
    assert a == b and a[0] == 10 and draw((1, 43)) != a


def test_no_shuffle_is_dataset_order_and_bad_splits_are_refused():
    assert [[i for i, _ in b] for b in GlobalBatchSampler(5, 2, shuffle=False)] == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="split evenly"):
        GlobalBatchSampler(10, 3, 2, 0)
    with pytest.raises(ValueError, match="smaller than one batch"):
        GlobalBatchSampler(3, 4)
