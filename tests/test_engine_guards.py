"""Non-finite guards (engine/guards.py): weights and optimizer states before saves, input
batches on the device, and the GANKD_FAULT switch; each against a finite control."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gankd_gluon.engine.guards import (FaultSwitch, FaultSwitchError, InputWatch,
                                       check_weights, first_non_finite, trainer_state_arrays)

NAN, INF = float("nan"), float("inf")


def test_first_non_finite_names_the_first_bad_array():
    ok = mx.nd.ones((2, 3))
    assert first_non_finite([("a", ok), ("b", ok * 2)]) is None
    assert first_non_finite([("a", ok), ("b", mx.nd.array([1, NAN])),
                             ("c", mx.nd.array([INF]))]) == "b"
    assert first_non_finite([("a", ok), ("c", mx.nd.array([-INF]))]) == "c"
    assert first_non_finite([("h", mx.nd.array([1, INF], dtype="float16"))]) == "h"
    assert first_non_finite([]) is None


def _net_on(ctx, update_on_kvstore=False):
    net = gluon.nn.Dense(2, in_units=3)
    net.initialize(mx.init.Constant(0.5), ctx=ctx)
    # the training scripts' trainers update on every device (DistEnv.trainer)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1,
                                                          "momentum": 0.9},
                            update_on_kvstore=update_on_kvstore)
    with autograd.record():
        losses = [net(mx.nd.ones((1, 3), ctx=c)).sum() for c in ctx]
    autograd.backward(losses)
    trainer.step(1)
    return net, trainer


def test_check_weights_sees_every_device_copy_and_every_optimizer_state():
    ctx = [mx.cpu(0), mx.cpu(1)]
    net, trainer = _net_on(ctx)
    check_weights({"net": net}, {"opt": trainer}, "before saving best")     # finite: passes
    names = [n for n, _ in trainer_state_arrays({"opt": trainer})]
    assert len(names) == 4 and names[0].startswith("optimizer state opt:dense")  # 2 devices
    net.weight.list_data()[1][0, 0] = NAN             # the second device's copy only
    with pytest.raises(FloatingPointError, match=r"^non-finite values in parameter "
                                                 r"net:weight before saving best; nothing "
                                                 r"saved, the previous checkpoints are intact$"):
        check_weights({"net": net}, {"opt": trainer}, "before saving best")
    net.weight.list_data()[1][0, 0] = 0.5
    trainer._updaters[1].states[0][:] = INF           # momentum of the bias, device 1
    with pytest.raises(FloatingPointError, match=r"^non-finite values in optimizer state "
                                                 r"opt:dense\d+_bias\[0\] after epoch 3"):
        check_weights({"net": net}, {"opt": trainer}, "after epoch 3")


def test_states_a_local_kvstore_keeps_are_checked_too():
    net, trainer = _net_on([mx.cpu(0), mx.cpu(1)], update_on_kvstore=True)
    names = [n for n, _ in trainer_state_arrays({"opt": trainer})]
    assert len(names) == 2
    trainer._kvstore._updater.states[0][:] = NAN
    with pytest.raises(FloatingPointError, match=r"optimizer state opt:dense\d+_"):
        check_weights({"net": net}, {"opt": trainer}, "before saving")


def test_input_watch_reports_the_first_bad_batch_at_the_check():
    watch = InputWatch()
    watch.check(1)                                      # nothing seen: nothing to say
    good = mx.nd.ones((2, 3, 4, 4))
    watch.update(good, 0)
    watch.update([good, good], 1)
    watch.check(1)                                      # finite: passes
    bad = good.copy()
    bad[1, 2, 3, 3] = INF
    watch.update([good, bad], 2)                       # on the second device
    watch.update(good * NAN, 3)
    with pytest.raises(FloatingPointError, match=r"^non-finite input image at epoch 7, "
                                                 r"batch 2 "):
        watch.check(7)
    watch.reset()
    watch.update(good, 0)
    watch.check(8)


@pytest.mark.parametrize("spec, place, epoch, batch, stage", [
    ("", None, None, None, None),
    ("kill-save:12", None, None, None, None),
    ("input:2:0", "input", 2, 0, None),
    ("gradient:1:5:2", "gradient", 1, 5, 2),
])
def test_fault_switch_parses(spec, place, epoch, batch, stage):
    switch = FaultSwitch(spec)
    assert switch.place == place
    if place:
        assert (switch.epoch, switch.batch, switch.stage) == (epoch, batch, stage)


@pytest.mark.parametrize("spec", ["nan:1:1", "input:1", "input:a:1", "kill-save:x",
                                  "loss:1:1:1:1"])
def test_fault_switch_refuses_what_does_not_parse(spec):
    with pytest.raises(FaultSwitchError, match=r"^GANKD_FAULT=%s: expected " % spec):
        FaultSwitch(spec)


def test_fault_switch_hits_one_batch_and_poisons_one_place():
    switch = FaultSwitch("input:2:1")
    assert switch.hits(1, 2, 1) and switch.hits(2, 2, 1)            # any stage
    assert not switch.hits(1, 2, 0) and not switch.hits(1, 1, 1)
    assert not FaultSwitch("input:2:1:2").hits(1, 2, 1)
    batch = [mx.nd.ones((2, 3)), mx.nd.zeros((2, 1)), mx.nd.ones((2, 4))]
    poisoned = switch.poison(batch)
    assert np.isnan(poisoned[0].asnumpy()).sum() == 1
    assert all(np.isfinite(b.asnumpy()).all() for b in batch)       # a copy
    assert all(np.isfinite(b.asnumpy()).all() for b in poisoned[1:])
    loss = FaultSwitch("loss:2:1").poison([[mx.nd.ones((1, 3))], [mx.nd.ones((1, 4))] * 2])
    assert np.isfinite(loss[0][0].asnumpy()).all()
    assert np.isnan(loss[1][0].asnumpy()).sum() == 1 and np.isfinite(loss[1][1].asnumpy()).all()


def test_fault_switch_gradient_reaches_the_update_once():
    net = gluon.nn.Dense(2, in_units=3)
    net.initialize(mx.init.Constant(0.5))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1},
                            update_on_kvstore=False)          # no momentum to carry the NaN
    disarm = FaultSwitch("gradient:1:0").wrap_step(trainer)
    with autograd.record():
        loss = net(mx.nd.ones((1, 3))).sum()
    loss.backward()
    assert np.isfinite(loss.asnumpy()).all()
    trainer.step(1)
    disarm()
    assert np.isnan(net.bias.data().asnumpy()).all()          # the trainer's first parameter
    assert np.isfinite(net.weight.data().asnumpy()).all()
    net.bias.set_data(mx.nd.ones((2,)))
    with autograd.record():
        loss = net(mx.nd.ones((1, 3))).sum()
    loss.backward()
    trainer.step(1)                                                 # disarmed: finite
    assert np.isfinite(net.bias.data().asnumpy()).all()
