"""Small VOC trees and crafted devkit result files for the evaluation tests (helper, no tests)."""
import os

import numpy as np


def write_voc_tree(voc_dir, images, split="test", jpeg=False):
    """Write ``Annotations/<id>.xml`` and ``ImageSets/Main/<split>.txt`` (and JPEGs if asked).

    Parameters
    ----------
    voc_dir : str
        The ``VOC2007`` folder.
    images : list of (image_id, (width, height), objects)
        ``objects``: list of (class_name, (x1, y1, x2, y2) 1-based, difficult).
    jpeg : bool
        Also write grey JPEGs of the right size (GluonCV datasets that open images need them).
    """
    for sub in ("Annotations", os.path.join("ImageSets", "Main"), "JPEGImages"):
        os.makedirs(os.path.join(voc_dir, sub), exist_ok=True)
    for image_id, (width, height), objects in images:
        objs = "".join(
            "<object><name>%s</name><pose>Unspecified</pose><truncated>0</truncated>"
            "<difficult>%d</difficult><bndbox><xmin>%d</xmin><ymin>%d</ymin><xmax>%d</xmax>"
            "<ymax>%d</ymax></bndbox></object>" % ((name, int(diff)) + tuple(box))
            for name, box, diff in objects)
        xml = ("<annotation><folder>VOC2007</folder><filename>%s.jpg</filename><size><width>%d"
               "</width><height>%d</height><depth>3</depth></size><segmented>0</segmented>%s"
               "</annotation>\n" % (image_id, width, height, objs))
        with open(os.path.join(voc_dir, "Annotations", image_id + ".xml"), "w") as f:
            f.write(xml)
        if jpeg:
            import cv2
            cv2.imwrite(os.path.join(voc_dir, "JPEGImages", image_id + ".jpg"),
                        np.full((height, width, 3), 128, np.uint8))
    with open(os.path.join(voc_dir, "ImageSets", "Main", split + ".txt"), "a") as f:
        f.write("".join(image_id + "\n" for image_id, _, _ in images))


def random_images(rng, classes, num_images, size_range=(60, 200), max_objects=5,
                  difficult_prob=0.2, empty_prob=0.1):
    """Random ground truth in the format of :func:`write_voc_tree` (1-based integer boxes)."""
    images = []
    for i in range(num_images):
        width, height = (int(v) for v in rng.randint(size_range[0], size_range[1], size=2))
        objects = []
        n = 0 if rng.rand() < empty_prob else rng.randint(1, max_objects + 1)
        for _ in range(n):
            w = rng.randint(4, width // 2)
            h = rng.randint(4, height // 2)
            x1 = rng.randint(1, width - w + 1)
            y1 = rng.randint(1, height - h + 1)
            objects.append((classes[rng.randint(len(classes))], (x1, y1, x1 + w - 1, y1 + h - 1),
                            rng.rand() < difficult_prob))
        images.append(("%06d" % (i + 1), (width, height), objects))
    return images


def crafted_detections(rng, images, classes, skip_class=None, skip_images=(), tie_levels=None,
                       fractional=False):
    """Detections with every case the devkit distinguishes, as ``{class: [lines]}``.

    Per object: a jittered hit (IoU around and above 0.5), sometimes duplicates of it, sometimes
    a copy under a wrong class; per image a few background boxes. Objects marked difficult get
    detections too. ``skip_class`` gets no detections, ``skip_images`` none either.
    ``tie_levels`` quantises scores to that many values, so many scores tie within and across
    images. ``fractional`` gives sub-pixel boxes. Lines are in image order (a detector's output).

    Returns
    -------
    dict : class name -> list of (image_id, score, (x1, y1, x2, y2) 1-based)
    """
    out = {c: [] for c in classes}

    def score():
        s = rng.rand()
        return float(np.floor(s * tie_levels) / tie_levels + 0.05) if tie_levels else float(s)

    def jitter(box, width, height, amount):
        x1, y1, x2, y2 = box
        w, h = x2 - x1 + 1, y2 - y1 + 1
        d = rng.uniform(-amount, amount, size=4) * np.array([w, h, w, h])
        b = np.array(box, dtype=np.float64) + d
        if not fractional:
            b = np.round(b)
        b[0] = np.clip(b[0], 1, width)
        b[2] = np.clip(b[2], b[0], width)
        b[1] = np.clip(b[1], 1, height)
        b[3] = np.clip(b[3], b[1], height)
        return tuple(float(v) for v in b)

    for image_id, (width, height), objects in images:
        if image_id in skip_images:
            continue
        lines = []
        for name, box, _ in objects:
            for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):  # missed, hit, duplicates
                lines.append((name, jitter(box, width, height, rng.choice([0.0, 0.1, 0.25]))))
            if rng.rand() < 0.3:  # wrong class on the right place
                lines.append((classes[rng.randint(len(classes))], jitter(box, width, height, 0.05)))
        for _ in range(rng.randint(0, 3)):  # background
            w, h = rng.randint(3, width // 2), rng.randint(3, height // 2)
            x1, y1 = rng.randint(1, width - w + 1), rng.randint(1, height - h + 1)
            lines.append((classes[rng.randint(len(classes))],
                          (float(x1), float(y1), float(x1 + w - 1), float(y1 + h - 1))))
        for name, box in lines:
            if name != skip_class:
                out[name].append((image_id, score(), box))
    return out


def write_result_files(det_dir, dets, prefix="comp4_det_test_", score_format="%r"):
    """Write ``{class: [(image_id, score, box)]}`` as devkit files, lines in list order."""
    os.makedirs(det_dir, exist_ok=True)
    for name, rows in dets.items():
        with open(os.path.join(det_dir, "%s%s.txt" % (prefix, name)), "w") as f:
            for image_id, score, box in rows:
                f.write(("%s " + score_format + " %r %r %r %r\n") % ((image_id, score) + tuple(box)))


# ------------------------------------------------------------------------------------------------
# detectors for the "with a network" tests
# ------------------------------------------------------------------------------------------------
def noisy_oracle_plan(rng, ground_truth, num_classes, max_extra=3):
    """Detections derived from the ground truth with noise, per image, in original pixels.

    Per object: usually one jittered box (sometimes two: a duplicate), mostly with the right
    class (else a random one, with a lower score); a few random background boxes per image. Scores
    are continuous, so no two tie, and boxes stay inside the image.

    Parameters
    ----------
    ground_truth : gankd_gluon.eval.GroundTruth with ``sizes`` [(W, H)] (original frame)

    Returns
    -------
    list of (labels (K,), scores (K,) float32-exact, boxes (K, 4) float64, 0-based)
    """
    plan = []
    for i in range(len(ground_truth)):
        width, height = ground_truth.sizes[i]
        labels, scores, boxes = [], [], []
        for box, label in zip(ground_truth.boxes[i], ground_truth.labels[i]):
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
                b = box + rng.normal(0, 0.12, size=4) * np.array([w, h, w, h])
                right = rng.rand() < 0.85
                labels.append(int(label) if right else int(rng.randint(num_classes)))
                scores.append(rng.uniform(0.3, 1.0) if right else rng.uniform(0.01, 0.7))
                boxes.append(b)
        for _ in range(rng.randint(0, max_extra + 1)):
            x1, y1 = rng.uniform(0, width * 0.7), rng.uniform(0, height * 0.7)
            boxes.append([x1, y1, x1 + rng.uniform(4, width * 0.3), y1 + rng.uniform(4, height * 0.3)])
            labels.append(int(rng.randint(num_classes)))
            scores.append(rng.uniform(0.01, 0.6))
        boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width - 1)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height - 1)
        boxes[:, 2] = np.maximum(boxes[:, 2], boxes[:, 0])
        boxes[:, 3] = np.maximum(boxes[:, 3], boxes[:, 1])
        scores = np.array(scores, dtype=np.float32).astype(np.float64)  # what a net can output
        plan.append((np.array(labels, dtype=np.int64), scores, boxes))
    return plan


