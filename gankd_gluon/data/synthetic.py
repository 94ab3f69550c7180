"""A generated Pascal-VOC-format detection dataset ("synthetic shapes").

VOC and COCO cannot be downloaded on the machines this project is tested on (no internet there),
so every script also runs on this dataset. It is a real VOC tree, read by GluonCV's own
``VOCDetection``, plus the same split as COCO json, read by GluonCV's ``COCODetection``::

    <root>/VOCdevkit/VOC2007/JPEGImages/<id>.jpg
    <root>/VOCdevkit/VOC2007/Annotations/<id>.xml
    <root>/VOCdevkit/VOC2007/ImageSets/Main/{trainval,test}.txt
    <root>/coco/annotations/instances_{trainval,test}.json
    <root>/coco/JPEGImages -> ../VOCdevkit/VOC2007/JPEGImages   (relative symlink; a copy where
                                                               symlinks are not available)

What is in an image:

- five object classes (:data:`SYNTHETIC_CLASSES`) that differ in shape, hue and texture
  (solid, stripes, shading, dots, diagonal stripes);
- one to five objects per image (2.4 on average, as VOC2007's 2.5), sides from 5% to 80% of the
  shorter image side (log-uniform; 15% of them under 12%), with random aspect ratio and rotation;
- objects painted in order of decreasing size, so later (smaller) ones partially occlude earlier
  ones; a placement that would leave any object less than 25% visible is redrawn;
- objects that cross the image border (``truncated`` = 1) and objects less than half visible
  (``difficult`` = 1);
- a cluttered background: smooth low-saturation colour blobs, thin lines and small grey
  ellipses. Clutter is kept desaturated and moderate so the classes stay learnable.

Learnability, measured with an SSD mobilenet0.25 trained from scratch on 2 CPU cores (mxnet 1.9.1,
128 px, batch 16, Adam 1e-3, ``augment='flip'``) on seed 0 (300/100 images): VOC07 mAP 0.07,
0.12, 0.17 after 400, 800, 1100 iterations, still rising; triangles are learnt last. An easier
variant (flat background, 1-3 objects, no tiny or truncated objects) reached 0.30 after 800
iterations: most of the difficulty is the clutter, small objects and occlusion the set is built
to have, so CPU demos need about a thousand iterations or more, not a few hundred.

``difficulty='easy'`` (``make_synthetic_voc.py --difficulty easy``) draws that easier variant, a
regime in which a small CPU student can learn and distillation can show: the smooth background
without the lines and ellipses, one to three objects (uniform), sides 20% to 80% of the shorter
image side (log-uniform, so no tiny objects) and every object inside the image (none truncated;
occlusion stays, limited as above). The default stays ``'default'``, the set described above,
byte for byte.

Learning curves of the easy variant, measured by the study's first runs (``scripts/
study_gankd.py --name main``: seed 0, 1000 training and 500 test images, 128 px, batch 16,
``augment='flip'``, no pretrained weights, 2 CPU cores), VOC07 mAP on the 500 test images:

- teacher mobilenet1.0 on all 1000 images, Adam 1e-3: 0.281, 0.466, 0.527 after 8, 16, 24
  epochs (500, 1000, 1500 iterations), still rising;
- student mobilenet0.25 on the first 200 images, Adam 1e-3: 0.061, 0.082, 0.096 after 8, 16,
  24 epochs (100, 200, 300 iterations).

The evaluation noise of one model on the 500 test images (bootstrap over images, the teacher)
is 0.014 mAP (standard deviation).

Boxes follow the devkit: the tight box of the *visible* pixels (VOC annotation guidelines:
"the bounding box of the visible area of the object"), written as 1-based inclusive pixel
coordinates. GluonCV's ``VOCDetection`` subtracts 1 (pascal_voc/detection.py:124-127), giving
0-based inclusive corners ``[x1, y1, x2, y2]``. The COCO json stores ``[x1, y1, x2 - x1 + 1,
y2 - y1 + 1]`` (0-based, widths in pixels), which ``COCODetection`` turns back into the same
corners (``x2 = x + w - 1``, gluoncv/utils/bbox.py ``bbox_xywh_to_xyxy``).

Determinism: every image is drawn from its own ``numpy.random.RandomState`` seeded by
``(seed, split, index)``, JPEGs are encoded by OpenCV at a fixed quality, and XML/JSON are written
with a fixed layout and sorted keys, so the same seed gives byte-identical files (with the same
OpenCV/libjpeg build).
"""
import json
import os
import shutil

