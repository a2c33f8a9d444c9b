"""Batches of augmented 2D views for pretraining, sampled uniformly over the slices of a `SliceTable`."""

from typing import List, Sequence

import blosc2
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.utilities.label_handling.label_handling import LabelManager
from threadpoolctl import threadpool_limits

from nnunet_ssp.slices import SliceTable


class SSPSliceLoader(nnUNetDataLoader):
    """nnU-Net's 2D loader with labels unused: a random crop of a uniformly drawn slice, one transform per view.

    Each batch is a dict with `views` (one tensor B x C x h x w per view transform, every view of sample b made
    from the same crop), `positions` (base-to-apex, float) and `subjects`.
    """

    def __init__(self, table: SliceTable, batch_size: int, crop_size: Sequence[int], patch_size: Sequence[int],
                 label_manager: LabelManager, view_transforms: List[BasicTransform]):
        super().__init__(table, batch_size, crop_size, patch_size, label_manager, oversample_foreground_percent=0.0)
        if len(crop_size) != 2:
            raise ValueError(f"pretraining works on 2D patches; got a patch size of {tuple(crop_size)}")
        self.has_ignore = False  # labels are never used: crops are drawn without looking at class locations
        self.view_transforms = view_transforms

    def crop(self, row: int) -> torch.Tensor:
        """A random crop (C x h x w, at the loader's crop size) of slice `row`, padded with 0 where needed."""
        # opened per call, as nnU-Net's dataset does: a cache of handles would hold a file open per case per worker
        data = blosc2.open(urlpath=self._data.data_file(row), mode="r", dparams={"nthreads": 1}, mmap_mode="r")
        z = self._data.z[row]
        lbs, ubs = self.get_bbox((1, *data.shape[2:]), force_fg=False, class_locations=None)
        bbox = [[z, z + 1]] + [[lb, ub] for lb, ub in zip(lbs[1:], ubs[1:])]
        return torch.from_numpy(crop_and_pad_nd(data, bbox, 0)).float()[:, 0]

    def generate_train_batch(self) -> dict:
        rows = self.get_indices()
        views = [None] * len(self.view_transforms)
        with torch.no_grad(), threadpool_limits(limits=1, user_api=None):
            for b, row in enumerate(rows):
                crop = self.crop(row)
                for v, transform in enumerate(self.view_transforms):
                    view = transform(image=crop.clone())["image"]
                    if views[v] is None:
                        views[v] = torch.empty((len(rows), *view.shape), dtype=torch.float32)
                    views[v][b] = view
        return {
            "views": views,
            "positions": torch.tensor([self._data.position[r] for r in rows], dtype=torch.float32),
            "subjects": [self._data.subject[r] for r in rows],
        }
