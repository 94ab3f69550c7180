"""The generated dataset: GluonCV and pycocotools read it, VOC and COCO agree, same seed same bytes."""
import hashlib
import os
import sys

import cv2
import numpy as np
import pytest
from gluoncv.data import COCODetection, VOCDetection

from gankd_gluon.data import synthetic
from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_voc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_TRAIN, NUM_TEST = 40, 10


class PlainVOC(VOCDetection):
    """GluonCV's own loader, only the class names set (no parser of our own)."""
    CLASSES = SYNTHETIC_CLASSES


class PlainCOCO(COCODetection):
    CLASSES = list(SYNTHETIC_CLASSES)  # GluonCV compares with a list of json category names


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic'))
    stats = make_synthetic_voc(root, seed=0, num_train=NUM_TRAIN, num_test=NUM_TEST)
    return root, stats


def _tree_digest(root):
    """{relative path: sha1 of bytes, or 'link:<target>'} for every file under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = 'link:' + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, 'rb') as f:
                    out[rel] = hashlib.sha1(f.read()).hexdigest()
    return out


def test_layout(generated):
    root, stats = generated
    voc = os.path.join(root, 'VOCdevkit', 'VOC2007')
    for split, n in (('trainval', NUM_TRAIN), ('test', NUM_TEST)):
        with open(os.path.join(voc, 'ImageSets', 'Main', split + '.txt')) as f:
            ids = f.read().split()
        assert len(ids) == n == stats['num_images'][split]
        for i in ids:
            assert os.path.isfile(os.path.join(voc, 'JPEGImages', i + '.jpg'))
            assert os.path.isfile(os.path.join(voc, 'Annotations', i + '.xml'))
        assert os.path.isfile(os.path.join(root, 'coco', 'annotations', 'instances_%s.json' % split))
    assert os.path.isfile(os.path.join(root, 'coco', 'JPEGImages', '000001.jpg'))


def test_gluoncv_vocdetection_reads_it(generated):
    root, _ = generated
    for split, n in (('trainval', NUM_TRAIN), ('test', NUM_TEST)):
        ds = PlainVOC(root=os.path.join(root, 'VOCdevkit'), splits=((2007, split),))
        assert len(ds) == n
        num_objects = 0
        for idx in range(len(ds)):
            img, label = ds[idx]
            h, w, _ = img.shape
            assert ds._im_shapes[idx] == (w, h)  # <size> equals the real image size
            assert label.shape[1] == 6 and label.shape[0] >= 1
            assert np.all(label[:, 0] >= 0) and np.all(label[:, 1] >= 0)
            assert np.all(label[:, 2] <= w - 1) and np.all(label[:, 3] <= h - 1)
            assert np.all(label[:, 2] > label[:, 0]) and np.all(label[:, 3] > label[:, 1])
            assert set(label[:, 4]) <= set(range(len(SYNTHETIC_CLASSES)))
            num_objects += label.shape[0]
        assert num_objects == generated[1]['num_objects'][split]


def test_content_meets_the_issue(generated):
    """Several objects per image, scales about 5%-80%, difficult and truncated objects, all classes."""
    root, _ = generated
    ds = PlainVOC(root=os.path.join(root, 'VOCdevkit'), splits=((2007, 'trainval'),))
    labels = [ds._label_cache[i] for i in range(len(ds))]
    counts = np.array([len(lb) for lb in labels])
    # VOC2007 trainval averages 2.5 objects per image (12608 / 5011)
    assert counts.mean() >= 2.0 and counts.max() >= 4 and np.mean(counts >= 2) >= 0.5
    allb = np.concatenate(labels)
    side = np.maximum(allb[:, 2] - allb[:, 0] + 1, allb[:, 3] - allb[:, 1] + 1) / 256.0
    assert side.min() < 0.1 and side.max() > 0.6 and side.max() <= 1.0
    assert set(allb[:, 4].astype(int)) == set(range(len(SYNTHETIC_CLASSES)))
    assert allb[:, 5].sum() >= 1  # some difficult
    truncated = 0
    for i in range(1, NUM_TRAIN + 1):
        with open(os.path.join(root, 'VOCdevkit', 'VOC2007', 'Annotations', '%06d.xml' % i)) as f:
            text = f.read()
        assert '<size>' in text and '<difficult>' in text and '<bndbox>' in text
        truncated += text.count('<truncated>1</truncated>')
    assert truncated >= 1


def test_boxes_are_tight_and_1_based_in_xml():
    """Each box edge touches a pixel of the object's colour (tight box of the visible pixels),
    and the XML holds the devkit's 1-based coordinates."""
    rng = np.random.RandomState(5)
    noise = np.zeros((512, 512, 3), np.int16)
    checked = 0
    for _ in range(6):
        img, objects = synthetic._render(rng, 200, 160, noise)
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(int)
        for obj in objects:
            hue = synthetic._STYLE[obj['name']][0]
            dist = np.abs((hsv[..., 0] - hue + 90) % 180 - 90)
            own = (dist <= 6) & (hsv[..., 1] >= 150)
            x1, y1, x2, y2 = obj['box']
            assert 0 <= x1 <= x2 < 200 and 0 <= y1 <= y2 < 160
            for line in (own[y1, x1:x2 + 1], own[y2, x1:x2 + 1], own[y1:y2 + 1, x1],
                         own[y1:y2 + 1, x2]):
                assert line.any()
            checked += 1
        xml = synthetic._voc_xml('000001', 200, 160, objects, seed=0)
        x1, y1, x2, y2 = objects[0]['box']
        assert '<xmin>%d</xmin>' % (x1 + 1) in xml and '<ymax>%d</ymax>' % (y2 + 1) in xml
        assert '<width>200</width>' in xml and '<height>160</height>' in xml
    assert checked >= 10


