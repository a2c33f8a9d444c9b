"""Two gloo processes on the CPU give the loss and gradients of one process on the joined batch.

Convention under test (see nnunet_ssp.methods.distributed): every rank returns the global loss, input gradients
on a rank are the single-process gradients of that rank's samples, and DDP-averaged parameter gradients times the
world size are the single-process parameter gradients.
"""

import socket
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from nnunet_ssp.methods.dino import DINOLoss, update_teacher
from nnunet_ssp.methods.distributed import all_reduce_mean, gather_with_grad, global_sample_offset
from nnunet_ssp.methods.pcl import PositionalContrastiveLoss
from nnunet_ssp.methods.simclr import NTXentLoss

WORLD_SIZE = 2
SPLITS = {"unequal": [3, 2], "equal": [2, 2]}
METHODS = ["ntxent", "pcl", "dino"]
IN_DIM, OUT_DIM, N_STUDENT_CROPS = 5, 6, 4


def joined_batch(n):
    """Inputs of the whole global batch: two views, slice positions and DINO crops."""
    generator = torch.Generator().manual_seed(n)
    return {
        "views": torch.randn(2, n, IN_DIM, generator=generator, dtype=torch.float64),
        "positions": torch.tensor([0.0, 0.05, 0.5, 0.53, 0.9][:n], dtype=torch.float64),
        "crops": torch.randn(N_STUDENT_CROPS, n, IN_DIM, generator=generator, dtype=torch.float64),
    }


def linear_layer(seed):
    torch.manual_seed(seed)
    return torch.nn.Linear(IN_DIM, OUT_DIM).double()


def method_loss(method, batch, student, teacher, dino_loss):
    """The method's loss on `batch` with embeddings from `student` (one forward, as DDP needs)."""
    if method == "dino":
        student_out = list(student(batch["crops"].reshape(-1, IN_DIM)).reshape(N_STUDENT_CROPS, -1, OUT_DIM))
        with torch.no_grad():
            teacher_out = list(teacher(batch["crops"][:2]))
        return dino_loss(teacher_out, student_out, epoch=3)
    z_a, z_b = student(batch["views"].reshape(-1, IN_DIM)).chunk(2)
    if method == "ntxent":
        return NTXentLoss(gather_distributed=True)(z_a, z_b)
    return PositionalContrastiveLoss(threshold=0.1, gather_distributed=True)(z_a, z_b, batch["positions"])


def run_method(method, batch, student, parameters):
    """Loss, input gradients and parameter gradients; for DINO also the centre and the teacher after one step."""
    batch = {key: value.clone().requires_grad_(key != "positions") for key, value in batch.items()}
    teacher, dino_loss = linear_layer(seed=1), DINOLoss(out_dim=OUT_DIM, gather_distributed=True).double()
    loss = method_loss(method, batch, student, teacher, dino_loss)
    loss.backward()
    result = {"loss": loss.detach(), "parameter_grads": [p.grad.clone() for p in parameters],
              "input_grads": {key: batch[key].grad for key in ("views", "crops") if batch[key].grad is not None}}
    if method == "dino":
        with torch.no_grad():
            for p in parameters:
                p -= 0.5 * p.grad
        update_teacher(teacher, student.module if isinstance(student, DistributedDataParallel) else student, 0.9)
        result |= {"center": dino_loss.center.clone(), "teacher": [p.clone() for p in teacher.parameters()]}
    return result


def local_slice(batch, offset, size):
    return {key: value[..., offset:offset + size, :] if value.ndim == 3 else value[offset:offset + size]
            for key, value in batch.items()}


def worker(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE,
                            timeout=timedelta(seconds=60))
    results = {}
    for split_name, sizes in SPLITS.items():
        size = sizes[rank]
        offset = global_sample_offset(size)
        batch = local_slice(joined_batch(sum(sizes)), offset, size)
        results[split_name] = {"offset": offset, "gathered": gather_with_grad(batch["positions"]),
                               "mean": all_reduce_mean(torch.tensor([float(rank), 10.0 * size]))}
        for method in METHODS:
            student = DistributedDataParallel(linear_layer(seed=0))
            results[split_name][method] = run_method(method, batch, student, list(student.parameters()))
    torch.save(results, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("two_ranks")
    mp.spawn(worker, args=(free_port(), str(out_dir)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


def single_process(split_name, method):
    student = linear_layer(seed=0)
    return run_method(method, joined_batch(sum(SPLITS[split_name])), student, list(student.parameters()))


@pytest.mark.parametrize("split_name", SPLITS)
def test_offsets_gather_and_mean_are_rank_consistent(rank_results, split_name):
    sizes = SPLITS[split_name]
    assert [r[split_name]["offset"] for r in rank_results] == [0, sizes[0]]
    for result in rank_results:
        assert torch.equal(result[split_name]["gathered"], joined_batch(sum(sizes))["positions"])
        assert torch.equal(result[split_name]["mean"], torch.tensor([0.5, 5.0 * sum(sizes)]))


@pytest.mark.parametrize("split_name", SPLITS)
@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_give_the_single_process_loss_and_gradients(rank_results, split_name, method):
    reference = single_process(split_name, method)
    ddp_grads = [r[split_name][method]["parameter_grads"] for r in rank_results]
    assert torch.equal(ddp_grads[0][0], ddp_grads[1][0])  # DDP gives every rank the same averaged gradient
    for expected, averaged in zip(reference["parameter_grads"], ddp_grads[0]):
        torch.testing.assert_close(WORLD_SIZE * averaged, expected, rtol=1e-10, atol=1e-12)
    for rank, result in enumerate(rank_results):
        local = result[split_name][method]
        torch.testing.assert_close(local["loss"], reference["loss"], rtol=1e-12, atol=0)
        offset, size = result[split_name]["offset"], SPLITS[split_name][rank]
        for key, grad in reference["input_grads"].items():
            torch.testing.assert_close(local["input_grads"][key], grad[:, offset:offset + size], rtol=1e-10,
                                       atol=1e-12)


@pytest.mark.parametrize("split_name", SPLITS)
def test_two_ranks_share_the_dino_centre_and_teacher(rank_results, split_name):
    reference = single_process(split_name, "dino")
    first, second = (r[split_name]["dino"] for r in rank_results)
    assert first["center"].abs().sum() > 0
    for result in (first, second):
        torch.testing.assert_close(result["center"], reference["center"], rtol=1e-12, atol=1e-15)
    assert all(torch.equal(a, b) for a, b in zip(first["teacher"], second["teacher"]))
    assert not torch.equal(first["teacher"][0], linear_layer(seed=1).weight)
