"""The GAN-KD step (paper Eq. 1) on a tiny teacher/student pair."""
import mxnet as mx
import numpy as np
import pytest
from gluoncv.loss import SSDMultiBoxLoss
from mxnet import autograd, gluon

from gankd_gluon.engine.guards import RunningMean, check_finite
from gankd_gluon.engine.steps import GANStep, SSDAdapter, split_batch
from gankd_gluon.models.critics import DNet
from gankd_gluon.models.ssd import (build_ssd, build_student, build_teacher, feature_channels,
                                    initialize_new_params, split_ssd, teacher_layout)

CLASSES = ("a", "b")
SIZE = 128


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    lay = teacher_layout("mobilenet0.5", SIZE)
    t = build_ssd("mobilenet0.5", lay, CLASSES)
    initialize_new_params(t, mx.cpu())
    with autograd.train_mode():
        t(mx.nd.zeros((1, 3, SIZE, SIZE)))
    path = str(tmp_path_factory.mktemp("t") / "teacher.params")
    t.save_parameters(path)
    return path


def _setup(teacher_file, ctx, d_steps=1, norm="batch", balance_interval=0):
    mx.random.seed(0)
    lay = teacher_layout("mobilenet0.5", SIZE)
    teacher = build_teacher("mobilenet0.5", CLASSES, lay, params=teacher_file)
    t_ch = feature_channels(teacher.features, SIZE, 6)
    student = build_student("mobilenet0.25", teacher, t_ch, lay, CLASSES, pretrained_base=False)
    with autograd.predict_mode():
        maps = teacher.features(mx.nd.zeros((1, 3, SIZE, SIZE)))
    dnet = DNet([m.shape[2] for m in maps], base_channels=8, norm=norm,
                channels=[m.shape[1] for m in maps])
    dnet.initialize()
    dnet(*maps)
    for b in (teacher, student, dnet):
        b.collect_params().reset_ctx(ctx)
    s_feat, s_head = split_ssd(student)
    tg = gluon.Trainer(student.collect_params(), "adam", {"learning_rate": 5e-4, "beta1": 0.5},
                       update_on_kvstore=False)
    td = gluon.Trainer(dnet.collect_params(), "adam", {"learning_rate": 5e-4, "beta1": 0.5},
                       update_on_kvstore=False)
    step = GANStep(SSDAdapter(teacher.features, s_feat, s_head, SSDMultiBoxLoss()), dnet, tg,
                   td, d_steps=d_steps, balance_interval=balance_interval)
    with autograd.train_mode():
        _, _, anchors = student(mx.nd.zeros((1, 3, SIZE, SIZE), ctx=ctx[0]))
    return teacher, student, dnet, step, anchors


def _batch(anchors, n=4, seed=0):
    from gluoncv.model_zoo.ssd.target import SSDTargetGenerator
    rng = np.random.RandomState(seed)
    x = mx.nd.array(rng.uniform(-1, 1, size=(n, 3, SIZE, SIZE)))
    gt = mx.nd.array([[[10, 10, 60, 70], [50, 40, 120, 110]]] * n)
    gt_ids = mx.nd.array([[[0], [1]]] * n)
    # as SSDDefaultTrainTransform: no mining in the target generator (the loss mines)
    gen = SSDTargetGenerator(iou_thresh=0.5, stds=(0.1, 0.1, 0.2, 0.2), negative_mining_ratio=-1)
    cls_t, box_t, _ = gen(anchors.as_in_context(mx.cpu()), None, gt, gt_ids)
    return x, cls_t, box_t


def _values(block, trainable_only=False):
    """Parameter values; ``trainable_only`` leaves out BatchNorm moving statistics, which any
    training-mode forward updates."""
    return {k: v.data().asnumpy().copy() for k, v in block.collect_params().items()
            if not (trainable_only and v.grad_req == "null")}


