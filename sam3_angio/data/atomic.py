"""All-or-nothing output folders: write into a hidden temporary sibling, rename into place at the end.

An interrupted generation or conversion leaves no folder at the output path (or the previous one,
untouched); a complete folder carries ``manifest.json``, written last.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

from sam3_angio.errors import UserError

PathLike = Union[str, Path]

MANIFEST = "manifest.json"


class OutputExistsError(UserError, FileExistsError):
    """The output folder exists and replacing it was not asked for."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_complete(folder: PathLike) -> bool:
    """True when ``folder`` was written to the end (it holds ``manifest.json``)."""
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: PathLike) -> dict:
    with open(Path(folder) / MANIFEST, encoding="utf-8") as f:
        return json.load(f)


def write_manifest(folder: PathLike, manifest: dict) -> None:
    with open(Path(folder) / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


def _non_empty(p: Path) -> bool:
    return p.exists() and (not p.is_dir() or any(p.iterdir()))


def check_output_dir(out: PathLike, what: str = "--out") -> None:
    """An output folder that can be made: its nearest existing ancestor is a writable folder (not a
    file). Raised as a UserError naming the path, before any work is done."""
    from sam3_angio.errors import UserError

    probe = Path(os.path.abspath(out))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir() and probe == Path(os.path.abspath(out)):
        return
    if not probe.is_dir():
        raise UserError(f"{what} '{out}': '{probe}' is a file, not a folder; choose another output folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} '{out}': '{probe}' is not writable; choose another output folder")


def check_free_output(out: PathLike, overwrite: bool = False) -> None:
    """:func:`check_output_dir`, and ``out`` is missing or empty unless ``overwrite``: what
    :func:`atomic_output_dir` checks on entry, for a tool to call before its slow work starts."""
    check_output_dir(out)
    if _non_empty(Path(out)) and not overwrite:
        raise OutputExistsError(
            f"output folder '{out}' already exists and is not empty; choose another folder or pass "
            f"--overwrite (overwrite=True) to replace it (the old one is kept until the new one is "
            f"complete)"
        )


@contextmanager
def atomic_output_dir(out: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``out``; on success it becomes ``out``.

    On any exception (including KeyboardInterrupt) the temporary folder is removed and ``out`` is left
    as it was. With ``overwrite`` an existing ``out`` is replaced only once the new one is complete.
    """
    out = Path(out)
    check_free_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        _commit(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp: Path, out: Path, overwrite: bool) -> None:
    old = None
    if out.exists():
        if _non_empty(out) and not overwrite:
            raise OutputExistsError(f"output folder '{out}' appeared while writing; not replacing it")
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            old.rmdir()
            os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError as e:
        if old is not None and not out.exists():
            os.rename(old, out)  # put the previous data set back
        raise OutputExistsError(f"could not move the new data into '{out}': {e}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
