"""SimCLR, PCL and DINO pieces against slow, obvious references written as loops over pairs."""

import math

import copy

import pytest
import torch
from helpers import build_unet

from nnunet_ssp.methods.dino import DINO, DINOLoss, update_teacher
from nnunet_ssp.schedules import cosine_schedule
from nnunet_ssp.methods.heads import DINOHead, ProjectionHead, global_average_pool
from nnunet_ssp.methods.pcl import PositionalContrastiveLoss
from nnunet_ssp.positions import normalised_positions
from nnunet_ssp.methods.probes import embedding_spread, knn_accuracy
from nnunet_ssp.methods.simclr import NTXentLoss

SEEDS = [0, 1, 2]
BATCH_SIZES = [1, 2, 5]


def cosine(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u @ v) / (u.norm() * v.norm())


def contrastive_reference(z_a, z_b, temperature, is_positive):
    """Mean over the 2N views i of -mean_{p positive} log(exp(s_ip/T) / sum_{a != i} exp(s_ia/T)), as loops.

    `is_positive(i, j)` decides for two different views; views 0..N-1 are first views, N..2N-1 second views.
    """
    views = list(z_a) + list(z_b)
    total = 0.0
    for i, anchor in enumerate(views):
        denominator = sum(torch.exp(cosine(anchor, other) / temperature)
                          for a, other in enumerate(views) if a != i)
        terms = [torch.log(torch.exp(cosine(anchor, views[p]) / temperature) / denominator)
                 for p in range(len(views)) if p != i and is_positive(i, p)]
        total = total - sum(terms) / len(terms)
    return total / len(views)


def same_image(n):
    return lambda i, j: i % n == j % n


def pcl_positive(positions, threshold):
    n = len(positions)
    return lambda i, j: i % n == j % n or abs(float(positions[i % n]) - float(positions[j % n])) < threshold


