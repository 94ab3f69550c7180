"""An independent VOC2007 detection AP, ported line by line from the devkit's ``VOCevaldet.m``.

Test helper only: it shares no code with GluonCV or ``gankd_gluon`` (plain Python lists, the XML
annotations read with ElementTree in the devkit's 1-based pixels, result files parsed here),
so agreement with ``gankd_gluon.eval`` is evidence, not an identity.

What ``VOCevaldet.m`` (VOC2007 devkit) does, and where this port follows it:

- ground truth of class ``cls`` per image: boxes ``BB`` and ``diff`` flags, ``det`` all false;
  ``npos = sum(~diff)``;
- detections ``ids, confidence, BB`` from ``textread``; ``[sc, si] = sort(-confidence)``: MATLAB's
  sort is stable, so ties keep file order (Python's ``sorted`` is stable too);
- for each detection in that order: ``ovmax`` = best overlap with the image's objects of the class,
  ``iw = min(x2) - max(x1) + 1``, ``ih`` likewise, overlap only if ``iw > 0 and ih > 0``,
  ``ua = (w1+1)(h1+1) + (w2+1)(h2+1) - iw*ih`` (the +1 pixel convention), the first object wins
  an exact tie (``ov > ovmax``);
- ``ovmax >= 0.5``: a difficult object -> neither tp nor fp; an unused object -> tp, mark used;
  a used one -> fp (duplicate); else fp;
- ``rec = cumsum(tp) / npos``, ``prec = cumsum(tp) ./ (cumsum(fp) + cumsum(tp))`` (0/0 = NaN when
  the first detections all hit difficult objects);
- ``for t = 0:0.1:1, p = max(prec(rec >= t)); if isempty(p), p = 0; end; ap = ap + p/11``.
  MATLAB's ``max`` skips NaN and returns NaN only when every value is NaN.

Two places where floating point decides and the port has to pick:

- the thresholds ``0:0.1:1``. ``thresholds='linear'`` (default) uses ``k * 0.1``, as Octave's
  ranges, numpy's ``arange`` and py-faster-rcnn do (0.6000000000000001, 0.7000000000000001).
  ``thresholds='symmetric'`` uses MATLAB's documented colon algorithm, which fills the second
  half from the end (``1 - k * 0.1``: exactly the doubles 0.6 and 0.7). They differ only when a
  recall equals 0.6 or 0.7 exactly (``npos`` a multiple of 5 or 10) -- not verified against MATLAB
  here (no MATLAB on this machine);
- a class whose every detection hits a difficult object: prec is all NaN, MATLAB's max gives NaN
  and so does AP here, where GluonCV's ``nan_to_num`` gives 0.

A class with ``npos == 0`` gives NaN here (the devkit divides by zero; VOC2007 test has objects of
every class).
"""
import math
import os
import xml.etree.ElementTree as ET

__all__ = ["read_voc_annotations", "read_result_file", "devkit_ap"]