def test_gan_step_updates_student_and_critics_never_teacher(teacher_file):
    teacher, student, dnet, step, anchors = _setup(teacher_file, [mx.cpu()])
    x, cls_t, box_t = _batch(anchors)
    t0, s0, d0 = _values(teacher), _values(student), _values(dnet)
    out = step([x], [cls_t], [box_t])
    t1, s1, d1 = _values(teacher), _values(student), _values(dnet)
    assert all(np.array_equal(t0[k], t1[k]) for k in t0)                 # frozen teacher
    assert any(not np.array_equal(s0[k], s1[k]) for k in s0)
    assert any(not np.array_equal(d0[k], d1[k]) for k in d0)
    clipped = _values(dnet, trainable_only=True)      # weights, gamma, beta; not moving stats
    assert all(v.min() >= -0.03 and v.max() <= 0.03 for v in clipped.values())
    # Loss_D = Loss_D_real - Loss_D_fake, as in the published log
    real, fake, ld = (out[k][0].asscalar() for k in ("Loss_D_real", "Loss_D_fake", "Loss_D"))
    assert ld == pytest.approx(real - fake, rel=1e-5, abs=1e-6)
    # Loss_D_real is the D-Net's batch mean on the teacher's maps with the critics as they
    # were before the update: recompute it by hand from the saved weights
    for k, p in dnet.collect_params().items():
        p.set_data(mx.nd.array(d0[k]))
    maps = teacher.features(x)
    with autograd.train_mode():            # the critics' BatchNorm uses batch statistics
        d_teacher = dnet(*maps)
    assert d_teacher.sum(axis=1).mean().asscalar() == pytest.approx(real, rel=1e-4, abs=1e-6)


def test_critic_step_gives_the_student_no_gradient(teacher_file):
    """The critic step detaches the student's maps: with zero student lr only the critics move
    in the critic step, and the student step is the only one that updates the student."""
    teacher, student, dnet, step, anchors = _setup(teacher_file, [mx.cpu()], d_steps=3)
    x, cls_t, box_t = _batch(anchors)
    step([x], [cls_t], [box_t])
    assert step.trainer_d.optimizer.num_update == 3      # --d-steps 3: three critic updates
    assert step.trainer_g.optimizer.num_update == 1
    for p in teacher.collect_params().values():
        assert p.grad_req == "null"


def test_nan_in_critic_loss_stops_before_any_update(teacher_file):
    teacher, student, dnet, step, anchors = _setup(teacher_file, [mx.cpu()])
    x, cls_t, box_t = _batch(anchors)
    w = dnet.critics[0].out.weight
    w.set_data(w.data() * float("nan"))
    s0, d0 = _values(student), _values(dnet, trainable_only=True)
    with pytest.raises(FloatingPointError, match=r"epoch 7, batch 3.*Loss_D=nan"):
        step([x], [cls_t], [box_t], epoch=7, batch=3)
    assert step.trainer_d.optimizer.num_update == 0
    assert all(np.array_equal(s0[k], v) for k, v in _values(student).items())
    # the forward pass moved the critics' BatchNorm statistics; no weight changed
    assert all(np.array_equal(d0[k], v, equal_nan=True)
               for k, v in _values(dnet, trainable_only=True).items())


def test_nan_in_detection_loss_stops_before_the_student_update(teacher_file):
    teacher, student, dnet, step, anchors = _setup(teacher_file, [mx.cpu()])
    x, cls_t, box_t = _batch(anchors)
    box_t[:] = float("nan")
    s0 = _values(student, trainable_only=True)
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 0.*SmoothL1=nan"):
        step([x], [cls_t], [box_t], epoch=2, batch=0)
    assert step.trainer_g.optimizer.num_update == 0
    assert all(np.array_equal(s0[k], v) for k, v in _values(student, True).items())