def random_views(seed, n, dim=7, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    z_a = torch.randn(n, dim, generator=generator, dtype=dtype, requires_grad=True)
    z_b = torch.randn(n, dim, generator=generator, dtype=dtype, requires_grad=True)
    positions = torch.rand(n, generator=generator, dtype=dtype)
    return z_a, z_b, positions


def assert_same_value_and_gradients(loss, reference, inputs):
    assert loss.item() == pytest.approx(reference.item(), rel=1e-10, abs=1e-12)
    for got, expected in zip(torch.autograd.grad(loss, inputs), torch.autograd.grad(reference, inputs)):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", BATCH_SIZES)
def test_ntxent_matches_loop_reference(seed, n):
    z_a, z_b, _ = random_views(seed, n)
    assert_same_value_and_gradients(NTXentLoss(temperature=0.1)(z_a, z_b),
                                    contrastive_reference(z_a, z_b, 0.1, same_image(n)), [z_a, z_b])


def test_ntxent_temperature_changes_the_loss():
    z_a, z_b, _ = random_views(3, 4)
    assert NTXentLoss(temperature=0.5)(z_a, z_b).item() == pytest.approx(
        contrastive_reference(z_a, z_b, 0.5, same_image(4)).item(), rel=1e-10)
    assert NTXentLoss(temperature=0.5)(z_a, z_b).item() != pytest.approx(NTXentLoss(0.1)(z_a, z_b).item())


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", BATCH_SIZES)
@pytest.mark.parametrize("threshold", [0.1, 0.35])
def test_pcl_matches_loop_reference(seed, n, threshold):
    z_a, z_b, positions = random_views(seed, n)
    loss = PositionalContrastiveLoss(temperature=0.1, threshold=threshold)(z_a, z_b, positions)
    reference = contrastive_reference(z_a, z_b, 0.1, pcl_positive(positions, threshold))
    assert_same_value_and_gradients(loss, reference, [z_a, z_b])


def test_pcl_reference_case_has_extra_positives():
    z_a, z_b, _ = random_views(0, 5)
    positions = torch.tensor([0.0, 0.05, 0.5, 0.52, 1.0], dtype=torch.float64)
    loss = PositionalContrastiveLoss(threshold=0.1)(z_a, z_b, positions)
    assert loss.item() == pytest.approx(contrastive_reference(z_a, z_b, 0.1, pcl_positive(positions, 0.1)).item())
    assert loss.item() != pytest.approx(NTXentLoss()(z_a, z_b).item())


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", BATCH_SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pcl_with_threshold_zero_equals_ntxent_exactly(seed, n, dtype):
    z_a, z_b, positions = random_views(seed, n, dtype=dtype)
    positions[: n // 2] = 0.5  # identical positions are still not positives at threshold 0
    assert torch.equal(PositionalContrastiveLoss(threshold=0.0)(z_a, z_b, positions), NTXentLoss()(z_a, z_b))


def test_pcl_positions_exactly_threshold_apart_are_not_positives():
    z_a, z_b, _ = random_views(1, 2)
    positions = torch.tensor([0.0, 0.25], dtype=torch.float64)
    assert torch.equal(PositionalContrastiveLoss(threshold=0.25)(z_a, z_b, positions), NTXentLoss()(z_a, z_b))


@pytest.mark.parametrize("base_to_apex", [True, False])
def test_pcl_treats_all_neighbours_of_a_float32_ten_slice_stack_alike(base_to_apex):
    """Neighbours are 0.1 apart; in float32 5 of the 9 differences round below 0.1, yet none is a positive."""
    positions = torch.from_numpy(normalised_positions(10, base_to_apex)).to(torch.float32)
    gaps = (positions[1:] - positions[:-1]).abs()
    assert 0 < int((gaps < 0.1).sum()) < 9  # the rounding the rule must absorb
    z_a, z_b, _ = random_views(4, 10, dtype=torch.float32)
    assert torch.equal(PositionalContrastiveLoss(threshold=0.1)(z_a, z_b, positions), NTXentLoss()(z_a, z_b))
    # two stacks: the only extra positives are the slices at the same position in the other stack
    two_stacks = torch.cat([positions, positions.flip(0)])
    z_a, z_b, _ = random_views(5, 20, dtype=torch.float32)
    same_place = pcl_positive(two_stacks.double(), 1e-3)
    expected = contrastive_reference(z_a.double(), z_b.double(), 0.1, same_place)
    loss = PositionalContrastiveLoss(threshold=0.1)(z_a, z_b, two_stacks)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [2, 5])
def test_pcl_with_threshold_above_one_makes_every_pair_positive(seed, n):
    z_a, z_b, positions = random_views(seed, n)
    positions[0], positions[-1] = 0.0, 1.0
    loss = PositionalContrastiveLoss(threshold=1.01)(z_a, z_b, positions)
    assert_same_value_and_gradients(loss, contrastive_reference(z_a, z_b, 0.1, lambda i, j: True), [z_a, z_b])


def dino_reference(teacher_out, student_out, center, teacher_temperature, student_temperature=0.1):
    """Mean over samples and over (teacher crop i, student crop j != i) of -sum_k P_t[k] log P_s[k], as loops."""
    total, n_terms = 0.0, 0
    for i, teacher in enumerate(teacher_out):
        for j, student in enumerate(student_out):
            if i == j:
                continue
            for b in range(teacher.shape[0]):
                t_exp = [math.exp((float(teacher[b, k]) - float(center[k])) / teacher_temperature)
                         for k in range(teacher.shape[1])]
                s_logits = [student[b, k] / student_temperature for k in range(student.shape[1])]
                s_log_normaliser = torch.log(sum(torch.exp(s) for s in s_logits))
                total = total - sum(t / sum(t_exp) * (s - s_log_normaliser) for t, s in zip(t_exp, s_logits))
                n_terms += 1
    return total / n_terms


def random_crops(seed, n, n_student, dim=6, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    teacher = [scale * torch.randn(n, dim, generator=generator, dtype=torch.float64) for _ in range(2)]
    student = [(scale * torch.randn(n, dim, generator=generator, dtype=torch.float64)).requires_grad_()
               for _ in range(n_student)]
    return teacher, student


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("n_student", [2, 5])
@pytest.mark.parametrize("epoch", [0, 7, 45])
def test_dino_loss_matches_loop_reference_and_moves_centre(seed, n, n_student, epoch):
    teacher, student = random_crops(seed, n, n_student)
    loss_fn = DINOLoss(out_dim=6).double()
    old_center = torch.randn(6, generator=torch.Generator().manual_seed(seed + 100), dtype=torch.float64)
    loss_fn.center.copy_(old_center)
    loss = loss_fn(teacher, student, epoch)
    reference = dino_reference(teacher, student, old_center, loss_fn.teacher_temperature_at(epoch))
    assert_same_value_and_gradients(loss, reference, student)
    teacher_mean = sum(t.sum(dim=0) for t in teacher) / (2 * n)
    torch.testing.assert_close(loss_fn.center[0], 0.9 * old_center + 0.1 * teacher_mean, rtol=1e-12, atol=1e-12)


def test_dino_centre_moves_by_the_ema_formula_over_steps_and_is_saved():
    loss_fn = DINOLoss(out_dim=4, center_momentum=0.9)
    expected = torch.zeros(4)
    for step in range(3):
        teacher, student = random_crops(step, 3, 4, dim=4)
        teacher = [t.float() for t in teacher]
        loss_fn(teacher, [s.float() for s in student], epoch=step)
        expected = 0.9 * expected + 0.1 * torch.cat(teacher).mean(dim=0)
    torch.testing.assert_close(loss_fn.center[0], expected)
    assert expected.abs().sum() > 0
    resumed = DINOLoss(out_dim=4)
    resumed.load_state_dict(loss_fn.state_dict())
    assert torch.equal(resumed.center, loss_fn.center)


def test_dino_centre_stays_in_eval_mode():
    loss_fn = DINOLoss(out_dim=6).double().eval()
    loss_fn(*random_crops(0, 3, 4), epoch=0)
    assert torch.equal(loss_fn.center, torch.zeros(1, 6, dtype=torch.float64))


def test_dino_centring_changes_the_loss():
    teacher, student = random_crops(0, 3, 4)
    plain = DINOLoss(out_dim=6).double()(teacher, student, epoch=40)
    centred = DINOLoss(out_dim=6).double()
    centred.center.copy_(torch.linspace(-2, 2, 6))
    assert centred(teacher, student, epoch=40).item() != pytest.approx(plain.item())


def test_teacher_temperature_warms_up_linearly_then_stays():
    loss_fn = DINOLoss(warmup_teacher_temperature=0.02, teacher_temperature=0.04, warmup_teacher_epochs=30)
    assert loss_fn.teacher_temperature_at(0) == pytest.approx(0.02)
    assert loss_fn.teacher_temperature_at(10) == pytest.approx(0.02 + 0.02 * 10 / 29)
    assert loss_fn.teacher_temperature_at(29) == pytest.approx(0.04)
    assert loss_fn.teacher_temperature_at(30) == loss_fn.teacher_temperature_at(500) == 0.04
    assert DINOLoss(warmup_teacher_epochs=0).teacher_temperature_at(0) == 0.04
    assert DINOLoss(warmup_teacher_epochs=1).teacher_temperature_at(0) == 0.02


def test_cosine_schedule_endpoints_and_midpoint():
    assert cosine_schedule(0, 0.996, 1.0, 100) == pytest.approx(0.996)
    assert cosine_schedule(50, 0.996, 1.0, 100) == pytest.approx(0.998)
    assert cosine_schedule(100, 0.996, 1.0, 100) == 1.0
    assert cosine_schedule(250, 0.996, 1.0, 100) == 1.0
    values = [cosine_schedule(step, 0.1, 0.0, 100) for step in range(101)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_cosine_schedule_warmup():
    assert cosine_schedule(0, 0.0075, 1e-6, 100, warmup_steps=10) == 0.0
    assert cosine_schedule(5, 0.0075, 1e-6, 100, warmup_steps=10, warmup_start=0.001) == pytest.approx(0.00425)
    assert cosine_schedule(10, 0.0075, 1e-6, 100, warmup_steps=10) == pytest.approx(0.0075)
    assert cosine_schedule(55, 0.0075, 1e-6, 100, warmup_steps=10) == pytest.approx((0.0075 + 1e-6) / 2)
    assert cosine_schedule(100, 0.0075, 1e-6, 100, warmup_steps=10) == 1e-6
    assert cosine_schedule(100, 0.0075, 1e-6, 100, warmup_steps=100) == 1e-6


def tiny_network(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_update_teacher_is_the_ema_of_parameters_and_copies_buffers():
    teacher, student = tiny_network(0), tiny_network(1)
    student(torch.randn(8, 3))  # moves the student's BatchNorm running statistics
    before = {name: p.clone() for name, p in teacher.named_parameters()}
    update_teacher(teacher, student, momentum=0.75)
    for name, p in teacher.named_parameters():
        torch.testing.assert_close(p, 0.75 * before[name] + 0.25 * dict(student.named_parameters())[name])
    for name, buffer in teacher.named_buffers():
        assert torch.equal(buffer, dict(student.named_buffers())[name])
    update_teacher(teacher, student, momentum=0.0)
    assert all(torch.equal(t, s) for t, s in zip(teacher.parameters(), student.parameters()))


def test_update_teacher_gives_bit_for_bit_the_per_parameter_ema():
    teacher, student = tiny_network(0), tiny_network(1)
    expected = [t.detach().clone().mul_(0.996).add_(s.detach(), alpha=1 - 0.996)
                for t, s in zip(teacher.parameters(), student.parameters())]
    update_teacher(teacher, student, momentum=0.996)
    assert all(torch.equal(t, e) for t, e in zip(teacher.parameters(), expected))


def test_dino_student_head_runs_once_over_all_crops():
    """DINO.forward against a plain step whose head sees the pooled features of all crops in one batch, so the
    head's BatchNorm statistics span global and local crops together (the study's multi-crop wrapper)."""
    torch.manual_seed(0)
    network = build_unet()
    method = DINO(network, 1, [16, 16], num_epochs=10, out_dim=32, num_local_crops=2)
    views = [torch.randn(3, 1, 16, 16) for _ in range(2)] + [torch.randn(3, 1, 8, 8) for _ in range(2)]
    plain_network, plain_method = copy.deepcopy(network), copy.deepcopy(method)
    separate_method = copy.deepcopy(method)
    loss = method(network, views, None, epoch=4)
    loss.backward()
    global_crops = torch.cat(views[:2])
    with torch.no_grad():
        teacher = plain_method.teacher_head(plain_method.teacher_encoder(global_crops)[-1]).chunk(2)
    pooled = torch.cat([global_average_pool(plain_network.encoder(global_crops)[-1]),
                        global_average_pool(plain_network.encoder(torch.cat(views[2:]))[-1])])
    reference = plain_method.loss(teacher, plain_method.head.project(pooled).chunk(4), 4)
    reference.backward()
    assert torch.equal(loss, reference)
    assert torch.equal(method.loss.center, plain_method.loss.center)
    for (name, p), q in zip([*network.encoder.named_parameters(), *method.head.named_parameters()],
                            [*plain_network.encoder.parameters(), *plain_method.head.parameters()]):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)
    # the head's BatchNorm saw all 12 crops at once: its running mean moved by 0.1 x their mean
    first_linear = method.head.mlp[0](pooled.detach())
    torch.testing.assert_close(method.head.mlp[1].running_mean, 0.1 * first_linear.mean(dim=0))
    # heads run separately on global and local crops normalise with other statistics and give another loss
    student = [*separate_method.head(network.encoder(global_crops)[-1]).chunk(2),
               *separate_method.head(network.encoder(torch.cat(views[2:]))[-1]).chunk(2)]
    assert not torch.allclose(separate_method.loss(teacher, student, 4), reference)


def test_dino_teacher_has_its_own_initialisation_unless_copied():
    torch.manual_seed(0)
    network = build_unet(features=(8, 16, 64))
    own = DINO(network, 1, [16, 16], num_epochs=10, out_dim=32)
    copied = DINO(network, 1, [16, 16], num_epochs=10, out_dim=32, teacher_init="copy")
    student = dict(network.encoder.named_parameters())
    for name, p in own.teacher_encoder.named_parameters():
        assert not p.requires_grad and p.shape == student[name].shape
        if p.ndim > 1:  # filters: drawn afresh by nnU-Net's own initialisation (He, biases 0), not copied
            assert not torch.equal(p, student[name]), name
            assert 0.8 < float(p.detach().std() / student[name].detach().std()) < 1.25, name
        else:
            assert torch.equal(p, student[name]), name  # biases 0, norm weights 1 as in the student
    assert any(not torch.equal(t, s) for t, s in zip(own.teacher_head.parameters(), own.head.parameters()))
    assert all(torch.equal(t, s) for t, s in zip(copied.teacher_encoder.parameters(), network.encoder.parameters()))
    assert all(torch.equal(t, s) for t, s in zip(copied.teacher_head.parameters(), copied.head.parameters()))
    with pytest.raises(ValueError, match="teacher_init must be one of own, copy"):
        DINO(network, 1, [16, 16], num_epochs=10, out_dim=32, teacher_init="student")


def test_dino_crops_use_the_study_scales_and_blur():
    from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform

    method = DINO(build_unet(), 1, [32, 32], num_epochs=10, out_dim=32)
    views = method.view_transforms([32, 32], (-3.14, 3.14), (0, 1), None)
    assert len(views) == 8

    def settings(view):
        (spatial,) = [t for t in view.transforms if isinstance(t, SpatialTransform)]
        (blur,) = [t for t in view.transforms if isinstance(getattr(t, "transform", None), GaussianBlurTransform)]
        return tuple(spatial.patch_size), spatial.scaling, blur.apply_probability, blur.transform.blur_sigma

    first, second, local = (settings(views[i]) for i in (0, 1, 2))
    assert first[:2] == second[:2] == ((32, 32), pytest.approx((0.524, 1.4), abs=1e-3))  # 14-100 % of 1.4^2
    assert local[:2] == ((16, 16), pytest.approx((0.313, 0.524), abs=1e-3))
    assert (first[2], first[3]) == (1.0, (0.1, 2.0))
    assert (second[2], second[3]) == (local[2], local[3]) == (0.1, (0.5, 1.5))


def test_dino_optimiser_groups_leave_biases_and_norms_without_weight_decay():
    network = build_unet()
    method = DINO(network, 1, [16, 16], num_epochs=10, out_dim=32)
    trained = [p for p in [*network.encoder.parameters(), *method.parameters()] if p.requires_grad]
    decayed, free = method.parameter_groups(trained)
    assert "weight_decay" not in decayed and free["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} | {id(p) for p in free["params"]} == {id(p) for p in trained}
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in free["params"])
    norms = [m for m in [*network.encoder.modules(), *method.head.modules()]
             if isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm1d))]
    assert norms and all(any(m.weight is p for p in free["params"]) for m in norms)
    assert any(network.encoder.stages[0][0].convs[0].conv.bias is p for p in free["params"])
    assert DINO.peak_lr(64) == pytest.approx(0.0075)  # the study: 0.03 x 64 / 256
    assert DINO.peak_lr(12) == pytest.approx(0.03 * 12 / 256)


def test_update_teacher_refuses_other_architectures_and_bad_momentum():
    with pytest.raises(ValueError, match="same architecture"):
        update_teacher(tiny_network(0), torch.nn.Sequential(torch.nn.Linear(3, 4)), 0.9)
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\], got 1.5"):
        update_teacher(tiny_network(0), tiny_network(1), 1.5)


