"""The device check: every part of nnunet-ssp once, briefly, on this machine's device, with one table at the end.

On the phantom (the demo's dataset, below its own folder with its own nnU-Net data roots): plans at nnU-Net's full
size (`--tiny`: tiny images and CPU-sized plans), each method's pretraining for 2 epochs and a fine-tune of 2 epochs
from the MIM weights (all on fold 0 of nnU-Net's split), prediction and evaluation of 2 test cases, `benchmark-speed`
against nnU-Net's trainer and, with several processes asked for, one pretraining on them. nnU-Net's `torch.compile`
is off unless nnUNet_compile says otherwise, as the SSP trainers never compile. The trainings and the prediction run in this process
through the functions behind nnU-Net's commands (`run_training` of `nnUNetv2_train`, `nnUNetPredictor` of
`nnUNetv2_predict`, `compute_metrics_on_folder2` of `nnUNetv2_evaluate_folder`), so CUDA's peak memory of each can
be read; on CUDA nnU-Net trains under autocast with its GradScaler (AMP). The first step that fails stops the check.
"""

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import torch

from nnunet_ssp.atomic import write_json
from nnunet_ssp.cpu_plans import CPU_PLANS_NAME
from nnunet_ssp.demo import DEMO_DATASET_ID, DEMO_DATASET_NAME, DemoSettings, demo_environment, prepare_demo_dataset
from nnunet_ssp.environment import environment_exports
from nnunet_ssp.errors import InputError
from nnunet_ssp.methods import get_method, method_names
from nnunet_ssp.process_group import check_cuda_devices
from nnunet_ssp.roots import raw_dataset_folder
from nnunet_ssp.speed import SpeedSettings, benchmark_speed

FULL_PLANS = "nnUNetPlans"
RESULT_FILE = "device_check.json"
PREDICTED_CASES = 2
DATASET = f"Dataset{DEMO_DATASET_ID:03d}_{DEMO_DATASET_NAME}"


@dataclass(frozen=True)
class CheckSize:
    """How big the check is: the phantom, the schedules and the speed benchmark's rounds."""
    phantom: DemoSettings
    plans: str
    epochs: int
    iters: int
    speed_steps: int
    speed_warmup: int
    speed_loader_batches: int


FULL = CheckSize(DemoSettings(subjects=7, test_subjects=2, image_size=None, num_processes=4), FULL_PLANS,
                 epochs=2, iters=20, speed_steps=5, speed_warmup=2, speed_loader_batches=4)
# 5 training subjects are the fewest the converter splits into 5 folds; the test subject's ED and ES are predicted
TINY = CheckSize(DemoSettings(subjects=6, test_subjects=1, image_size=32, spacing=5.0, num_processes=1),
                 CPU_PLANS_NAME, epochs=2, iters=2, speed_steps=2, speed_warmup=1, speed_loader_batches=2)


@dataclass
class StepResult:
    """One step of the check: what it did, whether it worked, how long it took and CUDA's peak memory."""
    name: str
    ok: bool
    seconds: float
    peak_cuda_mib: Optional[float]
    note: str


@dataclass
class DeviceCheck:
    """The steps done so far, the first failure, and the table of them."""
    device: str
    tiny: bool
    num_gpus: int
    steps: List[StepResult] = field(default_factory=list)
    failure: Optional[str] = None

    def run(self, name: str, action: Callable[[], str]) -> bool:
        """Do one step (`action` returns its note); on an exception record it as the failure and return False."""
        cuda = self.device == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.monotonic()
        try:
            note, ok = action(), True
        except Exception as error:  # a device check reports any failure of a step, whatever its kind
            traceback.print_exc()
            note, ok = " ".join(str(error).split()) or type(error).__name__, False
            self.failure = f"step '{name}' failed: {type(error).__name__}: {note}"
        peak = torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None
        self.steps.append(StepResult(name, ok, time.monotonic() - start, peak, note))
        return ok

    def table(self) -> str:
        """The steps as aligned rows, with the device and the time in total."""
        rows = [("step", "result", "seconds", "peak CUDA MiB", "note")]
        rows += [(s.name, "ok" if s.ok else "FAILED", f"{s.seconds:.1f}",
                  "n/a" if s.peak_cuda_mib is None else f"{s.peak_cuda_mib:.0f}", s.note) for s in self.steps]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join([*(c.ljust(w) for c, w in zip(r[:4], widths)), r[4]]).rstrip() for r in rows]
        device = torch.cuda.get_device_name() if self.device == "cuda" else "cpu"
        total = sum(s.seconds for s in self.steps)
        return "\n".join([f"nnunet-ssp device-check on {device} ({'tiny' if self.tiny else 'nnU-Net-sized'} plans), "
                          f"{total:.0f} s in total", *lines])

    def record(self) -> dict:
        return {"device": self.device, "tiny": self.tiny, "num_gpus": self.num_gpus, "failure": self.failure,
                "steps": [s.__dict__ for s in self.steps]}


def _pretrainer(method: str, size: CheckSize) -> str:
    return f"{get_method(method).trainer}_{size.epochs}epochs_{size.iters}iters"


def _results_folder(trainer: str, plans: str, fold: str) -> Path:
    from nnunetv2.utilities.file_path_utilities import get_output_folder
    return Path(get_output_folder(DATASET, trainer, plans, "2d", fold))


