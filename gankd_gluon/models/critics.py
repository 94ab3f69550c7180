"""D-Net: one WGAN critic per feature map (paper Sec. 3.1, Fig. 2).

Fig. 2 shows each discriminator as "multiple downsampled convolutional layers"; the paper cites
DCGAN [13], and the published log's settings (``clamp_lower/upper = -/+0.03``, ``beta1 = 0.5``)
are the WGAN weight-clipping critic with DCGAN's Adam. Three designs, ``--critic-norm``:

``lipschitz`` (default, :class:`LipschitzCritic`)
    the map standardised with the teacher's frozen per-channel statistics, a 3x3 conv, DCGAN's
    4x4 stride-2 convs, every conv's clipped weights acting as ``w / (c * fan_in)`` (a gain of
    at most 1 per layer), the score divided by a running spread of the scores. It is this
    project's departure from the published form: a BatchNorm critic that sees all-real and
    all-fake batches separately cannot tell a trained teacher's maps from a random network's
    (BatchNorm removes exactly the per-channel mean and scale differences), and the critic of a
    1x1 map without a hidden layer is linear.
``batch`` (:class:`Critic`, the published form)
    the discriminator of WGAN's reference code (Arjovsky, Chintala, Bottou, "Wasserstein GAN",
    ICML 2017, ``models/dcgan.py``, ``DCGAN_D``): 4x4 stride-2 convs without bias, BatchNorm
    after every conv but the first, LeakyReLU(0.2), down to 1x1, then a 1x1 conv to one scalar,
    no sigmoid. Clipping bounds each weight, not a critic's output; with BatchNorm, whose scale
    and shift are clipped with the weights (the reference clips every parameter), each layer's
    output is re-normalised and then shrunk to at most the clamp, which keeps the outputs at
    the published magnitude (``Loss_D`` about -13 early and about -0.1 late). BatchNorm runs in
    training mode (batch statistics) in both steps, as in the reference, on all-real and
    all-fake batches. At one image per device and a 1x1 final map the normalised activations
    are constant and the critic is blind (Faster R-CNN's 1-2 images per device).
``none`` (:class:`Critic`)
    no normalisation, convs with biases: the output grows with the product of the layers'
    fan-ins and with the size of the feature values (thousands with the published clamp).
"""
import mxnet as mx
from mxnet import autograd
from mxnet.gluon import HybridBlock, nn

__all__ = ["Critic", "LipschitzCritic", "Standardize", "GainConv2D", "DNet", "NORMS",
           "channel_stats", "clip_weights", "num_downsamplings"]

NORMS = ("lipschitz", "batch", "none")


def num_downsamplings(size):
    """How many 4x4/s2/p1 convs take a ``size`` x ``size`` map to 1x1 (0 for a 1x1 map)."""
    n = 0
    while size > 1:
        size = (size + 2 - 4) // 2 + 1
        n += 1
    return n


class Critic(HybridBlock):
    """A DCGAN-style critic for one feature map.

    Parameters
    ----------
    map_size : int
        Spatial size H (= W) of the map it judges; tiny maps (1x1, 2x2) get as many
        downsamplings as the size allows.
    base_channels : int
        Channels of the first conv; doubled after each downsampling (DCGAN), capped at
        ``max_channels``.
    norm : {'batch', 'none'}
        ``batch``: WGAN's reference critic, BatchNorm after every conv but the first and no conv
        biases. ``none``: no normalisation, convs with biases.

    Inputs: x (B, C, H, W). Output: (B, 1) critic scores (unbounded: Wasserstein critic).

    Raises
    ------
    ValueError
        For another ``norm``.
    """

    def __init__(self, map_size, base_channels=128, max_channels=512, norm="batch", **kwargs):
        super(Critic, self).__init__(**kwargs)
        if norm not in ("batch", "none"):
            raise ValueError("critic norm %r: choose one of batch, none (lipschitz: "
                             "LipschitzCritic)" % (norm,))
        init = mx.init.Normal(0.02)   # DCGAN's weight init
        bias = norm == "none"         # the reference's convs have no bias (BatchNorm's shift)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            ch = base_channels
            for i in range(num_downsamplings(map_size)):
                self.body.add(nn.Conv2D(ch, 4, strides=2, padding=1, use_bias=bias,
                                        weight_initializer=init))
                if norm == "batch" and i > 0:
                    # gamma 1, beta 0 (the reference draws gamma ~ N(1, 0.02)); the first
                    # clipping after the first critic update takes gamma to the clamp anyway
                    self.body.add(nn.BatchNorm())
                self.body.add(nn.LeakyReLU(0.2))
                ch = min(ch * 2, max_channels)
            self.out = nn.Conv2D(1, 1, use_bias=bias, weight_initializer=init)

    def hybrid_forward(self, F, x):
        # global mean: exact for maps already at 1x1, and tolerant of non-square inputs
        return F.mean(self.out(self.body(x)), axis=(2, 3))