def test_global_average_pool_is_the_spatial_mean():
    feature_map = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(global_average_pool(feature_map), torch.tensor([[1.5, 5.5, 9.5], [13.5, 17.5, 21.5]]))
    with pytest.raises(ValueError, match="N x C x H x W feature map, got shape \\(2, 3\\)"):
        global_average_pool(torch.zeros(2, 3))


def test_projection_head_layers_and_widths():
    head = ProjectionHead(32)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 512), (512, 512), (512, 512)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in head.modules()) == 2
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules()) == 2
    assert isinstance(head.mlp[-1], torch.nn.Linear)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in ProjectionHead(32, batch_norm=False).modules())
    assert head(torch.randn(3, 32, 4, 4)).shape == (3, 512)
    assert ProjectionHead(8, widths=(16, 4))(torch.randn(2, 8, 3, 3)).shape == (2, 4)
    with pytest.raises(ValueError, match="at least one positive width"):
        ProjectionHead(8, widths=())


def test_dino_head_shape_and_unit_norm_prototypes():
    head = DINOHead(16, hidden_dim=32, bottleneck_dim=8, out_dim=50)
    assert head(torch.randn(4, 16, 3, 3)).shape == (4, 50)
    assert [m.num_features for m in head.modules() if isinstance(m, torch.nn.BatchNorm1d)] == [32, 32]
    assert sum(isinstance(m, torch.nn.GELU) for m in head.modules()) == 2
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(50))
    assert head.last_layer.bias is None
    with pytest.raises(ValueError, match="widths must be positive"):
        DINOHead(16, out_dim=0)


