"""Converters from cine layouts (ACDC, M&Ms, M&Ms-2) to nnU-Net raw datasets with subject-grouped splits."""

from nnunet_ssp.converters.acdc import convert_acdc
from nnunet_ssp.converters.cases import case_id, subject_of_case
from nnunet_ssp.converters.mnms import convert_mnms
from nnunet_ssp.converters.mnms2 import convert_mnms2
from nnunet_ssp.converters.subject_splits import subject_folds, write_subject_splits

__all__ = ["convert_acdc", "convert_mnms", "convert_mnms2", "case_id", "subject_of_case", "subject_folds",
           "write_subject_splits"]
