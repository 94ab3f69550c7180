"""Datasets by name (``voc``, ``coco``, ``synthetic``, ``synthetic_coco``) with input checks.

Every script takes the same flags (:func:`add_dataset_args`) and calls::

    train_set = get_dataset(args.dataset, args.dataset_root, 'train', split_name=args.train_split)
    val_set = get_dataset(args.dataset, args.dataset_root, 'test', split_name=args.val_split)

Split names (``--train-split`` / ``--val-split``) name the files a split is read from: VOC
layout ``VOC<year>/ImageSets/Main/<name>.txt``, COCO layout ``annotations/instances_<name>.json``
(:data:`DEFAULT_SPLITS`: today's ``trainval``/``test`` and ``train2017``/``val2017``).

Loading goes through GluonCV's own ``VOCDetection`` and ``COCODetection``; the subclasses here
only set ``CLASSES`` and add the input checks of :mod:`.checks`. The policy, in one sentence: a
missing dataset, a path that leaves the dataset folder, or an XML entity declaration **stops**
with an exception naming the file; any other bad input **skips the smallest unit it affects**
(an object, else the image), logs a warning naming the file, and is counted in
``dataset.report`` (``dataset.summary()`` prints the totals). In detail:

================================  ==========================================================
input                             what happens
================================  ==========================================================
missing root / split / json       stop: :class:`DatasetNotFoundError` naming the path, with
                                  how to prepare the data and the ``synthetic`` alternative;
                                  beside other split files: those, and the flag to pass
id with ``..`` or absolute path   stop: :class:`UnsafeInputError` naming split file and line
XML declaring entities            stop: :class:`UnsafeInputError` naming the XML file
                                  (parsed with defusedxml, so nothing is expanded)
missing, empty, truncated or      skip the image (checked when the dataset is built, without
non-JPEG/PNG image file           decoding: :func:`check_image_file`)
image that still fails to decode  replaced, with a warning (a DataLoader worker never
in ``__getitem__``                raises on an image): train split by the next image, test
                                  split by a grey image with the image's own label (order,
                                  ids and ground truth stay right; its objects are missed)
malformed XML / missing XML       skip the image
missing or invalid ``<size>``     repair: the image file's size, from its header (noted); skip
                                  the image if the header cannot be read
object without ``<name>``,        drop the object
``<bndbox>`` or numeric coords
box entirely outside the image,   drop the object (GluonCV's bounds, which the paper's
zero area, xmin > xmax            numbers were computed with; GluonCV also drops it)
box partly outside the image      keep: clipped for training, as written for evaluation (the
(``xmin=0`` of a 0-based tool)    VOC devkit does not validate ground truth); noted
``<size>`` not the image file's   skip the image (its header is read, no decoding; an EXIF
size (another copy, EXIF turn)    quarter turn is named)
``<id>.png`` / ``.jpeg``          found by id (:data:`IMAGE_EXTENSIONS`)
split file not UTF-8/UTF-16       stop: :class:`DataError` naming file, line and byte
repeated id in a split file       skip the repeat, naming file and line
element the loader does not read  noted, counted per element path
COCO: no area / iscrowd / id,     repaired once in the json the dataset and ``COCOeval``
bbox numbers as strings           share (:func:`_normalise_coco`); noted
COCO: no coco_url; no width       image found by ``file_name``; size read from the file
no usable image; no object of    stop: :class:`DataError` (with the class names found when
the classes in a split            none matched: pass ``--classes``), the test split too
unknown class name                drop the object (as GluonCV does, so a dataset can be
                                  trained on a subset of its classes); counted per name
missing or empty ``<difficult>``  read as 0, as the VOC devkit does (counted as a note)
image with no (valid) objects     train split: skip the image (SSD target generation needs a
                                  box); test split: keep it with the label ``[[-1]*6]``
                                  (GluonCV's COCO convention; metrics ignore class -1), so
                                  detections on it still count as false positives
================================  ==========================================================

Counts made inside DataLoader worker processes (the ``substituted`` case) stay in those
processes; their warnings still reach the log.
"""
import contextlib
import io
import json
import os

import mxnet as mx
import numpy as np
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from gluoncv.data import COCODetection, VOCDetection
from gluoncv.data.mscoco.utils import try_import_pycocotools
from gluoncv.utils.bbox import bbox_clip_xyxy, bbox_xywh_to_xyxy
from xml.etree.ElementTree import ParseError

from .checks import (DataError, DatasetNotFoundError, InputReport, UnsafeInputError,
                     check_image_file, check_relative_id, image_header)
from .classes import classes_arg, read_text_lines
from .synthetic import SYNTHETIC_CLASSES

__all__ = ['DATASET_NAMES', 'DEFAULT_ROOTS', 'DatasetNotFoundError', 'UnsafeInputError',
           'DataError', 'IMAGE_EXTENSIONS',
           'CheckedVOCDetection', 'SyntheticVOCDetection', 'CheckedCOCODetection',
           'SyntheticCOCODetection', 'get_dataset', 'dataset_classes', 'dataset_metric_kind',
           'add_dataset_args', 'add_train_years_arg', 'get_splits', 'summary_lines', 'train_years_arg', 'default_root',
           'DEFAULT_SPLITS', 'split_names', 'split_name_arg', 'resolve_split_args']

DATASET_NAMES = ('voc', 'coco', 'synthetic', 'synthetic_coco')

#: GluonCV's default roots (VOCDetection / COCODetection defaults, and where GluonCV's
#: scripts/datasets/{pascal_voc,mscoco}.py link the data); the generated set sits beside them.
DEFAULT_ROOTS = {
    'voc': os.path.join('~', '.mxnet', 'datasets', 'voc'),
    'coco': os.path.join('~', '.mxnet', 'datasets', 'coco'),
    'synthetic': os.path.join('~', '.mxnet', 'datasets', 'gankd_synthetic'),
    'synthetic_coco': os.path.join('~', '.mxnet', 'datasets', 'gankd_synthetic'),
}

#: The ``(train, evaluation)`` split names of each kind when ``--train-split`` / ``--val-split``
#: are not given: the paper's VOC07+12 ``trainval`` / VOC07 ``test`` (GluonCV's
#: ``train_ssd.py``) and COCO's ``instances_train2017`` / ``instances_val2017`` jsons.
DEFAULT_SPLITS = {
    'voc': ('trainval', 'test'),
    'synthetic': ('trainval', 'test'),
    'coco': ('train2017', 'val2017'),
    'synthetic_coco': ('trainval', 'test'),
}

#: The flag that names each role's split, for messages
SPLIT_FLAGS = {'train': '--train-split', 'test': '--val-split'}

_SYNTHETIC_HINT = ('Without VOC/COCO (e.g. no internet), use the generated dataset: '
                   '`python scripts/make_synthetic_voc.py --root DIR`, then '
                   '`--dataset synthetic --dataset-root DIR`.')
_VOC_HINT = ('Prepare Pascal VOC with GluonCV\'s script (it is not in the gluoncv wheel): download '
             'https://raw.githubusercontent.com/dmlc/gluon-cv/master/scripts/datasets/pascal_voc.py '
             'and run `python pascal_voc.py --download-dir ~/VOCdevkit`, which fetches VOC2007 '
             'trainval+test and VOC2012 trainval into that folder and links '
             '~/.mxnet/datasets/voc to it; or pass `--dataset-root DIR` where DIR holds '
             'VOC2007/ and VOC2012/ (or VOCdevkit/VOC2007, ...). ' + _SYNTHETIC_HINT)
