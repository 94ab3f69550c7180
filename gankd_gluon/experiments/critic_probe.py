"""The critic probe: can the D-Net tell the teacher's feature maps apart from other maps, and how
does the adversarial gradient split over the maps?

GAN-KD (Hong, Yu, Fan, "GAN-Knowledge Distillation for one-stage Object Detection", arXiv
1906.08467, 2019) rests on one mechanism: a critic per feature map learns to tell the teacher's
maps ("real") from the student's ("fake"), and the student learns from that signal. A critic that
cannot tell the teacher from a random network carries no knowledge of the teacher. This probe
measures that directly, against a no-difference control, the way the critics are trained.

For each *fake* below, fresh critics (built exactly as ``train_ssd_gan_kd.py`` builds them, same
flags) are trained for ``--steps`` critic steps with the training code's own
:meth:`~gankd_gluon.engine.steps.GANStep.critic_step` (WGAN loss, Adam, weight clipping) on
(teacher's maps of image pool A) against (fake maps of image pool B), then the *separation*
``mean D_i(fake) - mean D_i(real)`` of every critic i is measured on held-out pools A', B' (a
working critic gives a positive number):

``random``
    maps of a randomly initialised network of the teacher's architecture (inference-mode
    BatchNorm, like the teacher);
``scaled``
    the teacher's maps x 0.5;
``shifted``
    the teacher's maps + 0.5 x their per-channel standard deviation (over pool A);
``student``
    a freshly initialised student's maps as stage 1 sees them (adapted to the teacher's channels,
    training-mode BatchNorm);
``control``
    the teacher's own maps of pool B: no difference but the images, so its separation is the
    noise floor of the measurement.

Pools A and B are disjoint halves of the training images, A' and B' disjoint halves of the test
images; every fake is a function of pool B's images, so the fakes differ from the control in one
thing only. The teacher, the random network and the student each run once per image.

*Gradient share*: with the critics trained on the ``student`` fake, the gradient of each critic's
adversarial term ``sum_b D_i(student(x_b))`` (the student step's term) with respect to the
student's backbone parameters (the ImageNet network, without extra layers and adapters) is
computed separately per critic on a held-out batch; ``grad_share[i] = |w_i g_i| / sum_j
|w_j g_j|`` (L2 norms) with the critic weights stage 1 would set (``--critic-balance-interval``,
set from a training batch as the student step does), and ``grad_share_unweighted`` with all
weights 1 (the paper's plain sum).
"""
import json
import time

import mxnet as mx
import numpy as np
from mxnet import autograd

from ..data.checks import DatasetNotFoundError

class DatasetTooSmallError(DatasetNotFoundError):
    """The dataset has fewer images than the probe's pools need (exit 2 in the script)."""


__all__ = ["DatasetTooSmallError", "FAKES", "collect_maps", "probe_critics", "format_table",
           "write_json"]

FAKES = ("random", "scaled", "shifted", "student", "control")


def _maps_of(features, images, batch, ctx, train_mode=False):
    """Run ``features`` over ``images`` (N, 3, H, W) in batches; returns per map (N, C, H, W)."""
    chunks = []
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch].as_in_context(ctx)
        if train_mode:
            with autograd.train_mode():
                maps = features(x)
        else:
            maps = features(x)
        chunks.append([m.copyto(mx.cpu()) for m in maps])
    return [mx.nd.concat(*[c[j] for c in chunks], dim=0) for j in range(len(chunks[0]))]


def _separation(dnet, real, fake, batch, ctx):
    """Per critic: mean D_i(fake) - mean D_i(real) over the held-out maps and its standard error
    ``sqrt(var_fake / n_fake + var_real / n_real)``, in the mode the training step runs the
    critics (training mode: BatchNorm critics use batch statistics, with all-real and all-fake
    batches as in the step). Returns two arrays (M,)."""
    def scores(maps):
        out = []
        for i in range(0, maps[0].shape[0], batch):
            with autograd.train_mode():
                out.append(dnet(*[m[i:i + batch].as_in_context(ctx) for m in maps]).asnumpy())
        return np.concatenate(out, axis=0)
    f, r = scores(fake).astype(np.float64), scores(real).astype(np.float64)
    se = np.sqrt(f.var(axis=0, ddof=1) / len(f) + r.var(axis=0, ddof=1) / len(r))
    return f.mean(axis=0) - r.mean(axis=0), se


