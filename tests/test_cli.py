"""The command line: help on every subcommand, and one-sentence errors instead of tracebacks."""

import shlex
import subprocess

import pytest

from nnunet_ssp.cli import COMMAND_MODULES, build_parser, main


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert len(commands) >= len(COMMAND_MODULES)
    for name in commands:
        with pytest.raises(SystemExit) as exit_code:
            main([name, "--help"])
        assert exit_code.value.code == 0
        assert f"usage: nnunet-ssp {name}" in capsys.readouterr().out


def test_plan_cpu_with_an_unknown_dataset_says_so(nnunet_env, capsys):
    assert main(["plan-cpu", "-d", "999"]) == 2
    assert "There is no dataset with ID 999" in capsys.readouterr().err


def test_env_output_is_safe_to_eval(monkeypatch, tmp_path, capsys):
    odd = tmp_path / 'a "quoted" $HOME `dir`'
    monkeypatch.setenv("nnUNet_raw", str(odd))
    main(["env"])
    exports = capsys.readouterr().out
    shown = subprocess.run(["bash", "-c", exports + '\nprintf %s "$nnUNet_raw"'], capture_output=True, text=True)
    assert shown.stdout == str(odd)
    assert shlex.quote(str(odd)) in exports


@pytest.mark.parametrize("flag", ["--labeled", "--labelled"])  # the second spelling kept as an alias
def test_demo_takes_both_spellings_of_labeled(flag, capsys):
    assert main(["demo", flag, "0"]) == 2
    assert "--labeled, --epochs and --iters must be at least 1." in capsys.readouterr().err
