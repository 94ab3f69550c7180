"""The loop's step schedule: rates by hand, and the GluonCV line it logs at each change."""
import logging

import pytest

from gankd_gluon.engine.loop import StepSchedule, step_lr


@pytest.fixture
def logger(caplog):
    caplog.set_level(logging.INFO, logger="test_engine_loop")
    return logging.getLogger("test_engine_loop")


def test_step_lr_is_one_based():
    # '179': epochs 1..179 at the base rate, 180 on decayed (the published SSD log's stage 1)
    assert step_lr(0.0005, 179, 0.1, [179]) == 0.0005
    assert step_lr(0.0005, 180, 0.1, [179]) == pytest.approx(0.00005)
    assert step_lr(0.001, 101, 0.1, [80, 100]) == pytest.approx(0.00001)


def test_every_trainer_decays_from_its_own_base(logger, caplog):
    sched = StepSchedule({"G": 0.0004, "D": 0.0002}, 0.5, [1, 3], logger, "GAN")
    assert sched(1) == {"G": 0.0004, "D": 0.0002}
    assert sched(2) == {"G": 0.0002, "D": 0.0001}
    assert sched(3) == {"G": 0.0002, "D": 0.0001}
    assert sched(4) == {"G": 0.0001, "D": 0.00005}
    # one line per distinct rate, at the epochs where they change, highest first
    assert caplog.messages == ["[Epoch 2] Set GAN learning rate to 0.0002",
                     "[Epoch 2] Set GAN learning rate to 0.0001",
                     "[Epoch 4] Set GAN learning rate to 0.0001",
                     "[Epoch 4] Set GAN learning rate to 5e-05"]


def test_a_resumed_run_logs_its_decayed_rate_once(logger, caplog):
    sched = StepSchedule({"SGD": 0.001}, 0.1, [80, 100], logger)
    assert sched(90) == {"SGD": pytest.approx(0.0001)}
    sched(91)
    assert caplog.messages == ["[Epoch 90] Set learning rate to %s" % (0.001 * 0.1)]


def test_no_decay_epochs_no_lines(logger, caplog):
    sched = StepSchedule({"G": 0.0005, "D": 0.0005}, 0.1, [], logger, "GAN")
    assert [sched(e) for e in (1, 2)] == [{"G": 0.0005, "D": 0.0005}] * 2
    assert caplog.messages == []


def test_validation_sees_the_batchnorm_statistics_a_save_writes(tmp_path):
    import mxnet as mx
    import numpy as np
    from mxnet import gluon
    from gankd_gluon.engine.loop import average_device_copies
    ctx = [mx.cpu(0), mx.cpu(1)]
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(2, 1, in_channels=1), gluon.nn.BatchNorm(in_channels=2))
    net.initialize(ctx=ctx)
    bn = net[1]
    # each device's own running statistics, as after training on different slices
    bn.running_mean.data(ctx[0])[:] = mx.nd.array([1.0, 2.0])
    bn.running_mean.data(ctx[1])[:] = mx.nd.array([3.0, 6.0])
    bn.running_var.data(ctx[1])[:] = mx.nd.array([3.0, 5.0])
    weight = net[0].weight.data(ctx[0]).asnumpy()
    net.save_parameters(str(tmp_path / "saved.params"))
    saved = {k: v.asnumpy() for k, v in mx.nd.load(str(tmp_path / "saved.params")).items()}
    assert saved["1.running_mean"].tolist() == [2.0, 4.0]       # the save writes the mean
    assert saved["1.running_var"].tolist() == [2.0, 3.0]        # (1 + 3) / 2, (1 + 5) / 2
    x = mx.nd.random.uniform(shape=(1, 1, 3, 3))
    outs = [net(x.as_in_context(c)).asnumpy() for c in ctx]
    assert not np.allclose(outs[0], outs[1])      # the devices would score different models
    average_device_copies({"net": net})
    for c in ctx:
        assert bn.running_mean.data(c).asnumpy().tolist() == [2.0, 4.0]
        assert bn.running_var.data(c).asnumpy().tolist() == [2.0, 3.0]
    np.testing.assert_array_equal(net[0].weight.data(ctx[0]).asnumpy(), weight)  # trained
    outs = [net(x.as_in_context(c)).asnumpy() for c in ctx]
    np.testing.assert_array_equal(outs[0], outs[1])