def test_dino_head_cancel_last_layer_gradients():
    head = DINOHead(16, hidden_dim=32, bottleneck_dim=8, out_dim=50)
    head(torch.randn(4, 16, 3, 3)).square().sum().backward()
    assert head.last_layer.parametrizations.weight.original1.grad.abs().sum() > 0
    head.cancel_last_layer_gradients()
    assert all(p.grad is None for p in head.last_layer.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.mlp.parameters())
    gain = head.last_layer.parametrizations.weight.original0
    assert not gain.requires_grad and torch.equal(gain, torch.ones_like(gain))
    before = head.last_layer.weight.clone()
    torch.optim.SGD(head.parameters(), lr=1.0, momentum=0.9, weight_decay=0.1).step()
    assert torch.equal(head.last_layer.weight, before)


def test_embedding_spread_zero_for_identical_and_about_inverse_sqrt_d_for_uniform():
    assert embedding_spread(torch.ones(10, 16) * 3) == pytest.approx(0.0, abs=1e-7)
    uniform = torch.randn(4000, 64, generator=torch.Generator().manual_seed(0))
    assert embedding_spread(uniform) == pytest.approx(1 / math.sqrt(64), rel=0.03)
    with pytest.raises(ValueError, match="at least two samples"):
        embedding_spread(torch.ones(1, 16))


