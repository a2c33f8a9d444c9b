"""Plain helpers the test modules import: small plans-built networks, tiny ACDC-layout data, the session phantom's
identifiers and trainers on it, and where the shared data sets live."""

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from nnunet_ssp.spelling import OLD_SPELLING, SPELLING

SHARED = Path(__file__).resolve().parents[1].parent / "shared"  # the shared data beside the repository, if any
PHANTOM_DATASET_ID = 501  # the session phantom of conftest's `phantom_roots`
PHANTOM_TRAIN_SUBJECTS = 6
PHANTOM_TEST_SUBJECTS = 2
PLANS = "nnUNetPlansCPU"  # the plans `nnunet-ssp plan-cpu` writes (the phantom's)


def unet_kwargs(features=(8, 16, 32), num_input_channels=1):
    """Architecture kwargs of a small 2D PlainConvUNet, in nnU-Net's plans format."""
    n = len(features)
    return {
        "n_stages": n, "features_per_stage": list(features), "conv_op": "torch.nn.modules.conv.Conv2d",
        "kernel_sizes": [[3, 3]] * n, "strides": [[1, 1]] + [[2, 2]] * (n - 1), "n_conv_per_stage": [2] * n,
        "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }


def build_unet(features=(8, 16, 32), num_input_channels=1, num_classes=4, **changes):
    """A plans-style PlainConvUNet built by nnU-Net's own `get_network_from_plans`, `changes` made to its kwargs."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    return get_network_from_plans(
        "dynamic_network_architectures.architectures.unet.PlainConvUNet", {**unet_kwargs(features), **changes},
        ["conv_op", "norm_op", "dropout_op", "nonlin"], num_input_channels, num_classes, allow_init=True,
        deep_supervision=False)


@contextmanager
def session_roots(roots: Dict[str, Path]) -> Iterator[None]:
    """nnU-Net's data roots set to `roots` and one worker process while a session fixture builds its data; the
    environment as it was afterwards (monkeypatch is per test)."""
    saved = {name: os.environ.get(name) for name in (*roots, "nnUNet_def_n_proc")}
    os.environ.update({name: str(path) for name, path in roots.items()})
    os.environ["nnUNet_def_n_proc"] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dataset_env(roots: Dict[str, Path], nnunet_env: Dict[str, Path], monkeypatch) -> Dict[str, Path]:
    """nnU-Net's raw and preprocessed roots pointed at a session dataset, with the test's own results folder."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed"):
        monkeypatch.setenv(name, str(roots[name]))
    return {**roots, "nnUNet_results": nnunet_env["nnUNet_results"]}


def make_trainer(name: str, fold="all"):
    """nnU-Net's trainer `name` on the session phantom, found and built by nnU-Net's own `get_trainer_from_args`."""
    from nnunetv2.run.run_training import get_trainer_from_args
    return get_trainer_from_args(str(PHANTOM_DATASET_ID), "2d", fold, name, PLANS, device=torch.device("cpu"))


def started_from_pretrained(name: str):
    """A trainer started after all its weights were set to 0.5, standing in for -pretrained_weights."""
    trainer = make_trainer(name, fold=0)
    trainer.initialize()
    with torch.no_grad():
        for p in trainer.network.parameters():
            p.fill_(0.5)
    trainer.on_train_start()
    return trainer


SHAPE = (4, 24, 24)  # z, y, x as numpy sees it
FRAMES = 5
SPACING = (1.5, 1.5, 8.0)

# (subject, 1-based frame number) -> (image, label) arrays written by the fixture builders
Written = Dict[Tuple[str, int], Tuple[np.ndarray, np.ndarray]]


def write_image(array: np.ndarray, path: Path) -> None:
    """`array` (z, y, x, or t, z, y, x) as a compressed NIfTI with SPACING."""
    image = sitk.GetImageFromArray(array, isVector=False)
    image.SetSpacing(SPACING + (1.0,) * (array.ndim - 3))
    sitk.WriteImage(image, str(path), True)


def cine_and_labels(seed: int, labeled: Tuple[int, ...]) -> Tuple[np.ndarray, np.ndarray]:
    """A random (t, z, y, x) cine and label maps with values 0..3 at the 0-based `labeled` frames only."""
    rng = np.random.default_rng(seed)
    cine = rng.integers(0, 500, (FRAMES,) + SHAPE).astype(np.int16)
    labels = np.zeros((FRAMES,) + SHAPE, np.uint8)
    for t in labeled:
        labels[t] = rng.integers(0, 4, SHAPE)
    return cine, labels


def make_acdc(folder: Path, names: List[str], ed: int = 1, es: int = 4) -> Written:
    """ACDC subject folders (4D cine, ED/ES frames with _gt, Info.cfg; frames numbered from 1) in `folder`."""
    written = {}
    for k, name in enumerate(names):
        sub = folder / name
        sub.mkdir(parents=True)
        cine, labels = cine_and_labels(k, (ed - 1, es - 1))
        write_image(cine, sub / f"{name}_4d.nii.gz")
        for frame in (ed, es):
            write_image(cine[frame - 1], sub / f"{name}_frame{frame:02d}.nii.gz")
            write_image(labels[frame - 1], sub / f"{name}_frame{frame:02d}_gt.nii.gz")
            written[name, frame] = cine[frame - 1], labels[frame - 1]
        (sub / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 180\nNbFrame: {FRAMES}\n"
                                      f"Weight: 80\n")
    return written


def in_old_spelling(value):
    """A header (list of names) or a JSON record as files wrote it before the code spelled "labeled" one way: every
    string in a list, and every key of a dict (nested too), in the older spelling; other dict values kept."""
    if isinstance(value, str):
        return value.replace(SPELLING, OLD_SPELLING)
    if isinstance(value, list):
        return [in_old_spelling(v) for v in value]
    if isinstance(value, dict):
        return {in_old_spelling(k): in_old_spelling(v) if isinstance(v, (dict, list)) else v
                for k, v in value.items()}
    return value
