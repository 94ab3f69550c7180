"""Detections and ground truth as flat arrays, in original-image pixels.

Both evaluation paths (a network run in the loop, and devkit result files read back) build the
same two objects and hand them to one scoring function, so the two paths give the same AP by
construction. Coordinates are 0-based pixels as GluonCV's ``VOCDetection`` labels are
(``pascal_voc/detection.py`` subtracts 1 from the XML's 1-based coordinates); the devkit files
add the 1 back (:mod:`gankd_gluon.eval.devkit`).
"""
import numpy as np

__all__ = ["DetectionSet", "GroundTruth", "dataset_ground_truth", "dataset_image_ids"]


class DetectionSet(object):
    """All detections of one evaluation, in *file order*.

    File order is the order in which the detections of one class appear in that class's devkit
    result file; scoring breaks score ties by it (the devkit's MATLAB ``sort`` is stable). For a
    network run it is image order, then the network's output order within an image.

    Parameters
    ----------
    image_ids : list of str, length I
        Image ids, the devkit's first column (e.g. ``'000001'``); ``image_index`` points here.
    image_index : array-like of int, shape (K,)
        Image of each detection (index into ``image_ids``).
    labels : array-like of int, shape (K,)
        0-based class index of each detection.
    scores : array-like of float, shape (K,)
        Confidence of each detection.
    boxes : array-like of float, shape (K, 4)
        ``[xmin, ymin, xmax, ymax]`` in 0-based pixels of the original image.
    """

    def __init__(self, image_ids, image_index, labels, scores, boxes):
        self.image_ids = [str(i) for i in image_ids]
        self.image_index = np.asarray(image_index, dtype=np.int64).reshape(-1)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        k = self.image_index.shape[0]
        if not (self.labels.shape[0] == self.scores.shape[0] == self.boxes.shape[0] == k):
            raise ValueError("DetectionSet: image_index, labels, scores and boxes need the same "
                             "length, got %d, %d, %d, %d" % (k, self.labels.shape[0],
                                                            self.scores.shape[0],
                                                            self.boxes.shape[0]))
        if k and (self.image_index.min() < 0 or self.image_index.max() >= len(self.image_ids)):
            raise ValueError("DetectionSet: image_index out of range [0, %d)" % len(self.image_ids))
        if not np.all(np.isfinite(self.scores)) or not np.all(np.isfinite(self.boxes)):
            raise ValueError("DetectionSet: non-finite score or box (a diverged network, or a "
                             "bad result file)")

    def __len__(self):
        return self.labels.shape[0]

    @classmethod
    def empty(cls, image_ids):
        """A set with no detections over ``image_ids``."""
        return cls(image_ids, [], [], [], np.zeros((0, 4)))

    @classmethod
    def concatenate(cls, image_ids, parts):
        """Join ``(image_index, labels, scores, boxes)`` tuples, keeping their order.

        Parameters
        ----------
        image_ids : list of str, length I
        parts : list of tuple
            Each ``(image_index (K_j,), labels (K_j,), scores (K_j,), boxes (K_j, 4))``.
        """
        if not parts:
            return cls.empty(image_ids)
        cols = list(zip(*parts))
        return cls(image_ids, np.concatenate(cols[0]), np.concatenate(cols[1]),
                   np.concatenate(cols[2]), np.concatenate(cols[3]).reshape(-1, 4))

    def for_image(self, index):
        """Boxes (N, 4), labels (N,), scores (N,) of image ``index``, in file order."""
        sel = np.flatnonzero(self.image_index == index)
        return self.boxes[sel], self.labels[sel], self.scores[sel]


class GroundTruth(object):
    """Ground-truth objects of an evaluation split, one entry per image.

    Parameters
    ----------
    image_ids : list of str, length I
    boxes : list of array-like, each (M_i, 4)
        ``[xmin, ymin, xmax, ymax]``, 0-based pixels of the original image.
    labels : list of array-like, each (M_i,)
        0-based class index.
    difficult : list of array-like, each (M_i,), optional
        VOC ``difficult`` flags; None means no object is difficult.
    sizes : list of (width, height), optional
        Original image sizes, where known.
    """

    def __init__(self, image_ids, boxes, labels, difficult=None, sizes=None):
        self.image_ids = [str(i) for i in image_ids]
        n = len(self.image_ids)
        if len(boxes) != n or len(labels) != n:
            raise ValueError("GroundTruth: %d image ids but %d box and %d label arrays"
                             % (n, len(boxes), len(labels)))
        self.boxes = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in boxes]
        self.labels = [np.asarray(l, dtype=np.int64).reshape(-1) for l in labels]
        if difficult is None:
            difficult = [np.zeros(l.shape[0]) for l in self.labels]
        self.difficult = [np.asarray(d).reshape(-1).astype(bool) for d in difficult]
        self.sizes = sizes
        index = {}
        for i, image_id in enumerate(self.image_ids):
            if image_id in index:
                # The devkit stops on "multiple image" too: a detection could not be placed.
                raise ValueError("GroundTruth: image id %r appears twice" % image_id)
            index[image_id] = i
        self.index = index

    def __len__(self):
        return len(self.image_ids)


def dataset_image_ids(dataset):
    """Image ids of a GluonCV detection dataset, in index order.

    VOC-style datasets keep ``(root, id)`` pairs in ``_items`` (``pascal_voc/detection.py``);
    their id is the devkit's image id. COCO datasets keep image paths there: the file name
    without extension is used. Other datasets get their index as id.

    Returns
    -------
    list of str, length len(dataset)
    """
    items = getattr(dataset, "_items", None)
    if items is not None and len(items) == len(dataset):
        ids = []
        for item in items:
            if isinstance(item, (tuple, list)):
                ids.append(str(item[-1]))
            else:
                ids.append(str(item).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0])
        if len(set(ids)) == len(ids):
            return ids
    return [str(i) for i in range(len(dataset))]


def _label_of(dataset, idx):
    """Label (M, 5+) of item ``idx`` without decoding its image when the dataset allows."""
    cache = getattr(dataset, "_label_cache", None)
    if cache:
        return cache[idx]
    if hasattr(dataset, "_load_label"):
        return dataset._load_label(idx)
    labels = getattr(dataset, "_labels", None)  # COCODetection keeps parsed labels here
    if labels is not None:
        return np.asarray(labels[idx])
    return dataset[idx][1]


def dataset_ground_truth(dataset):
    """Read the ground truth of a GluonCV detection dataset (no transform applied).

    Labels are read from the dataset's label cache when it has one, so no image is decoded.

    Parameters
    ----------
    dataset : gluoncv.data.VOCDetection or COCODetection (or subclass)
        Items ``(img, label)`` with label (M, 5) or (M, 6): ``[x1, y1, x2, y2, cls(, difficult)]``,
        0-based pixels; rows with cls < 0 (GluonCV's padding for empty images) are dropped.

    Returns
    -------
    GroundTruth
    """
    boxes, labels, difficult = [], [], []
    for idx in range(len(dataset)):
        label = np.asarray(_label_of(dataset, idx), dtype=np.float64)
        label = label.reshape(-1, label.shape[-1] if label.size else 6)
        label = label[label[:, 4] >= 0] if label.size else np.zeros((0, 6))
        boxes.append(label[:, :4])
        labels.append(label[:, 4])
        difficult.append(label[:, 5] if label.shape[1] > 5 else np.zeros(label.shape[0]))
    return GroundTruth(dataset_image_ids(dataset), boxes, labels, difficult)