class Standardize(HybridBlock):
    """Frozen per-channel standardisation ``(x - mean) / std`` with the teacher's statistics.

    Inputs: x (B, C, H, W). Output: same shape. ``mean`` and ``std`` are parameters with
    ``grad_req='null'`` (saved in checkpoints, never trained, never clipped), set by
    :meth:`set_stats`."""

    def __init__(self, channels, **kwargs):
        super(Standardize, self).__init__(**kwargs)
        with self.name_scope():
            self.mean = self.params.get("mean", shape=(1, channels, 1, 1), init=mx.init.Zero(),
                                        grad_req="null", differentiable=False)
            self.std = self.params.get("std", shape=(1, channels, 1, 1), init=mx.init.One(),
                                       grad_req="null", differentiable=False)

    def set_stats(self, mean, std):
        """Set the statistics (NDArray or numpy, (C,)) on every device. Through the host: the
        values then have MXNet's default layout (results of oneDNN convolutions may not, and
        Horovod's broadcast refuses those)."""
        for p, v in ((self.mean, mean), (self.std, std)):
            host = v.asnumpy() if hasattr(v, "asnumpy") else v
            for d in p.list_data():
                d[:] = mx.nd.array(host.reshape((1, -1, 1, 1)), ctx=d.context)

    def hybrid_forward(self, F, x, mean, std):
        return F.broadcast_div(F.broadcast_sub(x, mean), std)


class GainConv2D(HybridBlock):
    """A conv whose stored weights ``w`` (clipped to ``[-c, c]`` by WGAN clipping) act as
    ``w / (c * fan_in)``: every output is then at most the largest input in magnitude plus the
    bias, whatever the width (an L-inf gain of at most 1). Weight clipping becomes the Lipschitz
    bound it is meant to be (Arjovsky, Chintala, Bottou, "Wasserstein GAN", ICML 2017), with a
    bound that does not grow with the number of channels; the constant rescaling is the
    "equalized learning rate" of Karras, Aila, Laine, Lehtinen, "Progressive Growing of GANs for
    Improved Quality, Stability, and Variation", ICLR 2018.

    Inputs: x (B, in_channels, H, W). Output: (B, channels, H', W') as ``nn.Conv2D`` with the
    same kernel, strides and padding (``use_bias=False``: no bias)."""

    def __init__(self, channels, kernel, strides, padding, in_channels, clamp, use_bias=True,
                 **kwargs):
        super(GainConv2D, self).__init__(**kwargs)
        self.kw = dict(kernel=(kernel, kernel), stride=(strides, strides),
                       pad=(padding, padding), num_filter=channels, no_bias=not use_bias)
        fan_in = in_channels * kernel * kernel
        self.scale = 1.0 / (clamp * fan_in)
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(channels, in_channels, kernel, kernel),
                                          init=mx.init.Uniform(clamp))
            self.bias = None
            if use_bias:
                self.bias = self.params.get("bias", shape=(channels,), init=mx.init.Zero())

    def hybrid_forward(self, F, x, weight, bias=None):
        if bias is None:
            return F.Convolution(x, weight * self.scale, **self.kw)
        return F.Convolution(x, weight * self.scale, bias, **self.kw)