_COCO_HINT = ('Prepare MS COCO with GluonCV\'s script (it is not in the gluoncv wheel): download '
              'https://raw.githubusercontent.com/dmlc/gluon-cv/master/scripts/datasets/mscoco.py '
              'and run `python mscoco.py --download-dir ~/mscoco`, which fetches train2017, '
              'val2017 and annotations_trainval2017 and links ~/.mxnet/datasets/coco to it; or '
              'pass `--dataset-root DIR` where DIR holds annotations/, train2017/ and val2017/. '
              + _SYNTHETIC_HINT)
_GENERATED_HINT = ('Generate it with `python scripts/make_synthetic_voc.py --root DIR` and pass '
                   '`--dataset-root DIR` (default DIR: %s).' % DEFAULT_ROOTS['synthetic'])


#: Extensions an image file may have, tried in this order for ``<JPEGImages>/<id><ext>``
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.JPG', '.JPEG', '.PNG')

#: Elements of a VOC annotation that the loader knowingly does not use (the devkit's
#: ``PASreadrecord.m`` fields and what LabelImg and CVAT write); any other is reported.
_VOC_KNOWN = {
    'annotation': {'folder', 'filename', 'path', 'source', 'owner', 'size', 'segmented',
                   'object'},
    'object': {'name', 'pose', 'truncated', 'difficult', 'occluded', 'bndbox', 'part',
               'actions', 'point', 'attributes'},
    'bndbox': {'xmin', 'ymin', 'xmax', 'ymax'},
    'size': {'width', 'height', 'depth'},
}


def _not_found(what, path, hint):
    return DatasetNotFoundError('%s not found: %s. %s' % (what, path, hint))


def _fallback(decode_fallback, skip_empty):
    if decode_fallback is None:
        return 'next' if skip_empty else 'blank'
    if decode_fallback not in ('next', 'blank'):
        raise ValueError("decode_fallback must be 'next' or 'blank', got %r" % (decode_fallback,))
    return decode_fallback


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


class _SafeReadMixin(object):
    """``__getitem__`` that never raises on an image file.

    The image files were checked when the dataset was built (:func:`check_image_file`), so a
    decode failure here means a file that changed since, or one corrupt inside while complete at
    both ends. What replaces it depends on ``self._decode_fallback``:

    - ``'next'`` (training): the next image that decodes, with its label; every batch stays
      full of real samples and the DataLoader worker stays alive;
    - ``'blank'`` (evaluation): a mid-grey image of the annotated size with the image's own
      label, so image order, ids and ground truth stay right (its objects count as missed).

    Either way a warning names the file.
    """

    def _image_path_of(self, idx):
        raise NotImplementedError

    def _label_of(self, idx):
        raise NotImplementedError

    def _size_of(self, idx):
        raise NotImplementedError

    def __getitem__(self, idx):
        n = len(self)
        tries = min(n, 10) if self._decode_fallback == 'next' else 1
        for k in range(tries):
            j = (idx + k) % n
            path = self._image_path_of(j)
            try:
                img = mx.image.imread(path, 1)
            except (mx.base.MXNetError, OSError, ValueError) as err:
                self.report.add('substituted', path, 'decode failed: %s; %s' % (
                    _first_line(err), 'next image used' if self._decode_fallback == 'next'
                    else 'grey image used'))
                continue
            return self._output(img, self._label_of(j))
        if self._decode_fallback == 'blank':
            width, height = self._size_of(idx)
            img = mx.nd.full((int(height), int(width), 3), 128, dtype='uint8')
            return self._output(img, self._label_of(idx))
        raise RuntimeError('%s: %d consecutive images from index %d failed to decode; '
                           'see the warnings above' % (self.report.name, tries, idx))

    def _output(self, img, label):
        if self._transform is not None:
            return self._transform(img, label)
        return img, label.copy()

    def summary(self):
        """What was skipped while loading: see :meth:`InputReport.summary`."""
        return self.report.summary()


