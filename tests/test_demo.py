"""The demo's data preparation resumes an interrupted preprocessing instead of trusting the plans file (slow)."""

import pytest

from nnunet_ssp.demo import DemoSettings, demo_environment, prepare_demo_dataset


@pytest.mark.slow
def test_demo_completes_an_interrupted_preprocessing(tmp_path, monkeypatch, capsys):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_def_n_proc", "nnUNet_n_proc_DA"):
        monkeypatch.setenv(name, "1")  # so that what demo_environment sets is undone after the test
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(name)
    settings = DemoSettings(subjects=6, test_subjects=1, image_size=32, num_processes=1)
    demo_environment(tmp_path)
    name = prepare_demo_dataset(tmp_path, settings)
    cases = tmp_path / "nnUNet_preprocessed" / name / "nnUNetPlansCPU_2d"
    properties = sorted(cases.glob("*.pkl"))
    assert len(properties) == 10  # ED and ES of the five training subjects
    properties[0].unlink()  # as a preprocessing killed before it wrote this case's .pkl leaves it
    capsys.readouterr()
    prepare_demo_dataset(tmp_path, settings)
    assert "3/4 Planning (CPU-sized network) and preprocessing" in capsys.readouterr().out
    assert sorted(cases.glob("*.pkl")) == properties
    prepare_demo_dataset(tmp_path, settings)
    assert "3/4" not in capsys.readouterr().out
