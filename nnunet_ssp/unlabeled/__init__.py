"""The unlabeled cine pool: every frame of every cine, preprocessed with a dataset's own plans, for pretraining."""

from nnunet_ssp.unlabeled.manifest import MANIFEST_FILE, ManifestRow, read_manifest, unlabeled_pool_slices
from nnunet_ssp.unlabeled.plans import POOL_SUFFIX, pool_folder
from nnunet_ssp.unlabeled.prepare import REPORT_FILE, PoolResult, pool_flips_base_apex, prepare_unlabeled

__all__ = ["MANIFEST_FILE", "POOL_SUFFIX", "REPORT_FILE", "ManifestRow", "PoolResult", "pool_folder",
           "pool_flips_base_apex", "prepare_unlabeled", "read_manifest", "unlabeled_pool_slices"]
