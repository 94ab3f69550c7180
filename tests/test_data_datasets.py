"""Datasets by name and the bad-input policy (README, "Bad input"): one test per case."""
import argparse
import json
import os

import mxnet as mx
import numpy as np
import pytest
from gluoncv.data import VOCDetection

from gankd_gluon.data import datasets as D
from gankd_gluon.data.checks import check_image_file, check_relative_id
from gankd_gluon.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_voc

NUM_TRAIN, NUM_TEST = 6, 3


@pytest.fixture
def root(tmp_path):
    """A fresh tiny generated dataset per test (tests corrupt it)."""
    make_synthetic_voc(str(tmp_path), seed=0, num_train=NUM_TRAIN, num_test=NUM_TEST,
                       image_size=(96, 96))
    return str(tmp_path)


def voc_dir(root):
    return os.path.join(root, 'VOCdevkit', 'VOC2007')


def jpeg(root, image_id):
    return os.path.join(voc_dir(root), 'JPEGImages', image_id + '.jpg')


def xml_path(root, image_id):
    return os.path.join(voc_dir(root), 'Annotations', image_id + '.xml')


def write_xml(root, image_id, objects=(('circle', 11, 21, 41, 51, '0'),), size=(96, 96),
              prolog=''):
    """Write a devkit annotation; an object is (name, xmin, ymin, xmax, ymax, difficult) with
    any field None to leave its tag out (difficult '' writes an empty tag); size None drops
    <size>."""
    parts = [prolog, '<annotation><filename>%s.jpg</filename>' % image_id]
    if size is not None:
        parts.append('<size><width>%d</width><height>%d</height><depth>3</depth></size>' % size)
    for name, x1, y1, x2, y2, difficult in objects:
        parts.append('<object>')
        if name is not None:
            parts.append('<name>%s</name>' % name)
        if difficult is not None:
            parts.append('<difficult>%s</difficult>' % difficult)
        if x1 is not None:
            parts.append('<bndbox><xmin>%s</xmin><ymin>%s</ymin><xmax>%s</xmax><ymax>%s</ymax>'
                         '</bndbox>' % (x1, y1, x2, y2))
        parts.append('</object>')
    parts.append('</annotation>')
    with open(xml_path(root, image_id), 'w') as f:
        f.write('\n'.join(parts))


def set_split(root, ids, split='trainval'):
    with open(os.path.join(voc_dir(root), 'ImageSets', 'Main', split + '.txt'), 'w') as f:
        f.write(''.join(i + '\n' for i in ids))


def train_ids():
    return ['%06d' % i for i in range(1, NUM_TRAIN + 1)]


# ------------------------------------------------------------------------------------------------
# datasets by name
# ------------------------------------------------------------------------------------------------
def test_get_dataset_synthetic_items(root):
    train = D.get_dataset('synthetic', root, 'train')
    test = D.get_dataset('synthetic', root, 'test')
    assert isinstance(train, VOCDetection)
    assert (len(train), len(test)) == (NUM_TRAIN, NUM_TEST)
    assert train.classes == SYNTHETIC_CLASSES
    img, label = train[0]
    assert isinstance(img, mx.nd.NDArray) and img.dtype == np.uint8 and img.shape == (96, 96, 3)
    assert label.dtype == np.float64 and label.ndim == 2 and label.shape[1] == 6
    assert 'nothing skipped' in train.summary()
    # the generator's root, or its VOCdevkit folder
    assert len(D.get_dataset('synthetic', os.path.join(root, 'VOCdevkit'), 'test')) == NUM_TEST


def test_get_dataset_synthetic_coco_matches_voc(root):
    voc = D.get_dataset('synthetic', root, 'test')
    coco = D.get_dataset('synthetic_coco', root, 'test')
    assert len(coco) == len(voc) and list(coco.classes) == list(SYNTHETIC_CLASSES)
    for i in range(len(voc)):
        np.testing.assert_array_equal(coco[i][1], voc[i][1][:, :5])
        assert coco[i][1].shape[1] == 5
    assert len(D.get_dataset('synthetic_coco', os.path.join(root, 'coco'), 'train')) == NUM_TRAIN


