"""The synthetic short-axis cine MRI phantom: the project's built-in dataset, written in the ACDC layout."""

from nnunet_ssp.phantom.generate import SubjectSummary, generate_phantom
from nnunet_ssp.phantom.preview import preview_dataset

__all__ = ["SubjectSummary", "generate_phantom", "preview_dataset"]
