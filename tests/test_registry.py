"""The method registry: every list of methods (trainers, variants, benchmark grid, CLI choices, speed benchmark,
recipe versions) comes from it, so a method registered there appears everywhere, and nowhere once removed."""

import pickle
from types import SimpleNamespace

import pytest

from nnunet_ssp.methods import METHODS, Method

TOY = Method("toy", "nnunet_ssp.methods.simclr:SimCLR", "nnUNetTrainerSSP_Toy", "encoder_two_views", 3)


@pytest.fixture
def toy_method(monkeypatch):
    """The toy method registered for one test; its trainer and variant classes removed afterwards."""
    from nnunet_ssp import pretrain, variants

    monkeypatch.setitem(METHODS, TOY.name, TOY)
    yield TOY
    vars(pretrain).pop(TOY.trainer, None)
    for name in [n for n in variants._cache if n.startswith(TOY.trainer)]:
        del variants._cache[name]


def _choices(argv_start, option):
    """The choices the real `nnunet-ssp` parser offers for `option` of a subcommand."""
    from nnunet_ssp.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._subparsers._group_actions if a.choices).choices[argv_start]
    return next(a for a in sub._actions if option in a.option_strings).choices


def test_a_registered_method_appears_in_every_derived_list(toy_method, nnunet_env):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_ssp import pretrain, variants
    from nnunet_ssp.benchmark import BenchmarkSettings, Layout, plan_runs
    from nnunet_ssp.benchmark.markers import run_identity
    from nnunet_ssp.speed import SpeedSettings, timed_trainers
    from nnunet_ssp.speed.passes import TIMED_PASSES, network_passes

    assert "toy" in _choices("benchmark", "--methods") and "toy" in _choices("benchmark-speed", "--methods")

    trainer = recursive_find_trainer_class_by_name("nnUNetTrainerSSP_Toy")  # nnU-Net's own lookup
    assert trainer is pretrain.nnUNetTrainerSSP_Toy and trainer.method_name == "toy"
    assert issubclass(trainer, pretrain.nnUNetTrainerSSP) and pickle.loads(pickle.dumps(trainer)) is trainer
    assert "nnUNetTrainerSSP_Toy" in variants.base_trainers()
    variant = recursive_find_trainer_class_by_name("nnUNetTrainerSSP_Toy_3epochs_labeledOnly")
    assert variant.__bases__ == (trainer,)

    settings = BenchmarkSettings("1", subjects=(1,), seeds=(0,), pretrain_epochs=2, iters=3)
    assert "toy" in settings.methods
    runs = plan_runs(settings, {(1, 0): 5})
    pretraining = next(r for r in runs if r.method == "toy" and r.kind == "pretrain")
    assert pretraining.trainer == "nnUNetTrainerSSP_Toy_2epochs_3iters"
    layout = Layout(nnunet_env["nnUNet_results"], "Dataset001_X", "P")
    assert run_identity(pretraining, layout)["pretrain_recipe"] == 3

    assert "toy" in SpeedSettings("1").methods and timed_trainers(["toy"]) == ["nnUNetTrainerSSP_Toy"]
    assert network_passes(SimpleNamespace(method_name="toy")) is TIMED_PASSES["encoder_two_views"]


def test_an_unregistered_method_is_nowhere(nnunet_env):
    from nnunet_ssp import pretrain, variants
    from nnunet_ssp.benchmark import BenchmarkSettings
    from nnunet_ssp.errors import InputError

    assert "toy" not in _choices("benchmark", "--methods")
    assert not hasattr(pretrain, "nnUNetTrainerSSP_Toy") and variants.trainer_class("nnUNetTrainerSSP_Toy") is None
    with pytest.raises(InputError, match="Methods must be some of simclr, pcl, dino, mim, not toy"):
        BenchmarkSettings("1", methods=("toy",))


def test_the_four_methods_and_their_names():
    """Trainer names and recipe versions are contracts: checkpoints and benchmark markers carry them."""
    assert {m.name: (m.trainer, m.recipe_version) for m in METHODS.values()} == {
        "simclr": ("nnUNetTrainerSSP_SimCLR", 2), "pcl": ("nnUNetTrainerSSP_PCL", 3),
        "dino": ("nnUNetTrainerSSP_DINO", 2), "mim": ("nnUNetTrainerSSP_MIM", 2)}
    for method in METHODS.values():
        assert method.load_class().name == method.name
