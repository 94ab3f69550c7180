"""The paper's table rows as experiments: one :class:`Row` per row of Tables 1, 2 and 3
(:mod:`.chains` builds the commands that reproduce a row, :mod:`.recipes` holds their settings,
:mod:`.estimates` what a row costs).

Counting the rows (Hong, Yu, Fan, "GAN-Knowledge Distillation for one-stage Object Detection",
arXiv:1906.08467, 2019, https://arxiv.org/abs/1906.08467: Sec. 4.2, Tables 1-3):

* Table 1 (VOC07 test, SSD512): 3 students (MobileNetV1, MobileNetV2, ResNet18) x 4 rows each
  (no teacher "-", VGG16, ResNet50, ResNet101) = 12;
* Table 2 (COCO val2017, SSD512, teacher ResNet50): 3 students (MobileNetV1, MobileNetV1_0.75,
  MobileNetV2) x 2 rows ("-" and ResNet50; the "-" cells of the VGG16 / ResNet101 lines were not
  run by the authors and are no rows) = 6;
* Table 3 (VOC07 test, Faster R-CNN, teacher ResNet101): 3 pairs (RoI pooling, RoIAlign,
  fine-grained imitation) x 2 rows ("-" and distilled) = 6. The teacher's own 74.8 is in the
  caption, not a row: it is a step of the distillation rows' chain.

12 + 6 + 6 = 24 rows.

This module does not import MXNet: ``reproduce.py --list`` and ``--dry-run`` stay instant.
"""

__all__ = ["Row", "ROWS", "TABLES", "get_row", "rows_of"]

TABLES = {
    1: "Table 1: SSD512 on VOC2007 test (VOC07 11-point mAP), trained on VOC07+12 trainval",
    2: "Table 2: SSD512 on COCO val2017 (mAP@[.5:.95]), trained on train2017, teacher ResNet50",
    3: "Table 3: Faster R-CNN on VOC2007 test, trained on VOC2007 trainval, teacher ResNet101 "
       "(74.8, caption)",
}


class Row(object):
    """One row of the paper's Tables 1-3.

    Parameters
    ----------
    table : int
        1, 2 or 3.
    index : int
        1-based position in the table, top to bottom.
    detector : {'ssd', 'faster_rcnn'}
    student : str
        Student backbone as the scripts name it (``mobilenet1.0``, ``resnet50_v1b``, ...).
    teacher : str or None
        Teacher backbone; None for a "-" row (the student trained alone).
    method : str
        ``none`` for "-" rows, ``gan`` (the paper), ``fgfi`` (Wang et al. 2019, Table 3).
    dataset : {'voc', 'coco', 'voc07'}
        voc: VOC07+12 trainval / VOC07 test; voc07: VOC2007 trainval / test; coco: train2017 /
        val2017.
    paper_map : float
        The paper's number (percent).
    paper_gain : float or None
        The paper's gain over its "-" row, in brackets in the tables.
    settings : dict
        What sets the row apart, flag -> value (see the module docstring).
    roi_mode : str or None
        Faster R-CNN RoI mode (``pool`` or ``align``).
    variant : str or None
        Table 3's line pair, named after the student's column: ``pool``, ``align``, ``fgfi``.
    note : str
    """

    def __init__(self, table, index, detector, student, teacher, method, dataset, paper_map,
                 paper_gain=None, settings=None, roi_mode=None, variant=None, note=""):
        self.table = table
        self.index = index
        self.detector = detector
        self.student = student
        self.teacher = teacher
        self.method = method
        self.dataset = dataset
        self.paper_map = paper_map
        self.paper_gain = paper_gain
        self.settings = dict(settings or {})
        self.roi_mode = roi_mode
        self.variant = variant
        self.note = note

    @property
    def is_baseline(self):
        return self.teacher is None

    @property
    def key(self):
        """Row name after the table: ``mobilenet1.0_resnet50_v1``, ``mobilenet1.0_baseline``."""
        student = "%s_%s" % (self.student, self.variant) if self.variant else self.student
        return "%s_%s" % (student, self.teacher or "baseline")

    @property
    def name(self):
        """``table1_mobilenet1.0_resnet50_v1``: the name of the row's script."""
        return "table%d_%s" % (self.table, self.key)

    @property
    def script(self):
        return "scripts/experiments/%s.sh" % self.name

    def paper_text(self):
        if self.paper_gain is None:
            return "%.1f" % self.paper_map
        return "%.1f (%+.1f)" % (self.paper_map, self.paper_gain)

    def settings_text(self):
        return " ".join("%s %s" % (k, v) for k, v in self.settings.items())

    def __repr__(self):
        return "Row(table=%d, index=%d, %s)" % (self.table, self.index, self.key)


