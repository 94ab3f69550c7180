"""Distillation losses: the classic baselines of Chen et al. 2017 and Ko & Yoo (:mod:`.kd`)."""
from . import kd
from .kd import (ssd_mining_mask, SoftTargetCrossEntropy, TeacherBoundedL2, TeacherL2, HintLoss,
                 KLDistillation, CHEN_LAMBDA, CHEN_GAMMA, CHEN_MU, CHEN_NU, CHEN_BG_WEIGHT,
                 CHEN_TEMPERATURE, CHEN_MARGIN, KO_YOO_ALPHA, KO_YOO_BETA, KO_YOO_TEMPERATURE)

__all__ = ["kd"] + list(kd.__all__)
from .fgfi import FGFI_LAMBDA, FGFI_PSI, FineGrainedImitationLoss, imitation_mask  # noqa: E402,F401