def make_oracle(plan, sizes, data_shape):
    """An :class:`OracleDetector` replaying ``plan`` scaled to a ``data_shape`` input."""
    from mxnet import gluon, nd

    class OracleDetector(gluon.Block):
        """Returns the planned detections of the next images, in input pixels, as an SSD does:
        ``ids (B, K, 1), scores (B, K, 1), boxes (B, K, 4)``, -1 padded. Stateful: images must
        come in order, once (a sequential evaluation loader)."""

        def __init__(self):
            super(OracleDetector, self).__init__()
            self.position = 0
            self.max_k = max(1, max(p[0].shape[0] for p in plan))

        def forward(self, x):
            batch = x.shape[0]
            ids = np.full((batch, self.max_k, 1), -1.0, np.float32)
            scores = np.full((batch, self.max_k, 1), -1.0, np.float32)
            boxes = np.full((batch, self.max_k, 4), -1.0, np.float32)
            for j in range(batch):
                labels, s, b = plan[self.position]
                width, height = sizes[self.position]
                k = labels.shape[0]
                ids[j, :k, 0] = labels
                scores[j, :k, 0] = s
                boxes[j, :k] = b * np.array([data_shape / width, data_shape / height] * 2)
                self.position += 1
            return (nd.array(ids, ctx=x.context), nd.array(scores, ctx=x.context),
                    nd.array(boxes, ctx=x.context))

    return OracleDetector()


def random_ssd(classes, seed=0):
    """A freshly initialised GluonCV SSD (mobilenet1.0 SSD512 preset, custom classes).

    Xavier with ``factor_type='in'``: the ``'out'`` variant shrinks MobileNet's depthwise
    activations to ~1e-15 in inference mode, every score becomes 1/(C+1) and all tie. Class
    predictors get small weights so scores spread instead of saturating near 1 (no float32 ties).
    BN gamma/var One, beta/mean/bias Zero (Xavier cannot initialise vectors).
    """
    import mxnet as mx
    from gluoncv import model_zoo
    mx.random.seed(seed)
    net = model_zoo.get_model("ssd_512_mobilenet1.0_custom", classes=list(classes),
                              pretrained_base=False)
    xavier = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
    for name, p in net.collect_params().items():
        if name.endswith(("gamma", "running_var", "moving_var")):
            p.initialize(mx.init.One())
        elif name.endswith(("beta", "bias", "running_mean", "moving_mean")):
            p.initialize(mx.init.Zero())
        elif "anchor" in name:
            p.initialize()
        elif "class_predictor" in name:
            p.initialize(mx.init.Normal(0.001))
        else:
            p.initialize(xavier)
    return net
