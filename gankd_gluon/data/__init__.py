"""Data: the generated dataset, datasets by name with input checks, and SSD loaders.

- :mod:`.synthetic`: :func:`make_synthetic_voc`, :data:`SYNTHETIC_CLASSES`.
- :mod:`.datasets`: :func:`get_dataset`, :func:`add_dataset_args`, :func:`dataset_classes`,
  :func:`dataset_metric_kind`, :class:`DatasetNotFoundError`, the bad-input policy.
- :mod:`.loaders`: :func:`get_ssd_train_loader`, :func:`get_ssd_val_loader`.
"""
from .checks import DatasetNotFoundError, InputReport, UnsafeInputError, check_image_file
from .datasets import (DATASET_NAMES, DEFAULT_ROOTS, CheckedCOCODetection, CheckedVOCDetection,
                       SyntheticCOCODetection, SyntheticVOCDetection, add_dataset_args,
                       dataset_classes, dataset_metric_kind, default_root, get_dataset)
from .loaders import SSDFlipTrainTransform, get_ssd_train_loader, get_ssd_val_loader
from .synthetic import SYNTHETIC_CLASSES, make_synthetic_voc
