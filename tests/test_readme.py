"""The README's quickstart and CI agree: `.ci/run` runs exactly the README's test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks():
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def _block_with(word: str) -> str:
    blocks = [block for block in _bash_blocks() if word in block]
    assert blocks, f"the README has no bash block with {word}"
    return blocks[0]


def test_readme_has_a_demo_command_and_a_test_command():
    assert _block_with("nnunet-ssp demo").startswith("pip install")
    assert "pytest" in _block_with("pytest")


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci_lines[-1] == _block_with("pytest")
