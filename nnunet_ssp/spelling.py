"""One spelling of "labeled", as the CLI and nnU-Net spell it; files written with the older British spelling still
read, their keys, columns and settings taken in the current one."""

from typing import Any

OLD_SPELLING = "labelled"
SPELLING = "labeled"


def respelled(text: str) -> str:
    """`text` in the current spelling."""
    return text.replace(OLD_SPELLING, SPELLING)


def respelled_keys(value: Any) -> Any:
    """`value` with the keys of every dict in it (nested in dicts and lists too) in the current spelling."""
    if isinstance(value, dict):
        return {respelled(k) if isinstance(k, str) else k: respelled_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [respelled_keys(v) for v in value]
    return value
