"""What a table row means and costs: the settings its commands train with
(:func:`effective_settings`) and its wall time on GPUs estimated from the published logs'
speeds (:func:`estimate_hours`).

This module does not import MXNet: ``reproduce.py --dry-run`` stays instant.
"""
from .chains import build_chain

__all__ = ["effective_settings", "estimate_hours", "SPEED_4GPU", "TRAIN_IMAGES", "TEST_IMAGES"]

# Published speeds on four GTX 1080 Ti (the authors' published logs, gankd_gluon/logs/published.py:
# the SSD log's Speed lines, the Faster R-CNN log's Training cost lines). Two GPUs are
# assumed to run at half these rates (same 16 images per GPU).
SPEED_4GPU = {"ssd_stage1": 35.0, "ssd_stage2": 57.0,          # samples/s
              "frcnn_stage1": 5011 / 830.0, "frcnn_stage2": 5011 / 463.0}   # 830 s / 463 s epochs
# VOC07+12 trainval; COCO train2017 images with boxes; VOC2007 trainval (Table 3)
TRAIN_IMAGES = {"voc": 16551, "coco": 117266, "voc07": 5011}
TEST_IMAGES = {"voc": 4952, "coco": 5000, "voc07": 4952}


def effective_settings(row, steps):
    """Human-readable lines: the settings the row's distillation (or baseline) trains with,
    as they follow from its commands (batch per device, optimizers, epochs, data shape)."""
    lines = []
    for st in steps:
        if st.kind not in ("teacher", "baseline", "distill"):
            continue
        gpus = [g for g in (st.get("--gpus") or "").split(",") if g.strip()]
        if gpus:
            devices = "%d GPU(s) (%s)" % (len(gpus), ",".join(gpus))
            n = len(gpus)
        else:
            n = int(st.get("--cpu-devices", "1"))
            devices = "%d CPU context(s)" % n
        batch = int(st.get("--batch-size"))
        per = "%d per device" % (batch // n) if batch % n == 0 else \
            "split %s" % "+".join(str(batch // n + (1 if i < batch % n else 0)) for i in range(n))
        size = ("data shape %s" % st.get("--data-shape") if st.get("--data-shape") else
                "short side %s, max %s" % (st.get("--short", "600"), st.get("--max-size", "1000")))
        head = "%s (%s): %s, global batch %d over %s, %s" % (
            st.kind, st.get("--save-prefix"), size, batch, devices, per)
        lines.append(head)
        if st.kind == "distill" and st.script.endswith("train_ssd_gan_kd.py"):
            lines.append("  stage 1: Adam lr %s (D and G: lrD %s, lrG %s), beta1 %s, %s epochs, "
                         "WGAN clip [%s, %s]" % (st.get("--lrG"), st.get("--lrD"),
                                                 st.get("--lrG"), st.get("--beta1"),
                                                 st.get("--gan-epochs"), st.get("--clamp-lower"),
                                                 st.get("--clamp-upper")))
            lines.append("  stage 2: SGD lr %s, momentum %s, wd %s, %s epochs, lr decay: %s"
                         % (st.get("--lr"), st.get("--momentum"), st.get("--wd"),
                            st.get("--epochs"), st.get("--lr-decay-epoch") or "none"))
        elif st.kind == "distill":
            lines.append("  stage 1 (epochs 0-%s): Adam lrG %s, lrD %s, beta1 %s, decay at [%s], "
                         "critic warm-up %s epochs, WGAN clip [%s, %s]"
                         % (st.get("--gan-epochs"), st.get("--lrG"), st.get("--lrD"),
                            st.get("--beta1"), st.get("--lr-decay-gan-epoch"),
                            st.get("--train-D-eopch"), st.get("--clamp-lower"),
                            st.get("--clamp-upper")))
            lines.append("  stage 2 (to epoch %d): SGD lr %s, momentum %s, wd %s, x%s at [%s]"
                         % (int(st.get("--epochs")) - 1, st.get("--lr"), st.get("--momentum"),
                            st.get("--wd"), st.get("--lr-decay"), st.get("--lr-decay-epoch")))
        elif st.script.endswith(("train_ssd.py", "train_faster_rcnn.py")):
            lines.append("  %s lr %s, momentum %s, wd %s, %s epochs, lr x%s after epochs [%s]"
                         % (st.get("--optimizer").upper(), st.get("--lr"), st.get("--momentum"),
                            st.get("--wd"), st.get("--epochs"), st.get("--lr-decay"),
                            st.get("--lr-decay-epoch")))
    return lines


def estimate_hours(row, gpus=2, baseline=True):
    """Estimated wall time of a row's training steps on ``gpus`` GTX 1080 Ti, in hours, from
    the published speeds on four (:data:`SPEED_4GPU`, assumed linear in the number of GPUs)
    and the epochs of the row's own commands (:func:`build_chain`).

    Stage-1 epochs run at the distillation speed, plain epochs (stage 2, baselines, teachers)
    at the plain speed; every epoch validates once on the test split, taken as forward only at
    3x the plain training rate. The published speeds are those of the MobileNetV1 / ResNet50
    SSD and the ResNet50 / ResNet101 Faster R-CNN; heavier networks (VGG16 or ResNet101
    teachers, the ResNet101 Faster R-CNN teacher) take longer.

    Returns
    -------
    dict : step kind -> hours (``teacher``, ``baseline``, ``distill``; only the steps run).
    """
    scale = gpus / 4.0
    kind = "ssd" if row.detector == "ssd" else "frcnn"
    n = TRAIN_IMAGES[row.dataset]
    s1 = SPEED_4GPU[kind + "_stage1"] * scale
    s2 = SPEED_4GPU[kind + "_stage2"] * scale
    val = TEST_IMAGES[row.dataset] / (3 * s2)
    out = {}
    for st in build_chain(row, "full", baseline=baseline):
        if st.kind not in ("teacher", "baseline", "distill"):
            continue
        epochs = int(st.get("--epochs"))
        adversarial = 0
        if st.kind == "distill":
            if row.detector == "ssd":       # --gan-epochs stage-1 epochs, then --epochs
                adversarial = int(st.get("--gan-epochs"))
            else:                           # epochs 0..GAN_epochs of --epochs in all
                adversarial = int(st.get("--gan-epochs")) + 1
                epochs -= adversarial
        seconds = adversarial * (n / s1 + val) + epochs * (n / s2 + val)
        out[st.kind] = seconds / 3600.0
    return out
