"""Learning-rate schedules: nnU-Net's poly decay reproduced, warm-up, and per-group ratios kept."""

import pytest
import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

from nnunet_ssp.schedules import EpochLRSchedule


def _optimizer(scales=(1.0,)):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr_scale": s} for s in scales]
    return torch.optim.SGD(groups, lr=1.0)


def test_poly_without_warmup_equals_nnunets_scheduler():
    ours, theirs = _optimizer(), _optimizer()
    schedule, poly = EpochLRSchedule(ours, 0.01, 50), PolyLRScheduler(theirs, 0.01, 50)
    for epoch in range(50):
        schedule.step(epoch)
        poly.step(epoch)
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"])


def test_warmup_rises_linearly_to_the_peak_then_decays():
    optimizer = _optimizer()
    schedule = EpochLRSchedule(optimizer, 0.01, 20, warmup_epochs=4)
    rates = []
    for epoch in range(20):
        schedule.step(epoch)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[:4] == pytest.approx([0.002, 0.004, 0.006, 0.008])
    assert rates[4] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(rates[4:], rates[5:]))


def test_cosine_decays_from_peak_towards_final_rate():
    optimizer = _optimizer()
    schedule = EpochLRSchedule(optimizer, 1.0, 10, decay="cosine", final_lr=0.1)
    schedule.step(0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0)
    schedule.step(5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.55)


@pytest.mark.parametrize("decay", ["poly", "cosine"])
def test_per_group_ratios_are_kept_through_warmup_and_decay(decay):
    optimizer = _optimizer((1.0, 0.1, 0.5))
    schedule = EpochLRSchedule(optimizer, 0.02, 30, warmup_epochs=5, decay=decay)
    for epoch in range(29):
        schedule.step(epoch)
        lrs = [g["lr"] for g in optimizer.param_groups]
        assert lrs[0] > 0
        assert lrs[1] == pytest.approx(0.1 * lrs[0]) and lrs[2] == pytest.approx(0.5 * lrs[0])


def test_bad_schedule_arguments_are_refused():
    with pytest.raises(ValueError, match="decay"):
        EpochLRSchedule(_optimizer(), 0.01, 10, decay="step")
    with pytest.raises(ValueError, match="warmup_epochs"):
        EpochLRSchedule(_optimizer(), 0.01, 10, warmup_epochs=10)


# (decay, warm-up epochs, final rate, peak) -> the rate of each of 10 epochs, as the schedules gave them when they were
# written by hand, before warm-up and poly decay became nnU-Net's own schedulers
PINNED_CURVES = {
    ("poly", 0, 0.0, 0.01): [0.01, 0.00909532576083, 0.00818052146051, 0.00725417846937, 0.00631445867489,
                             0.00535886731268, 0.00438383290554, 0.00338383461902, 0.00234923788618, 0.00125892541179],
    ("poly", 3, 0.0, 0.01): [0.0025, 0.005, 0.0075, 0.01, 0.00870458136859, 0.0073872835295, 0.00604318314479,
                             0.00466466965667, 0.00323846166192, 0.00173544863434],
    ("cosine", 0, 0.0, 0.1): [0.1, 0.0975528258148, 0.0904508497187, 0.0793892626146, 0.0654508497187, 0.05,
                              0.0345491502813, 0.0206107373854, 0.00954915028125, 0.00244717418524],
    ("cosine", 2, 1e-6, 0.05): [0.0166666666667, 0.0333333333333, 0.05, 0.048097026373, 0.0426778159763,
                                0.0345673944674, 0.0250005, 0.0154336055326, 0.00732318402373, 0.00190397362698],
}


@pytest.mark.parametrize("case", PINNED_CURVES)
def test_learning_rate_curves_stay_as_pinned(case):
    decay, warmup, final, peak = case
    optimizer = _optimizer((1.0, 0.1))
    schedule = EpochLRSchedule(optimizer, peak, 10, warmup, decay, final)
    for epoch, expected in enumerate(PINNED_CURVES[case]):
        schedule.step(epoch)
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([expected, 0.1 * expected], rel=1e-10)