def _train(trainer: str, size: CheckSize, device: str, fold: str, pretrained: Optional[Path] = None) -> str:
    """nnU-Net's `run_training` (the body of nnUNetv2_train); the note says the final losses or validation Dice."""
    from nnunetv2.run.run_training import run_training

    run_training(DATASET, "2d", fold, trainer, size.plans, device=torch.device(device),
                 pretrained_weights=None if pretrained is None else str(pretrained))
    folder = _results_folder(trainer, size.plans, fold)
    if (folder / "ssp_summary.json").is_file():
        summary = json.loads((folder / "ssp_summary.json").read_text())
        return f"train loss {summary['final_train_loss']:.3f}, val loss {summary['final_val_loss']:.3f}"
    summary = json.loads((folder / "validation" / "summary.json").read_text())
    return f"nnU-Net's validation: mean Dice {summary['foreground_mean']['Dice']:.3f}"


def _predict_and_evaluate(trainer: str, size: CheckSize, device: str) -> str:
    """nnU-Net's predictor on the first test cases, then its evaluation; the note says the mean Dice."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder2
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    raw = raw_dataset_folder(DATASET)
    ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    cases = sorted(p.name[:-len(ending)] for p in (raw / "labelsTs").glob(f"*{ending}"))[:PREDICTED_CASES]
    fold = _results_folder(trainer, size.plans, "0")
    predictions = fold / "device_check_predictions"
    predictor = nnUNetPredictor(device=torch.device(device), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(fold.parent), use_folds=(0,))
    predictor.predict_from_files([[str(raw / "imagesTs" / f"{c}_0000{ending}")] for c in cases],
                                 [str(predictions / c) for c in cases], num_processes_preprocessing=1,
                                 num_processes_segmentation_export=1)
    compute_metrics_on_folder2(str(raw / "labelsTs"), str(predictions), str(fold.parent / "dataset.json"),
                               str(fold.parent / "plans.json"), str(predictions / "summary.json"), num_processes=1,
                               chill=True)
    summary = json.loads((predictions / "summary.json").read_text())
    return f"{len(cases)} test cases, mean Dice {summary['foreground_mean']['Dice']:.3f}"


def _speed(size: CheckSize, device: str) -> str:
    """`benchmark-speed` (without prepare-unlabeled); the note says each method's ratios against nnUNetTrainer."""
    report = benchmark_speed(SpeedSettings(
        DATASET, plans=size.plans, device=device, steps=size.speed_steps,
        warmup=size.speed_warmup, loader_batches=size.speed_loader_batches, prepare=False))
    print(report.table())
    notes = []
    for result in report.trainers[1:]:
        ratios = report.trainer_ratios(result)
        memory = ratios.get("cuda_memory_vs_supervised", ratios.get("memory_vs_supervised"))
        notes.append(f"{result.method} img/s x{ratios['images_per_second_vs_supervised']:.2f}"
                     + ("" if memory is None else f" mem x{memory:.2f}"))
    return "vs nnUNetTrainer: " + ", ".join(notes)


def _pretrain_on_processes(size: CheckSize, device: str, processes: int, out: Path) -> str:
    """MIM pretraining on several processes: nnU-Net's `-num_gpus` on CUDA, torchrun on the CPU."""
    from nnunet_ssp.benchmark.steps import nnunet_executable
    from nnunet_ssp.benchmark.runner import call_logged

    trainer = _pretrainer("mim", size)
    train = [nnunet_executable("nnUNetv2_train"), DATASET, "2d", "0", "-p",
             size.plans, "-tr", trainer, "-device", device]
    if device == "cuda":
        argv = train + ["-num_gpus", str(processes)]
    else:
        argv = [nnunet_executable("torchrun"), "--standalone", "--nproc-per-node", str(processes), *train]
    results = out / "results_processes"
    env = {**os.environ, "nnUNet_results": str(results)}
    call_logged(argv, env, out / "processes.log", f"pretraining on {processes} processes")
    return f"{trainer} on {processes} processes; log {out / 'processes.log'}"


def device_check(out: Path, device: str, tiny: bool, num_gpus: int = 1) -> DeviceCheck:
    """Run the check below `out`; the result holds every step done and the first failure, if any."""
    if device not in ("cpu", "cuda"):
        raise InputError(f"-device must be cuda or cpu, not {device!r}.")
    if num_gpus < 1:
        raise InputError(f"-num_gpus must be at least 1, got {num_gpus}.")
    if device == "cuda":
        check_cuda_devices(num_gpus, "-num_gpus")
    size = TINY if tiny else FULL
    out = Path(out).resolve()
    if not tiny:  # nnU-Net's own number of augmentation workers, not the demo's CPU-sized default
        from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
        os.environ.setdefault("nnUNet_n_proc_DA", str(get_allowed_n_proc_DA()))
    demo_environment(out)
    os.environ.setdefault("nnUNet_compile", "false")
    os.environ["nnUNet_extTrainer"] = environment_exports()["nnUNet_extTrainer"]
    check = DeviceCheck(device, tiny, num_gpus)
    steps = [("phantom dataset", lambda: f"plans {size.plans}, dataset "
                                         f"{prepare_demo_dataset(out, size.phantom, size.plans)}")]
    # pretraining and fine-tuning on the same fold, so no validation subject is seen in pretraining
    steps += [(f"pretrain {m}", lambda m=m: _train(_pretrainer(m, size), size, device, "0")) for m in method_names()]
    mim = _results_folder(_pretrainer("mim", size), size.plans, "0") / "checkpoint_final.pth"
    finetuner = f"nnUNetTrainerSSPFinetune_{size.epochs}epochs_{size.iters}iters"
    steps += [("fine-tune from mim", lambda: _train(finetuner, size, device, "0", mim)),
              ("predict and evaluate", lambda: _predict_and_evaluate(finetuner, size, device)),
              ("benchmark-speed", lambda: _speed(size, device))]
    if num_gpus > 1:
        steps.append((f"pretrain mim on {num_gpus} processes",
                      lambda: _pretrain_on_processes(size, device, num_gpus, out)))
    for name, action in steps:
        if not check.run(name, action):
            break
    write_json(check.record(), out / RESULT_FILE)
    return check
