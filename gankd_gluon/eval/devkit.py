"""PASCAL VOC devkit result files: write detections, read them back, score them.

Format (devkit ``VOCdevkit/results/VOC2007/Main/<comp>_det_<set>_<class>.txt``, read by
``VOCevaldet.m`` with ``textread(..., '%s %f %f %f %f %f')``): one file per class, one line per
detection, ``image_id score xmin ymin xmax ymax`` in 1-based pixels. GluonCV's labels are
0-based (``VOCDetection`` subtracts 1 from the XML), so writing adds 1 and reading subtracts it.

Numbers are written with Python's ``repr`` (shortest string that reads back to the same double),
so a file read back gives exactly the detections that were written, and ``eval_voc.py
--save-detections`` then ``--detections`` reproduces the in-loop APs.

Tied scores keep the order of the lines in each file: scoring sorts with a stable sort, as
the devkit's MATLAB ``sort`` is stable (:func:`gankd_gluon.eval.voc.score_detections`).
"""
import logging
import os

import numpy as np

from ..usage import InputFileError, UsageError
from .results import DetectionSet
from .voc import score_detections

__all__ = ["DEFAULT_PREFIX", "devkit_filename", "write_devkit_detections",
           "read_devkit_detections", "score_devkit_dir"]

#: ``comp4``: the devkit's detection competition with outside training data; ``test`` set
DEFAULT_PREFIX = "comp4_det_test_"

_LOG = logging.getLogger(__name__)


def devkit_filename(class_name, prefix=DEFAULT_PREFIX):
    """``comp4_det_test_<class>.txt``"""
    return "%s%s.txt" % (prefix, class_name)


def write_devkit_detections(out_dir, detections, class_names, prefix=DEFAULT_PREFIX):
    """Write one devkit result file per class (an empty file for a class without detections).

    Parameters
    ----------
    out_dir : str
        Created if missing; existing files of the same names are replaced.
    detections : DetectionSet
        0-based original-image boxes; each class's lines are written in the set's order.
    class_names : sequence of str, length C
    prefix : str

    Returns
    -------
    list of str
        The C paths written.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for cls, name in enumerate(class_names):
        sel = np.flatnonzero(detections.labels == cls)
        path = os.path.join(out_dir, devkit_filename(name, prefix))
        with open(path, "w") as f:
            for k in sel:
                x1, y1, x2, y2 = (float(v) + 1.0 for v in detections.boxes[k])
                f.write("%s %r %r %r %r %r\n" % (detections.image_ids[detections.image_index[k]],
                                                 float(detections.scores[k]), x1, y1, x2, y2))
        paths.append(path)
    return paths


def _lines(path):
    """``(line number, text)`` of a result file; a line that is not UTF-8 text (a binary file)
    is a :class:`UsageError` naming the file and line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise UsageError("%s:%d: not text (byte %d of the line is not UTF-8); a devkit "
                                 "result file holds lines 'image_id score xmin ymin xmax ymax'"
                                 % (path, lineno, err.start + 1)) from None


def _parse_file(path, cls, image_index_of, skipped_ids=(), skipped=None):
    """Rows of one result file as (image_index, label, score, box) arrays, in line order.

    Raises
    ------
    UsageError
        A line that is not text, has not six fields, has a field that is not a finite number,
        or names an image outside the evaluated split; the message names the file and line.
    """
    index, scores, boxes = [], [], []
    for lineno, line in _lines(path):
        fields = line.split()
        if not fields:
            continue
        shown = line.rstrip("\r\n")
        if len(fields) != 6:
            raise UsageError("%s:%d: expected 'image_id score xmin ymin xmax ymax', got %r"
                             % (path, lineno, shown))
        try:
            values = [float(v) for v in fields[1:]]
        except ValueError:
            raise UsageError("%s:%d: score and box must be numbers, got %r"
                             % (path, lineno, shown)) from None
        if not np.all(np.isfinite(values)):
            raise UsageError("%s:%d: non-finite number in %r" % (path, lineno, shown))
        if fields[0] not in image_index_of and fields[0] in skipped_ids:
            # an image the loader skipped (its annotation or file is unusable): not scored,
            # counted and reported by the caller
            if skipped is not None:
                skipped[fields[0]] = skipped.get(fields[0], 0) + 1
            continue
        if fields[0] not in image_index_of:
            # VOCevaldet.m stops with 'unrecognized image' as well
            raise UsageError("%s:%d: image id %r is not in the evaluated split"
                             % (path, lineno, fields[0]))
        index.append(image_index_of[fields[0]])
        scores.append(values[0])
        boxes.append([v - 1.0 for v in values[1:]])
    n = len(index)
    return (np.asarray(index, dtype=np.int64), np.full(n, cls, dtype=np.int64),
            np.asarray(scores, dtype=np.float64), np.asarray(boxes, dtype=np.float64).reshape(n, 4))


