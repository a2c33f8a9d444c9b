"""The synthetic cine phantom through the real `nnunet-ssp synth` CLI, on small images."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ssp.converters.acdc import read_info_cfg
from nnunet_ssp.phantom.acdc_layout import patient_name
from nnunet_ssp.phantom.groups import GROUP_NAMES
from nnunet_ssp.phantom.motion import anatomical_depth, contraction_curve, thickened_wall
from nnunet_ssp.phantom.subject import subject_group

N_SUBJECTS = 5
SIZE = 48
INFO_LINE = {"ED": r"\d+", "ES": r"\d+", "Group": "(NOR|DCM|HCM|MINF|RV)", "Height": r"\d+\.\d",
             "NbFrame": r"\d+", "Weight": r"\d+\.\d"}


def synth(*args: str) -> subprocess.CompletedProcess:
    """Run `nnunet-ssp synth` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "nnunet_ssp.cli", "synth", *args],
                          capture_output=True, text=True)


def make_dataset(folder: Path, seed: int, processes: int) -> Path:
    return make_dataset_with(folder, "-n", str(N_SUBJECTS), "--seed", str(seed), "--size", str(SIZE),
                             "-np", str(processes))


def make_dataset_with(folder: Path, *args: str) -> Path:
    result = synth("-o", str(folder), *args)
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synth") / "a", seed=7, processes=2)


def subjects(folder: Path):
    return sorted(p for p in folder.iterdir() if p.is_dir())


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def frames_of(subject: Path):
    """ED and ES as 1-based frame numbers, and the frame count, from Info.cfg."""
    info = read_info_cfg(subject / "Info.cfg")
    return int(info["ED"]), int(info["ES"]), int(info["NbFrame"])


def all_files(folder: Path):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_whatever_the_processes(dataset, tmp_path):
    again = make_dataset(tmp_path / "b", seed=7, processes=1)
    first, second = all_files(dataset), all_files(again)
    assert len(first) == N_SUBJECTS * 6
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], f"{name} differs between runs"


def test_different_seeds_differ(dataset, tmp_path):
    other = make_dataset(tmp_path / "c", seed=8, processes=1)
    name = Path("patient001") / "patient001_4d.nii.gz"
    assert (dataset / name).read_bytes() != (other / name).read_bytes()


def test_acdc_layout_and_info(dataset):
    names = [s.name for s in subjects(dataset)]
    assert names == [f"patient{i:03d}" for i in range(1, N_SUBJECTS + 1)]
    groups = []
    for subject in subjects(dataset):
        lines = (subject / "Info.cfg").read_text().splitlines()
        assert [line.split(":")[0] for line in lines] == list(INFO_LINE)
        for line, (key, pattern) in zip(lines, INFO_LINE.items()):
            assert re.fullmatch(f"{key}: {pattern}", line), line
        ed, es, n_frames = frames_of(subject)
        assert 15 <= n_frames <= 30 and 1 <= ed <= n_frames and 1 <= es <= n_frames
        assert 0.30 <= ((es - ed) % n_frames) / n_frames <= 0.45
        cine = read(subject / f"{subject.name}_4d.nii.gz")
        assert cine.shape[0] == n_frames and 6 <= cine.shape[1] <= 14 and cine.shape[2:] == (SIZE, SIZE)
        expected = {"Info.cfg", f"{subject.name}_4d.nii.gz"} | {
            f"{subject.name}_frame{f:02d}{suffix}.nii.gz" for f in (ed, es) for suffix in ("", "_gt")}
        assert {p.name for p in subject.iterdir()} == expected
        groups.append(read_info_cfg(subject / "Info.cfg")["Group"])
    assert sorted(groups) == sorted(GROUP_NAMES)


def test_frame_files_equal_the_4d_frames(dataset):
    for subject in subjects(dataset):
        cine = read(subject / f"{subject.name}_4d.nii.gz")
        for frame in frames_of(subject)[:2]:
            image = read(subject / f"{subject.name}_frame{frame:02d}.nii.gz")
            assert image.dtype == cine.dtype
            np.testing.assert_array_equal(image, cine[frame - 1])


