"""The paper's Table 3 set at CPU-demo scale: teacher, two baselines, two GAN-KD students, FGFI.

    python scripts/table3_demo.py                 # writes logs/table3/README.md and logs

Every row of Table 3 runs through the real scripts, on the generated shapes dataset, with tiny
Faster R-CNN sizes (128 px inputs, 16 sampled RoIs, 7x7 RoI pooling) and a few epochs, from
scratch (no ImageNet weights here):

1. teacher: ``train_faster_rcnn.py --network resnet101_v1d`` (RoIAlign);
2. baselines: ``train_faster_rcnn.py --network resnet50_v1b --roi-mode pool|align``;
3. GAN-KD students: ``train_faster_rcnn_gan_kd.py --roi-mode pool|align`` (stage 1
   adversarial, stage 2 plain, same number of epochs as the baselines);
4. fine-grained imitation: ``train_faster_rcnn_gan_kd.py --method fgfi`` (RoIAlign).

The point is that every stage runs, logs in the published format and evaluates with the
VOC07 metric; at this scale the mAPs say nothing about the method (a from-scratch ResNet on a
few dozen images for a few epochs). The table records the command, the settings and the
measured seconds per iteration. Checkpoints (about 0.5 GB each) go to ``--work`` and are
deleted at the end unless ``--keep-work``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gankd_gluon.experiments.table3 import main, parse_args  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(parse_args()))