class CheckedVOCDetection(_SafeReadMixin, VOCDetection):
    """GluonCV's ``VOCDetection`` with the input checks of this module (see its docstring).

    Differences from ``VOCDetection``, all additive: existence checks with a helpful
    :class:`DatasetNotFoundError`; ids checked for ``..`` and absolute paths; blank lines in
    split files ignored; annotations parsed with defusedxml; images and objects that fail a check
    skipped and counted in :attr:`report`; labels always parsed (and checked) when the dataset is
    built. Boxes and labels of valid input are identical to ``VOCDetection``'s.

    Parameters
    ----------
    root : str
        Folder holding ``VOC2007`` etc. (GluonCV's default ``~/.mxnet/datasets/voc``).
    splits : sequence of (int or str, str)
        ``(year, name)`` pairs as in ``VOCDetection``, e.g. ``((2007, 'test'),)``.
    transform : callable or None
        ``transform(img, label)`` as in GluonCV.
    index_map : dict or None
        Class name -> index, as in GluonCV.
    skip_empty : bool
        Skip images with no valid object (training); if False they are kept with the label
        ``[[-1, -1, -1, -1, -1, -1]]`` (evaluation).
    decode_fallback : {'next', 'blank'} or None
        What ``__getitem__`` returns for an image that fails to decode (see
        ``_SafeReadMixin``); default ``'next'`` if ``skip_empty`` (training) else ``'blank'``.
    classes : sequence of str or None
        Own class names in label order (default ``CLASSES``).
    split_flag : str or None
        The command-line flag that names the split (``--train-split``), for the message of a
        missing split file beside others.

    Attributes
    ----------
    report : InputReport
        What was skipped; ``summary()`` returns ``report.summary()``.

    Items are ``(img, label)``: img NDArray (H, W, 3) uint8 RGB, label np.ndarray (N, 6) float64
    ``[xmin, ymin, xmax, ymax, class_id, difficult]``, 0-based pixel corners (XML - 1, as
    GluonCV).
    """
    PREPARE_HINT = _VOC_HINT

    def __init__(self, root=DEFAULT_ROOTS['voc'], splits=((2007, 'trainval'), (2012, 'trainval')),
                 transform=None, index_map=None, skip_empty=True, decode_fallback=None,
                 classes=None, split_flag=None):
        name = '%s(%s)' % (type(self).__name__, ','.join(str(s[0]) + s[1] for s in splits))
        self.report = InputReport(name)
        self._split_flag = split_flag
        self._own_classes = tuple(classes) if classes is not None else None
        self._image_paths = {}
        self._skip_empty = skip_empty
        self._decode_fallback = _fallback(decode_fallback, skip_empty)
        if not os.path.isdir(os.path.expanduser(root)):
            raise _not_found('dataset root', os.path.expanduser(root), self.PREPARE_HINT)
        # preload_label=False: GluonCV's loader would parse before the checks below can run
        super(CheckedVOCDetection, self).__init__(root=root, splits=splits, transform=transform,
                                                  index_map=index_map, preload_label=False)
        self._check_items()

    def _load_items(self, splits):
        """Read the split files: missing file -> stop, unsafe id -> stop, blank line -> ignored."""
        ids = []
        for subfolder, name in splits:
            root = os.path.join(
                self._root, ('VOC' + str(subfolder)) if isinstance(subfolder, int) else subfolder)
            split_file = os.path.join(root, 'ImageSets', 'Main', name + '.txt')
            if not os.path.isfile(split_file):
                raise _not_found('split file', split_file,
                                 _split_hint(split_file, name, self._split_flag)
                                 or self.PREPARE_HINT)
            for folder in ('JPEGImages', 'Annotations'):
                if not os.path.isdir(os.path.join(root, folder)):
                    raise _not_found('folder', os.path.join(root, folder), self.PREPARE_HINT)
            try:
                lines = read_text_lines(split_file)
            except UnicodeError as err:
                raise DataError(str(err)) from None
            seen = {}
            for lineno, line in lines:
                image_id = line.strip()
                if not image_id:
                    continue
                check_relative_id(image_id, '%s line %d' % (split_file, lineno))
                if (root, image_id) in seen:
                    self.report.add('repeated_id', '%s line %d' % (split_file, lineno),
                                    'id %r first at line %d' % (image_id,
                                                               seen[(root, image_id)]))
                    continue
                seen[(root, image_id)] = lineno
                ids.append((root, image_id))
        return ids

    @property
    def classes(self):
        """Class names in label order: ``classes=`` if given, else ``CLASSES``."""
        own = getattr(self, '_own_classes', None)
        return own if own is not None else super(CheckedVOCDetection, self).classes

    def _find_image(self, item):
        """``JPEGImages/<id>.<ext>`` for the first of :data:`IMAGE_EXTENSIONS` that exists
        (``<id>.jpg`` when none does, so the message names the expected file)."""
        default = self._image_path.format(*item)
        if os.path.isfile(default):
            return default
        stem = default[:-len('.jpg')]
        for ext in IMAGE_EXTENSIONS:
            if os.path.isfile(stem + ext):
                return stem + ext
        return default

    def _check_items(self):
        """Keep the items whose image file and annotation pass the checks; cache their labels."""
        items, labels, shapes = [], [], {}
        paths = {}
        for item in self._items:
            img_path = self._find_image(item)
            problem = check_image_file(img_path)
            if problem:
                if problem == 'file not found':
                    problem += _other_files_hint(img_path)
                self.report.add('unreadable_image', img_path, problem)
                self.report.skipped_ids.add(item[1])
                continue
            anno_path = self._anno_path.format(*item)
            parsed = self._parse_annotation(anno_path, img_path)
            if parsed is None:
                self.report.skipped_ids.add(item[1])
                continue
            label, size = parsed
            if label.shape[0] == 0:
                if self._skip_empty:
                    self.report.add('no_objects', anno_path)
                    self.report.skipped_ids.add(item[1])
                    continue
                label = -np.ones((1, 6))
            else:
                self.report.kept_objects += label.shape[0]
            shapes[len(items)] = size
            paths[len(items)] = img_path
            items.append(item)
            labels.append(label)
        self._items, self._label_cache, self._im_shapes = items, labels, shapes
        self._image_paths = paths
        self.report.kept_images = len(items)
        self.report.log_summary()
        named = [n for n in self.report.unknown_classes if not n.startswith('category_id ')]
        if not items or (not self.report.kept_objects and named):
            # a test split keeps images without objects; if every object is of another class,
            # the classes are wrong (no --classes on an own dataset), not the split
            raise DataError(_no_usable(self.report, self.classes, self.PREPARE_HINT))

    def _load_label(self, idx):
        """Label of item ``idx`` (parsed and checked when the dataset was built).

        Overrides GluonCV's parser, which uses ``xml.etree`` (entity expansion) and crashes on a
        missing ``<difficult>`` (AttributeError) or an empty one (TypeError); see
        :meth:`_parse_annotation`. A missing or empty ``<difficult>`` is read as 0, as the VOC
        devkit does (``PASreadrecord.m``: ``difficult`` defaults to false).
        """
        return self._label_cache[idx]

    def _image_path_of(self, idx):
        return self._image_paths[idx]

    def _label_of(self, idx):
        return self._label_cache[idx]

    def _size_of(self, idx):
        return self._im_shapes[idx]

    def _parse_annotation(self, anno_path, img_path=None):
        """Parse one VOC XML file with defusedxml and check it.

        Parameters
        ----------
        anno_path : str
        img_path : str or None
            The image file: its stored size (what MXNet decodes) must be the annotated
            ``<size>``, else the image is skipped (``frame_mismatch``): boxes drawn on another
            frame (a resized copy, an EXIF-rotated view) would land on the wrong pixels.

        Returns
        -------
        (label, (width, height)) or None
            label: np.ndarray (N, 6) float64 ``[xmin, ymin, xmax, ymax, class_id, difficult]``
            0-based (XML value - 1, as GluonCV), N >= 0. None if the image is skipped (the
            reason is recorded in :attr:`report`).

        Raises
        ------
        UnsafeInputError
            If the file declares entities or DTD parts that defusedxml forbids.
        """
        report = self.report
        try:
            root = SafeET.parse(anno_path).getroot()
        except DefusedXmlException as err:
            raise UnsafeInputError('%s: refusing to parse annotation: %r (XML entity '
                                   'declarations and external references are forbidden; VOC '
                                   'annotations have none)' % (anno_path, err)) from err
        except ParseError as err:
            report.add('bad_annotation', anno_path, 'XML parse error: %s' % err)
            return None
        except OSError as err:
            report.add('bad_annotation', anno_path, 'cannot read: %s' % err)
            return None
        size = root.find('size')
        width = _positive_number(size, 'width')
        height = _positive_number(size, 'height')
        header = image_header(img_path) if img_path is not None else None
        if (width is None or height is None) and header is not None:
            # hand-written XML has no <size>, and some LabelImg versions write 0x0: the file's
            # own frame is the one its boxes were drawn on (what COCO's missing width/height
            # gets too); boxes are then checked against it as usual
            width, height = float(header[0]), float(header[1])
            report.add('size_from_image', anno_path, 'no valid <size>; %dx%d read from %s'
                       % (header[0], header[1], os.path.basename(img_path)))
        if width is None or height is None:
            report.add('missing_size', anno_path, 'need <size><width> and <height> > 0')
            return None
        if img_path is not None and not _frame_matches(report, anno_path, img_path, width,
                                                       height):
            return None
        _report_unused(report, root, 'annotation', anno_path)
        train = self._skip_empty
        label = []
        for k, obj in enumerate(root.iter('object')):
            where = 'object %d' % k
            name_el = obj.find('name')
            cls_name = (name_el.text or '').strip().lower() if name_el is not None else ''
            if not cls_name:
                report.add('bad_object', anno_path, '%s has no <name>' % where)
                continue
            if cls_name not in self.classes:
                report.unknown_classes[cls_name] += 1
                report.add('unknown_class', anno_path, '%s is %r' % (where, cls_name))
                continue
            xml_box = obj.find('bndbox')
            if xml_box is None:
                report.add('bad_object', anno_path, '%s (%s) has no <bndbox>' % (where, cls_name))
                continue
            coords = [_number(xml_box, tag) for tag in ('xmin', 'ymin', 'xmax', 'ymax')]
            if any(c is None for c in coords):
                report.add('bad_object', anno_path,
                           '%s (%s): <bndbox> needs numeric xmin, ymin, xmax, ymax' % (where,
                                                                                     cls_name))
                continue
            # devkit boxes are 1-based; GluonCV subtracts 1 (pascal_voc/detection.py:124-127)
            xmin, ymin, xmax, ymax = [c - 1 for c in coords]
            problem = _box_problem(xmin, ymin, xmax, ymax, width, height)
            if problem == _PARTLY_OUTSIDE:
                # the devkit does not validate ground truth: a box of a 0-based tool
                # (xmin=0) or one a pixel past the border is kept, as written for scoring,
                # clipped for training (SSD/RPN targets are made inside the image)
                shown = '%s (%s) [%g, %g, %g, %g] in a %gx%g image' % (
                    where, cls_name, coords[0], coords[1], coords[2], coords[3], width, height)
                if train:
                    report.add('box_clipped', anno_path, shown)
                    xmin, ymin = max(xmin, 0.0), max(ymin, 0.0)
                    xmax, ymax = min(xmax, float(width)), min(ymax, float(height))
                else:
                    report.add('box_outside', anno_path, shown)
                problem = None
            if problem:
                report.add('invalid_box', anno_path, '%s (%s) [%g, %g, %g, %g] in a %gx%g image: %s'
                           % (where, cls_name, coords[0], coords[1], coords[2], coords[3], width,
                              height, problem))
                continue
            difficult = _difficult(obj)
            if difficult is None:
                report.add('difficult_defaulted', anno_path, where)
                difficult = 0
            label.append([xmin, ymin, xmax, ymax, self.index_map[cls_name], difficult])
        return np.array(label, dtype=np.float64).reshape((-1, 6)), (width, height)