import cv2
import numpy as np

__all__ = ['SYNTHETIC_CLASSES', 'make_synthetic_voc', 'synthetic_voc_root', 'synthetic_coco_root',
           'JPEG_QUALITY', 'DIFFICULTIES']

#: Class names, lowercase as GluonCV's VOCDetection requires (detection.py ``_validate_class_names``).
SYNTHETIC_CLASSES = ('circle', 'square', 'triangle', 'star', 'cross')

#: Fixed JPEG quality: part of what makes the bytes reproducible.
JPEG_QUALITY = 90

# Per class: base hue (OpenCV hue units, 0-179) and texture. Hues are far apart (about 60 degrees
# or more on the colour wheel) and textures differ, so shape, colour and texture each separate the
# classes; the hue jitter (+-5 units = +-10 degrees) keeps colour from being an exact key.
_STYLE = {
    'circle': (0, 'solid'),           # red
    'square': (110, 'hstripes'),      # blue
    'triangle': (60, 'gradient'),     # green
    'star': (30, 'dots'),             # yellow
    'cross': (150, 'dstripes'),       # magenta
}
_MIN_VISIBLE = 0.25      # placements leaving an object less visible than this are redrawn
_DIFFICULT_BELOW = 0.5   # objects less visible than this are marked difficult
_SPLIT_CODES = {'trainval': 1, 'test': 2}
#: ``make_synthetic_voc(difficulty=...)`` values; 'default' is the set of the module docstring.
DIFFICULTIES = ('default', 'easy')


def synthetic_voc_root(root):
    """The folder to give GluonCV's ``VOCDetection`` as ``root`` (it holds ``VOC2007``)."""
    return os.path.join(os.path.expanduser(root), 'VOCdevkit')


def synthetic_coco_root(root):
    """The folder to give GluonCV's ``COCODetection`` as ``root`` (it holds ``annotations``)."""
    return os.path.join(os.path.expanduser(root), 'coco')


# --------------------------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------------------------
def _hsv_to_bgr(h, s, v):
    """One OpenCV-convention HSV colour (h in [0, 180), s, v in [0, 255]) -> BGR ints."""
    px = np.array([[[h % 180, s, v]]], dtype=np.uint8)
    return [int(c) for c in cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0]]


