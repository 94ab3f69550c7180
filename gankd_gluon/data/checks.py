"""Input checks shared by the datasets: errors, the skip report, image-file and path checks.

The policy (README, "Bad input"): problems that make a dataset unsafe or absent
**stop** with an exception naming the file; problems of data quality **skip the smallest unit
they affect and count it** (an object, else the image), with a warning naming the file and a
:meth:`InputReport.summary` line at the end of loading.
"""
import collections
import logging
import os
import re

__all__ = ['DatasetNotFoundError', 'UnsafeInputError', 'DataError', 'InputReport',
           'check_image_file', 'check_relative_id', 'image_header']

LOG = logging.getLogger(__name__)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root, split file or annotation file is missing; the message says how to get it."""


class UnsafeInputError(ValueError):
    """The dataset asks to read outside its root, or an XML file declares entities.

    Both are stops, not skips: a split file naming ``../`` paths or an annotation with entity
    declarations is corrupt or hostile, and training on what is left would hide that.
    """


class DataError(ValueError):
    """The data cannot give a run: no usable image, a split file that is not text, class names
    that do not match the annotations, a json that is not COCO. The message is one line naming
    the file (and line); scripts exit 2 with it before writing anything."""


# Reasons an image is skipped, and reasons an object is dropped; the summary prints them in
# this order with these words.
IMAGE_REASONS = collections.OrderedDict([
    ('unreadable_image', 'unreadable, truncated or empty image file'),
    ('bad_annotation', 'annotation file unreadable or not well-formed XML/JSON entry'),
    ('missing_size', 'annotation without a valid <size>'),
    ('frame_mismatch', 'annotated size differs from the image file\'s pixels'),
    ('repeated_id', 'id repeated in the split file (read once)'),
    ('no_objects', 'no (valid) objects'),
    ('substituted', 'image failed to decode at load time and was replaced'),
])
OBJECT_REASONS = collections.OrderedDict([
    ('bad_object', 'object without a class name or a numeric box (VOC <name>, <bndbox>; '
                   'COCO bbox)'),
    ('invalid_box', 'box outside the image, of zero area, or with xmin > xmax / ymin > ymax'),
    ('unknown_class', "object of a class not in the run's classes (--classes, else the "
                      "dataset's default names)"),
])
NOTE_REASONS = collections.OrderedDict([
    ('difficult_defaulted', 'objects with missing or empty <difficult>, read as 0'),
    ('box_clipped', 'boxes partly outside the image, clipped to it (training split)'),
    ('box_outside', 'boxes partly outside the image, scored as written (as the VOC devkit)'),
    ('area_computed', 'COCO annotations without a numeric area, area = bbox w x h'),
    ('iscrowd_defaulted', 'COCO annotations without iscrowd, read as 0'),
    ('size_from_image', 'annotations without a valid <size>, size read from the image file'),
    ('exif_orientation', 'images with an EXIF rotation; boxes taken in the stored (decoded) '
                         'frame'),
    ('unused_field', 'annotation fields the loader does not read'),
])

#: Notes counted per image, not per object (the summary's unit)
_IMAGE_NOTES = ('size_from_image', 'exif_orientation')

_MAX_WARNINGS_PER_REASON = 5


class InputReport(object):
    """Counts what a dataset skipped while loading, with a few example files per reason.

    Each skip logs a warning naming the file (the first few per reason; the rest go to the debug
    log so a broken dataset does not flood the console) and :meth:`summary` gives the totals.

    Parameters
    ----------
    name : str
        Dataset description used in the summary, e.g. ``'SyntheticVOCDetection(2007trainval)'``.
    """

    def __init__(self, name):
        self.name = name
        self.kept_images = 0
        self.kept_objects = 0
        self.counts = collections.Counter()
        self.examples = collections.defaultdict(list)
        self.unknown_classes = collections.Counter()
        self.unused_fields = collections.Counter()
        self.skipped_ids = set()

    def add(self, reason, path, detail=''):
        """Record one skipped image / dropped object / note for ``reason`` at ``path``."""
        if reason not in IMAGE_REASONS and reason not in OBJECT_REASONS \
                and reason not in NOTE_REASONS:
            raise KeyError('unknown reason %r' % reason)
        self.counts[reason] += 1
        message = '%s: %s%s' % (path, _describe(reason), (' (%s)' % detail) if detail else '')
        if len(self.examples[reason]) < 3:
            self.examples[reason].append('%s (%s)' % (path, detail) if detail else path)
        level = logging.WARNING if self.counts[reason] <= _MAX_WARNINGS_PER_REASON \
            else logging.DEBUG
        if reason in NOTE_REASONS:
            level = logging.DEBUG if self.counts[reason] > 1 else logging.INFO
            if reason in ('box_outside', 'exif_orientation', 'unused_field') \
                    and self.counts[reason] == 1:
                level = logging.WARNING
        LOG.log(level, '%s: %s', self.name, message)

    @property
    def skipped_images(self):
        """Number of images left out of the dataset."""
        return sum(self.counts[r] for r in IMAGE_REASONS if r != 'substituted')

    @property
    def dropped_objects(self):
        """Number of objects left out of the labels."""
        return sum(self.counts[r] for r in OBJECT_REASONS)

    def summary(self):
        """One line per non-zero count, e.g. for the training log.

        Returns
        -------
        str
            ``'<name>: kept 298 images (1041 objects); skipped or changed:'`` then one line per
            reason, e.g. ``'  skipped 2 images: unreadable, truncated or empty image file; e.g.
            <path> (zero-byte file) | <path> (truncated JPEG ...)'``, or ``'...; nothing
            skipped'``.
        """
        head = '%s: kept %d images (%d objects)' % (self.name, self.kept_images,
                                                    self.kept_objects)
        lines = []
        for table in (IMAGE_REASONS, OBJECT_REASONS, NOTE_REASONS):
            for reason, words in table.items():
                n = self.counts[reason]
                if not n:
                    continue
                what = 'image' if table is IMAGE_REASONS else 'object'
                verb = 'noted' if table is NOTE_REASONS else {'substituted': 'replaced'}.get(
                    reason, 'skipped' if table is IMAGE_REASONS else 'dropped')
                if reason == 'unused_field':
                    what = 'field'
                elif reason in _IMAGE_NOTES:
                    what = 'image'
                line = '  %s %d %s%s: %s' % (verb, n, what, '' if n == 1 else 's', words)
                if reason == 'unknown_class' and self.unknown_classes:
                    line += ' [%s]' % ', '.join('%r x%d' % kv for kv in
                                                sorted(self.unknown_classes.items()))
                if reason == 'unused_field' and self.unused_fields:
                    line += ' [%s]' % ', '.join('%s x%d' % kv for kv in
                                                sorted(self.unused_fields.items()))
                line += '; e.g. ' + ' | '.join(self.examples[reason])
                lines.append(line)
        if not lines:
            return head + '; nothing skipped'
        return '\n'.join([head + '; skipped or changed:'] + lines)

    def log_summary(self):
        """Log :meth:`summary` as a warning if anything was skipped or changed."""
        if sum(self.counts.values()):
            LOG.warning('%s', self.summary())

    def __str__(self):
        return self.summary()


def _describe(reason):
    for table in (IMAGE_REASONS, OBJECT_REASONS, NOTE_REASONS):
        if reason in table:
            return table[reason]
    return reason


# Tail of the file searched for the JPEG end-of-image marker: some cameras append a few KB after
# it; inside entropy-coded data 0xFF is always followed by 0x00 or a restart marker (ITU T.81
# B.1.1.5), so 0xFFD9 near the end of a cut file does not occur by chance.
_TAIL_BYTES = 4096
_JPEG_SOI, _JPEG_EOI = b'\xff\xd8\xff', b'\xff\xd9'
_PNG_MAGIC, _PNG_IEND = b'\x89PNG\r\n\x1a\n', b'IEND'


def check_image_file(path):
    """Cheap check that ``path`` is a complete JPEG or PNG, without decoding it.

    OpenCV (and so ``mx.image.imread``) decodes a truncated JPEG *without an error*, filling
    the missing rows with grey, and fails on an empty file with an opaque C++ assertion. This
    check reads the first bytes and the last 4 KB only: about the cost of an ``os.stat``, so it
    runs for every image when a dataset is built (VOC07+12 trainval: 16551 files).

    Parameters
    ----------
    path : str

    Returns
    -------
    str or None
        None if the file looks complete, else what is wrong with it.
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return 'zero-byte file'
        with open(path, 'rb') as f:
            head = f.read(8)
            f.seek(max(0, size - _TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        return 'file not found'
    except OSError as err:
        return 'cannot read: %s' % err
    if head.startswith(_JPEG_SOI):
        if _JPEG_EOI not in tail:
            return 'truncated JPEG (no end-of-image marker)'
        return None
    if head.startswith(_PNG_MAGIC):
        if _PNG_IEND not in tail:
            return 'truncated PNG (no IEND chunk)'
        return None
    return 'not a JPEG or PNG file (starts with %r)' % head[:4]


_SEPARATORS = re.compile(r'[\\/]')


def check_relative_id(image_id, source):
    """Reject ids that would read outside the dataset folder.

    Parameters
    ----------
    image_id : str
        An image id from a split file (VOC) or a path part from a json entry (COCO).
    source : str
        Where it came from (file and line), for the message.

    Raises
    ------
    UnsafeInputError
        If the id is absolute (``/x``, ``\\x``, ``C:x``) or has a ``..`` component.
    """
    drive = os.path.splitdrive(image_id)[0]
    if os.path.isabs(image_id) or image_id.startswith(('/', '\\')) or drive \
            or re.match(r'^[A-Za-z]:', image_id):
        raise UnsafeInputError('%s: image id %r is an absolute path; ids must name files inside '
                               'the dataset folder' % (source, image_id))
    if '..' in _SEPARATORS.split(image_id):
        raise UnsafeInputError('%s: image id %r contains "..", which would read outside the '
                               'dataset folder' % (source, image_id))
    if '\x00' in image_id:
        raise UnsafeInputError('%s: image id %r contains a NUL byte' % (source, image_id))


def image_header(path):
    """Size and EXIF orientation of an image file, from its header (no decoding).

    Parameters
    ----------
    path : str
        A JPEG or PNG file (passed :func:`check_image_file`).

    Returns
    -------
    (int, int, int) or None
        ``(width, height, orientation)`` of the pixels as stored, which is what
        ``mx.image.imread`` decodes (MXNet's decoder does not apply the EXIF orientation,
        OpenCV's ``cv2.imread`` does); ``orientation`` is the EXIF tag 274 (1 = upright,
        5-8 = a quarter turn), 1 when absent. None if Pillow cannot read the header.
    """
    from PIL import Image
    try:
        with Image.open(path) as img:
            width, height = img.size
            try:
                orientation = int(img.getexif().get(0x0112, 1) or 1)
            except Exception:       # pylint: disable=broad-except  (a malformed EXIF block)
                orientation = 1
    except Exception:               # pylint: disable=broad-except
        return None
    return int(width), int(height), orientation