def _number(parent, tag):
    """``float(parent.find(tag).text)``, or None when the element or a number is missing."""
    if parent is None:
        return None
    el = parent.find(tag)
    if el is None or el.text is None:
        return None
    try:
        value = float(el.text.strip())
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _positive_number(parent, tag):
    value = _number(parent, tag)
    return value if value is not None and value > 0 else None


def _difficult(obj):
    """0 or 1 from ``<difficult>``; None if the tag is missing, empty or not a number."""
    value = _number(obj, 'difficult')
    if value is None:
        return None
    return int(value != 0)


_PARTLY_OUTSIDE = 'partly outside the image'


def _box_problem(xmin, ymin, xmax, ymax, width, height):
    """What is wrong with a 0-based box under GluonCV's bounds (detection.py ``_validate_label``).

    Returns None for a valid box: ``0 <= xmin < W``, ``0 <= ymin < H``, ``xmin < xmax <= W``,
    ``ymin < ymax <= H``; :data:`_PARTLY_OUTSIDE` for a box that crosses the border but covers
    pixels of the image (kept by the caller); another string for a box that cannot be used.
    """
    if xmax < xmin or ymax < ymin:
        return 'xmin > xmax or ymin > ymax'
    if xmax == xmin or ymax == ymin:
        return 'zero area (xmin == xmax or ymin == ymax)'
    if not (0 <= xmin < width and 0 <= ymin < height and xmax <= width and ymax <= height):
        if xmax <= 0 or ymax <= 0 or xmin >= width - 1 or ymin >= height - 1:
            return 'outside the image'
        return _PARTLY_OUTSIDE
    return None


def _frame_matches(report, anno_path, img_path, width, height):
    """True if the image file's stored size is the annotated ``width`` x ``height``; else
    the image is counted as ``frame_mismatch`` (with the EXIF rotation when that explains it)
    and False. An EXIF rotation of a square image cannot be told from the sizes: noted."""
    header = image_header(img_path)
    if header is None:
        return True                     # decoding will tell (check_image_file passed)
    img_w, img_h, orientation = header
    rotated = orientation in (5, 6, 7, 8)
    if (img_w, img_h) != (int(round(width)), int(round(height))):
        if rotated and (img_h, img_w) == (int(round(width)), int(round(height))):
            why = ('annotated on the EXIF-rotated view (orientation %d); MXNet decodes the '
                   'stored %dx%d pixels: rotate the file itself (e.g. exiftran -ai) or annotate '
                   'the stored frame' % (orientation, img_w, img_h))
        else:
            why = ('<size> says %gx%g, %s is %dx%d: boxes were drawn on another copy of the '
                   'image; fix <size> and scale the boxes, or use the annotated copy'
                   % (width, height, os.path.basename(img_path), img_w, img_h))
        report.add('frame_mismatch', anno_path, why)
        return False
    if orientation not in (0, 1):
        report.add('exif_orientation', img_path, 'EXIF orientation %d; boxes read in the stored '
                   '%dx%d frame, which MXNet decodes' % (orientation, img_w, img_h))
    return True


def _report_unused(report, element, known_key, anno_path):
    """Count child elements of ``element`` that the loader does not read (recursively for the
    ones it knows), as ``unused_field`` notes naming the element path."""
    known = _VOC_KNOWN.get(known_key)
    if known is None:
        return
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tag not in known:
            path = '%s/%s' % (known_key, child.tag)
            report.unused_fields[path] += 1
            report.add('unused_field', anno_path, '<%s> is not read' % path)
        elif child.tag in _VOC_KNOWN and child.tag != known_key:
            _report_unused(report, child, child.tag, anno_path)


def _split_hint(split_file, name, flag=None):
    """For a missing split file beside others (an own dataset split as train/val, as LabelImg
    users and CVAT's export do): the files there and the flag that names one, instead of how
    to download Pascal VOC."""
    folder = os.path.dirname(split_file)
    try:
        names = {f[:-len('.txt')] for f in os.listdir(folder) if f.endswith('.txt')}
    except OSError:
        return ''
    # not VOC's per-class lists <class>_<split>.txt, whose <split>.txt sits beside them
    others = sorted(n for n in names if not ('_' in n and n.rsplit('_', 1)[1] in names))
    if not others:
        return ''
    return ('%s holds %s: pass %s NAME with one of them (%s)'
            % (folder, ', '.join(o + '.txt' for o in others), flag or 'the split name',
               ', '.join(others)))


def _json_hint(anno, flag=None):
    """For a missing ``instances_<split>.json`` beside other jsons: those, and the flag."""
    folder = os.path.dirname(anno)
    try:
        jsons = sorted(f for f in os.listdir(folder) if f.endswith('.json'))
    except OSError:
        return ''
    named = [f[len('instances_'):-len('.json')] for f in jsons if f.startswith('instances_')]
    if named:
        return ('%s holds %s: pass %s NAME with one of them (%s; the COCO layout reads '
                'annotations/instances_NAME.json)' % (folder, ', '.join(jsons),
                                                      flag or 'the split name',
                                                      ', '.join(named)))
    if jsons:
        return ('%s holds %s: the COCO layout reads annotations/instances_NAME.json; rename '
                'yours to instances_NAME.json and pass %s NAME'
                % (folder, ', '.join(jsons), flag or 'the split name'))
    return ''


def _other_files_hint(img_path):
    """For a missing ``<id>.jpg``: what other files of that id sit in the folder."""
    folder, base = os.path.split(img_path)
    stem = os.path.splitext(base)[0]
    try:
        others = sorted(f for f in os.listdir(folder) if os.path.splitext(f)[0] == stem)
    except OSError:
        return ''
    if others:
        return ' (found %s, not a JPEG/PNG extension: %s)' % (', '.join(others[:3]),
                                                              ', '.join(IMAGE_EXTENSIONS))
    return ' (nor %s)' % ', '.join(stem + e for e in IMAGE_EXTENSIONS[1:3])


def _no_usable(report, classes, hint):
    """The one-line message of a dataset with no usable image."""
    found = sorted(report.unknown_classes)
    if found and not report.kept_objects:
        names = [n for n in found if not n.startswith('category_id ')]
        if names:
            return ('%s: no object of the classes %s; the annotations name %s: pass '
                    '--classes %s (or a file with one name per line, in the label order you '
                    'want)' % (report.name, _short(classes), ', '.join(names),
                               ','.join(names)))
    reasons = ', '.join('%d %s' % (report.counts[r], r) for r in sorted(report.counts)
                        if report.counts[r])
    first = ''
    for r in sorted(report.examples):
        if report.examples[r]:
            first = '; e.g. %s' % report.examples[r][0]
            break
    return ('%s: no usable images (%s)%s' % (report.name, reasons or 'the split is empty',
                                             first))


def _short(names, limit=6):
    names = list(names)
    return ', '.join(names[:limit]) + (', ...' if len(names) > limit else '')