def test_pycocotools_and_cocodetection_match_voc(generated):
    from pycocotools.coco import COCO
    root, stats = generated
    for split in ('trainval', 'test'):
        coco = COCO(os.path.join(root, 'coco', 'annotations', 'instances_%s.json' % split))
        assert len(coco.getImgIds()) == stats['num_images'][split]
        assert len(coco.getAnnIds()) == stats['num_objects'][split]
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(SYNTHETIC_CLASSES)
        voc = PlainVOC(root=os.path.join(root, 'VOCdevkit'), splits=((2007, split),))
        cds = PlainCOCO(root=os.path.join(root, 'coco'), splits=('instances_%s' % split,))
        assert len(cds) == len(voc)
        for idx in range(len(voc)):
            vimg, vlabel = voc[idx]
            cimg, clabel = cds[idx]
            assert vimg.shape == cimg.shape
            # same 0-based corners: VOC subtracts 1 from XML, COCO adds w - 1 to x
            np.testing.assert_array_equal(np.asarray(clabel), vlabel[:, :5])


def test_same_seed_same_bytes(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    make_synthetic_voc(a, seed=7, num_train=6, num_test=3, image_size=(96, 80),
                       image_size_max=(160, 128))
    make_synthetic_voc(b, seed=7, num_train=6, num_test=3, image_size=(96, 80),
                       image_size_max=(160, 128))
    make_synthetic_voc(c, seed=8, num_train=6, num_test=3, image_size=(96, 80),
                       image_size_max=(160, 128))
    da, db, dc = _tree_digest(a), _tree_digest(b), _tree_digest(c)
    assert len(da) > 20 and da == db
    assert da.keys() == dc.keys() and da != dc


def test_image_size_range_and_size_tag(tmp_path):
    make_synthetic_voc(str(tmp_path), seed=1, num_train=8, num_test=0, image_size=(100, 90),
                       image_size_max=(180, 150))
    ds = PlainVOC(root=str(tmp_path / 'VOCdevkit'), splits=((2007, 'trainval'),))
    sizes = set()
    for idx in range(len(ds)):
        w, h = ds._im_shapes[idx]
        img = cv2.imread(ds._image_path.format(*ds._items[idx]))
        assert img.shape[:2] == (h, w)
        assert 100 <= w <= 180 and 90 <= h <= 150
        sizes.add((w, h))
    assert len(sizes) > 1


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        make_synthetic_voc(str(tmp_path), num_train=-1)
    with pytest.raises(ValueError):
        make_synthetic_voc(str(tmp_path), image_size=(16, 16))
    with pytest.raises(ValueError):
        make_synthetic_voc(str(tmp_path), image_size=(64, 64), image_size_max=(32, 128))


def test_script(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, 'scripts'))
    try:
        import make_synthetic_voc as script
    finally:
        sys.path.pop(0)
    args = script.parse_args(['--root', str(tmp_path), '--seed', '2', '--num-train', '4',
                              '--num-test', '2', '--image-size', '128', '96'])
    stats = script.main(args)
    assert stats['num_images'] == {'trainval': 4, 'test': 2}
    assert 'trainval: 4 images' in capsys.readouterr().out
    img = cv2.imread(str(tmp_path / 'VOCdevkit' / 'VOC2007' / 'JPEGImages' / '000001.jpg'))
    assert img.shape == (96, 128, 3)