def test_two_devices_match_one_device(teacher_file):
    """The batch split over [cpu(0), cpu(1)] gives the same D(teacher) term as one device with
    normalisation-free critics (``--critic-norm none``; the teacher uses moving statistics) and
    the 1/N of Eq. 1 over the global batch. (BatchNorm critics and the student's BatchNorm
    normalise per device, as in GluonCV's data-parallel training without SyncBatchNorm.)"""
    one = _setup(teacher_file, [mx.cpu(0)], norm="none")
    two = _setup(teacher_file, [mx.cpu(0), mx.cpu(1)], norm="none")
    x, cls_t, box_t = _batch(one[4])
    out1 = one[3]([x], [cls_t], [box_t])
    data, ct, bt = split_batch((x, cls_t, box_t), [mx.cpu(0), mx.cpu(1)])
    out2 = two[3](data, ct, bt)
    assert len(out2["Loss_D_real"]) == 2
    total2 = sum(v.asscalar() for v in out2["Loss_D_real"])
    assert total2 == pytest.approx(out1["Loss_D_real"][0].asscalar(), rel=1e-4, abs=0)
    for key in ("Loss_D_fake", "CrossEntropy", "SmoothL1"):
        assert all(np.isfinite(v.asnumpy()).all() for v in out2[key])


def test_two_devices_log_the_monitors_of_one_device(teacher_file):
    """``cosine_length_loss_metric`` and ``W_i`` as logged (``RunningMean`` of the device
    shares) equal the one-device values. They depend on the student's maps, which its
    BatchNorm normalises per device in training mode, so here the student's BatchNorm uses its
    moving statistics (the forward is still recorded); the critics are normalisation-free."""
    one = _setup(teacher_file, [mx.cpu(0)], norm="none")
    two = _setup(teacher_file, [mx.cpu(0), mx.cpu(1)], norm="none")
    x, cls_t, box_t = _batch(one[4])
    outs = []
    for setup, batch in ((one, ([x], [cls_t], [box_t])),
                         (two, split_batch((x, cls_t, box_t), [mx.cpu(0), mx.cpu(1)]))):
        step, features = setup[3], setup[3].detector.student_features

        def moving_stats(data, features=features):
            with autograd.predict_mode():
                return features(data)
        step.detector.student_features = moving_stats
        outs.append(step(*batch))
    for key in ["cosine_length_loss_metric"] + ["W_%d" % i for i in range(6)]:
        logged = []
        for out in outs:
            mean = RunningMean(key)
            mean.update(out[key])
            logged.append(mean.get()[1])
        assert len(outs[1][key]) == 2
        assert logged[1] == pytest.approx(logged[0], rel=1e-4, abs=1e-6), key

def test_gan_step_monitors_cosine_length_and_per_critic_separation(teacher_file):
    """The step's output holds ``cosine_length_loss_metric`` (student's maps before the
    update vs the teacher's, recomputed here) and ``W_0..W_5``, which sum to ``-Loss_D``."""
    from gankd_gluon.engine.diagnostics import cosine_length_metric
    teacher, student, dnet, step, anchors = _setup(teacher_file, [mx.cpu()])
    x, cls_t, box_t = _batch(anchors)
    with autograd.train_mode():            # the student's forward runs under record()
        s_maps = step.detector.student_features(x)
    t_maps = teacher.features(x)           # the teacher's does not (moving statistics)
    expected = cosine_length_metric(s_maps, t_maps, x.shape[0]).asscalar()
    out = step([x], [cls_t], [box_t])
    assert out["cosine_length_loss_metric"][0].shape == (1,)
    assert out["cosine_length_loss_metric"][0].asscalar() == pytest.approx(expected, rel=1e-5)
    assert expected > 0
    w = [out["W_%d" % i][0].asscalar() for i in range(6)]
    assert "W_6" not in out
    assert sum(w) == pytest.approx(-out["Loss_D"][0].asscalar(), rel=1e-4, abs=1e-6)


def test_check_finite_names_the_loss():
    check_finite({"a": [mx.nd.ones(3)]}, 1, 1)
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 5.*SmoothL1=inf"):
        check_finite({"CE": [mx.nd.ones(2)], "SmoothL1": [mx.nd.array([1, float("inf")])]}, 2, 5)