def clusters(n_per_class, n_classes, dim, seed, noise):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=generator) * 5
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    return centres[labels] + noise * torch.randn(len(labels), dim, generator=generator), labels


def test_knn_accuracy_on_separable_clusters_and_random_labels():
    train_z, train_labels = clusters(20, 4, 16, seed=0, noise=0.1)
    test_z, test_labels = clusters(10, 4, 16, seed=0, noise=0.1)
    assert knn_accuracy(train_z, train_labels, test_z, test_labels, k=5) == 1.0
    generator = torch.Generator().manual_seed(1)
    random_train, random_test = torch.randn(400, 16, generator=generator), torch.randn(2000, 16, generator=generator)
    accuracy = knn_accuracy(random_train, torch.randint(0, 4, (400,), generator=generator),
                            random_test, torch.randint(0, 4, (2000,), generator=generator), k=5)
    assert 0.2 < accuracy < 0.3


def test_knn_accuracy_ties_go_to_the_smallest_label():
    train_z = torch.tensor([[1.0, 0.0], [0.9, 0.1]])
    assert knn_accuracy(train_z, torch.tensor([3, 1]), torch.tensor([[1.0, 0.0]]), torch.tensor([1]), k=2) == 1.0
    assert knn_accuracy(train_z, torch.tensor([3, 1]), torch.tensor([[1.0, 0.0]]), torch.tensor([3]), k=1) == 1.0