def test_script_with_class_names_tells_the_flags_that_read_them(tmp_path, capsys):
    """With --class-names the data is an own dataset: the closing line gives the flags that
    read it (the synthetic kind's default names are the shapes'), and they do."""
    sys.path.insert(0, os.path.join(ROOT, 'scripts'))
    try:
        import make_synthetic_voc as script
    finally:
        sys.path.pop(0)
    root = str(tmp_path / 'mine')
    script.main(script.parse_args(['--root', root, '--num-train', '2', '--num-test', '2',
                                   '--image-size', '64', '64', '--class-names', 'a,b,c,d,e']))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith('use it with --dataset voc --dataset-root %s --train-years 2007 '
                         '--classes a,b,c,d,e' % root)
    from gankd_gluon.data.datasets import get_splits
    train, test = get_splits('voc', root, classes=tuple('abcde'), train_years=(2007,))
    assert (len(train), len(test)) == (2, 2)


# --- difficulty ----------------------------------------------------------------------------------
def _digest(root, jpeg):
    """sha256 over (relative path + sha256) of the JPEGs (jpeg=True) or of the XML/JSON/txt."""
    parts = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or name.endswith('.jpg') != jpeg:
                continue
            with open(path, 'rb') as f:
                parts.append(os.path.relpath(path, root) + hashlib.sha256(f.read()).hexdigest())
    return hashlib.sha256(''.join(sorted(parts)).encode()).hexdigest(), len(parts)


# Made by the generator before it had a difficulty parameter (seed 3, 6 + 3 images, 96 x 80);
# the JPEG digest holds for this OpenCV/libjpeg build (OpenCV 4.10).
DEFAULT_ANNOTATIONS = ('ec416b323ef3a8c14fc6838c6a32473905d46cdbfbcc7adf486206ebd7bd695d', 13)
DEFAULT_JPEGS = ('d3ca07410e8a4cd4a8a31674ec8e38863d3827256b42eb17660f1dbdc797208b', 9)


@pytest.mark.parametrize('kwargs', [{}, {'difficulty': 'default'}])
def test_default_difficulty_is_the_earlier_generator_byte_for_byte(tmp_path, kwargs):
    make_synthetic_voc(str(tmp_path), seed=3, num_train=6, num_test=3, image_size=(96, 80),
                       **kwargs)
    assert _digest(str(tmp_path), jpeg=False) == DEFAULT_ANNOTATIONS
    assert _digest(str(tmp_path), jpeg=True) == DEFAULT_JPEGS


