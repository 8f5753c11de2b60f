"""What stylelab may replace or delete: only folders and files it made itself.

A run folder, the demo's folder and a ``.partial`` folder are recognised by
their layout: every entry in them is a name stylelab writes (``Layout``). A
folder holding anything else (a user's notes, their photos, the working
folder itself) is never replaced, emptied or removed; the command that would
have done so is refused before any work starts (``check_folder``), and the
replacement itself checks again (``replace_folder``), so a folder that
changed in the meantime is still safe.

Replacing is a swap, not a delete-then-write: the old folder is renamed
aside, the new one renamed into place, and only then is the old one removed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .errors import StylelabError

# What images.atomic_write_bytes leaves when it is killed half-way: ".<name>.<12 hex>.part".
_TEMP_FILE = r"\..+\.[0-9a-f]{12}\.part"
PARTIAL = ".partial"


class UnsafeFolderError(StylelabError):
    """A folder or file that stylelab would have to replace but did not make."""


@dataclass(frozen=True)
class Layout:
    """The names stylelab writes in a folder: files (one regex), sub-folders (name regex -> Layout)."""

    files: str = ""
    dirs: dict[str, Layout] = field(default_factory=dict)

    def holds_only_ours(self, folder: Path) -> bool:
        """Whether every entry under ``folder`` is one stylelab writes (no symlinks, nothing else)."""
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return False
        for entry in entries:
            if entry.is_symlink():
                return False
            if entry.is_dir():
                sub = next((lay for pattern, lay in self.dirs.items() if re.fullmatch(pattern, entry.name)), None)
                if sub is None or not sub.holds_only_ours(Path(entry.path)):
                    return False
            elif not (
                entry.is_file()
                and (re.fullmatch(self.files, entry.name) or re.fullmatch(_TEMP_FILE, entry.name))
                and self.files
            ):
                return False
        return True


RUN_LAYOUT = Layout(
    files=r"recipe\.toml|task\.json|run\.json|metrics\.csv|result\.png|process\.png",
    dirs={
        "snapshots": Layout(files=r"step_\d+\.png"),
        "inputs": Layout(files=r"(content|style_\d+|start|mask_\d+)\.[A-Za-z0-9]+"),
    },
)


def is_run_folder(folder: Path) -> bool:
    """A finished stylelab run folder: a real folder holding only what a run writes, with the
    run.json stylelab wrote (its version and recipe), so a user's folder that merely has a
    result.png in it is not mistaken for one."""
    import json

    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir() or not RUN_LAYOUT.holds_only_ours(folder):
        return False
    try:
        info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "version" in info and isinstance(info.get("recipe"), dict)


def _is_empty_dir(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir())


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def check_folder(
    folder: str | Path,
    *,
    layout: Layout = RUN_LAYOUT,
    recognise=is_run_folder,
    what: str = "run folder",
    option: str = "--run-dir",
    protect: tuple[str | Path, ...] = (),
) -> Path:
    """Refuse, before any work, a folder that stylelab could not replace without loss.

    Allowed: a new folder, an empty one, or one that ``recognise`` says stylelab made
    (a finished run folder), with a ``.partial`` sibling holding only what stylelab
    writes there (``layout``). Refused: the working
    folder or any folder above it, a folder above any ``protect`` path (the output
    image, the inputs), an existing file, a symbolic link, and a folder with
    anything else in it. Returns the folder as an absolute path.
    """
    given = Path(folder).expanduser()
    if str(folder).strip() in ("", ".", ".."):
        raise UnsafeFolderError(f"{option} {folder!s} names the working folder or its parent; name a new folder")
    absolute = Path(os.path.abspath(given))
    resolved = given.resolve()
    if _inside(Path.cwd().resolve(), resolved):
        raise UnsafeFolderError(f"{option} {folder} is the working folder or above it; name a new folder")
    for path in protect:
        if _inside(Path(path).expanduser().resolve(), resolved):
            raise UnsafeFolderError(f"{option} {folder} would hold {path}; put the {what} elsewhere")
    partial = absolute.with_name(absolute.name + PARTIAL)
    for candidate, label, ours in (
        (absolute, what, recognise),
        (partial, f"{what}'s .partial", layout.holds_only_ours),
    ):
        if candidate.is_symlink():
            raise UnsafeFolderError(f"{option} {candidate} is a symbolic link; give the folder itself")
        if candidate.exists() and not candidate.is_dir():
            raise UnsafeFolderError(f"{option} {candidate} is an existing file, not a folder")
        if candidate.is_dir() and not (_is_empty_dir(candidate) or ours(candidate)):
            raise UnsafeFolderError(
                f"{option} {candidate} already exists and holds files stylelab did not write "
                f"there; choose a new folder (stylelab replaces only its own {label}s)"
            )
    parent = absolute.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UnsafeFolderError(f"{option} {folder}: cannot create folders in {parent}")
    return absolute


def remove_ours(folder: Path, layout: Layout = RUN_LAYOUT) -> None:
    """Remove ``folder`` if it holds only what stylelab writes there; refuse otherwise."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir() or not (_is_empty_dir(folder) or layout.holds_only_ours(folder)):
        raise UnsafeFolderError(f"{folder} holds files stylelab did not write; it was left as it is")
    shutil.rmtree(folder)


def replace_folder(new: Path, folder: Path, recognise=is_run_folder) -> None:
    """Put the finished folder ``new`` in place of ``folder``, which must be absent, empty or
    one ``recognise`` says stylelab made.

    The old folder is renamed aside first and removed last, so an interruption in
    between leaves either the old or the new folder in place, never neither.
    """
    new, folder = Path(new), Path(folder)
    if not folder.exists() and not folder.is_symlink():
        new.rename(folder)
        return
    if folder.is_symlink() or not (_is_empty_dir(folder) or recognise(folder)):
        raise UnsafeFolderError(
            f"{folder} appeared or changed while the run went on and holds files stylelab did not write; "
            f"the new run is in {new}"
        )
    aside = folder.with_name(f".{folder.name}.old-{secrets.token_hex(4)}")
    folder.rename(aside)
    try:
        new.rename(folder)
    except BaseException:
        aside.rename(folder)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def check_output_file(path: str | Path, ours, *, option: str = "-o", what: str = "result") -> Path:
    """Refuse, before any work, an output file that exists and was not made by stylelab.

    ``ours(path) -> bool`` says whether an existing file is one stylelab wrote
    (a PNG carrying stylelab's settings, say) and may be replaced.
    """
    path = Path(path).expanduser()
    if path.is_symlink():
        raise UnsafeFolderError(f"{option} {path} is a symbolic link; give a plain file name")
    if path.is_dir():
        raise UnsafeFolderError(f"cannot write {path}: it is a folder")
    if path.exists() and not ours(path):
        raise UnsafeFolderError(
            f"{option} {path} already exists and was not made by stylelab; choose another name (it was left as it is)"
        )
    parent = path.parent.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UnsafeFolderError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UnsafeFolderError(f"cannot write {path}: no permission to write in {parent}")
    return path
