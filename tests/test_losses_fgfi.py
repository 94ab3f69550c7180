"""Fine-grained feature imitation (Wang et al. 2019): the mask and the loss, checked by hand."""
import mxnet as mx
import numpy as np
import pytest

from gankd_gluon.losses import FGFI_LAMBDA, FGFI_PSI, FineGrainedImitationLoss, imitation_mask

# A 1x3 map with K=2 anchors per location, in GluonCV's (row, column, anchor) order.
ANCHORS = mx.nd.array([[0, 0, 10, 10], [0, 0, 20, 20],       # location (0, 0)
                       [10, 0, 20, 10], [0, 0, 40, 20],      # location (0, 1)
                       [20, 0, 30, 10], [15, 0, 35, 20]])    # location (0, 2)
G1 = [0, 0, 10, 10]       # area 100
G2 = [20, 0, 30, 20]      # area 200
PAD = [-1, -1, -1, -1]    # GluonCV's label padding


def test_paper_constants():
    assert FGFI_PSI == 0.5 and FGFI_LAMBDA == 0.01


def test_mask_worked_by_hand():
    """IoU (GluonCV's, no +1) of each anchor with each box:

    ======  =====================  ==========================
    anchor  G1 [0,0,10,10]         G2 [20,0,30,20]
    ======  =====================  ==========================
    a0      100/100 = 1.0          0
    a1      100/400 = 0.25         0 (touching at x=20)
    a2      0 (touching)           0 (touching)
    a3      100/800 = 0.125        200/800 = 0.25
    a4      0                      100/200 = 0.5
    a5      0                      200/400 = 0.5
    ======  =====================  ==========================

    G1: max 1.0, threshold 0.5 -> a0 -> location 0. G2: max 0.5, threshold 0.25 -> a4, a5
    (location 2); a3 sits exactly at 0.25 and the comparison is strict (the authors'
    ``IOU_map > max_iou * 0.5``), so location 1 stays out. The padding row marks nothing.
    """
    gt = mx.nd.array([[G1, G2, PAD]])
    mask = imitation_mask(ANCHORS.expand_dims(0), gt, (1, 3))
    assert mask.shape == (1, 1, 3)
    np.testing.assert_array_equal(mask.asnumpy(), [[[1, 0, 1]]])


def test_mask_psi_and_per_image_boxes():
    # psi 0.2: G2's threshold drops to 0.1 and a3 (0.25) brings location 1 in
    gt = mx.nd.array([[G1, G2], [G2, PAD]])
    np.testing.assert_array_equal(imitation_mask(ANCHORS, gt, (1, 3), psi=0.2).asnumpy(),
                                  [[[1, 1, 1]], [[0, 1, 1]]])
    # each image uses its own boxes: image 2 has only G2
    np.testing.assert_array_equal(imitation_mask(ANCHORS, gt, (1, 3)).asnumpy(),
                                  [[[1, 0, 1]], [[0, 0, 1]]])


def test_mask_of_a_box_far_from_every_anchor_is_empty():
    gt = mx.nd.array([[[100, 100, 110, 110]]])
    assert imitation_mask(ANCHORS, gt, (1, 3)).sum().asscalar() == 0


def test_mask_needs_anchors_that_tile_the_map():
    with pytest.raises(ValueError, match="do not tile"):
        imitation_mask(ANCHORS, mx.nd.array([[G1]]), (1, 4))


def test_loss_by_hand_with_identity_adapter():
    loss = FineGrainedImitationLoss(channels=1, kernel_size=1, relu=False)
    loss.initialize()
    loss.adapt[0].weight.set_data(mx.nd.ones((1, 1, 1, 1)))
    s = mx.nd.array([[[[1, 2, 3]]], [[[1, 1, 1]]]])      # (B=2, C=1, H=1, W=3)
    t = mx.nd.zeros_like(s)
    mask = mx.nd.array([[[1, 0, 1]], [[0, 0, 1]]])
    s.attach_grad()
    t.attach_grad()
    with mx.autograd.record():
        out = loss(s, t, mask)
    out.backward()
    # sample 1: 1^2 + 3^2 = 10; sample 2: 1
    np.testing.assert_allclose(out.asnumpy(), [10, 1])
    np.testing.assert_allclose(s.grad.asnumpy(), 2 * s.asnumpy() * mask.asnumpy()[:, None])
    assert t.grad.abs().sum().asscalar() == 0                # the teacher is not trained


def test_default_adapter_is_the_authors_3x3_relu():
    loss = FineGrainedImitationLoss(channels=8)
    loss.initialize()
    conv = loss.adapt[0]
    assert conv._kwargs["kernel"] == (3, 3) and conv._kwargs["pad"] == (1, 1)
    assert len(loss.adapt) == 2                                # conv + ReLU
    out = loss(mx.nd.ones((1, 4, 5, 5)), mx.nd.ones((1, 8, 5, 5)), mx.nd.ones((1, 5, 5)))
    assert out.shape == (1,)
    assert float(conv.weight.data().abs().max().asscalar()) < 1e-3   # std 1e-4 start