def _t1():
    # (mAP, gain in brackets) as printed; the printed gains of MobileNetV2 and ResNet18 are not
    # all mAP minus the "-" row (77.2 - 75.9 = 1.3, printed +1.4): both are kept as printed
    numbers = {"mobilenet1.0": ((75.4, None), (77.3, 1.9), (77.6, 2.2), (77.6, 2.2)),
               "mobilenetv2_1.0": ((75.9, None), (77.2, 1.4), (77.7, 1.7), (77.5, 1.5)),
               "resnet18_v1": ((74.8, None), (77.2, 2.6), (77.6, 2.8), (77.3, 2.7))}
    out = []
    for student, cells in numbers.items():
        for teacher, (m, gain) in zip((None, "vgg16_atrous", "resnet50_v1", "resnet101_v2"),
                                      cells):
            if teacher:
                settings = {"--student": student, "--teacher": teacher}
            else:
                settings = {"--network": student, "--epochs": 240, "--lr-decay-epoch": "160,200"}
            out.append(Row(1, len(out) + 1, "ssd", student, teacher,
                           "gan" if teacher else "none", "voc", m, gain, settings))
    return out


def _t2():
    out = []
    for student, base, kd, gain in (("mobilenet1.0", 21.7, 25.4, 3.7),
                                    ("mobilenet0.75", 18.0, 23.0, 5.0),
                                    ("mobilenetv2_1.0", 22.0, 24.6, 2.6)):
        out.append(Row(2, len(out) + 1, "ssd", student, None, "none", "coco", base,
                       settings={"--network": student, "--dataset": "coco", "--epochs": 240,
                                 "--lr-decay-epoch": "160,200"}))
        out.append(Row(2, len(out) + 1, "ssd", student, "resnet50_v1", "gan", "coco", kd, gain,
                       settings={"--student": student, "--teacher": "resnet50_v1",
                                 "--dataset": "coco"}))
    return out


def _t3():
    out = []
    groups = (("pool", 67.0, 73.8, 6.8, "gan"), ("align", 71.7, 74.0, 2.3, "gan"),
              ("fgfi", 69.0, 72.0, 3.0, "fgfi"))
    for group, base, kd, gain, method in groups:
        roi = "align" if group == "fgfi" else group
        note = ""
        if group == "fgfi":
            note = ("the paper's 69.0 / 72.0 are Wang et al.'s own numbers; here the '-' row is "
                    "our RoIAlign baseline (the same run as row 3)")
        out.append(Row(3, len(out) + 1, "faster_rcnn", "resnet50_v1b", None, "none", "voc07",
                       base, roi_mode=roi, variant=group, note=note,
                       settings={"--roi-mode": roi}))
        out.append(Row(3, len(out) + 1, "faster_rcnn", "resnet50_v1b", "resnet101_v1d", method,
                       "voc07", kd, gain, roi_mode=roi, variant=group, note=note,
                       settings={"--roi-mode": roi, "--method": method}))
    return out


ROWS = _t1() + _t2() + _t3()


def rows_of(table=None):
    """All rows, or those of one table."""
    return [r for r in ROWS if table is None or r.table == int(table)]


def get_row(table, row):
    """A row by table and 1-based index, or by key (``mobilenet1.0_resnet50_v1``) or name."""
    candidates = rows_of(table)
    text = str(row)
    if text.isdigit():
        for r in candidates:
            if r.index == int(text):
                return r
    else:
        for r in candidates:
            if text in (r.key, r.name):
                return r
    raise KeyError("Table %s has no row %r; rows: %s" % (
        table, row, ", ".join("%d=%s" % (r.index, r.key) for r in candidates)))