class LipschitzCritic(HybridBlock):
    """The default critic (``--critic-norm lipschitz``): DCGAN-style downsampling convs on the
    map standardised by the teacher's statistics, every layer's gain bounded by the clamp.

    1. :class:`Standardize`: ``(x - mean_t) / std_t`` per channel with the teacher's frozen
       statistics, so the critic sees every map in the same units whatever its scale (a scaled
       or shifted fake stays scaled or shifted: both sides use the teacher's numbers);
    2. a 3x3 stride-1 conv + LeakyReLU(0.2) (so the critic of a 1x1 map is not linear: a linear
       critic's input gradient is a constant push that never fades as the two sides match);
    3. ``depth`` 4x4 stride-2 convs + LeakyReLU(0.2) as in DCGAN's discriminator (Radford et al.,
       ICLR 2016) and the paper's Fig. 2, channels doubled each time (capped at
       ``max_channels``); on maps already at 1x1 they are 3x3 stride-1 convs (same depth for
       every map: comparable gains);
    4. a 1x1 conv without bias to one score per remaining location, averaged over the
       locations;
    5. centred and divided by the *score normalisation*: the raw scores' mean and standard
       deviation over the real and fake samples of the latest critic step, over all devices
       and workers (:meth:`observe`, called by :meth:`DNet.renormalise` before that step's
       loss, so the step's own scores are already in the new units): every critic's score is
       in units of its own spread, whatever its depth and the map's size, so the critics'
       terms are comparable and the adversarial losses stay bounded (a critic that separates
       perfectly gives a separation of 2 at most). Mean and scale are constants to both
       steps (no gradient; not clipped). A running average (``momentum`` > 0) lags behind
       the raw scores, which drift by hundreds of their own spreads per step at the start
       of training (the biases move, the spread is still tiny): measured, epoch 1's Loss_G
       reached -1400 with momentum 0.5, so the default is the current batch (momentum 0).

    Every conv is a :class:`GainConv2D`: WGAN's weight clipping to ``[-c, c]`` then bounds each
    layer's L-inf gain by 1, so a critic's output is bounded by the standardised input's
    magnitude (plus the clipped biases), whatever the widths and the scale of the maps.

    Parameters
    ----------
    map_size : int
        H (= W) of the map.
    in_channels : int
        C of the map.
    base_channels, max_channels : int
    clamp : float
        The clipping bound c (published SSD log: 0.03).
    depth : int
        Downsampling convs.

    Inputs: x (B, C, H, W) (any H, W). Output: (B, 1).
    """

    def __init__(self, map_size, in_channels, base_channels=64, max_channels=512, clamp=0.03,
                 depth=2, **kwargs):
        super(LipschitzCritic, self).__init__(**kwargs)
        with self.name_scope():
            self.std = Standardize(in_channels)
            self.body = nn.HybridSequential(prefix="")
            self.body.add(GainConv2D(base_channels, 3, 1, 1, in_channels, clamp))
            self.body.add(nn.LeakyReLU(0.2))
            cin, size = base_channels, map_size
            for _ in range(depth):
                ch = min(cin * 2, max_channels)
                if size >= 2:
                    self.body.add(GainConv2D(ch, 4, 2, 1, cin, clamp))
                    size = (size + 2 - 4) // 2 + 1
                else:
                    self.body.add(GainConv2D(ch, 3, 1, 1, cin, clamp))
                self.body.add(nn.LeakyReLU(0.2))
                cin = ch
            # no bias on the score, as the WGAN reference's DCGAN critic (its convs have
            # bias=False): a constant cancels in the WGAN loss and in both steps' gradients
            self.out = GainConv2D(1, 1, 1, 0, cin, clamp, use_bias=False)
            # the spread and mean of the raw scores over the real and fake samples of the last
            # renormalisation (renormalise): not trained, not clipped, saved in checkpoints
            self.score_scale = self.params.get("score_scale", shape=(1,), init=mx.init.Zero(),
                                               grad_req="null", differentiable=False)
            self.score_mean = self.params.get("score_mean", shape=(1,), init=mx.init.Zero(),
                                              grad_req="null", differentiable=False)

    def observe(self, mean_y, var_y, momentum=0.0):
        """Update the score normalisation from the mean and variance (NDArrays of shape (1,))
        of this critic's normalised scores over one critic step's real and fake samples: the
        raw scores' mean and standard deviation follow, ``m <- momentum * m + (1 - momentum) *
        mean(raw)`` and the same for the scale (momentum 0: the batch's own), set directly at
        the first observation. No host read."""
        cur = self.score_scale.data(mean_y.context)
        cur_mean = self.score_mean.data(mean_y.context)
        used = mx.nd.where(cur > 0, cur, mx.nd.ones_like(cur))
        std = mx.nd.maximum(mx.nd.sqrt(mx.nd.relu(var_y)) * used, 1e-30)
        mean = cur_mean + mean_y * used
        new = mx.nd.where(cur > 0, momentum * cur + (1 - momentum) * std, std)
        new_mean = mx.nd.where(cur > 0, momentum * cur_mean + (1 - momentum) * mean, mean)
        for p, v in ((self.score_scale, new), (self.score_mean, new_mean)):
            for d in p.list_data():
                d[:] = v.as_in_context(d.context)

    def raw(self, x):
        """The critic's unscaled score (B, 1) (imperative; for measurements)."""
        return mx.nd.mean(self.out(self.body(self.std(x))), axis=(2, 3))

    def hybrid_forward(self, F, x, score_scale, score_mean):
        raw = F.mean(self.out(self.body(self.std(x))), axis=(2, 3))
        # score_scale 0 = not yet observed: raw scores
        scale = F.where(score_scale > 0, score_scale, F.ones_like(score_scale))
        return F.broadcast_div(F.broadcast_sub(raw, score_mean.reshape((1, 1))),
                               scale.reshape((1, 1)))


