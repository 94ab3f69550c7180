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
