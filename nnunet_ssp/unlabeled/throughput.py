"""Throughput of prepare-unlabeled against nnUNetv2_preprocess on the same frames with the same processes.

Every frame of the cines becomes a labeled training case `<subject>_frameYY` of a scratch dataset (label: a box,
so nnU-Net can plan), nnU-Net plans it, then both commands run as subprocesses, alternately, and are timed end to
end (wall clock, start-up included). Run: `python -m nnunet_ssp.unlabeled.throughput CINES WORKDIR [-np N]`.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

from nnunet_ssp.converters.cases import case_id
from nnunet_ssp.converters.common import CHANNEL_NAME, FILE_ENDING
from nnunet_ssp.unlabeled.plans import pool_folder
from nnunet_ssp.unlabeled.sources import DEFAULT_PATTERNS, find_images, subject_and_frame

DATASET_ID = 987
DATASET = f"Dataset{DATASET_ID}_FramesBenchmark"


def write_frames_dataset(cines: List[Path], raw: Path) -> None:
    """Every frame of `cines` as a training case of `raw/DATASET`."""
    folder = raw / DATASET
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    frames = 0
    for path in cines:
        cine = sitk.ReadImage(str(path))
        subject, _ = subject_and_frame(path, True)
        for t in range(cine.GetSize()[3]):
            frame = cine[:, :, :, t]
            box = np.zeros(sitk.GetArrayViewFromImage(frame).shape, np.uint8)
            z, y, x = box.shape
            box[:, y // 3:2 * y // 3, x // 3:2 * x // 3] = 1
            label = sitk.GetImageFromArray(box)
            label.CopyInformation(frame)
            sitk.WriteImage(frame, str(folder / "imagesTr" / f"{case_id(subject, t)}_0000{FILE_ENDING}"), True)
            sitk.WriteImage(label, str(folder / "labelsTr" / f"{case_id(subject, t)}{FILE_ENDING}"), True)
            frames += 1
    generate_dataset_json(str(folder), channel_names={0: CHANNEL_NAME}, labels={"background": 0, "box": 1},
                          num_training_cases=frames, file_ending=FILE_ENDING, dataset_name=DATASET,
                          description="Every frame of the cines as a labeled case, to time preprocessing against "
                                      "prepare-unlabeled (nnunet_ssp.unlabeled.throughput).",
                          converted_by="nnunet-ssp")


def _timed(command: List[str], env: Dict[str, str]) -> Tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, all processes) of a command."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - start, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def measure_throughput(cine_dir: Path, work_dir: Path, num_processes: int = 2, repeats: int = 2) -> dict:
    """Frames per second (best wall clock of `repeats`) and CPU seconds of nnUNetv2_preprocess and prepare-unlabeled."""
    cines = find_images(Path(cine_dir).resolve(), DEFAULT_PATTERNS)
    roots = {name: Path(work_dir).resolve() / name for name in ("nnUNet_raw", "nnUNet_preprocessed",
                                                                   "nnUNet_results")}
    env = dict(os.environ, **{name: str(path) for name, path in roots.items()})
    bin_dir = Path(sys.executable).parent
    np_ = str(num_processes)
    if not (roots["nnUNet_preprocessed"] / DATASET / "nnUNetPlans.json").is_file():
        shutil.rmtree(roots["nnUNet_raw"] / DATASET, ignore_errors=True)
        write_frames_dataset(cines, roots["nnUNet_raw"])
        subprocess.run([str(bin_dir / "nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", "2d", "-np",
                        np_, "-npfp", np_], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    frames = len(list((roots["nnUNet_raw"] / DATASET / "imagesTr").glob(f"*{FILE_ENDING}")))
    pool = pool_folder(roots["nnUNet_preprocessed"] / DATASET, "nnUNetPlans_2d")
    nnunet = [str(bin_dir / "nnUNetv2_preprocess"), "-d", str(DATASET_ID), "-c", "2d", "-np", np_]
    ours = [sys.executable, "-m", "nnunet_ssp.cli", "prepare-unlabeled", "-d", str(DATASET_ID), "-i", str(cine_dir),
            "-np", np_, "--allow-test-subjects"]
    wall, cpu = {"nnUNetv2_preprocess": [], "prepare-unlabeled": []}, {"nnUNetv2_preprocess": [],
                                                                          "prepare-unlabeled": []}
    for _ in range(repeats):
        for name, command in (("nnUNetv2_preprocess", nnunet), ("prepare-unlabeled", ours)):
            shutil.rmtree(pool, ignore_errors=True)
            seconds, cpu_seconds = _timed(command, env)
            wall[name].append(round(seconds, 2))
            cpu[name].append(round(cpu_seconds, 2))
    best = {name: min(seconds) for name, seconds in wall.items()}
    return {"frames": frames, "num_processes": num_processes, "wall_seconds": wall, "cpu_seconds": cpu,
            "frames_per_second": {name: round(frames / s, 2) for name, s in best.items()},
            "speed_ratio_wall": round(best["nnUNetv2_preprocess"] / best["prepare-unlabeled"], 2),
            "speed_ratio_cpu": round(min(cpu["nnUNetv2_preprocess"]) / min(cpu["prepare-unlabeled"]), 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cines", type=Path, help="folder of 4D cines (*_4d.nii.gz, *_sa.nii.gz)")
    parser.add_argument("work_dir", type=Path, help="scratch folder for nnU-Net's three roots")
    parser.add_argument("-np", "--num-processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    arguments = parser.parse_args()
    result = measure_throughput(arguments.cines, arguments.work_dir, arguments.num_processes, arguments.repeats)
    print(json.dumps(result, indent=2))