class DNet(HybridBlock):
    """The D-Net module: one critic per feature map (6 for ResNet/MobileNet teachers, 7 for
    VGG16), a :class:`LipschitzCritic` (``norm='lipschitz'``) or a :class:`Critic`, each score
    multiplied by its critic's weight (``critic_weights``, ``grad_req='null'``: set by
    :meth:`set_critic_weights`, never trained or clipped; all 1 by default, the paper's plain
    sum).

    Parameters
    ----------
    map_sizes : list of int
        Spatial size of each map.
    base_channels : int
        Channels of each critic's first conv.
    norm : {'lipschitz', 'batch', 'none'}
    channels : list of int
        Channels C_i of each map (needed by ``lipschitz``).
    clamp : float
        The clipping bound c of ``lipschitz``'s gain-bounded convs (published SSD log: 0.03).
    depth : int
        Downsampling convs of each ``lipschitz`` critic.

    Inputs: ``*feats``, map i (B, C_i, H_i, W_i). Output: (B, num_maps) weighted scores, column
    i from critic i.
    """

    def __init__(self, map_sizes, base_channels=128, norm="batch", channels=None, clamp=0.03,
                 depth=2, **kwargs):
        super(DNet, self).__init__(**kwargs)
        self.norm = norm
        with self.name_scope():
            # per-critic weights of the scores (engine/balance.py): not trained, not clipped
            self.critic_weights = self.params.get("critic_weights", shape=(len(map_sizes),),
                                                  init=mx.init.One(), grad_req="null",
                                                  differentiable=False)
            self.critics = nn.HybridSequential(prefix="")
            for i, s in enumerate(map_sizes):
                if norm == "lipschitz":
                    self.critics.add(LipschitzCritic(s, channels[i], base_channels, clamp=clamp,
                                                     depth=depth))
                else:
                    self.critics.add(Critic(s, base_channels, norm=norm))

    def observe_scores(self, d_real, d_fake, reduce=None, momentum=0.0):
        """Update every critic's score normalisation (:meth:`LipschitzCritic.observe`) from
        scores of this D-Net, per-device lists of (B, M), over all devices and, with ``reduce``
        (``reduce(array, name)``, an NDArray sum over distributed workers under a key ``name``
        that is the same on every worker), over all workers, so that every replica
        keeps the same normalisation. No-op for the ``batch`` and ``none`` critics."""
        if self.norm != "lipschitz":
            return
        ctx = d_real[0].context
        # unweighted scores per device, in the current units (B_d, M)
        both = [mx.nd.broadcast_div(mx.nd.concat(r.detach(), f.detach(), dim=0),
                                    self.critic_weights.data(r.context).reshape((1, -1)))
                for r, f in zip(d_real, d_fake)]

        def total(parts, name):
            # per device, then summed over the devices as over the workers: a process on two
            # devices adds the same partial sums in the same order as two processes of one
            out = None
            for p in parts:
                p = p.as_in_context(ctx)
                out = p if out is None else out + p
            return reduce(out, name) if reduce is not None else out

        # two passes (mean, then centred squares): the scores can sit hundreds of spreads away
        # from the current units' zero, where E[y^2] - E[y]^2 loses the variance in float32
        sums = total([mx.nd.stack(b.sum(axis=0), mx.nd.ones((b.shape[1],), ctx=b.context) *
                                  b.shape[0], axis=1) for b in both], "critic_scores")
        mean = sums[:, 0] / sums[:, 1]                             # (M,)
        squares = total([((b - mean.as_in_context(b.context).reshape((1, -1))) ** 2).sum(axis=0)
                         for b in both], "critic_scores_var")
        var = squares / sums[:, 1]
        for i, c in enumerate(self.critics):
            c.observe(mean[i:i + 1], var[i:i + 1], momentum)

    def renormalise(self, d_real, d_fake, reduce=None, momentum=0.0):
        """Observe a critic step's scores (:meth:`observe_scores`) and return them in the new
        units, before the step's loss is formed: with momentum 0 every critic's scores of the
        step then have mean 0 and standard deviation ``w_i`` over its real and fake samples,
        all devices and workers (the weight ``w_i`` of :meth:`set_critic_weights`).

        The new score is an affine map of the old, ``y' = y * s / s' + w (m - m') / s'``
        (scale ``s``, mean ``m`` before and after), with constants, so it stays on the
        autograd graph of ``y``: for the critic's update only the gradient's size changes,
        which Adam's per-parameter normalisation removes. Call it inside ``autograd.record``.

        Parameters
        ----------
        d_real, d_fake : list of NDArray, each (B, M)
            Per-device scores of the teacher's and the student's maps.
        reduce : callable or None
            ``reduce(array, name)``: the NDArray summed over distributed workers (``name`` a
            key that is the same on every worker).

        Returns
        -------
        (list of NDArray, list of NDArray): the scores in the new units (the inputs
        themselves for the ``batch`` and ``none`` critics).
        """
        if self.norm != "lipschitz":
            return d_real, d_fake

        def state():
            used = [c.score_scale.data(ctx) for c in self.critics]
            return (mx.nd.concat(*[mx.nd.where(u > 0, u, mx.nd.ones_like(u)) for u in used],
                                 dim=0),
                    mx.nd.concat(*[c.score_mean.data(ctx) for c in self.critics], dim=0))

        with autograd.pause():
            ctx = d_real[0].context
            s_old, m_old = state()
            self.observe_scores(d_real, d_fake, reduce=reduce, momentum=momentum)
            s_new, m_new = state()
            w = self.critic_weights.data(ctx)
            gain = (s_old / s_new).reshape((1, -1))
            shift = (w * (m_old - m_new) / s_new).reshape((1, -1))
            gains = [(gain.as_in_context(r.context), shift.as_in_context(r.context))
                     for r in d_real]

        def apply(ys):
            return [mx.nd.broadcast_add(mx.nd.broadcast_mul(y, g), b)
                    for y, (g, b) in zip(ys, gains)]
        return apply(d_real), apply(d_fake)

    def set_teacher_stats(self, stats):
        """``stats``: per map (mean (C,), std (C,)) NDArrays of the teacher's maps."""
        for c, (m, s) in zip(self.critics, stats):
            if hasattr(c, "std"):
                c.std.set_stats(m, s)

    def set_critic_weights(self, weights):
        """Set the per-critic weights (sequence of M floats) on every device."""
        for d in self.critic_weights.list_data():
            d[:] = mx.nd.array(weights, ctx=d.context)

    def hybrid_forward(self, F, *feats, **kwargs):
        scores = F.concat(*[c(f) for c, f in zip(self.critics, feats)], dim=1)
        return F.broadcast_mul(scores, kwargs["critic_weights"].reshape((1, -1)))


