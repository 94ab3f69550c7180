"""SSD loaders: documented shapes with 0 and 2 workers, shards, and no worker crash on bad images."""
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon
from gluoncv.model_zoo.ssd.ssd import get_ssd

from gankd_gluon.data.datasets import get_dataset
from gankd_gluon.data.loaders import (SSDFlipTrainTransform, get_ssd_train_loader,
                                      get_ssd_val_loader)
from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_voc

SIZE = 128
NUM_TRAIN, NUM_TEST = 10, 5


@pytest.fixture(scope='module')
def anchors():
    """Anchors of a small from-scratch SSD at 128 px (the SSD512 preset's sizes scaled to 128)."""
    net = get_ssd('mobilenet0.25', SIZE, features=['relu22_fwd', 'relu26_fwd'],
                  filters=[64, 64, 32, 32],
                  sizes=[f * SIZE for f in (.1, .2, .37, .54, .71, .88, .96)],
                  ratios=[[1, 2, .5]] + [[1, 2, .5, 3, 1. / 3]] * 3 + [[1, 2, .5]] * 2,
                  steps=[min(16 * 2 ** i, SIZE) for i in range(6)], classes=SYNTHETIC_CLASSES,
                  dataset='voc', pretrained=False, pretrained_base=False)
    net.initialize()
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, SIZE, SIZE)))
    return anchors


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('loaders'))
    make_synthetic_voc(root, seed=0, num_train=NUM_TRAIN, num_test=NUM_TEST, image_size=(96, 96),
                       image_size_max=(160, 128))
    return root


@pytest.mark.parametrize('augment', ['default', 'flip'])
@pytest.mark.parametrize('num_workers', [0, 2])
def test_train_loader_shapes(root, anchors, augment, num_workers):
    ds = get_dataset('synthetic', root, 'train')
    loader = get_ssd_train_loader(ds, anchors, SIZE, 4, num_workers=num_workers, augment=augment)
    n_anchor = anchors.shape[1]
    batches = list(loader)
    assert len(batches) == NUM_TRAIN // 4  # only full batches
    for img, cls_t, box_t in batches:
        assert img.shape == (4, 3, SIZE, SIZE) and img.dtype == np.float32
        assert cls_t.shape == (4, n_anchor) and cls_t.dtype == np.float32
        assert box_t.shape == (4, n_anchor, 4) and box_t.dtype == np.float32
        cls = cls_t.asnumpy()
        assert cls.min() >= 0 and cls.max() <= len(SYNTHETIC_CLASSES)
        assert (cls > 0).sum(axis=1).min() >= 1  # every image has a matched anchor


def test_train_loader_rectangular_shape(root, anchors):
    ds = get_dataset('synthetic', root, 'train')
    loader = get_ssd_train_loader(ds, anchors, (SIZE, SIZE), 2, augment='flip')
    img, _, _ = next(iter(loader))
    assert img.shape == (2, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match='augment'):
        get_ssd_train_loader(ds, anchors, SIZE, 2, augment='mixup')


def test_bad_anchors_are_refused(root, anchors):
    ds = get_dataset('synthetic', root, 'train')
    with pytest.raises(ValueError, match='shape'):
        get_ssd_train_loader(ds, anchors[0], SIZE, 2)
    # what Xavier-initialised anchor constants look like
    with pytest.raises(ValueError, match='initializer'):
        get_ssd_train_loader(ds, mx.nd.random.normal(shape=anchors.shape), SIZE, 2)


def test_flip_transform_boxes():
    """Resize + horizontal flip move the box as the image moves (checked by hand)."""
    img = mx.nd.zeros((50, 100, 3), dtype='uint8')
    label = np.array([[10., 5., 29., 24., 1., 0.]])
    transform = SSDFlipTrainTransform(200, 100)  # no anchors: returns (img, bbox)
    seen = set()
    for seed in range(20):
        np.random.seed(seed)
        out, bbox = transform(img, label)
        assert out.shape == (3, 100, 200)
        seen.add(tuple(np.round(bbox[0, :4], 3)))
    # x scaled by 2, y by 2; flipped: x' = 200 - x
    assert seen == {(20., 10., 58., 48.), (142., 10., 180., 48.)}


@pytest.mark.parametrize('num_workers', [0, 2])
def test_val_loader_shapes(root, num_workers):
    ds = get_dataset('synthetic', root, 'test')
    loader = get_ssd_val_loader(ds, SIZE, 2, num_workers=num_workers)
    seen = 0
    for img, label in loader:
        assert img.shape[1:] == (3, SIZE, SIZE) and img.dtype == np.float32
        assert label.ndim == 3 and label.shape[0] == img.shape[0] and label.shape[2] == 6
        lab = label.asnumpy()
        real = lab[..., 4] >= 0
        assert real.any(axis=1).all()
        assert np.all(lab[~real] == -1)  # padding rows
        assert lab[real][:, :4].max() <= SIZE
        seen += img.shape[0]
    assert seen == NUM_TEST  # last_batch='keep': every image once, in order


