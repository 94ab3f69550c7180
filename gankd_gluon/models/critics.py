"""D-Net: one WGAN critic per feature map (paper Sec. 3.1, Fig. 2).

Fig. 2 shows each discriminator as "multiple downsampled convolutional layers"; the paper cites
DCGAN [13], and the published log's settings (``clamp_lower/upper = -/+0.03``, ``beta1 = 0.5``)
are the WGAN weight-clipping critic with DCGAN's Adam. So each critic is the discriminator of
WGAN's reference code (Arjovsky et al., ``models/dcgan.py``, ``DCGAN_D``): 4x4 stride-2 convs
without bias, BatchNorm after every conv but the first, LeakyReLU(0.2), down to 1x1, then a 1x1
conv to one scalar, no sigmoid.

Why the BatchNorm matters (``--critic-norm batch``, default): clipping bounds each weight, not a
critic's output. Without normalisation the output scales with the product of the layers' fan-ins
and with the size of the feature values; measured at demo scale (``logs/demo/NOTES.md``) the
adversarial losses reached thousands with the published clamp of +-0.03, while the published log
shows ``Loss_D`` about -13 early and about -0.1 late. With BatchNorm, whose scale and shift are
clipped with the weights (the reference clips every parameter), each layer's output is
re-normalised and then shrunk to at most the clamp, which keeps the critics' outputs at the
published magnitude. ``--critic-norm none`` keeps the normalisation-free critic for comparison.
BatchNorm runs in training mode (batch statistics) in both steps, as in the reference; the
teacher's and the student's maps go through the critics as separate batches. It needs a few
samples per device: at one image per device and a 1x1 final map the normalised activations are
constant and the critic cannot tell anything apart, which is why Faster R-CNN (1-2 images per
device) defaults to ``none``.
"""
import mxnet as mx
from mxnet.gluon import HybridBlock, nn

__all__ = ["Critic", "DNet", "NORMS", "clip_weights", "num_downsamplings"]

NORMS = ("batch", "none")


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
    """

    def __init__(self, map_size, base_channels=128, max_channels=512, norm="batch", **kwargs):
        super(Critic, self).__init__(**kwargs)
        if norm not in NORMS:
            raise ValueError("critic norm %r: choose one of %s" % (norm, ", ".join(NORMS)))
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


class DNet(HybridBlock):
    """The D-Net module: one :class:`Critic` per feature map (6 for ResNet/MobileNet teachers,
    7 for VGG16).

    Parameters
    ----------
    map_sizes : list of int
        Spatial size of each map.
    base_channels, norm :
        As :class:`Critic`.

    Inputs: ``*feats``, map i (B, C_i, H_i, W_i). Output: (B, num_maps) scores, column i from
    critic i.
    """

    def __init__(self, map_sizes, base_channels=128, norm="batch", **kwargs):
        super(DNet, self).__init__(**kwargs)
        with self.name_scope():
            self.critics = nn.HybridSequential(prefix="")
            for s in map_sizes:
                self.critics.add(Critic(s, base_channels, norm=norm))

    def hybrid_forward(self, F, *feats):
        return F.concat(*[c(f) for c, f in zip(self.critics, feats)], dim=1)


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
