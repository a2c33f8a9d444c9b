"""Batches of augmented views for pretraining: 2D crops of uniformly drawn slices, or 3D patches of uniformly drawn
volumes (frames)."""

from typing import List, Sequence, Tuple, Union

import blosc2
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.utilities.label_handling.label_handling import LabelManager
from threadpoolctl import threadpool_limits

from nnunet_ssp.slices import SliceTable, VolumeTable


class SSPSliceLoader(nnUNetDataLoader):
    """nnU-Net's 2D loader with labels unused: a random crop of a uniformly drawn slice, one transform per view.

    Each batch is a dict with `views` (one tensor B x C x h x w per view transform, every view of sample b made
    from the same crop), `positions` (base-to-apex, float) and `subjects`.
    """

    spatial_dims = 2

    def __init__(self, table: Union[SliceTable, VolumeTable], batch_size: int, crop_size: Sequence[int],
                 patch_size: Sequence[int], label_manager: LabelManager, view_transforms: List[BasicTransform]):
        super().__init__(table, batch_size, crop_size, patch_size, label_manager, oversample_foreground_percent=0.0)
        if len(crop_size) != self.spatial_dims:
            raise ValueError(f"{type(self).__name__} works on {self.spatial_dims}D patches; got a patch size of "
                             f"{tuple(crop_size)}")
        self.has_ignore = False  # labels are never used: crops are drawn without looking at class locations
        self.view_transforms = view_transforms

    def crop(self, row: int) -> Tuple[torch.Tensor, float]:
        """A random crop (C x h x w, at the loader's crop size) of slice `row`, padded with 0 where needed, and the
        slice's base-to-apex position."""
        data = _open(self._data.data_file(row))
        z = self._data.z[row]
        lbs, ubs = self.get_bbox((1, *data.shape[2:]), force_fg=False, class_locations=None)
        bbox = [[z, z + 1]] + [[lb, ub] for lb, ub in zip(lbs[1:], ubs[1:])]
        return torch.from_numpy(crop_and_pad_nd(data, bbox, 0)).float()[:, 0], self._data.position[row]

    def generate_train_batch(self) -> dict:
        rows = self.get_indices()
        views = [None] * len(self.view_transforms)
        positions = torch.empty(len(rows), dtype=torch.float32)
        with torch.no_grad(), threadpool_limits(limits=1, user_api=None):
            for b, row in enumerate(rows):
                crop, positions[b] = self.crop(row)
                for v, transform in enumerate(self.view_transforms):
                    view = transform(image=crop.clone())["image"]
                    if views[v] is None:
                        views[v] = torch.empty((len(rows), *view.shape), dtype=torch.float32)
                    views[v][b] = view
        return {
            "views": views,
            "positions": positions,
            "subjects": [self._data.subject[r] for r in rows],
        }


class SSPPatchLoader(SSPSliceLoader):
    """The 3D counterpart for `3d_fullres`: a random 3D crop of a uniformly drawn volume, positioned at its centre
    slice; `positions` are the base-to-apex position of that slice. Takes a `VolumeTable`."""

    spatial_dims = 3

    def crop(self, row: int) -> Tuple[torch.Tensor, float]:
        """A random crop (C x d x h x w, at the loader's crop size) of volume `row`, padded with 0 where needed, and
        the base-to-apex position of its centre slice."""
        data = _open(self._data.data_file(row))
        lbs, ubs = self.get_bbox(data.shape[1:], force_fg=False, class_locations=None)
        crop = crop_and_pad_nd(data, [[lb, ub] for lb, ub in zip(lbs, ubs)], 0)
        return torch.from_numpy(crop).float(), self._data.position(row, (lbs[0] + ubs[0]) // 2)


def patch_loader(slices: SliceTable, batch_size: int, crop_size: Sequence[int], patch_size: Sequence[int],
                 label_manager: LabelManager, view_transforms: List[BasicTransform]) -> SSPSliceLoader:
    """The loader for the configuration's patch: 2D crops of slices, or 3D patches of the slices' volumes."""
    if len(patch_size) == 3:
        return SSPPatchLoader(VolumeTable(slices), batch_size, crop_size, patch_size, label_manager, view_transforms)
    return SSPSliceLoader(slices, batch_size, crop_size, patch_size, label_manager, view_transforms)


def _open(path: str) -> blosc2.NDArray:
    # opened per call, as nnU-Net's dataset does: a cache of handles would hold a file open per case per worker
    return blosc2.open(urlpath=path, mode="r", dparams={"nthreads": 1}, mmap_mode="r")