def test_labels_cover_the_heart_at_ed_and_es_only(dataset):
    for subject in subjects(dataset):
        ed, es, _ = frames_of(subject)
        assert len(list(subject.glob("*_gt.nii.gz"))) == 2
        for frame in (ed, es):
            labels = read(subject / f"{subject.name}_frame{frame:02d}_gt.nii.gz")
            assert set(np.unique(labels)) <= {0, 1, 2, 3}
            middle = labels[labels.shape[0] // 2]
            for value in (1, 2, 3):
                assert (middle == value).any(), f"{subject.name} frame {frame}: label {value} missing mid-ventricle"
            assert not (labels[-1] == 1).any(), f"{subject.name} frame {frame}: RV on the most apical slice"


def test_myocardial_volume_is_kept_through_the_cycle(dataset):
    for subject in subjects(dataset):
        ed, es, _ = frames_of(subject)
        myo_ed = (read(subject / f"{subject.name}_frame{ed:02d}_gt.nii.gz") == 2).sum()
        myo_es = (read(subject / f"{subject.name}_frame{es:02d}_gt.nii.gz") == 2).sum()
        assert abs(myo_es / myo_ed - 1) < 0.15, subject.name
        lv_ed = (read(subject / f"{subject.name}_frame{ed:02d}_gt.nii.gz") == 3).sum()
        lv_es = (read(subject / f"{subject.name}_frame{es:02d}_gt.nii.gz") == 3).sum()
        assert lv_es < lv_ed, f"{subject.name}: the LV cavity does not contract"


def test_geometry_runs_base_to_apex(dataset):
    apex = np.array([1.0, -1.0, -1.0])
    for subject in subjects(dataset):
        cine = sitk.ReadImage(str(subject / f"{subject.name}_4d.nii.gz"))
        direction = np.array(cine.GetDirection()).reshape(4, 4)[:3, :3]
        assert direction[:, 2] @ apex > 0
        assert np.allclose(direction.T @ direction, np.eye(3), atol=1e-4)
        frame = sitk.ReadImage(str(next(subject.glob("*_frame??.nii.gz"))))
        labels = sitk.ReadImage(str(next(subject.glob("*_gt.nii.gz"))))
        for image in (frame, labels):
            assert np.allclose(np.array(image.GetDirection()).reshape(3, 3), direction, atol=1e-5)
            assert np.allclose(image.GetOrigin(), cine.GetOrigin()[:3], atol=1e-3)
            assert np.allclose(image.GetSpacing(), cine.GetSpacing()[:3], atol=1e-5)
        spacing = cine.GetSpacing()
        assert spacing[0] == pytest.approx(spacing[1]) and 6.0 <= spacing[2] <= 10.0


def test_spacing_alone_keeps_the_field_of_view(tmp_path):
    out = make_dataset_with(tmp_path / "s", "-n", "1", "--spacing", "4.0")
    cine = sitk.ReadImage(str(out / "patient001" / "patient001_4d.nii.gz"))
    assert cine.GetSpacing()[0] == pytest.approx(4.0)
    assert 200 <= cine.GetSize()[0] * 4.0 <= 280


def test_preview_without_output_folder(tmp_path):
    png = tmp_path / "preview.png"
    result = synth("--preview", str(png), "-n", "2", "--size", "40")
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [png]


@pytest.mark.parametrize("args, message", [
    (["-n", "0"], "The number of subjects must be at least 1, got 0."),
    (["-n", "1", "--size", "8"], "The image size must be between 16 and 1024 pixels, got 8."),
    (["-n", "1", "--spacing", "-1"], "The pixel spacing must be between 0.5 and 10.0 mm, got -1.0 mm."),
    (["-n", "1", "-np", "0"], "The number of processes must be at least 1, got 0."),
    ([], "Give the number of subjects to write into {out} with -n."),
])
def test_bad_input_gives_one_clear_sentence(tmp_path, args, message):
    out = tmp_path / "out"
    result = synth("-o", str(out), *args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"nnunet-ssp synth: error: {message.format(out=out)}"
    assert not out.exists()


def test_output_path_that_is_a_file_is_refused(tmp_path):
    out = tmp_path / "taken.txt"
    out.write_text("keep me")
    result = synth("-o", str(out), "-n", "1", "--size", "32")
    assert result.returncode == 2
    assert result.stderr.strip() == f"nnunet-ssp synth: error: The output path {out} is an existing file, not a folder."
    assert out.read_text() == "keep me"


def test_nothing_asked_for_is_refused():
    result = synth("-n", "1")
    assert result.returncode == 2
    assert "Give an output folder with -o, a preview picture with --preview, or both." in result.stderr


def test_patient_names_widen_beyond_999():
    assert patient_name(7, 20) == "patient007"
    assert patient_name(7, 1200) == "patient0007"


def test_every_block_of_five_holds_each_group_once():
    for seed in (0, 1):
        for block in range(3):
            groups = [subject_group(seed, block * 5 + i) for i in range(1, 6)]
            assert sorted(groups) == sorted(GROUP_NAMES)


def test_contraction_curve_peaks_at_es_and_returns_to_ed():
    curve = contraction_curve(25, ed=3, es=12, atrial_share=0.25, rapid_filling_end=0.4, atrial_start=0.7)
    assert curve[3] == 0 and curve[12] == 1 and curve.argmax() == 12
    assert (curve >= 0).all() and (curve <= 1).all()
    assert (np.diff(curve[3:13]) > 0).all()
    assert np.abs(np.diff(np.r_[curve, curve[0]])).max() < 0.4


def test_wall_thickening_keeps_the_myocardial_volume():
    r_endo, r_epi = np.array([20.0, 5.0, 0.0]), np.array([29.0, 12.0, 6.0])
    length, descent, contraction = 90.0, 12.0, np.array([1.0])
    endo, epi = thickened_wall(r_endo, r_epi, np.array(0.35), contraction, length, descent)
    assert endo[0] == pytest.approx(13.0)
    before = (r_epi ** 2 - r_endo ** 2) * length
    after = (epi ** 2 - endo ** 2) * (length - descent)
    np.testing.assert_allclose(after, before, rtol=1e-5)
    assert anatomical_depth(length, contraction, length, descent)[0] == pytest.approx(length)
    assert anatomical_depth(descent, contraction, length, descent)[0] == pytest.approx(0.0)