def _train_critics(make_dnet, args, real, fake, ctx, rng):
    """Fresh critics trained for ``args.steps`` critic steps of the training code on random
    batches of (real, fake). Returns the D-Net and the last step's Loss_D."""
    from ..engine.steps import GANStep
    dnet = make_dnet()
    trainer = mx.gluon.Trainer(dnet.collect_params(), "adam",
                               {"learning_rate": args.lrD, "beta1": args.beta1})
    step = GANStep(None, dnet, None, trainer, clamp=(args.clamp_lower, args.clamp_upper),
                   d_steps=1)
    n_real, n_fake = real[0].shape[0], fake[0].shape[0]
    b = args.batch_size
    loss_d = float("nan")
    for k in range(args.steps):
        ir = mx.nd.array(rng.choice(n_real, b, replace=False), dtype="int32")
        jf = mx.nd.array(rng.choice(n_fake, b, replace=False), dtype="int32")
        t = [[m.take(ir).as_in_context(ctx) for m in real]]
        s = [[m.take(jf).as_in_context(ctx) for m in fake]]
        out = step.critic_step(t, s, float(b), 0, k)
        if k == args.steps - 1:
            loss_d = float(out[2][0].asscalar())
    return dnet, loss_d


def _grad_shares(dnet, student_features, train_images, held_images, batch, ctx, balance):
    """Each critic's share of the adversarial gradient reaching the student's backbone.

    The norm ``g_i`` of d(sum_b D_i(student(x_b))) / d(backbone) on a held-out batch, per critic,
    unweighted and (with ``balance``, as stage 1 does) with the weights that
    :func:`~gankd_gluon.engine.balance.balance_weights` sets from a training batch. Returns
    (shares with the training's weights, unweighted shares, unweighted norms), each (M,)."""
    from ..engine.balance import balance_weights, critic_gradient_norms
    from ..engine.steps import _no_weight_grads
    from ..models.ssd import backbone_params
    params = backbone_params(student_features)
    critic_params = [p for p in dnet.collect_params().values() if p.grad_req != "null"]

    def norms(images):
        with _no_weight_grads(critic_params), autograd.record():
            maps = student_features(images[:batch].as_in_context(ctx))
        with _no_weight_grads(critic_params):
            return critic_gradient_norms(dnet, maps, params)
    weights = np.ones(len(dnet.critics))
    if balance and hasattr(dnet, "set_critic_weights"):
        weights = balance_weights(norms(train_images))
        dnet.set_critic_weights(weights)
    g = norms(held_images)
    return (weights * g / max((weights * g).sum(), 1e-30), g / max(g.sum(), 1e-30), g)


class _AdaptedMap(mx.gluon.Block):
    """A Faster R-CNN student's stride-16 map as stage 1 sees it: ``adapter(features(x))``, one
    map (B, C_t, H/16, W/16) in a list, like an SSD feature block's output. ``adapters`` names
    the adapter so that :func:`~gankd_gluon.models.ssd.backbone_params` leaves it out."""

    def __init__(self, features, adapter, **kwargs):
        super(_AdaptedMap, self).__init__(**kwargs)
        self.features = features
        self.adapters = adapter

    def forward(self, x):  # pylint: disable=arguments-differ
        return [self.adapters(self.features(x))]


def _ssd_networks(args, classes, ctx, random_teacher_first):
    """SSD: (teacher, random network of its architecture, fresh student) feature blocks, each
    ``x -> list of maps``; the student's maps adapted to the teacher's channels."""
    from ..engine.ssd_runs import build_gankd_models
    from ..models.ssd import build_ssd, freeze, initialize_new_params, teacher_layout
    kind = "coco" if args.dataset == "coco" else "voc"
    layout = teacher_layout(args.teacher, args.data_shape, kind)

    def random_teacher():
        net = build_ssd(args.teacher, layout, classes, pretrained_base=False)
        initialize_new_params(net, ctx)
        net(mx.nd.zeros((1, 3, args.data_shape, args.data_shape), ctx=ctx))  # deferred shapes
        return freeze(net)
    teacher = random_teacher() if random_teacher_first else None
    teacher, student, _, _ = build_gankd_models(args, classes, [ctx], teacher=teacher)
    rand = random_teacher()
    return teacher.features, rand.features, student.features