class SyntheticVOCDetection(CheckedVOCDetection):
    """The generated dataset (:mod:`gankd_gluon.data.synthetic`) read as VOC.

    ``root`` is ``<generator root>/VOCdevkit``; splits ``((2007, 'trainval'),)`` or
    ``((2007, 'test'),)``.
    """
    CLASSES = SYNTHETIC_CLASSES
    PREPARE_HINT = _GENERATED_HINT

    def __init__(self, root=os.path.join(DEFAULT_ROOTS['synthetic'], 'VOCdevkit'),
                 splits=((2007, 'trainval'),), **kwargs):
        super(SyntheticVOCDetection, self).__init__(root=root, splits=splits, **kwargs)


class CheckedCOCODetection(_SafeReadMixin, COCODetection):
    """GluonCV's ``COCODetection`` with the input checks of this module.

    Differences from ``COCODetection``: existence checks with :class:`DatasetNotFoundError`;
    a clear message when the json categories differ from ``CLASSES``; ``coco_url`` paths with
    ``..`` stop with :class:`UnsafeInputError`; a missing, empty or truncated image file skips
    the image instead of stopping the whole load (GluonCV raises IOError); objects of unknown
    category ids and malformed boxes are dropped and counted (GluonCV raises KeyError / drops
    silently). Valid boxes are converted exactly as GluonCV does (``x2 = x + w - 1``, clipped to
    the image).

    Parameters
    ----------
    root : str
        Folder holding ``annotations/<split>.json`` and the image folders.
    splits : str or sequence of str
        Json names without ``.json``, e.g. ``'instances_val2017'``.
    transform : callable or None
    min_object_area : float
    skip_empty : bool
        Skip images without a valid object (training). If False they are kept with the label
        ``[[-1, -1, -1, -1, -1]]`` (GluonCV's behaviour with ``skip_empty=False``).
    use_crowd : bool
    decode_fallback : {'next', 'blank'} or None
        As in :class:`CheckedVOCDetection`.
    classes : sequence of str or None
        As in :class:`CheckedVOCDetection`; must be the json's category names if given.
    split_flag : str or None
        The command-line flag that names the split, for the message of a missing json beside
        others.

    Items are ``(img, label)``: img NDArray (H, W, 3) uint8, label np.ndarray (N, 5) float64
    ``[xmin, ymin, xmax, ymax, class_id]`` (COCO has no ``difficult`` flag).
    """
    PREPARE_HINT = _COCO_HINT

    def __init__(self, root=DEFAULT_ROOTS['coco'], splits=('instances_val2017',), transform=None,
                 min_object_area=0, skip_empty=True, use_crowd=True, decode_fallback=None,
                 classes=None, split_flag=None):
        if isinstance(splits, str):
            splits = [splits]
        self.report = InputReport('%s(%s)' % (type(self).__name__, ','.join(splits)))
        self._own_classes = tuple(classes) if classes is not None else None
        self._json_classes = None
        self._decode_fallback = _fallback(decode_fallback, skip_empty)
        self._im_sizes = []
        expanded = os.path.expanduser(root)
        if not os.path.isdir(expanded):
            raise _not_found('dataset root', expanded, self.PREPARE_HINT)
        for split in splits:
            anno = os.path.join(expanded, self.annotation_dir, split) + '.json'
            if not os.path.isfile(anno):
                raise _not_found('annotation file', anno,
                                 _json_hint(anno, split_flag) or self.PREPARE_HINT)
        super(CheckedCOCODetection, self).__init__(
            root=root, splits=splits, transform=transform, min_object_area=min_object_area,
            skip_empty=skip_empty, use_crowd=use_crowd)
        self._labels = [np.array(lb, dtype=np.float64).reshape((-1, 5)) for lb in self._labels]
        self.index_map = dict(zip(self.classes, range(self.num_class)))
        self.report.kept_images = len(self._items)
        self.report.log_summary()
        if not self._items:
            raise DataError(_no_usable(self.report, self.classes, self.PREPARE_HINT))

    @property
    def classes(self):
        """Class names in label order: the json's category names in category-id order (once
        loaded), else ``classes=``, else ``CLASSES``."""
        loaded = getattr(self, '_json_classes', None)
        if loaded is not None:
            return loaded
        own = getattr(self, '_own_classes', None)
        return own if own is not None else tuple(type(self).CLASSES)

    def _parse_image_path(self, entry):
        """``<root>/<dir>/<file>`` from ``coco_url`` as GluonCV; without a ``coco_url`` (as
        CVAT, Label Studio and most converters write), ``file_name`` is looked up under
        ``<root>/<split without 'instances_'>/``, ``<root>/images/`` and ``<root>/``."""
        url = entry.get('coco_url')
        if isinstance(url, str) and len([p for p in url.split('/')[-2:] if p]) == 2:
            return super(CheckedCOCODetection, self)._parse_image_path(entry)
        name = entry.get('file_name')
        if not isinstance(name, str) or not name:
            raise KeyError('file_name')
        candidates = [os.path.join(self._root, split.replace('instances_', '', 1), name)
                      for split in self._splits]
        candidates += [os.path.join(self._root, 'images', name), os.path.join(self._root, name)]
        for path in candidates:
            if os.path.isfile(path):
                return path
        return candidates[0]

    def _image_path_of(self, idx):
        return self._items[idx]

    def _label_of(self, idx):
        return self._labels[idx]

    def _size_of(self, idx):
        return self._im_sizes[idx]

    def _load_jsons(self):
        """GluonCV's loader with the checks above (the same steps; bad entries skipped, not raised)."""
        try_import_pycocotools()
        from pycocotools.coco import COCO
        items, labels, im_aspect_ratios = [], [], []
        for split in self._splits:
            anno = os.path.join(self._root, self.annotation_dir, split) + '.json'
            try:
                with open(anno, 'rb') as f:
                    raw = f.read()
                dataset = json.loads(raw.decode('utf-8-sig'))
            except UnicodeDecodeError as err:
                line = raw.count(b'\n', 0, err.start) + 1
                raise DataError('%s line %d: not UTF-8 text (byte 0x%02x); save the json as '
                                'UTF-8' % (anno, line, raw[err.start])) from None
            except ValueError as err:
                raise DataError('%s: not json (%s)' % (anno, err)) from None
            _coco = COCO()
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    _coco.dataset = _normalise_coco(dataset, anno, self.report)
                    _coco.createIndex()
                except (ValueError, KeyError, TypeError, AttributeError) as err:
                    raise DataError('%s: not a COCO instances json (%s: %s)'
                                    % (anno, type(err).__name__, err)) from None
            self._coco.append(_coco)
            cat_ids = sorted(_coco.getCatIds())
            classes = tuple(str(c['name']) for c in _coco.loadCats(cat_ids))
            if not classes:
                raise DataError('%s: no categories' % anno)
            if self._own_classes is not None and \
                    [c.lower() for c in classes] != [c.lower() for c in self._own_classes]:
                raise DataError('%s: category names %s (in category-id order) differ from '
                                '--classes %s; leave --classes out (a COCO json names its '
                                'classes) or give them in category-id order'
                                % (anno, ','.join(classes), ','.join(self._own_classes)))
            if self._json_classes is not None and classes != self._json_classes:
                raise DataError('%s: category names %s differ from the first split\'s %s'
                                % (anno, ','.join(classes), ','.join(self._json_classes)))
            self._json_classes = classes
            json_id_to_contiguous = {v: k for k, v in enumerate(cat_ids)}
            if self.json_id_to_contiguous is None:
                self.json_id_to_contiguous = json_id_to_contiguous
                self.contiguous_id_to_json = {v: k for k, v in json_id_to_contiguous.items()}
            elif self.json_id_to_contiguous != json_id_to_contiguous:
                raise DataError('%s: category ids differ from the first split\'s' % anno)
            self._current_anno = anno
            for entry in _coco.loadImgs(sorted(_coco.getImgIds())):
                abs_path = self._checked_image_path(entry, anno)
                if abs_path is None:
                    continue
                problem = check_image_file(abs_path)
                if problem:
                    self.report.add('unreadable_image', abs_path, problem)
                    self.report.skipped_ids.add(entry['id'])
                    continue
                if not _frame_matches(self.report, '%s image id %s' % (anno, entry['id']),
                                      abs_path, entry['width'], entry['height']):
                    self.report.skipped_ids.add(entry['id'])
                    continue
                label = self._check_load_bbox(_coco, entry)
                if not label:
                    self.report.add('no_objects', abs_path, 'image id %s in %s' % (entry['id'],
                                                                                 anno))
                    self.report.skipped_ids.add(entry['id'])
                    continue
                if label[0][4] >= 0:
                    self.report.kept_objects += len(label)
                im_aspect_ratios.append(float(entry['width']) / entry['height'])
                self._im_sizes.append((entry['width'], entry['height']))
                items.append(abs_path)
                labels.append(label)
        return items, labels, im_aspect_ratios

    def _checked_image_path(self, entry, anno):
        """``_parse_image_path`` after checking the entry; None (and counted) if unusable."""
        url = entry.get('coco_url')
        parts = url.split('/')[-2:] if isinstance(url, str) else []
        name = entry.get('file_name')
        if len(parts) == 2 and all(parts):
            check_relative_id('/'.join(parts), '%s image id %s coco_url' % (anno,
                                                                            entry.get('id')))
            if parts[1] == '.':
                raise UnsafeInputError('%s image id %s: coco_url %r names a directory'
                                       % (anno, entry.get('id'), url))
        elif isinstance(name, str) and name:
            check_relative_id(name, '%s image id %s file_name' % (anno, entry.get('id')))
        else:
            self.report.add('bad_annotation', anno, 'image id %s needs coco_url "<dir>/<file>" '
                            'or file_name' % entry.get('id'))
            self.report.skipped_ids.add(entry.get('id'))
            return None
        path = self._parse_image_path(entry)
        if not _number_like(entry.get('width')) or not _number_like(entry.get('height')):
            header = image_header(path) if os.path.isfile(path) else None
            if header is None:
                self.report.add('bad_annotation', anno, 'image id %s needs width and height'
                                % entry.get('id'))
                self.report.skipped_ids.add(entry.get('id'))
                return None
            # a missing size is read from the image (not a frame check then: one source)
            entry['width'], entry['height'] = header[0], header[1]
            self.report.unused_fields['images[].width/height (missing, read from the file)'] \
                += 1
            self.report.add('unused_field', anno, 'image id %s has no width/height; read %dx%d '
                            'from %s' % (entry.get('id'), header[0], header[1], path))
        entry['width'], entry['height'] = float(entry['width']), float(entry['height'])
        return path

    def _check_load_bbox(self, coco, entry):
        """GluonCV's box loading, counting what it drops and dropping unknown category ids."""
        ann_ids = coco.getAnnIds(imgIds=[entry['id']], iscrowd=None)
        valid_objs = []
        width, height = entry['width'], entry['height']
        where = '%s image id %s' % (getattr(self, '_current_anno', 'json'), entry['id'])
        for obj in coco.loadAnns(ann_ids):
            area, box = obj.get('area'), obj.get('bbox')
            if area is None or not isinstance(box, (list, tuple)) or len(box) != 4:
                self.report.add('bad_object', where, 'annotation id %s needs area and a 4-number '
                                'bbox' % obj.get('id'))
                continue
            if area < self._min_object_area:
                continue
            if obj.get('ignore', 0) == 1:
                continue
            if not self._use_crowd and obj.get('iscrowd', 0):
                continue
            cid = obj.get('category_id')
            if cid not in self.json_id_to_contiguous:
                self.report.unknown_classes['category_id %s' % cid] += 1
                self.report.add('unknown_class', where, 'annotation id %s has category_id %s'
                                % (obj.get('id'), cid))
                continue
            # convert from (x, y, w, h) to (xmin, ymin, xmax, ymax) and clip, as GluonCV
            xmin, ymin, xmax, ymax = bbox_clip_xyxy(bbox_xywh_to_xyxy(box), width, height)
            if area > 0 and xmax > xmin and ymax > ymin:
                valid_objs.append([xmin, ymin, xmax, ymax, self.json_id_to_contiguous[cid]])
            else:
                self.report.add('invalid_box', where, 'annotation id %s bbox %s area %s'
                                % (obj.get('id'), box, area))
        if not valid_objs and not self._skip_empty:
            # dummy invalid labels if no valid objects are found (GluonCV's convention)
            valid_objs.append([-1, -1, -1, -1, -1])
        return valid_objs