def _objects(root, n):
    ds = PlainVOC(root=os.path.join(root, 'VOCdevkit'), splits=((2007, 'trainval'),))
    assert len(ds) == n
    out = []
    for idx in range(n):
        w, h = ds._im_shapes[idx]
        anno = ds._items[idx]
        import xml.etree.ElementTree as ET
        tree = ET.parse(ds._anno_path.format(*anno))
        objs = [(int(o.find('truncated').text), [int(o.find('bndbox').find(k).text) for k in
                                                  ('xmin', 'ymin', 'xmax', 'ymax')])
                for o in tree.findall('object')]
        out.append((w, h, objs))
    return out


def test_easy_difficulty_has_few_large_untruncated_objects(tmp_path):
    n, side = 60, 128
    make_synthetic_voc(str(tmp_path / 'easy'), seed=0, num_train=n, num_test=0,
                       image_size=(side, side), difficulty='easy')
    make_synthetic_voc(str(tmp_path / 'default'), seed=0, num_train=n, num_test=0,
                       image_size=(side, side))

    def summary(root):
        images = _objects(str(root), n)
        counts = [len(objs) for _, _, objs in images]
        truncated = sum(t for _, _, objs in images for t, _ in objs)
        # longer side of each object's visible box, in units of the image side
        sides = [max(b[2] - b[0] + 1, b[3] - b[1] + 1) / float(side)
                 for _, _, objs in images for _, b in objs]
        return counts, truncated, sides
    counts, truncated, sides = summary(tmp_path / 'easy')
    assert min(counts) == 1 and max(counts) == 3 and len(set(counts)) == 3
    assert truncated == 0
    # nominal sides 20-80%; a box is of the visible pixels, so occlusion may shrink it somewhat
    assert np.median(sides) > 0.3 and min(sides) > 0.1 and max(sides) <= 1.0
    # the control: the default set of the same seed has what the easy one must not
    counts, truncated, sides = summary(tmp_path / 'default')
    assert max(counts) > 3 and truncated > 0 and min(sides) < 0.1


def test_easy_background_has_no_distractors():
    for seed in range(5):
        plain = synthetic._background(np.random.RandomState(seed), 64, 64, clutter=False)
        busy = synthetic._background(np.random.RandomState(seed), 64, 64)
        # the clutter is drawn over the same blobs: it only adds lines and ellipses
        assert (busy != plain).any(axis=2).sum() > 0
        # smooth: neighbouring pixels differ by a few levels at most
        assert np.abs(np.diff(plain.astype(int), axis=1)).max() <= 8


def test_unknown_difficulty(tmp_path):
    with pytest.raises(ValueError, match='difficulty'):
        make_synthetic_voc(str(tmp_path), num_train=1, num_test=0, difficulty='hard')
    assert not os.listdir(str(tmp_path))


def test_script_difficulty(tmp_path, capsys):
    import subprocess
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'make_synthetic_voc.py'),
                          '--root', str(tmp_path / 'bad'), '--difficulty', 'hard'],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and '--difficulty' in run.stderr
    assert not (tmp_path / 'bad').exists()
    sys.path.insert(0, os.path.join(ROOT, 'scripts'))
    try:
        import make_synthetic_voc as script
    finally:
        sys.path.pop(0)
    args = script.parse_args(['--root', str(tmp_path / 'e'), '--num-train', '3', '--num-test',
                              '1', '--image-size', '64', '64', '--difficulty', 'easy'])
    script.main(args)
    make_synthetic_voc(str(tmp_path / 'lib'), seed=0, num_train=3, num_test=1,
                       image_size=(64, 64), difficulty='easy')
    make_synthetic_voc(str(tmp_path / 'default'), seed=0, num_train=3, num_test=1,
                       image_size=(64, 64))
    made = _digest(str(tmp_path / 'e'), jpeg=False)
    assert made == _digest(str(tmp_path / 'lib'), jpeg=False)
    assert made != _digest(str(tmp_path / 'default'), jpeg=False)
