"""Generate the synthetic shapes dataset: a VOC2007-format tree plus the same split as COCO json.

VOC and COCO cannot be downloaded here, so every script can run on this instead
(``--dataset synthetic --dataset-root DIR``; see gankd_gluon/data/synthetic.py for what is in it).

Example::

    python scripts/make_synthetic_voc.py --root ~/.mxnet/datasets/gankd_synthetic --seed 0 \
        --num-train 300 --num-test 100

The easier variant of the controlled study (1-3 large objects, no distractors, none truncated)::

    python scripts/make_synthetic_voc.py --root data/easy --difficulty easy
"""
import argparse
import os
import time

from gankd_gluon.data.datasets import DEFAULT_ROOTS
from gankd_gluon.data.classes import classes_arg  # noqa: E402
from gankd_gluon.data.synthetic import DIFFICULTIES, SYNTHETIC_CLASSES, make_synthetic_voc
from gankd_gluon.usage import nonnegative_int, positive_int


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate a VOC-format detection dataset of %d shape classes (%s) with the '
                    'same split as COCO json.' % (len(SYNTHETIC_CLASSES),
                                                  ', '.join(SYNTHETIC_CLASSES)),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--root', type=str, default=DEFAULT_ROOTS['synthetic'],
                        help='output folder (gets VOCdevkit/VOC2007 and coco/); the default is '
                             'where --dataset synthetic looks without --dataset-root')
    parser.add_argument('--seed', type=int, default=0, help='same seed, same bytes')
    parser.add_argument('--num-train', type=nonnegative_int, default=300, help='images in trainval')
    parser.add_argument('--num-test', type=nonnegative_int, default=100, help='images in test')
    parser.add_argument('--image-size', type=positive_int, nargs=2, default=[256, 256],
                        metavar=('W', 'H'), help='image size (the smallest with --image-size-max)')
    parser.add_argument('--image-size-max', type=positive_int, nargs=2, default=None,
                        metavar=('W', 'H'),
                        help='if given, each image size is drawn from [--image-size, this]')
    parser.add_argument('--difficulty', choices=DIFFICULTIES, default='default',
                        help='default: clutter, 1-5 objects of 5-80%% of the side, some '
                             'truncated; easy: no distractors, 1-3 objects of 20-80%%, none '
                             'truncated')
    parser.add_argument('--class-names', type=classes_arg, default=None, metavar='A,B,C,D,E',
                        help='names written for the 5 shapes (%s), in that order, e.g. '
                             'helmet,vest,glove,boot,goggles: a dataset with its own class '
                             'names (README "Your own dataset")' % ', '.join(SYNTHETIC_CLASSES))
    args = parser.parse_args(argv)
    if args.class_names is not None and len(args.class_names) != len(SYNTHETIC_CLASSES):
        parser.error('--class-names %s: give %d names, one per shape (%s)'
                     % (','.join(args.class_names), len(SYNTHETIC_CLASSES),
                        ', '.join(SYNTHETIC_CLASSES)))
    if os.path.exists(args.root) and not os.path.isdir(args.root):
        parser.error('--root %s: a file, not a folder' % args.root)
    if args.num_train + args.num_test < 1:
        parser.error('--num-train 0 --num-test 0: no images to generate')
    if args.image_size_max and any(hi < lo for lo, hi in zip(args.image_size,
                                                            args.image_size_max)):
        parser.error('--image-size-max %d %d: smaller than --image-size %d %d'
                     % tuple(args.image_size_max + args.image_size))
    return args


def main(args):
    start = time.time()
    stats = make_synthetic_voc(args.root, seed=args.seed, num_train=args.num_train,
                               num_test=args.num_test, image_size=tuple(args.image_size),
                               image_size_max=tuple(args.image_size_max)
                               if args.image_size_max else None,
                               difficulty=args.difficulty, class_names=args.class_names)
    for split in ('trainval', 'test'):
        print('%s: %d images, %d objects' % (split, stats['num_images'][split],
                                             stats['num_objects'][split]))
    print('VOC root (VOCDetection root): %s' % stats['voc_root'])
    print('COCO root (COCODetection root): %s' % stats['coco_root'])
    if args.class_names is None:
        use = '--dataset synthetic --dataset-root %s' % args.root
    else:   # the generated shapes' names are the synthetic kind's default; these are one's own
        use = ('--dataset voc --dataset-root %s --train-years 2007 --classes %s'
               % (args.root, ','.join(args.class_names)))
    print('done in %.1f s; use it with %s' % (time.time() - start, use))
    return stats


if __name__ == '__main__':
    main(parse_args())