def read_voc_annotations(voc_dir, split="test"):
    """Ground truth of a VOC tree as the devkit's ``PASreadrecord`` gives it.

    Parameters
    ----------
    voc_dir : str
        Folder with ``ImageSets/Main/<split>.txt`` and ``Annotations/<id>.xml``.

    Returns
    -------
    gtids : list of str
    records : dict
        ``id -> list of (class_name, [x1, y1, x2, y2] 1-based floats, difficult bool)``.
    """
    with open(os.path.join(voc_dir, "ImageSets", "Main", split + ".txt")) as f:
        gtids = [line.strip() for line in f if line.strip()]
    records = {}
    for image_id in gtids:
        root = ET.parse(os.path.join(voc_dir, "Annotations", image_id + ".xml")).getroot()
        objects = []
        for obj in root.iter("object"):
            name = obj.find("name").text.strip().lower()
            box = obj.find("bndbox")
            bb = [float(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
            diff_tag = obj.find("difficult")
            difficult = diff_tag is not None and diff_tag.text is not None \
                and diff_tag.text.strip() not in ("", "0")
            objects.append((name, bb, difficult))
        records[image_id] = objects
    return gtids, records


def read_result_file(path):
    """Lines ``image_id score x1 y1 x2 y2`` (1-based), in file order, as tuples."""
    rows = []
    with open(path) as f:
        for line in f:
            fields = line.split()
            if fields:
                rows.append((fields[0], float(fields[1]), [float(v) for v in fields[2:6]]))
    return rows


def _thresholds(kind):
    if kind == "linear":
        return [k * 0.1 for k in range(11)]
    if kind == "symmetric":
        # MATLAB colon a:d:b with n = 10 steps: a + k*d for k <= n/2, b - (n-k)*d after,
        # and (a+b)/2 in the middle when n is even
        out = [0.0] * 11
        for k in range(6):
            out[k] = 0.0 + k * 0.1
            out[10 - k] = 1.0 - k * 0.1
        out[5] = (0.0 + 1.0) / 2
        return out
    raise ValueError(kind)


def _matlab_max(values):
    """MATLAB ``max``: NaN skipped; NaN if all NaN; [] (None) if empty."""
    if not values:
        return None
    finite = [v for v in values if not math.isnan(v)]
    return max(finite) if finite else float("nan")


def devkit_ap(gtids, records, detections, cls, minoverlap=0.5, thresholds="linear"):
    """VOC2007 11-point AP of one class, as ``VOCevaldet.m``.

    Parameters
    ----------
    gtids : list of str
    records : dict (see :func:`read_voc_annotations`)
    detections : list of (image_id, score, [x1, y1, x2, y2]) in file order, 1-based boxes
    cls : str
    minoverlap : float
    thresholds : {'linear', 'symmetric'}

    Returns
    -------
    float
    """
    gt = {}
    npos = 0
    for image_id in gtids:
        objs = [o for o in records[image_id] if o[0] == cls]
        gt[image_id] = {"BB": [o[1] for o in objs], "diff": [o[2] for o in objs],
                        "det": [False] * len(objs)}
        npos += sum(1 for o in objs if not o[2])
    if npos == 0:
        return float("nan")

    # [sc, si] = sort(-confidence): stable
    order = sorted(range(len(detections)), key=lambda d: -detections[d][1])
    tp, fp = [], []
    for d in order:
        image_id, _, bb = detections[d]
        if image_id not in gt:
            raise ValueError("unrecognized image %r" % image_id)
        g = gt[image_id]
        ovmax, jmax = -math.inf, -1
        for j, bbgt in enumerate(g["BB"]):
            bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
            iw = bi[2] - bi[0] + 1
            ih = bi[3] - bi[1] + 1
            if iw > 0 and ih > 0:
                ua = ((bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1)
                      + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1) - iw * ih)
                ov = iw * ih / ua
                if ov > ovmax:
                    ovmax, jmax = ov, j
        if ovmax >= minoverlap:
            if g["diff"][jmax]:
                tp.append(0)
                fp.append(0)
            elif not g["det"][jmax]:
                tp.append(1)
                fp.append(0)
                g["det"][jmax] = True
            else:
                tp.append(0)
                fp.append(1)
        else:
            tp.append(0)
            fp.append(1)

    rec, prec = [], []
    ctp = cfp = 0
    for t, f in zip(tp, fp):
        ctp += t
        cfp += f
        rec.append(ctp / npos)
        prec.append(ctp / (cfp + ctp) if cfp + ctp else float("nan"))

    ap = 0.0
    for t in _thresholds(thresholds):
        p = _matlab_max([p for p, r in zip(prec, rec) if r >= t])
        if p is None:
            p = 0.0
        ap += p / 11
    return ap


def devkit_ap_from_files(voc_dir, det_dir, classes, split="test", prefix="comp4_det_test_",
                         thresholds="linear"):
    """Per-class AP of a result directory: ``{class: ap}`` (missing file = no detections)."""
    gtids, records = read_voc_annotations(voc_dir, split)
    out = {}
    for cls in classes:
        path = os.path.join(det_dir, "%s%s.txt" % (prefix, cls))
        dets = read_result_file(path) if os.path.exists(path) else []
        out[cls] = devkit_ap(gtids, records, dets, cls, thresholds=thresholds)
    return out