def test_running_mean_is_nan_without_updates_like_mx_metric_loss():
    m = RunningMean("Loss_D")
    assert np.isnan(m.get()[1]) and np.isnan(mx.metric.Loss().get()[1])
    m.update([mx.nd.array([1.0, 2.0])])          # one step, total 3
    m.update([mx.nd.array([2.0]), mx.nd.array([3.0])])   # two devices, total 5
    assert m.get() == ("Loss_D", 4.0)


def test_student_step_skips_critic_weight_grads_without_changing_the_update(teacher_file,
                                                                            monkeypatch):
    """The student step runs with the critics' grad_req 'null' (no critic weight gradients,
    which nobody uses there): the student's update is the one computed with them, and the
    critics' grad_req is back afterwards, moving statistics still 'null'."""
    import contextlib
    import gankd_gluon.engine.steps as steps_mod
    after = {}
    for skip in (True, False):
        if not skip:
            monkeypatch.setattr(steps_mod, "_no_weight_grads", lambda params:
                                contextlib.nullcontext())
        teacher, student, dnet, step, anchors = _setup(teacher_file, [mx.cpu()])
        x, cls_t, box_t = _batch(anchors)
        for _ in range(2):
            step([x], [cls_t], [box_t])
        after[skip] = (_values(student), _values(dnet, trainable_only=True))
        reqs = {k: p.grad_req for k, p in dnet.collect_params().items()}
        frozen = ("_mean", "_var", "critic_weights")      # statistics, per-critic weights
        assert {r for k, r in reqs.items() if k.endswith(frozen)} == {"null"}
        assert {r for k, r in reqs.items() if not k.endswith(frozen)} == {"write"}
    for part in (0, 1):            # the two builds' name prefixes differ: compare in order
        skipped, full = list(after[True][part].items()), list(after[False][part].values())
        assert len(skipped) == len(full)
        for (k, v), w in zip(skipped, full):
            np.testing.assert_allclose(v, w, rtol=1e-5, atol=1e-7, err_msg=k)


def test_gan_step_balances_the_critics_on_its_balance_batches(teacher_file):
    """With --critic-balance-interval 2 the weights stay 1 at batch 1 and are set at batch 2
    (mean 1); after balancing, every critic's weighted gradient at the backbone is the same."""
    from gankd_gluon.engine.balance import critic_gradient_norms
    from gankd_gluon.models.ssd import backbone_params
    teacher, student, dnet, step, anchors = _setup(teacher_file, [mx.cpu()], norm="lipschitz",
                                                   balance_interval=2)
    x, cls_t, box_t = _batch(anchors)
    step([x], [cls_t], [box_t], batch=1)
    assert (dnet.critic_weights.data().asnumpy() == 1).all()
    step([x], [cls_t], [box_t], batch=2)
    w = dnet.critic_weights.data().asnumpy()
    assert not np.allclose(w, 1) and w.mean() == pytest.approx(1.0, rel=1e-5)
    with autograd.record():
        maps = step.detector.student_features(x)
    step.balance_critics([maps])
    w = dnet.critic_weights.data().asnumpy()
    with autograd.record():
        maps = step.detector.student_features(x)
    g = critic_gradient_norms(dnet, maps, backbone_params(step.detector.student_features))
    np.testing.assert_allclose(w * g, np.full(len(g), (w * g).mean()), rtol=1e-3)