def test_val_loader_coco_labels(root):
    ds = get_dataset('synthetic_coco', root, 'test')
    img, label = next(iter(get_ssd_val_loader(ds, SIZE, 5)))
    assert img.shape == (5, 3, SIZE, SIZE) and label.shape[2] == 5


def test_shards_are_disjoint(anchors):
    """shard=(2, k): each part reads its own slice of every global batch (image values encode
    the item index); the parts are disjoint and together cover the epoch."""
    n = 8
    imgs = [mx.nd.full((64, 64, 3), 10 * i, dtype='uint8') for i in range(n)]
    labels = [np.array([[4., 4., 40., 40., 0., 0.]]) for _ in range(n)]
    ds = gluon.data.ArrayDataset(imgs, labels)
    mean, std = 0.485, 0.229  # red channel normalisation of the SSD transforms
    parts = []
    for k in range(2):
        np.random.seed(5)           # the training loop seeds every epoch identically on workers
        loader = get_ssd_train_loader(ds, anchors, SIZE, 4, augment='flip', shard=(2, k))
        idx = []
        for img, _, _ in loader:
            red = img[:, 0, 0, 0].asnumpy() * std + mean
            idx += list(np.round(red * 255 / 10).astype(int))
        parts.append(idx)
    assert len(parts[0]) == len(parts[1]) == 4
    assert sorted(parts[0] + parts[1]) == list(range(n))
    with pytest.raises(ValueError):
        get_ssd_train_loader(ds, anchors, SIZE, 2, shard=(2, 2))


@pytest.mark.parametrize('num_workers', [0, 2])
def test_bad_image_never_crashes_a_worker(tmp_path, anchors, num_workers):
    make_synthetic_voc(str(tmp_path), seed=1, num_train=9, num_test=0, image_size=(96, 96))
    jpeg_dir = os.path.join(str(tmp_path), 'VOCdevkit', 'VOC2007', 'JPEGImages')
    with open(os.path.join(jpeg_dir, '000001.jpg'), 'wb'):
        pass  # zero bytes: skipped when the dataset is built
    ds = get_dataset('synthetic', str(tmp_path), 'train')
    assert len(ds) == 8  # a multiple of the batch: every item is read each epoch
    # corrupt inside after building (complete at both ends): replaced at load time
    with open(os.path.join(jpeg_dir, '000002.jpg'), 'wb') as f:
        f.write(b'\xff\xd8\xff' + b'\x00' * 300 + b'\xff\xd9')
    loader = get_ssd_train_loader(ds, anchors, SIZE, 2, num_workers=num_workers, augment='flip')
    batches = list(loader)
    assert len(batches) == 4 and all(b[0].shape[0] == 2 for b in batches)
    if num_workers == 0:  # counts made in worker processes stay there
        assert ds.report.counts['substituted'] == 1


