"""Write files under a temporary name and rename, so a crash never leaves a half-written file."""

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Union

PathLike = Union[str, os.PathLike]


# read once at import (os.umask can only be read by setting it, which would race with threads creating files)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _default_permissions(path: Path) -> None:
    """Give a private temporary file or folder the permissions a newly created one would have (umask)."""
    path.chmod((0o777 if path.is_dir() else 0o666) & ~_UMASK)


@contextmanager
def atomic_path(target: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    _default_permissions(tmp)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(target: PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; move it onto `target` only if the block succeeds.

    An existing `target` is renamed aside first and deleted only once the new folder is in place.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    _default_permissions(tmp)
    old = target.parent / f".{target.name}.old.{tmp.name}"
    try:
        yield tmp
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)


def write_json(obj: Any, target: PathLike) -> None:
    """Write `obj` as indented JSON to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(text: str, target: PathLike) -> None:
    """Write `text` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