#: Annotation keys the loader reads, or knowingly leaves to pycocotools / other tools
_COCO_ANN_KNOWN = {'id', 'image_id', 'category_id', 'bbox', 'area', 'iscrowd', 'ignore',
                   'segmentation', 'keypoints', 'num_keypoints', 'attributes', 'difficult',
                   'truncated', 'occluded'}


def _number_like(value):
    """True for an int or float (not bool) that is finite and above 0."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and np.isfinite(value) and value > 0


def _as_number(value):
    """``value`` as a float if it is a number or a numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if np.isfinite(number) else None
    return None


def _normalise_coco(dataset, anno, report):
    """Bring a COCO instances json as other tools write it to what pycocotools and the loader
    read, in place, noting every change in ``report``; the same object then serves training
    (the labels) and evaluation (``COCOeval``), so both see the same ground truth.

    - ``bbox`` numbers written as strings are read as numbers;
    - a missing or non-numeric ``area`` becomes the box's ``w * h`` (``COCOeval`` needs it for
      its area ranges and raises ``KeyError: 'area'`` without it; pycocotools' own
      ``loadRes`` computes a result's area the same way);
    - a missing ``iscrowd`` is 0 (``COCOeval.evaluateImg`` reads it for every object);
    - an annotation without ``id`` gets the next free id (``createIndex`` keys on it);
    - keys the loader does not read are counted (``unused_field``).

    Raises
    ------
    ValueError
        Not a dict with lists ``images``, ``annotations`` and ``categories`` of dicts with ids.
    """
    if not isinstance(dataset, dict):
        raise ValueError('the top level is not an object')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(dataset.get(key), list) or \
                not all(isinstance(e, dict) for e in dataset[key]):
            raise ValueError('%r must be a list of objects' % key)
    for key in ('images', 'categories'):
        for k, entry in enumerate(dataset[key]):
            if 'id' not in entry:
                raise ValueError('%s[%d] has no id' % (key, k))
    for k, cat in enumerate(dataset['categories']):
        if not isinstance(cat.get('name'), str) or not cat['name'].strip():
            raise ValueError('categories[%d] (id %s) has no name' % (k, cat.get('id')))
    used = {a['id'] for a in dataset['annotations'] if 'id' in a}
    next_id = max([i for i in used if isinstance(i, int)] + [0]) + 1
    for k, ann in enumerate(dataset['annotations']):
        where = '%s annotations[%d]' % (anno, k)
        if 'id' not in ann:
            ann['id'] = next_id
            next_id += 1
        box = ann.get('bbox')
        if isinstance(box, (list, tuple)) and len(box) == 4:
            numbers = [_as_number(v) for v in box]
            if all(v is not None for v in numbers):
                ann['bbox'] = numbers
        if _as_number(ann.get('area')) is None:
            box = ann.get('bbox')
            if isinstance(box, list) and len(box) == 4 and all(
                    isinstance(v, float) for v in box):
                ann['area'] = max(box[2], 0.0) * max(box[3], 0.0)
                report.add('area_computed', where, 'id %s: area = %g x %g'
                           % (ann['id'], box[2], box[3]))
        else:
            ann['area'] = _as_number(ann['area'])
        if 'iscrowd' not in ann:
            ann['iscrowd'] = 0
            report.add('iscrowd_defaulted', where, 'id %s' % ann['id'])
        for key in sorted(set(ann) - _COCO_ANN_KNOWN):
            report.unused_fields['annotations[].%s' % key] += 1
            report.add('unused_field', where, '"%s" is not read' % key)
    return dataset