@pytest.mark.parametrize("build, message", [
    (lambda: NTXentLoss(temperature=0.0), "temperature must be positive because the similarities are divided by it"),
    (lambda: PositionalContrastiveLoss(temperature=-1.0), "temperature must be positive"),
    (lambda: PositionalContrastiveLoss(threshold=-0.1), "threshold must be zero or positive"),
    (lambda: DINOLoss(out_dim=0), "out_dim must be positive"),
    (lambda: DINOLoss(teacher_temperature=0.0), "teacher_temperature must be positive"),
    (lambda: DINOLoss(warmup_teacher_epochs=-1), "warmup_teacher_epochs must be zero or positive"),
    (lambda: DINOLoss(center_momentum=1.1), r"center_momentum must lie in \[0, 1\]"),
])
def test_bad_arguments_are_refused_with_a_plain_message(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("call, message", [
    (lambda: NTXentLoss()(torch.zeros(3, 4), torch.zeros(2, 4)), r"same shape, got \(3, 4\) and \(2, 4\)"),
    (lambda: NTXentLoss()(torch.zeros(0, 4), torch.zeros(0, 4)), "non-empty N x D"),
    (lambda: PositionalContrastiveLoss()(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(2)),
     r"one value per slice, shape \(3,\), got \(2,\)"),
    (lambda: PositionalContrastiveLoss()(torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor([0.0, 3.0])),
     r"positions in \[0, 1\]"),
    (lambda: DINOLoss(out_dim=4)([torch.zeros(2, 4)] * 2, [torch.zeros(2, 4)], 0), "at least as many student crops"),
    (lambda: DINOLoss(out_dim=4)([torch.zeros(2, 5)] * 2, [torch.zeros(2, 5)] * 3, 0), "shape N x 4"),
    (lambda: DINOLoss(out_dim=4)([torch.zeros(2, 4)] * 2, [torch.zeros(2, 4)] * 3, -1), "epoch counts from 0"),
    (lambda: cosine_schedule(0, 1.0, 0.0, total_steps=10, warmup_steps=11), "0 <= warmup_steps <= total_steps"),
    (lambda: cosine_schedule(-1, 1.0, 0.0, total_steps=10), "step counts from 0"),
    (lambda: knn_accuracy(torch.zeros(3, 2), torch.zeros(3), torch.zeros(1, 2), torch.zeros(1), k=4),
     r"k must lie between 1 and the number of train embeddings \(3\)"),
    (lambda: knn_accuracy(torch.zeros(3, 2), torch.zeros(2), torch.zeros(1, 2), torch.zeros(1)), "one label per"),
    (lambda: knn_accuracy(torch.zeros(3, 2), -torch.ones(3), torch.zeros(1, 2), torch.zeros(1)), "non-negative"),
])
def test_bad_inputs_are_refused_with_a_plain_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_ntxent_matches_lightly():
    from lightly import loss as lightly_loss  # the test extra installs lightly as an oracle
    for seed in SEEDS:
        z_a, z_b, _ = random_views(seed, 6, dim=16, dtype=torch.float32)
        torch.testing.assert_close(NTXentLoss(temperature=0.1)(z_a, z_b),
                                   lightly_loss.NTXentLoss(temperature=0.1)(z_a, z_b))


def test_dino_loss_and_centre_match_lightly():
    from lightly import loss as lightly_loss
    ours = DINOLoss(out_dim=32)
    theirs = lightly_loss.DINOLoss(output_dim=32, warmup_teacher_temp=0.02, teacher_temp=0.04,
                                   warmup_teacher_temp_epochs=30, student_temp=0.1, center_momentum=0.9)
    for step, epoch in enumerate([0, 12, 29, 60]):
        teacher, student = random_crops(step, 5, 8, dim=32, scale=3.0)
        teacher, student = [t.float() for t in teacher], [s.detach().float() for s in student]
        torch.testing.assert_close(ours(teacher, student, epoch), theirs(teacher, student, epoch=epoch))
        torch.testing.assert_close(ours.center, theirs.center.reshape(1, 32))