class _PlainFeatures(gluon.HybridBlock):
    """A BatchNorm-free stand-in for the student's feature block, maps of the given
    (C, H, W): a batch split over devices gives exactly the maps and gradients of one device
    (a BatchNorm student normalises each device's share with its own statistics)."""

    def __init__(self, shapes, **kwargs):
        super(_PlainFeatures, self).__init__(**kwargs)
        self.sizes = [s[1] for s in shapes]
        with self.name_scope():
            self.convs = gluon.nn.HybridSequential()
            cin = 3
            for c, _, _ in shapes:
                self.convs.add(gluon.nn.Conv2D(c, 1, in_channels=cin))
                cin = c

    def hybrid_forward(self, F, x):
        out, h = [], x
        for conv, size in zip(self.convs, self.sizes):
            h = F.tanh(conv(F.contrib.AdaptiveAvgPooling2D(h, output_size=size)))
            out.append(h)
        return out


def test_two_devices_set_the_critic_weights_and_score_scale_of_one_device(teacher_file):
    """The same global batch on one device and split over two gives the same score scales and
    critic weights: the balancing takes the norm of each critic's gradient summed over the
    devices (the root of the summed per-device squared norms would depend on the split)."""
    got = []
    for ctx in ([mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]):
        teacher, _, dnet, step, anchors = _setup(teacher_file, ctx, norm="lipschitz",
                                                 balance_interval=1)
        x = _batch(anchors)[0]
        xs = split_batch((x,), ctx)[0]
        t_maps = [teacher.features(xx) for xx in xs]
        mx.random.seed(1)
        features = _PlainFeatures([m.shape[1:] for m in t_maps[0]])
        features.initialize(mx.init.Xavier(), ctx=ctx)
        with autograd.record():
            s_maps = [features(xx) for xx in xs]
        # balanced before the critics' update: Adam's first steps on the near-zero
        # gradients of a few weights differ in float rounding between the two summations
        step._backbone = list(features.collect_params().values())
        step.balance_critics(s_maps)
        weights = dnet.critic_weights.data().asnumpy()
        step.critic_step(t_maps, s_maps, float(x.shape[0]), 0, 0)
        got.append((weights, np.array([c.score_scale.data().asscalar() for c in dnet.critics])))
    assert not np.allclose(got[0][0], 1)
    np.testing.assert_allclose(got[1][0], got[0][0], rtol=1e-4)
    np.testing.assert_allclose(got[1][1], got[0][1], rtol=1e-4)


def test_critic_step_sets_the_score_scale_from_its_unweighted_raw_scores(teacher_file):
    """The default critics' score scale, critic weights and standardisation are constants of
    the step (``grad_req='null'``: never trained, never clipped); the critic step sets each
    critic's scale from its own scores of that step (first observation: the standard deviation
    of the raw scores over the real and fake samples), whatever the critic weights."""
    teacher, _, dnet, step, anchors = _setup(teacher_file, [mx.cpu()], norm="lipschitz")
    frozen = {k: p.grad_req for k, p in dnet.collect_params().items()
              if k.endswith(("score_scale", "critic_weights", "_mean", "_std"))}
    assert len(frozen) == 1 + 4 * 6 and set(frozen.values()) == {"null"}, frozen
    weights = [2.0, 0.5, 1.0, 3.0, 0.25, 1.5]
    dnet.set_critic_weights(weights)
    x = _batch(anchors)[0]
    t_maps = teacher.features(x)
    with autograd.record():
        s_maps = step.detector.student_features(x)
    expected = []
    for c, tm, sm in zip(dnet.critics, t_maps, s_maps):
        raw = np.concatenate([c.raw(tm).asnumpy(), c.raw(sm.detach()).asnumpy()])
        expected.append(raw.std())
    step.critic_step([t_maps], [s_maps], float(x.shape[0]), 0, 0)
    scales = [c.score_scale.data().asscalar() for c in dnet.critics]
    np.testing.assert_allclose(scales, expected, rtol=1e-3)
    assert dnet.critic_weights.data().asnumpy() == pytest.approx(weights)