class SyntheticCOCODetection(CheckedCOCODetection):
    """The generated dataset read as COCO (``root`` = ``<generator root>/coco``).

    Splits ``'instances_trainval'`` / ``'instances_test'``. ``CLASSES`` is a list because
    GluonCV compares it with the json's category names as a list.
    """
    CLASSES = list(SYNTHETIC_CLASSES)
    PREPARE_HINT = _GENERATED_HINT

    def __init__(self, root=os.path.join(DEFAULT_ROOTS['synthetic'], 'coco'),
                 splits=('instances_trainval',), **kwargs):
        super(SyntheticCOCODetection, self).__init__(root=root, splits=splits, **kwargs)


# ------------------------------------------------------------------------------------------------
# by name
# ------------------------------------------------------------------------------------------------
def _check_name(name):
    if name not in DATASET_NAMES:
        raise ValueError('unknown dataset %r; choose one of %s' % (name, ', '.join(DATASET_NAMES)))


def default_root(name):
    """Where ``get_dataset(name)`` looks when no root is given (``~`` expanded)."""
    _check_name(name)
    return os.path.expanduser(DEFAULT_ROOTS[name])


def _voc_root(root, devkit_first=False):
    """Accept both GluonCV's layout (root/VOC2007) and the devkit tar's (root/VOCdevkit/VOC2007).

    When neither exists, the generator's layout (``devkit_first``) or GluonCV's is returned, so
    the error names the folder that the preparation step would create.
    """
    plain, devkit = root, os.path.join(root, 'VOCdevkit')
    if os.path.isdir(os.path.join(plain, 'VOC2007')):
        return plain
    if os.path.isdir(os.path.join(devkit, 'VOC2007')):
        return devkit
    return devkit if devkit_first else plain


def _coco_root(root):
    """Accept the generator's root (root/coco/annotations) as well as a COCO root itself."""
    if os.path.isdir(os.path.join(root, 'annotations')):
        return root
    return os.path.join(root, 'coco')


def get_dataset(name, root=None, split='train', skip_empty=None, train_years=None,
                classes=None, split_name=None):
    """A detection dataset by name.

    Parameters
    ----------
    name : {'voc', 'coco', 'synthetic', 'synthetic_coco'}
        ``voc``: VOC2007+2012 trainval for ``train``, VOC2007 test for ``test`` (the paper).
        ``coco``: ``instances_train2017`` / ``instances_val2017`` (paper Table 2).
        ``synthetic``: the generated VOC2007 ``trainval`` / ``test``
        (``scripts/make_synthetic_voc.py``); ``synthetic_coco``: the same data read through
        ``COCODetection``.
    root : str or None
        Dataset root; default :data:`DEFAULT_ROOTS` (GluonCV's ``~/.mxnet/datasets/{voc,coco}``).
        For ``synthetic*`` give the generator's ``--root``.
    split : {'train', 'test'}
        The role: training, or evaluation (GluonCV's scripts call it ``val``).
    skip_empty : bool or None
        Skip images without objects; default True for ``train``, False for ``test``.
    train_years : sequence of int or None
        VOC kinds, ``train`` split only: the years whose ``trainval`` is read. Default: 2007
        and 2012 for ``voc`` (the SSD tables), 2007 for ``synthetic``. ``(2007,)`` is the
        VOC2007-trainval-only training of the paper's Faster R-CNN Table 3. A dataset with
        VOC2007 only: ``(2007,)``.
    classes : sequence of str or None
        Own class names in label order (``--classes``). VOC kinds: objects of other names are
        dropped and counted; default VOC's 20 names (``voc``) or the generated 5
        (``synthetic``); if no object of the names is found, :class:`DataError` lists the
        names the annotations use. COCO kinds: the json's categories in category-id order are
        the classes whatever they are; ``classes``, if given, must be the same names.
    split_name : str or None
        The files the split is read from (``--train-split`` / ``--val-split``): VOC kinds
        ``VOC<year>/ImageSets/Main/<split_name>.txt`` (evaluation: of VOC2007), COCO kinds
        ``annotations/instances_<split_name>.json``. Default :data:`DEFAULT_SPLITS`.

    Returns
    -------
    CheckedVOCDetection or CheckedCOCODetection
        Items ``(img, label)``: img NDArray (H, W, 3) uint8, label np.ndarray float64
        (N, 6) ``[x1, y1, x2, y2, cls, difficult]`` for VOC kinds, (N, 5) for COCO kinds.
        ``dataset.summary()`` tells what was skipped.

    Raises
    ------
    DatasetNotFoundError
        Root, split file or json missing; the message names the path and how to prepare it,
        or the split files that are there and the flag that picks one.
    UnsafeInputError
        An id leaves the dataset folder, or an XML file declares entities.
    DataError
        No usable image (with the class names found when none matched), a split file that is
        not text, a json that is not COCO, categories that differ from ``classes``.
    ValueError
        An unknown ``name`` or ``split``, or a ``split_name`` that is not a file name.
    """
    _check_name(name)
    if split not in ('train', 'test'):
        raise ValueError("split must be 'train' or 'test', got %r" % (split,))
    train = split == 'train'
    names = split_names(name, split_name if train else None, None if train else split_name)
    split_name, flag = names[0 if train else 1], SPLIT_FLAGS[split]
    skip_empty = train if skip_empty is None else skip_empty
    root = os.path.expanduser(root) if root else default_root(name)
    if train_years is not None and name not in ('voc', 'synthetic'):
        raise ValueError('train_years applies to VOC datasets, not %r' % (name,))
    classes = tuple(classes) if classes else None
    if name in ('voc', 'synthetic'):
        years = ((2007, 2012) if name == 'voc' else (2007,)) if train_years is None \
            else train_years
        splits = tuple((int(y), split_name) for y in years) if train else ((2007, split_name),)
        if name == 'voc':
            return CheckedVOCDetection(root=_voc_root(root), splits=splits,
                                       skip_empty=skip_empty, classes=classes, split_flag=flag)
        return SyntheticVOCDetection(root=_voc_root(root, devkit_first=True), splits=splits,
                                     skip_empty=skip_empty, classes=classes, split_flag=flag)
    kind = CheckedCOCODetection if name == 'coco' else SyntheticCOCODetection
    return kind(root=root if name == 'coco' else _coco_root(root),
                splits='instances_' + split_name, skip_empty=skip_empty, classes=classes,
                split_flag=flag)


