"""engine/ssd_runs.py: the teacher's feature statistics the default critics standardise with."""
import mxnet as mx
import numpy as np


def test_teacher_statistics_by_hand_over_the_first_images():
    """``teacher_statistics``: per map, channel mean and standard deviation of the teacher's
    maps of the first ``count`` images (validation transform, in batches), by hand."""
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
    from gankd_gluon.engine.ssd_runs import teacher_statistics
    rng = np.random.RandomState(0)
    label = np.array([[1, 1, 10, 10, 0, 0]], dtype="float32")
    dataset = [(mx.nd.array(rng.randint(0, 255, size=(40, 48, 3)), dtype="uint8"), label)
               for _ in range(5)]

    def features(x):             # two "maps": the image, and its 2x2 average pool
        return [x * 2 + 1, mx.nd.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="avg")]
    stats = teacher_statistics(features, dataset, 32, mx.cpu(), count=3, batch=2)
    transform = SSDDefaultValTransform(32, 32)
    x = mx.nd.stack(*[transform(*dataset[i])[0] for i in range(3)])
    for (mean, std), m in zip(stats, features(x)):
        m = m.asnumpy()
        np.testing.assert_allclose(mean.asnumpy(), m.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(std.asnumpy(), m.std(axis=(0, 2, 3)), rtol=2e-3)