def test_workers_draw_different_augmentations(anchors):
    """Forked workers start from the parent's numpy state; the loader reseeds each one."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :32] = 255  # bright left half: a flip shows as a dark top-left pixel
    ds = gluon.data.ArrayDataset([mx.nd.array(img, dtype='uint8')] * 8,
                                 [np.array([[4., 4., 40., 40., 0., 0.]])] * 8)
    loader = get_ssd_train_loader(ds, anchors, SIZE, 4, num_workers=2, augment='flip')
    same = []
    for _ in range(4):
        (a, _, _), (b, _, _) = list(loader)
        flips_a = a[:, 0, 0, 0].asnumpy() < 0
        flips_b = b[:, 0, 0, 0].asnumpy() < 0
        same.append(bool(np.all(flips_a == flips_b)))
    assert not all(same)  # without reseeding the two workers flip in lockstep every epoch


def _pool_loader():
    from gankd_gluon.data.loaders import DataLoader
    data = gluon.data.ArrayDataset(np.arange(64, dtype="float32").reshape(16, 4))
    loader = DataLoader(data, batch_size=4, num_workers=2, thread_pool=False)
    assert sum(float(b.sum().asscalar()) for b in loader) == sum(range(64))  # workers started
    return loader


def _finishes(fn, seconds=30):
    import threading
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive()


def test_loader_workers_survive_a_sigterm_to_the_process_group():
    # Slurm's scancel and systemd send SIGTERM to every process of the job; the training loop
    # handles it in the main process, while the workers go on loading (a validation that is
    # running finishes)
    import signal
    loader = _pool_loader()
    workers = list(loader._worker_pool._pool)
    for w in workers:
        os.kill(w.pid, signal.SIGTERM)
    assert sum(float(b.sum().asscalar()) for b in loader) == sum(range(64))
    assert all(w.is_alive() for w in workers)
    from gankd_gluon.data.loaders import close_loaders
    assert _finishes(close_loaders)
    assert not any(w.is_alive() for w in workers)


def test_loader_stops_when_killed_workers_left_its_queue_lock_taken():
    # an idle worker waits for tasks holding the task queue's lock: killed, it never releases
    # it, and multiprocessing's Pool.terminate (MXNet's DataLoader.__del__, the exit handler)
    # then waits for ever; measured: Pool.terminate still waiting after 30 s
    import signal
    import time
    from gankd_gluon.data.loaders import close_loaders
    loader = _pool_loader()
    workers = list(loader._worker_pool._pool)
    time.sleep(0.5)                                     # both idle: one of them holds the lock
    for w in workers:
        os.kill(w.pid, signal.SIGKILL)
    for w in workers:
        w.join(5)
    assert not loader._worker_pool._inqueue._rlock.acquire(False)    # taken by a dead worker
    assert _finishes(close_loaders)
    assert _finishes(lambda: loader.__del__())         # and the loader's own teardown


def _sigterm_while_forking(monkeypatch):
    """multiprocessing.Pool, patched to receive a SIGTERM (scancel, systemd's stop) just before
    it forks the workers: inside the DataLoader's construction."""
    import multiprocessing
    import signal
    real_pool = multiprocessing.Pool

    def pool(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_pool(*args, **kwargs)
    monkeypatch.setattr(multiprocessing, 'Pool', pool)


def test_a_sigterm_while_the_workers_are_forked_is_not_lost(monkeypatch):
    # the workers are forked with SIGTERM ignored; a SIGTERM that comes meanwhile reaches the
    # main process's handler afterwards (it was discarded: the run then trained on to the end
    # and exited 0 after a scancel)
    import signal
    from gankd_gluon.data.loaders import DataLoader, close_loaders
    _sigterm_while_forking(monkeypatch)
    got = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _: got.append(signum))
    try:
        data = gluon.data.ArrayDataset(np.arange(64, dtype='float32').reshape(16, 4))
        loader = DataLoader(data, batch_size=4, num_workers=2, thread_pool=False)
        assert got == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
        workers = list(loader._worker_pool._pool)
        for w in workers:                                  # the workers still ignore it
            os.kill(w.pid, signal.SIGTERM)
        assert sum(float(b.sum().asscalar()) for b in loader) == sum(range(64))
        assert all(w.is_alive() for w in workers)
        assert got == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
        close_loaders()


def test_a_sigterm_while_the_workers_are_forked_ends_a_process_without_handler(tmp_path):
    # a run signalled while it builds its loaders, before the training loop handles SIGTERM,
    # ends as SIGTERM's default says, no worker left (it went on to train and exited 0)
    import signal
    import subprocess
    import sys
    import time
    script = tmp_path / 'build.py'
    script.write_text(
        'import multiprocessing, os, signal, sys\n'
        'import numpy as np\n'
        'from mxnet import gluon\n'
        'from gankd_gluon.data.loaders import DataLoader\n'
        'real_pool = multiprocessing.Pool\n'
        'def pool(*args, **kwargs):\n'
        '    os.kill(os.getpid(), signal.SIGTERM)\n'
        '    return real_pool(*args, **kwargs)\n'
        'multiprocessing.Pool = pool\n'
        'data = gluon.data.ArrayDataset(np.arange(64, dtype="float32").reshape(16, 4))\n'
        'loader = DataLoader(data, batch_size=4, num_workers=2, thread_pool=False)\n'
        'print("went on")\n')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get('PYTHONPATH', ''))
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    out, err = run.communicate(timeout=120)
    assert run.returncode == -signal.SIGTERM, err[-2000:]
    assert 'went on' not in out
    time.sleep(1)
    from dist_fixtures import session_processes
    assert session_processes(run.pid) == []        # nothing left in its session


class _OpaquePool:
    """A Pool of a Python whose private attributes are named otherwise: only the public
    methods show."""

    def __init__(self, pool):
        self.__pool = pool

    def terminate(self):
        self.__pool.terminate()


def test_stopping_a_pool_without_the_known_private_attributes_still_terminates_it():
    import multiprocessing
    from gankd_gluon.data.loaders import _stop_pool
    pool = multiprocessing.Pool(2)
    workers = list(pool._pool)
    _stop_pool(_OpaquePool(pool))
    assert _finishes(lambda: [w.join() for w in workers], 10)
    assert not any(w.is_alive() for w in workers)