def split_names(name, train_split=None, val_split=None):
    """The ``(train, evaluation)`` split names of a run: the given ones, else the kind's
    :data:`DEFAULT_SPLITS`.

    Raises
    ------
    ValueError
        An unknown ``name``, or a split name that is not a plain file name
        (:func:`split_name_arg`).
    """
    _check_name(name)
    default_train, default_val = DEFAULT_SPLITS[name]
    for flag, value in (('--train-split', train_split), ('--val-split', val_split)):
        problem = value is not None and _split_name_problem(value)
        if problem:
            raise ValueError('%s %r: %s' % (flag, value, problem))
    return (default_train if train_split is None else train_split,
            default_val if val_split is None else val_split)


def _split_name_problem(text):
    if not text.strip():
        return 'empty (give the split file\'s name, e.g. train for train.txt)'
    if text != text.strip():
        return 'has leading or trailing spaces'
    if '/' in text or '\\' in text or os.sep in text or text in ('.', '..'):
        return ('a split name, not a path (the VOC layout reads ImageSets/Main/NAME.txt, the '
                'COCO layout annotations/instances_NAME.json under --dataset-root)')
    for ext in ('.txt', '.json'):
        if text.endswith(ext):
            return 'give the name without %s (%s)' % (ext, text[:-len(ext)])
    return None


def split_name_arg(text):
    """argparse ``type`` of ``--train-split`` / ``--val-split``: a plain file name without
    extension (no path separator, not empty, no ``.txt``/``.json``)."""
    import argparse
    problem = _split_name_problem(str(text))
    if problem:
        raise argparse.ArgumentTypeError('%r: %s' % (text, problem))
    return str(text)


def resolve_split_args(args):
    """Set ``args.train_split`` / ``args.val_split`` left at None to the ``--dataset``'s
    defaults (:data:`DEFAULT_SPLITS`), so the log's Namespace line and the checkpoint's
    ``args`` record the files read, and a resume compares the names, not whether a flag was
    given. Arguments without those fields are left alone."""
    if not hasattr(args, 'val_split'):
        return args
    train, val = split_names(args.dataset, getattr(args, 'train_split', None), args.val_split)
    if hasattr(args, 'train_split'):
        args.train_split = train
    args.val_split = val
    return args


def get_splits(name, root=None, classes=None, train_years=None, train_split=None,
               val_split=None):
    """The ``train`` and ``test`` splits of a dataset, which must name the same classes.

    Parameters
    ----------
    name, root, classes : as :func:`get_dataset`
    train_years : sequence of int or None
        As :func:`get_dataset`; ignored for COCO kinds.
    train_split, val_split : str or None
        The ``split_name`` of each (``--train-split`` / ``--val-split``); default
        :data:`DEFAULT_SPLITS`.

    Returns
    -------
    (train, test) : datasets as :func:`get_dataset`; ``train.classes`` is the run's class list.

    Raises
    ------
    DataError
        As :func:`get_dataset`, or the two splits' classes differ (COCO jsons).
    """
    years = train_years if name in ('voc', 'synthetic') else None
    train = get_dataset(name, root, 'train', train_years=years, classes=classes,
                        split_name=train_split)
    test = get_dataset(name, root, 'test', classes=classes, split_name=val_split)
    if tuple(test.classes) != tuple(train.classes):
        raise DataError('%s: the test split names the classes %s, the train split %s'
                        % (test.report.name, ','.join(test.classes), ','.join(train.classes)))
    return train, test


def summary_lines(*datasets):
    """What each dataset skipped, as lines for a training log: per split, the
    :meth:`InputReport.summary` head and one line per reason with its count."""
    lines = []
    for ds in datasets:
        lines.extend('data: ' + line.strip() for line in ds.summary().splitlines())
    return lines


def dataset_classes(name, classes=None):
    """Class names of a dataset, in label-index order, as a tuple of str: ``classes`` (the
    ``--classes`` value) if given, else the kind's default (VOC's 20, COCO's 80, the generated
    5). For a COCO json with its own categories, the loaded dataset's ``classes`` is the
    answer (:func:`get_dataset`)."""
    _check_name(name)
    if classes:
        return tuple(classes)
    if name == 'voc':
        return tuple(VOCDetection.CLASSES)
    if name == 'coco':
        return tuple(COCODetection.CLASSES)
    return tuple(SYNTHETIC_CLASSES)


def dataset_metric_kind(name):
    """``'voc'`` (VOC07 11-point AP at IoU 0.5) or ``'coco'`` (AP@[.5:.95] via pycocotools)."""
    _check_name(name)
    return 'coco' if name in ('coco', 'synthetic_coco') else 'voc'


def add_dataset_args(parser, default='voc', train=True):
    """Add ``--dataset``, ``--dataset-root``, ``--classes``, ``--val-split`` and (``train``)
    ``--train-split`` to an argparse parser (same flags everywhere).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    default : str
        Default ``--dataset``; ``voc`` as in the paper.
    train : bool
        The script trains (adds ``--train-split``); evaluation scripts read one split.

    Returns
    -------
    argparse._ArgumentGroup
    """
    group = parser.add_argument_group('dataset')
    group.add_argument('--dataset', type=str, default=default, choices=DATASET_NAMES,
                       help='voc: VOC07+12 trainval / VOC07 test (paper); coco: train2017 / '
                            'val2017; synthetic: the generated VOC-format set '
                            '(scripts/make_synthetic_voc.py); synthetic_coco: the same read as '
                            'COCO json')
    group.add_argument('--dataset-root', type=str, default=None,
                       help='dataset folder; default: ' + ', '.join(
                           '%s %s' % (k, v) for k, v in DEFAULT_ROOTS.items()
                           if k != 'synthetic_coco'))
    group.add_argument('--classes', type=classes_arg, default=None, metavar='A,B,C|FILE',
                       help='your own class names, in label order: comma-separated, or a file '
                            'with one name per line (README "Your own dataset"). VOC layout: '
                            'default VOC\'s 20 names (voc) or the generated 5 (synthetic); '
                            'COCO layout: the json\'s categories in category-id order, so '
                            'leave it out or give the same names')
    defaults = '; '.join('%s %s' % (k, v[0 if train else 1]) for k, v in DEFAULT_SPLITS.items())
    if train:
        group.add_argument('--train-split', type=split_name_arg, default=None, metavar='NAME',
                           help='the training split\'s files: VOC layout '
                                'VOC<year>/ImageSets/Main/NAME.txt (each --train-years), COCO '
                                'layout annotations/instances_NAME.json; e.g. train for a '
                                'train.txt/val.txt split; default: ' + defaults)
        defaults = '; '.join('%s %s' % (k, v[1]) for k, v in DEFAULT_SPLITS.items())
    group.add_argument('--val-split', type=split_name_arg, default=None, metavar='NAME',
                       help='the evaluation split\'s files: VOC layout '
                            'VOC2007/ImageSets/Main/NAME.txt, COCO layout '
                            'annotations/instances_NAME.json; default: ' + defaults)
    return group


def add_train_years_arg(parser, default, help_text):
    """``--train-years`` (VOC layout: the ``VOC<year>`` folders whose ``trainval`` is read
    for training; ``2007`` for a dataset with VOC2007 only)."""
    parser.add_argument('--train-years', type=train_years_arg, default=default,
                        help=help_text)


def train_years_arg(text):
    """argparse ``type`` of ``--train-years``: comma-separated years, each once."""
    import argparse
    parts = [y.strip() for y in str(text).split(',') if y.strip()]
    if not parts:
        raise argparse.ArgumentTypeError('needs at least one year (e.g. 2007 or 2007,2012)')
    try:
        years = tuple(int(y) for y in parts)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a comma-separated list of years (e.g. '
                                         '2007,2012)' % text) from None
    if len(set(years)) != len(years):
        raise argparse.ArgumentTypeError('%r names a year twice' % text)
    return years
