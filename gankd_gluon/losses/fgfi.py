"""Fine-grained feature imitation (Wang, Yuan, Zhang, Feng, "Distilling Object Detectors with
Fine-grained Feature Imitation", CVPR 2019, https://arxiv.org/abs/1906.03609): the comparison
row of the paper's Table 3.

The student imitates the teacher's backbone map only at locations near objects:

* :func:`imitation_mask` -- for each ground-truth box, the IoU with every anchor of the map
  (H x W x K) is thresholded at ``psi * max IoU`` for that box; a location is in the mask if
  any of its K anchors passes for any box (Wang et al. Sec. 3.1, psi = 0.5);
* :class:`FineGrainedImitationLoss` -- an adaptation layer on the student's map, then the
  squared difference with the teacher's map summed over masked locations and channels
  (Eq. 2). The caller divides by ``2 N_p``, ``N_p`` = masked locations of the whole batch
  (Eq. 2: ``1 / (2 N_p)``), and weighs it by lambda (:data:`FGFI_LAMBDA`, Eq. 3).

Where the paper is silent, the authors' code (twangnh/Distilling-Object-Detectors,
``lib/model/rpn/anchor_target_layer.py``, ``trainval_net_sup.py``, ``lib/model/faster_rcnn/
vgg11.py``) decides, and the docstrings below say so: the IoU comparison is strict (``>``),
every anchor counts (also those crossing the image border), padded ground-truth rows are
skipped, the adaptation layer is a 3x3 conv + ReLU (``stu_feature_adap``) initialised with
a (truncated) normal of std 1e-4. Boxes are compared with GluonCV's IoU (no +1 in widths),
the convention of the anchors they are matched to.
"""
import mxnet as mx
from mxnet.gluon import HybridBlock, nn

__all__ = ["FGFI_PSI", "FGFI_LAMBDA", "imitation_mask", "FineGrainedImitationLoss"]

#: Wang et al. Sec. 3.1: "the thresholding factor psi ... we set psi = 0.5".
FGFI_PSI = 0.5
#: Wang et al. Eq. 3: ``L = L_gt + lambda L_imitation``; lambda = 0.01 is the default of the
#: authors' code (twangnh/Distilling-Object-Detectors ``trainval_net_sup.py``, ``--ilw``).
FGFI_LAMBDA = 0.01


def imitation_mask(anchors, gt_boxes, map_shape, psi=FGFI_PSI):
    """The fine-grained imitation mask of Wang et al. (Sec. 3.1).

    For each ground-truth box ``g``: ``m = IoU(anchors, g)`` over all H*W*K anchors,
    ``F = psi * max(m)``, and the locations with some anchor ``m > F`` are marked; the mask is
    the union (OR) over boxes. A box that overlaps no anchor (max IoU 0) marks nothing.

    Parameters
    ----------
    anchors : NDArray (1, H*W*K, 4) or (H*W*K, 4)
        Corner-format anchors in input pixels, in GluonCV's RPN order (row, column, anchor),
        e.g. the train-mode output 7 of a GluonCV Faster R-CNN.
    gt_boxes : NDArray (B, M, 4)
        Corner boxes; padding rows (GluonCV pads with -1) have ``x2 <= x1`` and are skipped.
    map_shape : (int, int)
        ``(H, W)`` of the feature map the anchors tile.
    psi : float
        Thresholding factor (paper: 0.5).

    Returns
    -------
    NDArray (B, H, W), float32, 1 on imitated locations, 0 elsewhere; no gradient.
    """
    height, width = int(map_shape[0]), int(map_shape[1])
    anchors = anchors.reshape((-1, 4))
    if anchors.shape[0] % (height * width):
        raise ValueError("%d anchors do not tile a %dx%d map" % (anchors.shape[0], height,
                                                                  width))
    masks = []
    for b in range(gt_boxes.shape[0]):
        boxes = gt_boxes[b].as_in_context(anchors.context)
        valid = (boxes[:, 2] > boxes[:, 0]) * (boxes[:, 3] > boxes[:, 1])         # (M,)
        iou = mx.nd.contrib.box_iou(anchors, boxes, format="corner")               # (N, M)
        thresh = psi * iou.max(axis=0)                                              # (M,)
        keep = mx.nd.broadcast_greater(iou, thresh.expand_dims(0))                 # strict, as
        keep = mx.nd.broadcast_mul(keep, valid.expand_dims(0))                     # the code
        per_location = keep.sum(axis=1).reshape((height, width, -1)).sum(axis=-1)
        masks.append(per_location > 0)
    return mx.nd.stop_gradient(mx.nd.stack(*masks, axis=0).astype("float32"))


class FineGrainedImitationLoss(HybridBlock):
    """Masked imitation of the teacher's map through an adaptation layer (Wang et al. Eq. 2).

    Per sample, ``sum_{h,w} I_hw sum_c (adapt(s)_chw - t_chw)^2``; the caller divides the
    batch's sum by ``2 N_p`` (``N_p = sum I``) and multiplies by lambda (:data:`FGFI_LAMBDA`),
    so that the normalisation covers the whole batch on every device, as the authors'
    ``norms = mask_batch.sum() * 2``.

    The adaptation layer (Sec. 3.2, "a full convolution adaptation layer") is the authors'
    ``stu_feature_adap``: a 3x3 conv to the teacher's channels followed by a ReLU, weights
    from a normal of std 1e-4 (so imitation starts from an almost-zero map) and zero bias.
    ``kernel_size=1`` gives Chen et al.'s 1x1 adaptation instead. It is part of this block
    and trained with the student; the teacher's map gets no gradient.

    Parameters
    ----------
    channels : int
        Teacher channels (the adapter's output).
    kernel_size : int
        Adapter kernel (authors: 3).
    relu : bool
        ReLU after the adapter (authors: yes; the teacher's map is a ReLU output).

    Inputs: student_feat (B, C_s, H, W), teacher_feat (B, C_t, H, W), mask (B, H, W).
    Output: (B,) per-sample masked squared error.
    """

    def __init__(self, channels, kernel_size=3, relu=True, **kwargs):
        super(FineGrainedImitationLoss, self).__init__(**kwargs)
        with self.name_scope():
            self.adapt = nn.HybridSequential(prefix="adapt_")
            self.adapt.add(nn.Conv2D(channels, kernel_size, padding=kernel_size // 2,
                                     weight_initializer=mx.init.Normal(1e-4),
                                     bias_initializer="zeros"))
            if relu:
                self.adapt.add(nn.Activation("relu"))

    def hybrid_forward(self, F, student_feat, teacher_feat, mask):
        diff = self.adapt(student_feat) - F.stop_gradient(teacher_feat)
        per_location = F.sum(F.square(diff), axis=1)                     # (B, H, W)
        return F.sum(per_location * F.stop_gradient(mask), axis=(1, 2))
