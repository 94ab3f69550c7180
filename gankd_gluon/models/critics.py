"""D-Net: one WGAN critic per feature map (paper Sec. 3.1, Fig. 2).

Fig. 2 shows each discriminator as "multiple downsampled convolutional layers"; the paper cites
DCGAN [13], and the published log's settings (``clamp_lower/upper = -/+0.03``, ``beta1 = 0.5``)
are the WGAN weight-clipping critic with DCGAN's Adam. So each critic is DCGAN's discriminator:
4x4 stride-2 convs with LeakyReLU(0.2), down to 1x1, then a 1x1 conv to one scalar, no sigmoid.
"""
import mxnet as mx
from mxnet.gluon import HybridBlock, nn

__all__ = ["Critic", "DNet", "clip_weights", "num_downsamplings"]


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

    Inputs: x (B, C, H, W). Output: (B, 1) critic scores (unbounded: Wasserstein critic).
    """

    def __init__(self, map_size, base_channels=128, max_channels=512, **kwargs):
        super(Critic, self).__init__(**kwargs)
        init = mx.init.Normal(0.02)   # DCGAN's weight init
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            ch = base_channels
            for _ in range(num_downsamplings(map_size)):
                self.body.add(nn.Conv2D(ch, 4, strides=2, padding=1, weight_initializer=init),
                              nn.LeakyReLU(0.2))
                ch = min(ch * 2, max_channels)
            self.out = nn.Conv2D(1, 1, weight_initializer=init)

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

    Inputs: ``*feats``, map i (B, C_i, H_i, W_i). Output: (B, num_maps) scores, column i from
    critic i.
    """

    def __init__(self, map_sizes, base_channels=128, **kwargs):
        super(DNet, self).__init__(**kwargs)
        with self.name_scope():
            self.critics = nn.HybridSequential(prefix="")
            for s in map_sizes:
                self.critics.add(Critic(s, base_channels))

    def hybrid_forward(self, F, *feats):
        return F.concat(*[c(f) for c, f in zip(self.critics, feats)], dim=1)


def clip_weights(params, lower, upper):
    """WGAN weight clipping (Arjovsky et al., main.py: ``p.data.clamp_(lower, upper)``) of every
    critic parameter on every device, in place, after each critic update."""
    for p in params.values():
        for d in p.list_data():
            mx.nd.clip(d, lower, upper, out=d)