def _frcnn_networks(args, classes, ctx, random_teacher_first):
    """Faster R-CNN: the same three for the stride-16 map (C4 of ResNet-v1b/v1d), the student's
    map through its 1x1 adapter (:class:`~gankd_gluon.models.faster_rcnn.MapAdapter`), as
    ``train_faster_rcnn_gan_kd.py`` builds them (GluonCV presets, frozen backbone BatchNorm)."""
    import warnings
    from ..models.faster_rcnn import (MapAdapter, ZOO_SETTINGS, build_faster_rcnn,
                                      build_teacher, feature_channels, initialize_params)
    from ..models.faster_rcnn import map_size
    settings = dict(ZOO_SETTINGS, short=args.data_shape, max_size=args.data_shape)
    # the RPN and RCNN never run here; only their sizes must fit a small input to build
    anchors = map_size(args.data_shape) ** 2 * 15
    for key in ("rpn_train_post_nms", "rpn_test_post_nms", "num_sample"):
        settings[key] = min(settings[key], anchors)

    def fresh(backbone, trainable):
        net = build_faster_rcnn(backbone, classes, "align", 1, pretrained_base=False, **settings)
        initialize_params(net, ctx)
        net.collect_params().setattr("grad_req", "null")
        if trainable:                       # GluonCV trains collect_train_params() only
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                net.collect_train_params().setattr("grad_req", "write")
        return net
    if random_teacher_first:
        teacher = fresh(args.teacher, False)
    else:
        teacher = build_teacher(args.teacher, classes, args.teacher_params, ctx, **settings)
    rand = fresh(args.teacher, False)
    student = fresh(args.student, True)
    adapter = MapAdapter(feature_channels(student), feature_channels(teacher))
    adapter.initialize(ctx=ctx)

    def single(features):
        return lambda x: [features(x)]
    return (single(teacher.features), single(rand.features),
            _AdaptedMap(student.features, adapter))


def collect_maps(args, say=print):
    """Build the teacher, a random network of its architecture and a fresh student for ``args``
    (``args.detector``: ``ssd``, every map of the SSD feature pyramid; ``faster_rcnn``, the
    stride-16 map) and compute every map the probe needs, once. Images are resized to
    ``--data-shape`` square and normalised with ImageNet's mean and standard deviation
    (SSD's validation transform; for Faster R-CNN, whose transform keeps the aspect ratio,
    the square makes batches). Returns a dict (see :func:`probe_critics`).

    Raises
    ------
    DatasetTooSmallError
        The dataset has fewer images than the pools need (before any network is built).
    """
    from ..data.datasets import get_splits
    from ..engine.loop import seed_everything
    from ..engine.ssd_runs import get_contexts
    from ..models.critics import channel_stats
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform

    tic = time.time()
    seed_everything(args.seed)
    ctx = get_contexts(args)[0]
    args.pretrained_base = False
    detector = getattr(args, "detector", "ssd")
    # the data first: a missing or too small dataset stops the probe before any network is built
    # held-out images: the test split, then the training images the critics never see
    train_set, test_set = get_splits(args.dataset, args.dataset_root,
                                     getattr(args, "classes", None),
                                     getattr(args, "train_years", None),
                                     getattr(args, "train_split", None),
                                     getattr(args, "val_split", None))
    classes = tuple(train_set.classes)
    n_train, n_held = 2 * args.num_train, 2 * args.num_heldout
    held_items = [(test_set, i) for i in range(len(test_set))] + [
        (train_set, i) for i in range(n_train, len(train_set))]
    if len(train_set) < n_train or len(held_items) < n_held:
        raise DatasetTooSmallError(
            "--dataset-root %s: %d training and %d test images; the probe needs %d for training "
            "(2 x --num-train) and %d more held out (2 x --num-heldout, test images first)"
            % (args.dataset_root, len(train_set), len(test_set), n_train, n_held))

    build = _frcnn_networks if detector == "faster_rcnn" else _ssd_networks
    t_features, r_features, s_features = build(args, classes, ctx, args.teacher_params is None)
    if args.hybridize:
        for b in (t_features, r_features, s_features):
            if isinstance(b, mx.gluon.HybridBlock):
                b.hybridize()

    transform = SSDDefaultValTransform(args.data_shape, args.data_shape)

    def images(items):
        return mx.nd.stack(*[transform(*ds[i])[0] for ds, i in items])

    train = images([(train_set, i) for i in range(n_train)])
    held = images(held_items[:n_held])
    pools = {"A": train[0::2], "B": train[1::2], "A'": held[0::2], "B'": held[1::2]}
    say("probe: %d + %d training images, %d + %d held-out images" % (
        args.num_train, args.num_train, args.num_heldout, args.num_heldout))

    b = args.batch_size
    teacher_maps = {k: _maps_of(t_features, v, b, ctx) for k, v in pools.items()}
    stats = channel_stats(teacher_maps["A"])

    def fakes_of(pool):
        t = teacher_maps[pool]
        return {
            "random": _maps_of(r_features, pools[pool], b, ctx),
            "scaled": [m * 0.5 for m in t],
            "shifted": [m + 0.5 * s.reshape((1, -1, 1, 1)) for m, (_, s) in zip(t, stats)],
            "student": _maps_of(s_features, pools[pool], b, ctx, train_mode=True),
            "control": t,
        }
    fake_train, fake_held = fakes_of("B"), fakes_of("B'")
    return {"teacher_maps": teacher_maps, "fake_train": fake_train, "fake_held": fake_held,
            "stats": stats, "student": s_features, "pools": pools, "ctx": ctx, "tic": tic}