def read_devkit_detections(det_dir, class_names, image_ids, prefix=DEFAULT_PREFIX,
                           skipped_ids=()):
    """Read a directory of devkit result files.

    Parameters
    ----------
    det_dir : str
    class_names : sequence of str, length C
        File ``<prefix><class>.txt`` holds class ``class_names.index(class)``. A missing file
        means no detections of that class (logged); no file at all is an error.
    image_ids : list of str
        The evaluated split; an id outside it is an error naming the file and line.
    prefix : str
    skipped_ids : collection of str
        Ids of the split that the loader skipped (``dataset.report.skipped_ids``): their lines
        are not scored (there is no usable ground truth), counted and reported in one warning.

    Returns
    -------
    DetectionSet
        Boxes 0-based (the file's values minus 1); within a class, in line order.
    """
    if not os.path.isdir(det_dir):
        if os.path.exists(det_dir):
            raise UsageError("--detections %s: not a directory (eval_voc.py reads a directory "
                             "of devkit result files %s<class>.txt)" % (det_dir, prefix))
        raise InputFileError("detections directory %s does not exist" % det_dir)
    image_index_of = {str(image_id): i for i, image_id in enumerate(image_ids)}
    skipped_ids = {str(i) for i in skipped_ids}
    parts, missing, skipped = [], [], {}
    for cls, name in enumerate(class_names):
        path = os.path.join(det_dir, devkit_filename(name, prefix))
        if not os.path.isfile(path):
            missing.append(os.path.basename(path))
            continue
        parts.append(_parse_file(path, cls, image_index_of, skipped_ids, skipped))
    if skipped:
        _LOG.warning("%s: %d result lines name %d images the loader skipped (see its summary), "
                     "not scored: %s", det_dir, sum(skipped.values()), len(skipped),
                     ", ".join(sorted(skipped)[:5]) + (", ..." if len(skipped) > 5 else ""))
    if not parts:
        raise InputFileError(
            "no devkit result files in %s: expected %s (one per class, lines 'image_id score "
            "xmin ymin xmax ymax')" % (det_dir, ", ".join(devkit_filename(n, prefix)
                                                          for n in class_names)))
    if missing:
        _LOG.warning("%s: no result file for %d classes (scored as no detections): %s",
                        det_dir, len(missing), ", ".join(missing))
    known = {devkit_filename(n, prefix) for n in class_names}
    extra = sorted(f for f in os.listdir(det_dir) if f.startswith(prefix) and f.endswith(".txt")
                   and f not in known)
    if extra:
        _LOG.warning("%s: ignoring result files of unknown classes: %s", det_dir,
                        ", ".join(extra))
    return DetectionSet.concatenate(image_ids, parts)


def score_devkit_dir(det_dir, ground_truth, class_names, metric="voc07", prefix=DEFAULT_PREFIX,
                     skipped_ids=()):
    """Score a directory of devkit result files against ground truth.

    Parameters
    ----------
    det_dir : str
    ground_truth : GroundTruth
        Original-image, 0-based (e.g. :func:`gankd_gluon.eval.results.dataset_ground_truth`).
    class_names : sequence of str, length C
    metric : {'voc07', 'area'}
    prefix : str
    skipped_ids : collection of str
        As :func:`read_devkit_detections`.

    Returns
    -------
    names : list of str, length C + 1
    values : list of float, length C + 1
        As :func:`gankd_gluon.eval.voc.score_detections` (ties keep line order).
    """
    detections = read_devkit_detections(det_dir, class_names, ground_truth.image_ids, prefix,
                                        skipped_ids)
    return score_detections(detections, ground_truth, class_names, metric)