def channel_stats(maps, floor=0.01):
    """Per map, the per-channel mean and standard deviation over images and locations: the
    statistics :class:`Standardize` uses (the teacher's maps of the first training images).

    Parameters
    ----------
    maps : list
        Per map, an NDArray (N, C, H, W) or a list of them (images of different sizes, as
        Faster R-CNN's), all with the same C.
    floor : float
        A channel's standard deviation is at least ``floor`` x the map's root mean square
        (channels that are constant on the teacher, e.g. dead ReLUs, would otherwise divide by
        0).

    Returns
    -------
    list of (mean (C,), std (C,)) NDArray
    """
    out = []
    for m in maps:
        parts = m if isinstance(m, (list, tuple)) else [m]
        count = sum(p.shape[0] * p.shape[2] * p.shape[3] for p in parts)
        total = sum(p.sum(axis=(0, 2, 3)) for p in parts)
        squares = sum((p ** 2).sum(axis=(0, 2, 3)) for p in parts)
        mean = total / count
        var = mx.nd.relu(squares / count - mean ** 2)
        ms = squares.sum() / (count * mean.shape[0])       # mean square over channels
        out.append((mean, mx.nd.sqrt(var + (floor ** 2) * ms + 1e-12)))
    return out


def clip_weights(params, lower, upper):
    """WGAN weight clipping (Arjovsky et al., main.py: ``p.data.clamp_(lower, upper)`` over
    ``netD.parameters()``) of every learnable critic parameter, BatchNorm's scale and shift
    included, on every device, in place, after each critic update. BatchNorm's moving statistics
    (``grad_req='null'``; buffers in the reference) are not weights and are left alone."""
    for p in params.values():
        if p.grad_req == "null":
            continue
        for d in p.list_data():
            mx.nd.clip(d, lower, upper, out=d)