def test_names_classes_metric_kind_and_args():
    assert D.dataset_classes('voc') == tuple(VOCDetection.CLASSES)
    assert len(D.dataset_classes('voc')) == 20 and len(D.dataset_classes('coco')) == 80
    assert D.dataset_classes('synthetic') == D.dataset_classes('synthetic_coco') == SYNTHETIC_CLASSES
    assert [D.dataset_metric_kind(n) for n in D.DATASET_NAMES] == ['voc', 'coco', 'voc', 'coco']
    with pytest.raises(ValueError, match='unknown dataset'):
        D.get_dataset('imagenet')
    with pytest.raises(ValueError, match='split'):
        D.get_dataset('synthetic', split='val')
    parser = argparse.ArgumentParser()
    D.add_dataset_args(parser)
    args = parser.parse_args([])
    assert (args.dataset, args.dataset_root) == ('voc', None)
    args = parser.parse_args(['--dataset', 'synthetic_coco', '--dataset-root', '/x'])
    assert (args.dataset, args.dataset_root) == ('synthetic_coco', '/x')
    with pytest.raises(SystemExit):
        parser.parse_args(['--dataset', 'kitti'])


def test_voc_reads_2007_plus_2012(tmp_path):
    """'voc' train = VOC2007 trainval + VOC2012 trainval, test = VOC2007 test (GluonCV's layout)."""
    make_synthetic_voc(str(tmp_path / 'a'), seed=0, num_train=3, num_test=2, image_size=(64, 64))
    make_synthetic_voc(str(tmp_path / 'b'), seed=1, num_train=4, num_test=0, image_size=(64, 64))
    voc_root = tmp_path / 'voc'
    voc_root.mkdir()
    os.rename(str(tmp_path / 'a' / 'VOCdevkit' / 'VOC2007'), str(voc_root / 'VOC2007'))
    os.rename(str(tmp_path / 'b' / 'VOCdevkit' / 'VOC2007'), str(voc_root / 'VOC2012'))
    # real VOC has no shapes: relabel the objects as VOC classes to read them as 'voc'
    for xml in voc_root.glob('VOC20*/Annotations/*.xml'):
        text = xml.read_text()
        for shape, voc_name in zip(SYNTHETIC_CLASSES, ('aeroplane', 'bicycle', 'bird', 'boat',
                                                       'bottle')):
            text = text.replace('<name>%s</name>' % shape, '<name>%s</name>' % voc_name)
        xml.write_text(text)
    train = D.get_dataset('voc', str(voc_root), 'train')
    assert len(train) == 7 and train.classes == tuple(VOCDetection.CLASSES)
    assert len(D.get_dataset('voc', str(voc_root), 'test')) == 2