def _background(rng, width, height, clutter=True):
    """Cluttered background, (H, W, 3) uint8 BGR.

    Smooth colour blobs (low-resolution noise upsampled), desaturated towards grey so that the
    saturated objects stand out, then (``clutter``) thin lines and grey ellipses as distractors.
    """
    grid = rng.uniform(60, 200, size=(4, 4, 3)).astype(np.float32)
    grey = grid.mean(axis=2, keepdims=True)
    grid = grey + 0.25 * (grid - grey)  # keep saturation low
    img = cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if not clutter:
        return img
    for _ in range(rng.randint(1, 5)):
        kind = rng.randint(2)
        v = int(rng.randint(40, 220))
        colour = [min(255, max(0, v + int(rng.randint(-20, 21)))) for _ in range(3)]
        if kind == 0:
            p1 = (int(rng.randint(width)), int(rng.randint(height)))
            p2 = (int(rng.randint(width)), int(rng.randint(height)))
            cv2.line(img, p1, p2, colour, 1, cv2.LINE_AA)
        else:
            centre = (int(rng.randint(width)), int(rng.randint(height)))
            axes = (int(rng.randint(2, max(3, width // 16))),
                    int(rng.randint(2, max(3, height // 16))))
            cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1,
                        cv2.LINE_AA)
    return img


def _shape_mask(rng, cls, size):
    """Local mask of one object, (h, w) uint8 in {0, 1}, cropped to the object's extent.

    ``size`` is the object's nominal side in pixels; aspect ratio (0.75-1.33) and rotation are
    drawn here.
    """
    aspect = np.sqrt(rng.uniform(0.75, 1.33))
    sx, sy = size * aspect / 2.0, size / aspect / 2.0
    side = int(np.ceil(size * 1.6)) + 4
    c = side / 2.0
    mask = np.zeros((side, side), np.uint8)
    if cls == 'circle':
        cv2.ellipse(mask, (int(round(c)), int(round(c))), (max(1, int(round(sx))),
                    max(1, int(round(sy)))), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        if cls == 'square':
            pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
            angle = rng.uniform(-20, 20)
        elif cls == 'triangle':
            t = np.deg2rad([90, 210, 330])
            pts = np.stack([np.cos(t), -np.sin(t)], 1) * 1.15
            angle = rng.uniform(-40, 40)
        elif cls == 'star':
            t = np.deg2rad(90 + 36 * np.arange(10))
            r = np.where(np.arange(10) % 2 == 0, 1.2, 0.5)
            pts = np.stack([r * np.cos(t), -r * np.sin(t)], 1)
            angle = rng.uniform(-36, 36)
        elif cls == 'cross':
            a, b = 1.0, 0.33
            pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a],
                            [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b]], np.float64)
            angle = rng.uniform(-20, 20)
        else:
            raise ValueError('unknown synthetic class %r' % cls)
        th = np.deg2rad(angle)
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        pts = (pts * [sx, sy]) @ rot.T + c
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    ys, xs = np.nonzero(mask)
    return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _texture(rng, cls, h, w):
    """Colour and texture of one object, (h, w, 3) uint8 BGR."""
    hue, kind = _STYLE[cls]
    hue = hue + int(rng.randint(-5, 6))
    sat, val = int(rng.randint(170, 256)), int(rng.randint(170, 256))
    fg = np.array(_hsv_to_bgr(hue, sat, val), np.uint8)
    dark = np.array(_hsv_to_bgr(hue, sat, val // 2), np.uint8)
    # about four texture periods across the object: still visible after a 2x downscale to a
    # 128-px network input (finer stripes alias away at that size)
    period = max(3, int(round(min(h, w) / 4.0)))
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 'solid':
        pattern = np.zeros((h, w), bool)
    elif kind == 'gradient':  # bright at the top, half as bright at the bottom
        t = (yy / max(1, h - 1))[..., None]
        return np.round((1 - t) * fg + t * dark).astype(np.uint8)
    elif kind == 'hstripes':
        pattern = (yy // period) % 2 == 1
    elif kind == 'dstripes':
        pattern = ((yy + xx) // period) % 2 == 1
    else:  # dots on a grid
        cy = (yy % (2 * period)) - period
        cx = (xx % (2 * period)) - period
        pattern = cy * cy + cx * cx < (0.5 * period) ** 2
    return np.where(pattern[..., None], dark, fg)


def _paste_region(x0, y0, h, w, width, height):
    """Clip a local (h, w) patch placed at (x0, y0) to the image; return image and patch slices."""
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + w, width), min(y0 + h, height)
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    return (slice(iy0, iy1), slice(ix0, ix1)), (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))


def _render(rng, width, height, noise, difficulty='default'):
    """Draw one image and its objects.

    Parameters
    ----------
    rng : numpy.random.RandomState
    width, height : int
    noise : np.ndarray, (>= 2H, >= 2W, 3) int16
        Sensor-noise field shared by the split; each image adds a random crop of it (drawing
        fresh Gaussian noise per image was 60% of the generation time).
    difficulty : {'default', 'easy'}
        'easy': no distractors, 1-3 objects of 20-80% of the shorter side, none truncated.

    Returns
    -------
    img : np.ndarray, (H, W, 3) uint8 BGR
    objects : list of dict
        ``name``, ``box`` (0-based inclusive x1, y1, x2, y2 of the visible pixels),
        ``area`` (visible pixels), ``truncated``, ``difficult``.
    """
    easy = difficulty == 'easy'
    img = _background(rng, width, height, clutter=not easy)
    short = min(width, height)
    if easy:
        num = int(rng.randint(1, 4))
        scales = np.exp(rng.uniform(np.log(0.2), np.log(0.8), size=num))
    else:
        num = int(rng.choice([1, 2, 3, 4, 5], p=[0.25, 0.3, 0.25, 0.12, 0.08]))
        # log-uniform sides in [5%, 80%], with objects under 12% (under 16 px at a 128-px
        # network input, near the smallest SSD anchor) kept to 15% so a small CPU demo can learn
        small = rng.uniform(size=num) < 0.15
        scales = np.exp(np.where(small, rng.uniform(np.log(0.05), np.log(0.12), size=num),
                                 rng.uniform(np.log(0.12), np.log(0.8), size=num)))
    # paint large objects first so that small ones are not buried under large ones
    scales = np.sort(scales)[::-1]
    inst = np.zeros((height, width), np.int16)  # 0 = background, k = k-th placed object
    placed = []  # (name, full_area, truncated, image slices of the pasted patch)
    visible = [0]  # visible pixel count per instance id (index 0 unused)
    for scale in scales:
        name = SYNTHETIC_CLASSES[rng.randint(len(SYNTHETIC_CLASSES))]
        size = max(6.0, scale * short)
        mask = _shape_mask(rng, name, size)
        while easy and (mask.shape[0] > height or mask.shape[1] > width):
            # a wide star or cross of 80% can overhang the image: shrink it to fit, untruncated
            size *= 0.95 * min(height / float(mask.shape[0]), width / float(mask.shape[1]))
            mask = _shape_mask(rng, name, size)
        h, w = mask.shape
        full_area = int(mask.sum())
        for _ in range(10):
            # 15% of the objects may cross the border (truncation); the rest lie inside
            if not easy and rng.uniform() < 0.15:
                x0 = int(rng.randint(-w // 2, width - w // 2 + 1))
                y0 = int(rng.randint(-h // 2, height - h // 2 + 1))
            else:
                x0 = int(rng.randint(0, max(1, width - w + 1)))
                y0 = int(rng.randint(0, max(1, height - h + 1)))
            region = _paste_region(x0, y0, h, w, width, height)
            if region is None:
                continue
            (isl, psl) = region
            m = mask[psl].astype(bool)
            inside = int(m.sum())
            if inside < _MIN_VISIBLE * full_area:
                continue
            covered = np.bincount(inst[isl][m], minlength=len(visible))
            after = np.asarray(visible) - covered
            if any(after[k] < _MIN_VISIBLE * placed[k - 1][1] for k in range(1, len(visible))):
                continue
            k = len(visible)
            inst[isl][m] = k
            tex = _texture(rng, name, h, w)[psl]
            img[isl][m] = tex[m]
            visible = list(after) + [inside]
            placed.append((name, full_area, inside < full_area, isl))
            break
    objects = []
    for k, (name, full_area, truncated, isl) in enumerate(placed, start=1):
        ys, xs = np.nonzero(inst[isl] == k)
        if len(xs) == 0:
            continue
        ox, oy = isl[1].start, isl[0].start
        objects.append({
            'name': name,
            'box': (ox + int(xs.min()), oy + int(ys.min()), ox + int(xs.max()), oy + int(ys.max())),
            'area': int(len(xs)),
            'truncated': int(truncated),
            'difficult': int(len(xs) < _DIFFICULT_BELOW * full_area),
        })
    # mild sensor noise over everything, so that edges are not perfectly clean
    oy, ox = rng.randint(noise.shape[0] - height + 1), rng.randint(noise.shape[1] - width + 1)
    img = np.clip(img + noise[oy:oy + height, ox:ox + width], 0, 255).astype(np.uint8)
    return img, objects


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def _voc_xml(image_id, width, height, objects, seed):
    """Devkit-style annotation text; boxes 1-based inclusive as in VOC2007."""
    lines = ['<annotation>',
             '\t<folder>VOC2007</folder>',
             '\t<filename>%s.jpg</filename>' % image_id,
             '\t<source>',
             '\t\t<database>gankd_gluon synthetic shapes</database>',
             '\t\t<annotation>make_synthetic_voc seed=%d</annotation>' % seed,
             '\t</source>',
             '\t<size>',
             '\t\t<width>%d</width>' % width,
             '\t\t<height>%d</height>' % height,
             '\t\t<depth>3</depth>',
             '\t</size>',
             '\t<segmented>0</segmented>']
    for obj in objects:
        x1, y1, x2, y2 = obj['box']
        lines += ['\t<object>',
                  '\t\t<name>%s</name>' % obj['name'],
                  '\t\t<pose>Unspecified</pose>',
                  '\t\t<truncated>%d</truncated>' % obj['truncated'],
                  '\t\t<difficult>%d</difficult>' % obj['difficult'],
                  '\t\t<bndbox>',
                  '\t\t\t<xmin>%d</xmin>' % (x1 + 1),
                  '\t\t\t<ymin>%d</ymin>' % (y1 + 1),
                  '\t\t\t<xmax>%d</xmax>' % (x2 + 1),
                  '\t\t\t<ymax>%d</ymax>' % (y2 + 1),
                  '\t\t</bndbox>',
                  '\t</object>']
    lines.append('</annotation>')
    return '\n'.join(lines) + '\n'


def _coco_json(split, records, seed, names=SYNTHETIC_CLASSES):
    """COCO instances json for one split, as a deterministic string.

    ``coco_url`` ends in ``JPEGImages/<file>``: GluonCV's COCODetection opens
    ``<root>/<last dir of coco_url>/<last part of coco_url>`` (mscoco/detection.py
    ``_parse_image_path``), i.e. ``<root>/coco/JPEGImages/<id>.jpg``, which links to the VOC images.
    ``difficult`` and ``truncated`` are kept as extra annotation fields (COCO has no such flags;
    pycocotools ignores unknown keys) and every object has ``iscrowd`` 0, so COCODetection sees
    the same objects as VOCDetection.
    """
    images, annotations = [], []
    for image_id, width, height, objects in records:
        num_id = int(image_id)
        images.append({'id': num_id, 'file_name': image_id + '.jpg',
                       'coco_url': 'JPEGImages/%s.jpg' % image_id,
                       'width': width, 'height': height})
        for obj in objects:
            x1, y1, x2, y2 = obj['box']
            annotations.append({
                'id': len(annotations) + 1, 'image_id': num_id,
                'category_id': names.index(obj['name']) + 1,
                # widths in pixels of an inclusive box: COCODetection's x2 = x + w - 1 inverts it
                'bbox': [x1, y1, x2 - x1 + 1, y2 - y1 + 1],
                'area': obj['area'], 'iscrowd': 0,
                'difficult': obj['difficult'], 'truncated': obj['truncated']})
    data = {
        'info': {'description': 'gankd_gluon synthetic shapes, split %s, seed %d' % (split, seed),
                 'version': '1.0', 'year': 2019},
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': [{'id': i + 1, 'name': c, 'supercategory': 'shape'}
                       for i, c in enumerate(names)],
    }
    return json.dumps(data, sort_keys=True, indent=1) + '\n'


def _write(path, data):
    mode = 'wb' if isinstance(data, bytes) else 'w'
    with open(path, mode) as f:
        f.write(data)


def _link_coco_images(coco_root, jpeg_dir):
    """Make ``<coco_root>/JPEGImages`` point at the VOC images: a relative symlink, else a copy."""
    link = os.path.join(coco_root, 'JPEGImages')
    if os.path.islink(link) or os.path.isfile(link):
        os.remove(link)
    elif os.path.isdir(link):
        shutil.rmtree(link)
    try:
        os.symlink(os.path.relpath(jpeg_dir, coco_root), link, target_is_directory=True)
    except (OSError, NotImplementedError):
        # e.g. Windows without the symlink privilege
        shutil.copytree(jpeg_dir, link)


def _image_size(rng, image_size, image_size_max):
    if image_size_max is None:
        return int(image_size[0]), int(image_size[1])
    return (int(rng.randint(image_size[0], image_size_max[0] + 1)),
            int(rng.randint(image_size[1], image_size_max[1] + 1)))


def make_synthetic_voc(root, seed=0, num_train=300, num_test=100, image_size=(256, 256),
                       image_size_max=None, difficulty='default', class_names=None):
    """Write the generated dataset under ``root`` (see the module docstring for the layout).

    Parameters
    ----------
    root : str
        Output folder; created if missing. Files of an earlier run are overwritten, other files
        are left alone.
    seed : int
        Same seed, same bytes.
    num_train, num_test : int
        Images in ``trainval`` (ids ``000001`` ...) and ``test`` (ids continue after trainval).
    image_size : (int, int)
        ``(W, H)`` of every image, or the smallest size when ``image_size_max`` is given.
    image_size_max : (int, int) or None
        If given, each image's ``W`` and ``H`` are drawn uniformly from
        ``[image_size, image_size_max]`` (VOC images vary in size too).
    difficulty : {'default', 'easy'}
        'default': the set of the module docstring; 'easy': no distractors, 1-3 objects of
        20-80% of the shorter image side, none truncated (module docstring).
    class_names : sequence of 5 str or None
        Names written for the five shapes, in :data:`SYNTHETIC_CLASSES` order (e.g. a
        dataset whose classes are ``helmet, vest, glove, boot, goggles``, to try own class
        names); the pixels are the same. Default: the shapes' names.

    Returns
    -------
    dict
        ``voc_root`` and ``coco_root`` (the ``root`` arguments for GluonCV's VOCDetection and
        COCODetection), ``num_images`` and ``num_objects`` per split.
    """
    if num_train < 0 or num_test < 0:
        raise ValueError('num_train and num_test must be >= 0, got %d, %d' % (num_train, num_test))
    if min(image_size) < 32:
        raise ValueError('image_size must be at least 32x32, got %s' % (image_size,))
    if image_size_max is not None and (image_size_max[0] < image_size[0]
                                       or image_size_max[1] < image_size[1]):
        raise ValueError('image_size_max %s is smaller than image_size %s'
                         % (image_size_max, image_size))
    if difficulty not in DIFFICULTIES:
        raise ValueError('difficulty must be one of %s, got %r' % (', '.join(DIFFICULTIES),
                                                                   difficulty))
    names = tuple(class_names) if class_names is not None else SYNTHETIC_CLASSES
    if len(names) != len(SYNTHETIC_CLASSES) or len(set(names)) != len(names) \
            or not all(isinstance(n, str) and n.strip() == n and n for n in names):
        raise ValueError('class_names must be %d distinct non-empty names, got %r'
                         % (len(SYNTHETIC_CLASSES), class_names))
    rename = dict(zip(SYNTHETIC_CLASSES, names))
    root = os.path.expanduser(root)
    voc = os.path.join(synthetic_voc_root(root), 'VOC2007')
    jpeg_dir = os.path.join(voc, 'JPEGImages')
    anno_dir = os.path.join(voc, 'Annotations')
    sets_dir = os.path.join(voc, 'ImageSets', 'Main')
    coco_root = synthetic_coco_root(root)
    for d in (jpeg_dir, anno_dir, sets_dir, os.path.join(coco_root, 'annotations')):
        os.makedirs(d, exist_ok=True)

    stats = {'voc_root': synthetic_voc_root(root), 'coco_root': coco_root,
             'num_images': {}, 'num_objects': {}}
    max_w, max_h = image_size_max or image_size
    next_id = 1
    for split, count in (('trainval', num_train), ('test', num_test)):
        noise_rng = np.random.RandomState([seed, _SPLIT_CODES[split], 2 ** 31 - 1])
        noise = np.round(noise_rng.normal(0, 4, size=(2 * max_h, 2 * max_w, 3))).astype(np.int16)
        records = []
        for i in range(count):
            # one generator per image: images do not depend on how many came before
            rng = np.random.RandomState([seed, _SPLIT_CODES[split], i])
            width, height = _image_size(rng, image_size, image_size_max)
            img, objects = _render(rng, width, height, noise, difficulty)
            for obj in objects:
                obj['name'] = rename[obj['name']]
            image_id = '%06d' % next_id
            next_id += 1
            ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise RuntimeError('OpenCV could not encode image %s' % image_id)
            _write(os.path.join(jpeg_dir, image_id + '.jpg'), buf.tobytes())
            _write(os.path.join(anno_dir, image_id + '.xml'),
                   _voc_xml(image_id, width, height, objects, seed))
            records.append((image_id, width, height, objects))
        _write(os.path.join(sets_dir, split + '.txt'), ''.join(r[0] + '\n' for r in records))
        _write(os.path.join(coco_root, 'annotations', 'instances_%s.json' % split),
               _coco_json(split, records, seed, names))
        stats['num_images'][split] = len(records)
        stats['num_objects'][split] = sum(len(r[3]) for r in records)
    _link_coco_images(coco_root, jpeg_dir)
    return stats