def test_critic_step_scores_its_own_batch_in_that_batchs_units(teacher_file):
    """The default critics' loss is formed after the step's own scores were observed: each
    critic's scores of the step are ``w_i (raw - mean) / std`` over its real and fake samples,
    so Loss_D_real + Loss_D_fake = 0 and every separation W_i is at most 2 w_i, also on a later
    step whose raw scores moved far from the previous step's normalisation (the lag that gave
    epoch 1 a Loss_G of -1400). Checked by hand from each critic's raw scores."""
    teacher, _, dnet, step, anchors = _setup(teacher_file, [mx.cpu()], norm="lipschitz")
    weights = [2.0, 0.5, 1.0, 3.0, 0.25, 1.5]
    dnet.set_critic_weights(weights)
    x = _batch(anchors)[0]
    t_maps = teacher.features(x)
    with autograd.record():
        s_maps = step.detector.student_features(x)
    step.critic_step([t_maps], [s_maps], 4.0, 0, 0)
    for c in dnet.critics:          # the raw scores move away from the last normalisation
        c.body[0].bias.set_data(mx.nd.ones_like(c.body[0].bias.data()) * 0.03)
    expected_real, expected_sep = 0.0, []
    for c, w, tm, sm in zip(dnet.critics, weights, t_maps, s_maps):
        r, f = c.raw(tm).asnumpy().ravel(), c.raw(sm.detach()).asnumpy().ravel()
        both = np.concatenate([r, f])
        zr, zf = w * (r - both.mean()) / both.std(), w * (f - both.mean()) / both.std()
        expected_real += zr.sum() / 4.0
        expected_sep.append((zf.sum() - zr.sum()) / 4.0)
    real, fake, loss_d, sep = step.critic_step([t_maps], [s_maps], 4.0, 0, 1)
    assert real[0].asscalar() == pytest.approx(expected_real, abs=1e-3)
    assert real[0].asscalar() + fake[0].asscalar() == pytest.approx(0.0, abs=1e-3)
    np.testing.assert_allclose(sep[0].asnumpy(), expected_sep, rtol=1e-3, atol=1e-4)
    assert (np.abs(sep[0].asnumpy()) <= 2 * np.array(weights) + 1e-4).all()


def test_default_critics_keep_loss_g_in_units_of_the_score_spread(teacher_file):
    """Loss_G, the student step's adversarial term, is read in the units the critic step just
    set: over a few steps of fresh critics (whose raw scores are ~1e-8 while Adam moves every
    parameter by ~lrD) its magnitude stays within what a critic that separates perfectly
    gives, 2 per unit of critic weight; a bias on the score (moved by ~5e-4 per step) put it
    at hundreds."""
    _, _, dnet, step, anchors = _setup(teacher_file, [mx.cpu()], norm="lipschitz")
    assert all(c.out.bias is None for c in dnet.critics)
    x, cls_t, box_t = _batch(anchors)
    for b in range(4):
        out = step([x], [cls_t], [box_t], batch=b)
        loss_g = out["Loss_G"][0].asscalar()
        assert np.isfinite(loss_g) and abs(loss_g) <= 2 * len(dnet.critics), (b, loss_g)


def test_balance_interval_0_is_the_plain_sum_even_after_a_balanced_checkpoint(teacher_file):
    """``--critic-balance-interval 0``: the critic weights are 1 from the first step on, also
    when the D-Net was loaded with the weights of a balanced run (a resume), and stay 1."""
    _, _, dnet, step, anchors = _setup(teacher_file, [mx.cpu()], norm="lipschitz",
                                       balance_interval=0)
    dnet.set_critic_weights([2.0, 0.5, 1.0, 3.0, 0.25, 1.5])      # as loaded from a checkpoint
    x, cls_t, box_t = _batch(anchors)
    for b in (0, 1):
        out = step([x], [cls_t], [box_t], batch=b)
        assert (dnet.critic_weights.data().asnumpy() == 1).all()
    # W_i sum to -Loss_D with unit weights: the logged losses are the plain sum
    w = [out["W_%d" % i][0].asscalar() for i in range(6)]
    assert sum(w) == pytest.approx(-out["Loss_D"][0].asscalar(), rel=1e-4, abs=1e-6)
