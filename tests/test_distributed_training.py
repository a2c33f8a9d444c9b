"""Pretraining on several processes through torchrun and nnUNetv2_train, on the CPU with gloo.

The trainers are `nnUNetTrainerSSPProbe_<METHOD>` (tests/probe_trainers): the real SSP trainers, seeded per global
rank and writing what each rank saw and ended with (`probe_rank<R>.pt`). With nnUNet_n_proc_DA=0 every random draw
(network initialisation, slice sampling, nnU-Net's augmentation, masks and crops) happens in the seeded process, so
two launches whose processes get the same global ranks must train bit for bit the same weights; gloo adds the two
ranks' gradients in the same order in both, so the comparison is exact, not within a tolerance.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnunet_ssp.environment import trainer_path

PROBE_TRAINERS = Path(__file__).resolve().parent / "probe_trainers"
DATASET = "Dataset501_Phantom"
PLANS = "nnUNetPlansCPU"
TIMEOUT = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def torchrun_argv(nodes: int, processes: int, node_rank: int, port: int, trainer: str, *extra: str) -> list:
    """`torchrun ... nnUNetv2_train 501 2d all -tr <trainer> -device cpu`, rendezvous on localhost."""
    bin_dir = Path(sys.executable).parent
    return [str(bin_dir / "torchrun"), "--nnodes", str(nodes), "--nproc-per-node", str(processes),
            "--node-rank", str(node_rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{port}",
            str(bin_dir / "nnUNetv2_train"), DATASET, "2d", "all", "-p", PLANS, "-tr", trainer, *extra]


def probe_env(phantom_roots, results: Path, epochs: int = 1) -> dict:
    results.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "nnUNet_raw": str(phantom_roots["nnUNet_raw"]),
            "nnUNet_preprocessed": str(phantom_roots["nnUNet_preprocessed"]), "nnUNet_results": str(results),
            "nnUNet_extTrainer": os.pathsep.join([str(trainer_path()), str(PROBE_TRAINERS)]),
            "nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1", "nnUNet_compile": "false",
            "SSP_PROBE_EPOCHS": str(epochs), "SSP_PROBE_SEED": "7"}


def launch(commands: list, envs: list, logs: list) -> None:
    """Start every command at once (the nodes of one rendezvous), wait, and fail with the logs if one failed."""
    processes = []
    for argv, env, log in zip(commands, envs, logs):
        with open(log, "w") as f:
            processes.append(subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=TIMEOUT) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    if any(codes):
        pytest.fail("\n".join(f"exit {c}, {log}:\n{Path(log).read_text()[-4000:]}" for c, log in zip(codes, logs)))


def fold_folder(results: Path, trainer: str) -> Path:
    return results / DATASET / f"{trainer}__{PLANS}__2d" / "fold_all"


def two_nodes(phantom_roots, out: Path, trainer: str) -> list:
    """`torchrun --nnodes 2 --nproc-per-node 1` twice on this machine, each "node" with its own nnUNet_results (no
    shared file system); returns both fold folders."""
    port, results = free_port(), [out / "node0", out / "node1"]
    launch([torchrun_argv(2, 1, rank, port, trainer, "-device", "cpu") for rank in (0, 1)],
           [probe_env(phantom_roots, r) for r in results], [out / f"node{rank}.log" for rank in (0, 1)])
    return [fold_folder(r, trainer) for r in results]


def one_node(phantom_roots, results: Path, trainer: str, epochs: int = 1, *extra: str) -> Path:
    """`torchrun --nnodes 1 --nproc-per-node 2`; returns the fold folder."""
    launch([torchrun_argv(1, 2, 0, free_port(), trainer, "-device", "cpu", *extra)],
           [probe_env(phantom_roots, results, epochs)], [results.parent / f"{results.name}_{epochs}.log"])
    return fold_folder(results, trainer)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def plans_batch_size(phantom_roots) -> int:
    plans = phantom_roots["nnUNet_preprocessed"] / DATASET / f"{PLANS}.json"
    return json.loads(plans.read_text())["configurations"]["2d"]["batch_size"]


def assert_ranks_agree(rank0: dict, rank1: dict, global_loss: bool, batch_size: int) -> None:
    """Both ranks end with the same weights and method state, took their share of the plans' batch (rank 0 the
    larger half, as nnU-Net splits it), and (for a loss over the gathered batch) computed the same loss."""
    assert (rank0["world_size"], rank1["world_size"], rank0["device"], rank1["device"]) == (2, 2, "cpu", "cpu")
    assert set(rank0["batch_sizes"]) == {(batch_size + 1) // 2} and set(rank1["batch_sizes"]) == {batch_size // 2}
    assert_same_tensors(rank0["network"], rank1["network"])
    assert_same_tensors(rank0["method"], rank1["method"])
    assert not all(torch.equal(rank0["network"][k], rank0["start_network"][k]) for k in rank0["network"])
    if global_loss:
        assert rank0["losses"] == rank1["losses"]
    else:
        assert rank0["losses"] != rank1["losses"]


@pytest.fixture(scope="module")
def dino_two_nodes(phantom_roots, tmp_path_factory):
    out = tmp_path_factory.mktemp("two_nodes")
    return out, two_nodes(phantom_roots, out, "nnUNetTrainerSSPProbe_DINO")


def test_two_torchrun_nodes_train_dino_and_only_rank_0_writes_checkpoints(phantom_roots, dino_two_nodes):
    _, folders = dino_two_nodes
    # the rendezvous, not --node-rank, orders the ranks: rank 0 is whichever node joined first
    rank0_folder, rank1_folder = sorted(folders, key=lambda f: not (f / "probe_rank0.pt").exists())
    assert (rank1_folder / "probe_rank1.pt").exists()
    assert sorted(p.name for p in rank0_folder.glob("checkpoint_*.pth")) == ["checkpoint_best.pth",
                                                                             "checkpoint_final.pth"]
    assert not list(rank1_folder.glob("checkpoint_*")) and not (rank1_folder / "ssp_summary.json").exists()
    rank0, rank1 = load(rank0_folder / "probe_rank0.pt"), load(rank1_folder / "probe_rank1.pt")
    batch_size = plans_batch_size(phantom_roots)
    assert_ranks_agree(rank0, rank1, True, batch_size)
    assert rank0["method"]["loss.center"].abs().sum() > 0  # the centre moved, the same on both ranks
    checkpoint = load(rank0_folder / "checkpoint_final.pth")
    assert_same_tensors(checkpoint["network_weights"], rank0["network"])
    hyper = checkpoint["ssp"]["hyperparameters"]
    assert (hyper["processes"], hyper["batch_size"], hyper["batch_size_per_process"]) == \
        (2, batch_size, (batch_size + 1) // 2)


@pytest.mark.slow
def test_two_nodes_give_the_same_run_as_two_processes_of_one_node(phantom_roots, dino_two_nodes, tmp_path):
    out, folders = dino_two_nodes
    rank0_folder = next(f for f in folders if (f / "probe_rank0.pt").exists())
    single = one_node(phantom_roots, tmp_path / "one_node", "nnUNetTrainerSSPProbe_DINO")
    nodes, local = load(rank0_folder / "checkpoint_final.pth"), load(single / "checkpoint_final.pth")
    assert nodes.keys() == local.keys() and nodes["ssp"].keys() == local["ssp"].keys()
    assert nodes["ssp"]["hyperparameters"] == local["ssp"]["hyperparameters"]
    assert nodes["logging"]["train_losses"] == local["logging"]["train_losses"]
    assert_same_tensors(nodes["network_weights"], local["network_weights"])
    assert_same_tensors(nodes["ssp"]["resume"]["method_state"], local["ssp"]["resume"]["method_state"])
    for rank in (0, 1):
        probe = next(f for f in folders if (f / f"probe_rank{rank}.pt").exists()) / f"probe_rank{rank}.pt"
        assert load(probe)["losses"] == load(single / f"probe_rank{rank}.pt")["losses"]


@pytest.mark.slow
@pytest.mark.parametrize("method,global_loss", [("SimCLR", True), ("PCL", True), ("MIM", False)])
def test_two_processes_train_and_resume_with_c(phantom_roots, tmp_path, method, global_loss):
    trainer = f"nnUNetTrainerSSPProbe_{method}"
    folder = one_node(phantom_roots, tmp_path / "results", trainer, 1)
    first = load(folder / "checkpoint_final.pth")
    assert_ranks_agree(load(folder / "probe_rank0.pt"), load(folder / "probe_rank1.pt"), global_loss,
                       plans_batch_size(phantom_roots))
    one_node(phantom_roots, tmp_path / "results", trainer, 2, "--c")
    resumed = load(folder / "checkpoint_final.pth")
    assert (first["current_epoch"], resumed["current_epoch"]) == (1, 2)
    assert resumed["logging"]["train_losses"][0] == first["logging"]["train_losses"][0]
    assert len(resumed["logging"]["train_losses"]) == 2
    for rank in (0, 1):
        probe = load(folder / f"probe_rank{rank}.pt")
        assert probe["start_epoch"] == 1  # both ranks continued from the checkpoint, not from scratch
        assert_same_tensors(probe["start_network"], first["network_weights"])
    assert_ranks_agree(load(folder / "probe_rank0.pt"), load(folder / "probe_rank1.pt"), global_loss,
                       plans_batch_size(phantom_roots))


def test_more_cuda_processes_than_devices_stop_with_one_sentence(phantom_roots, tmp_path):
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available >= 2:
        pytest.skip("this machine has two CUDA devices")
    results = tmp_path / "results"
    argv = torchrun_argv(1, 2, 0, free_port(), "nnUNetTrainerSSP_MIM_1epochs_2iters", "-device", "cuda")
    log = tmp_path / "cuda.log"
    with open(log, "w") as f:
        code = subprocess.run(argv, env=probe_env(phantom_roots, results), stdout=f, stderr=subprocess.STDOUT,
                              timeout=TIMEOUT).returncode
    text = log.read_text()
    assert code != 0
    visible = "no CUDA device is" if available == 0 else "only 1 CUDA device is"
    assert f"InputError: torchrun --nproc-per-node asks for 2 CUDA processes on this machine, but {visible}" in text
    assert not list(results.rglob("*")), "nothing may be written before the check"