def probe_critics(args, say=print, maps=None, make_dnet=None):
    """Run the probe for ``args`` (``scripts/probe_critics.py``'s flags); returns the result dict
    ``{"settings": {...}, "critics": [{"map", "shape", "separation": {fake: s},
    "separation_se": {fake: standard error}, "loss_d": {fake: L_D}, "grad_share",
    "grad_share_unweighted", "grad_norm"}, ...]}`` (the three ``grad_*`` keys only when the
    ``student`` fake ran). ``maps``: a :func:`collect_maps` result to
    reuse; ``make_dnet``: ``make_dnet(args, maps, stats)`` -> DNet (default: the training
    scripts' own)."""
    if maps is None:
        maps = collect_maps(args, say)
    if make_dnet is None:
        from ..engine.ssd_runs import make_dnet
    tic = time.time()
    teacher_maps, fake_train, fake_held = maps["teacher_maps"], maps["fake_train"], maps["fake_held"]
    stats, student, pools, ctx = maps["stats"], maps["student"], maps["pools"], maps["ctx"]
    b = args.batch_size
    shapes = [list(m.shape[1:]) for m in teacher_maps["A"]]

    def make():
        dnet = make_dnet(args, [mx.nd.zeros((1,) + tuple(s)) for s in shapes], stats)
        dnet.collect_params().reset_ctx(ctx)
        if args.hybridize:
            dnet.hybridize()
        return dnet

    rng = np.random.RandomState(args.seed)
    sep, se, loss_d, shares, unweighted, norms = {}, {}, {}, None, None, None
    for name in args.fakes:
        t0 = time.time()
        dnet, loss_d[name] = _train_critics(make, args, teacher_maps["A"], fake_train[name], ctx,
                                            rng)
        sep[name], se[name] = _separation(dnet, teacher_maps["A'"], fake_held[name], b, ctx)
        say("probe: %-8s %s  (%.0f s)" % (name, " ".join("%+.3g" % v for v in sep[name]),
                                          time.time() - t0))
        if name == "student":
            shares, unweighted, norms = _grad_shares(
                dnet, student, pools["B"], pools["B'"], b, ctx,
                balance=getattr(args, "critic_balance_interval", 0) > 0)
    critics = []
    for i, shape in enumerate(shapes):
        c = {"map": i, "shape": shape,
             "separation": {k: float(v[i]) for k, v in sep.items()},
             "separation_se": {k: float(v[i]) for k, v in se.items()},
             "loss_d": {k: v for k, v in loss_d.items()}}
        if shares is not None:
            c["grad_share"] = float(shares[i])
            c["grad_share_unweighted"] = float(unweighted[i])
            c["grad_norm"] = float(norms[i])
        critics.append(c)
    settings = {k: v for k, v in sorted(vars(args).items()) if k not in ("out",)}
    settings["wall_s"] = round(time.time() - tic, 1)
    return {"settings": settings, "critics": critics}


def format_table(result):
    """The probe's result as a Markdown table (the numbers of the JSON): each fake's separation,
    the control's with its standard error, the smallest ratio of a fake's separation to the
    control's magnitude, and the gradient share."""
    first = result["critics"][0]["separation"]
    fakes = [f for f in FAKES if f in first and f != "control"]
    has_control = "control" in first
    head = ["map", "shape"] + fakes + (["control (± s.e.)", "min ratio to control"]
                                       if has_control else []) + ["grad share",
                                                                  "unweighted"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in result["critics"]:
        s = c["separation"]
        row = [str(c["map"]), "x".join(str(v) for v in c["shape"])]
        row += ["%+.3g" % s[f] for f in fakes]
        if has_control:
            ctl = s["control"]
            row.append("%+.3g ± %.2g" % (ctl, c.get("separation_se", {}).get("control", 0.0)))
            ratios = [s[f] / abs(ctl) if ctl else float("inf") for f in fakes]
            row.append("%.1f" % min(ratios) if ratios else "")
        row.append("%.3f" % c["grad_share"] if "grad_share" in c else "")
        row.append("%.3f" % c["grad_share_unweighted"] if "grad_share_unweighted" in c else "")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_json(result, path):
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