# ------------------------------------------------------------------------------------------------
# missing data: stop, naming the path and how to prepare it
# ------------------------------------------------------------------------------------------------
def test_missing_root(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(D.DatasetNotFoundError) as err:
        D.get_dataset('synthetic', missing)
    assert isinstance(err.value, FileNotFoundError)
    assert os.path.join(missing, 'VOCdevkit') in str(err.value)
    assert 'make_synthetic_voc.py --root' in str(err.value)
    with pytest.raises(D.DatasetNotFoundError, match='pascal_voc.py --download-dir') as err:
        D.get_dataset('voc', missing)
    assert missing in str(err.value) and '--dataset synthetic' in str(err.value)
    with pytest.raises(D.DatasetNotFoundError, match='mscoco.py --download-dir') as err:
        D.get_dataset('coco', missing, 'test')
    assert missing in str(err.value) and 'make_synthetic_voc.py' in str(err.value)


def test_missing_split_file_and_json(tmp_path, root):
    voc_root = tmp_path / 'other' / 'voc'
    (voc_root / 'VOC2007' / 'ImageSets' / 'Main').mkdir(parents=True)
    with pytest.raises(D.DatasetNotFoundError) as err:
        D.get_dataset('voc', str(voc_root), 'test')
    assert os.path.join(str(voc_root), 'VOC2007', 'ImageSets', 'Main', 'test.txt') in str(err.value)
    coco_root = tmp_path / 'other' / 'coco'
    coco_root.mkdir()
    with pytest.raises(D.DatasetNotFoundError) as err:
        D.get_dataset('coco', str(coco_root), 'train')
    assert os.path.join(str(coco_root), 'annotations', 'instances_train2017.json') in str(err.value)
    os.remove(os.path.join(voc_dir(root), 'ImageSets', 'Main', 'test.txt'))
    with pytest.raises(D.DatasetNotFoundError, match='test.txt'):
        D.get_dataset('synthetic', root, 'test')
    os.rename(os.path.join(voc_dir(root), 'Annotations'), os.path.join(root, 'elsewhere'))
    with pytest.raises(D.DatasetNotFoundError) as err:
        D.get_dataset('synthetic', root, 'train')
    assert os.path.join(voc_dir(root), 'Annotations') in str(err.value)


# ------------------------------------------------------------------------------------------------
# unsafe input: stop
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('bad_id', ['../../etc/passwd', '000001/../../x', '/etc/passwd',
                                    '\\\\server\\share\\x', 'C:\\x'])
def test_unsafe_image_id(root, bad_id):
    set_split(root, train_ids()[:2] + [bad_id])
    with pytest.raises(D.UnsafeInputError) as err:
        D.get_dataset('synthetic', root)
    assert 'trainval.txt line 3' in str(err.value) and repr(bad_id) in str(err.value)


def test_check_relative_id_accepts_plain_ids():
    for ok in ('000001', '2008_000123', 'sub/000001', 'a..b'):
        check_relative_id(ok, 'x')


def test_xml_entity_expansion(root):
    bomb = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n')
    write_xml(root, '000002', objects=(('&lol2;', 11, 21, 41, 51, '0'),), prolog=bomb)
    with pytest.raises(D.UnsafeInputError) as err:
        D.get_dataset('synthetic', root)
    assert xml_path(root, '000002') in str(err.value)


def test_xml_external_entity(root):
    xxe = ('<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n')
    write_xml(root, '000003', objects=(('&x;', 11, 21, 41, 51, '0'),), prolog=xxe)
    with pytest.raises(D.UnsafeInputError, match='000003.xml'):
        D.get_dataset('synthetic', root)


# ------------------------------------------------------------------------------------------------
# bad images: skip and count
# ------------------------------------------------------------------------------------------------
def _corrupt(path, how):
    with open(path, 'rb') as f:
        data = f.read()
    if how == 'zero':
        data = b''
    elif how == 'truncated':
        data = data[:len(data) // 2]
    elif how == 'garbage':
        data = b'this is not an image' * 10
    if how == 'missing':
        os.remove(path)
    else:
        with open(path, 'wb') as f:
            f.write(data)


@pytest.mark.parametrize('how, words', [('zero', 'zero-byte'), ('truncated', 'truncated JPEG'),
                                        ('garbage', 'not a JPEG'), ('missing', 'not found')])
def test_bad_image_is_skipped(root, how, words):
    _corrupt(jpeg(root, '000002'), how)
    ds = D.get_dataset('synthetic', root)
    assert len(ds) == NUM_TRAIN - 1
    assert ds.report.counts['unreadable_image'] == 1
    assert '000002.jpg' in ds.summary() and words in ds.summary()
    assert all(item[1] != '000002' for item in ds._items)
    for i in range(len(ds)):  # every remaining item loads
        ds[i]


def test_truncated_jpeg_decodes_silently_in_opencv(root):
    """Why the header/trailer check exists: OpenCV fills a cut JPEG with grey, no error."""
    _corrupt(jpeg(root, '000001'), 'truncated')
    img = mx.image.imread(jpeg(root, '000001'))
    assert img.shape == (96, 96, 3)
    assert 'truncated' in check_image_file(jpeg(root, '000001'))


def test_image_that_fails_at_load_time_is_substituted(root):
    ds = D.get_dataset('synthetic', root)
    # corrupted after the dataset was built: complete at both ends, garbage inside
    with open(jpeg(root, '000001'), 'wb') as f:
        f.write(b'\xff\xd8\xff' + b'\x00' * 200 + b'\xff\xd9')
    img, label = ds[0]
    img2, label2 = ds[1]
    np.testing.assert_array_equal(img.asnumpy(), img2.asnumpy())
    np.testing.assert_array_equal(label, label2)
    assert ds.report.counts['substituted'] == 1 and '000001.jpg' in ds.summary()
    assert 'next image used' in ds.summary()


def test_test_image_that_fails_at_load_time_becomes_grey(root):
    """Evaluation keeps order and ground truth: a grey image of the annotated size."""
    ds = D.get_dataset('synthetic', root, 'test')
    first = '%06d' % (NUM_TRAIN + 1)
    label = ds[0][1]
    with open(jpeg(root, first), 'wb') as f:
        f.write(b'\xff\xd8\xff' + b'\x00' * 200 + b'\xff\xd9')
    img, label2 = ds[0]
    assert img.shape == (96, 96, 3) and np.all(img.asnumpy() == 128)
    np.testing.assert_array_equal(label, label2)
    assert 'grey image used' in ds.summary()
    coco = D.get_dataset('synthetic_coco', root, 'test', skip_empty=False)
    img, _ = coco[0]
    assert img.shape == (96, 96, 3) and np.all(img.asnumpy() == 128)


def test_coco_bad_image_is_skipped(root):
    _corrupt(jpeg(root, '000003'), 'zero')
    ds = D.get_dataset('synthetic_coco', root)
    assert len(ds) == NUM_TRAIN - 1 and ds.report.counts['unreadable_image'] == 1
    assert '000003.jpg' in ds.summary()


# ------------------------------------------------------------------------------------------------
# bad annotations
# ------------------------------------------------------------------------------------------------
def test_missing_size_is_read_from_the_image_file(root):
    """No <size> (hand-written XML) or 0x0 (some LabelImg versions): the image file's 96x96
    header is the frame; its boxes are checked against it (the one past 96 is clipped, the one
    outside dropped); a file whose header cannot be read is skipped."""
    write_xml(root, '000002', objects=(('circle', 11, 21, 41, 51, '0'),
                                       ('square', 50, 50, 98, 60, '0'),
                                       ('square', 98, 10, 120, 30, '0')), size=None)
    write_xml(root, '000003', size=(0, 0))
    ds = D.get_dataset('synthetic', root)
    assert len(ds) == NUM_TRAIN and ds.report.counts['size_from_image'] == 2
    assert ds.report.counts['missing_size'] == 0
    k = [i for i, item in enumerate(ds._items) if item[1] == '000002'][0]
    np.testing.assert_array_equal(ds[k][1][:, :4], [[10, 20, 40, 50], [49, 49, 96, 59]])
    assert ds.report.counts['invalid_box'] == 1 and ds.report.counts['box_clipped'] == 1
    assert '000002.xml' in ds.summary() and '96x96 read from 000002.jpg' in ds.summary()
    assert 'noted 2 images: annotations without a valid <size>' in ds.summary()
    with open(jpeg(root, '000002'), 'r+b') as f:     # a JPEG Pillow cannot take a size from
        f.seek(2)
        f.write(b'\x00' * 200)
    ds = D.get_dataset('synthetic', root)
    assert ds.report.counts['missing_size'] + ds.report.counts['unreadable_image'] == 1


def test_malformed_xml_skips_image(root):
    with open(xml_path(root, '000004'), 'w') as f:
        f.write('<annotation><size><width>96</width>')
    ds = D.get_dataset('synthetic', root)
    assert len(ds) == NUM_TRAIN - 1 and ds.report.counts['bad_annotation'] == 1
    assert '000004.xml' in ds.summary()


def test_missing_bndbox_drops_object(root):
    write_xml(root, '000002', objects=(('circle', None, None, None, None, '0'),
                                       ('star', 11, 21, 41, 51, '0')))
    ds = D.get_dataset('synthetic', root)
    assert len(ds) == NUM_TRAIN
    label = ds[1][1]
    np.testing.assert_array_equal(label, [[10, 20, 40, 50, SYNTHETIC_CLASSES.index('star'), 0]])
    assert ds.report.counts['bad_object'] == 1 and 'has no <bndbox>' in ds.summary()


def test_non_numeric_coordinate_and_missing_name_drop_object(root):
    write_xml(root, '000002', objects=(('circle', 'abc', 21, 41, 51, '0'),
                                       (None, 11, 21, 41, 51, '0'),
                                       ('cross', 11, 21, 41, 51, '0')))
    ds = D.get_dataset('synthetic', root)
    assert ds[1][1].shape == (1, 6) and ds.report.counts['bad_object'] == 2


@pytest.mark.parametrize('difficult', [None, ''])
def test_missing_or_empty_difficult_reads_as_zero(root, difficult):
    write_xml(root, '000002', objects=(('square', 11, 21, 41, 51, difficult),
                                       ('star', 5, 5, 20, 20, '1')))
    # GluonCV's own loader crashes here (AttributeError / TypeError)
    with pytest.raises((AttributeError, TypeError)):
        type('Plain', (VOCDetection,), {'CLASSES': SYNTHETIC_CLASSES})(
            root=os.path.join(root, 'VOCdevkit'), splits=((2007, 'trainval'),))
    ds = D.get_dataset('synthetic', root)
    label = ds[1][1]
    np.testing.assert_array_equal(label[:, 5], [0, 1])
    assert ds.report.counts['difficult_defaulted'] == 1
    assert 'read as 0' in ds.summary()


@pytest.mark.parametrize('box, words', [
    ((200, 200, 250, 250), 'outside the image'),
    ((-40, 20, 0, 60), 'outside the image'),         # no pixel of the image inside
    ((30, 20, 30, 60), 'zero area'),
    ((40, 20, 30, 60), 'xmin > xmax'),
    ((10, 60, 40, 20), 'ymin > ymax'),
])
def test_invalid_box_drops_object(root, box, words):
    write_xml(root, '000002', objects=(('circle',) + box + ('0',), ('star', 11, 21, 41, 51, '0')))
    ds = D.get_dataset('synthetic', root)
    assert len(ds) == NUM_TRAIN
    np.testing.assert_array_equal(ds[1][1][:, 4], [SYNTHETIC_CLASSES.index('star')])
    assert ds.report.counts['invalid_box'] == 1
    assert words in ds.summary() and '000002.xml' in ds.summary()


@pytest.mark.parametrize('box, clipped, written', [
    # xmin 0 of a 0-based tool: 1-based 0 is 0-based -1
    ((0, 20, 40, 60), [0, 19, 39, 59], [-1, 19, 39, 59]),
    # xmax past a 96-px image
    ((50, 20, 120, 60), [49, 19, 96, 59], [49, 19, 119, 59]),
])
def test_box_partly_outside_is_kept(root, box, clipped, written):
    """The VOC devkit does not validate ground truth: a box crossing the border is kept,
    clipped to the image for training and as written for evaluation (noted, never dropped)."""
    write_xml(root, '000002', objects=(('circle',) + box + ('0',),))
    train = D.get_dataset('synthetic', root, 'train')
    np.testing.assert_array_equal(train[1][1][0, :4], clipped)
    assert train.report.counts['box_clipped'] == 1 and train.report.counts['invalid_box'] == 0
    set_split(root, ['000002'], 'test')
    test = D.get_dataset('synthetic', root, 'test')
    np.testing.assert_array_equal(test[0][1][0, :4], written)
    assert test.report.counts['box_outside'] == 1 and 'scored as written' in test.summary()


def test_box_on_the_border_is_valid(root):
    """GluonCV's bounds: XML 1..W is inside (0-based 0..W-1 after the -1)."""
    write_xml(root, '000002', objects=(('circle', 1, 1, 96, 96, '0'),))
    ds = D.get_dataset('synthetic', root)
    np.testing.assert_array_equal(ds[1][1], [[0, 0, 95, 95, 0, 0]])


def test_unknown_class_drops_object(root):
    write_xml(root, '000002', objects=(('hexagon', 11, 21, 41, 51, '0'),
                                       ('Circle ', 11, 21, 41, 51, '0'),
                                       ('hexagon', 5, 5, 9, 9, '0')))
    ds = D.get_dataset('synthetic', root)
    np.testing.assert_array_equal(ds[1][1][:, 4], [0])  # name is stripped and lowercased
    assert ds.report.counts['unknown_class'] == 2
    assert ds.report.unknown_classes == {'hexagon': 2}
    assert "'hexagon' x2" in ds.summary()


def test_image_without_objects(root):
    write_xml(root, '000002', objects=())
    write_xml(root, '000003', objects=(('hexagon', 11, 21, 41, 51, '0'),))  # none left after drop
    train = D.get_dataset('synthetic', root, 'train')
    assert len(train) == NUM_TRAIN - 2 and train.report.counts['no_objects'] == 2
    assert '000002.xml' in train.summary()
    # evaluation keeps it: detections on an empty image are false positives
    set_split(root, ['000002', '000004'], split='test')
    test = D.get_dataset('synthetic', root, 'test')
    assert len(test) == 2
    np.testing.assert_array_equal(test[0][1], -np.ones((1, 6)))


def test_no_usable_images_stops(root):
    set_split(root, ['000002'])
    _corrupt(jpeg(root, '000002'), 'zero')
    with pytest.raises(ValueError, match='no usable images'):
        D.get_dataset('synthetic', root)


def test_blank_lines_in_split_file_are_ignored(root):
    set_split(root, ['000001', '', '  ', '000002'])
    assert len(D.get_dataset('synthetic', root)) == 2


# ------------------------------------------------------------------------------------------------
# COCO json
# ------------------------------------------------------------------------------------------------
def _edit_json(root, split, fn):
    path = os.path.join(root, 'coco', 'annotations', 'instances_%s.json' % split)
    with open(path) as f:
        data = json.load(f)
    fn(data)
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def test_coco_unsafe_url(root):
    def fn(data):
        data['images'][0]['coco_url'] = 'http://x/../000001.jpg'
    path = _edit_json(root, 'trainval', fn)
    with pytest.raises(D.UnsafeInputError) as err:
        D.get_dataset('synthetic_coco', root)
    assert path in str(err.value)


def test_coco_category_mismatch(root):
    """A json's categories are its classes; --classes that differ stop, naming both."""
    def fn(data):
        data['categories'][0]['name'] = 'ellipse'
    path = _edit_json(root, 'trainval', fn)
    with pytest.raises(D.DataError, match='ellipse') as err:
        D.get_dataset('synthetic_coco', root, classes=SYNTHETIC_CLASSES)
    assert path in str(err.value) and 'circle' in str(err.value)
    assert D.get_dataset('synthetic_coco', root).classes[0] == 'ellipse'
    with pytest.raises(D.DataError, match='the test split names the classes circle'):
        D.get_splits('synthetic_coco', root)


def test_coco_bad_objects_and_empty_images(root):
    def fn(data):
        anns = data['annotations']
        per_image = {}
        for a in anns:
            per_image.setdefault(a['image_id'], []).append(a)
        many = [i for i in sorted(per_image) if len(per_image[i]) >= 3 and i > 3][0]
        per_image[many][0]['category_id'] = 99            # unknown class
        per_image[many][1]['bbox'] = [10, 10, 0, 5]       # zero width
        per_image[many][1]['area'] = 0
        data['annotations'] = [a for a in anns if a['image_id'] != 2]   # image 2: no objects
        data['images'][2].pop('coco_url')                 # image 3: no coco_url
        data['images'][2].pop('file_name')                # nor file_name
    _edit_json(root, 'trainval', fn)
    ds = D.get_dataset('synthetic_coco', root)
    counts = ds.report.counts
    assert counts['unknown_class'] == 1 and counts['invalid_box'] == 1
    assert counts['no_objects'] == 1 and counts['bad_annotation'] == 1
    assert len(ds) == NUM_TRAIN - 2
    assert 'category_id 99' in ds.summary() and 'coco_url' in ds.summary()
    _edit_json(root, 'test', lambda data: data.__setitem__(
        'annotations', [a for a in data['annotations'] if a['image_id'] != NUM_TRAIN + 1]))
    test = D.get_dataset('synthetic_coco', root, 'test')
    assert len(test) == NUM_TEST
    np.testing.assert_array_equal(test[0][1], -np.ones((1, 5)))
