"""Map a requested TFTP filename onto a regular file inside the served root, or refuse.

RFC 1350 leaves filenames to the server; this is the one place that decides which
names are safe. Rules, in order:

* NUL anywhere -> AccessViolation (TFTP error 2).
* Backslashes become "/" (Windows-flavoured firmware and WDS loaders ask "boot\\x64\\...").
* Leading "/" is stripped: firmware asks for "/pxelinux.0" as often as "pxelinux.0",
  both mean the file at the top of the root.
* Any ".." component -> AccessViolation, even one that would stay inside the root.
* After resolving symlinks the result must still be inside the root -> else AccessViolation.
* Missing -> FileNotFound (TFTP error 1); a directory or other non-regular file ->
  AccessViolation. A Windows-style request (with backslashes) that misses is looked up
  again ignoring case, component by component, as Windows loaders expect
  ("Boot\\x64\\WDSNBP.COM" finds boot/x64/wdsnbp.com); the result obeys the same rules.

The mapping from these exceptions to TFTP error codes is done by the server, once.
There is an inherent check-then-open race if the tree under `root` is writable by an
untrusted party; the served root is expected to be owned by the appliance.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["AccessViolation", "FileNotFound", "PathError", "normalise", "resolve"]


class PathError(Exception):
    """A requested name cannot be served; `requested` is the name as the client sent it."""

    def __init__(self, requested: str, reason: str) -> None:
        super().__init__(f"{reason}: {requested!r}")
        self.requested = requested
        self.reason = reason


class AccessViolation(PathError):
    """Hostile or unservable name (TFTP error 2)."""


class FileNotFound(PathError):
    """No such file under the root (TFTP error 1)."""


def _components(requested: str) -> list[str]:
    """Split a client-supplied name into safe relative components, or raise."""
    if "\0" in requested:
        raise AccessViolation(requested, "NUL in filename")
    parts = requested.replace("\\", "/").lstrip("/").split("/")
    if ".." in parts:
        raise AccessViolation(requested, "'..' component in filename")
    return [part for part in parts if part not in ("", ".")]


def normalise(requested: str) -> str:
    """The root-relative name `requested` means ("/a\\b" -> "a/b"); hostile -> AccessViolation.

    This is the name handed to dynamic-file providers, which never see ".." or NUL.
    """
    return "/".join(_components(requested))


def resolve(root: Path, requested: str) -> Path:
    """Return the real path of the regular file `requested` names under `root`.

    Raises AccessViolation or FileNotFound (both PathError); never returns a path outside
    `root` (symlinks inside the tree are followed only while they stay inside it).
    """
    parts = _components(requested)
    real_root = Path(os.path.realpath(root))
    if "\\" in requested and not os.path.lexists(real_root.joinpath(*parts)):
        parts = _casefold_match(real_root, parts) or parts
    try:
        real = Path(os.path.realpath(real_root.joinpath(*parts)))
    except (OSError, ValueError, UnicodeError) as exc:
        raise FileNotFound(requested, f"unresolvable name ({exc})") from None
    if not real.is_relative_to(real_root):
        raise AccessViolation(requested, "resolves outside the root")
    try:
        mode = os.stat(real).st_mode
    except PermissionError:
        raise AccessViolation(requested, "permission denied") from None
    except (OSError, ValueError, UnicodeError):
        raise FileNotFound(requested, "no such file") from None
    if stat.S_ISDIR(mode):
        raise AccessViolation(requested, "is a directory")
    if not stat.S_ISREG(mode):
        raise AccessViolation(requested, "not a regular file")
    return real


def _casefold_match(root: Path, parts: list[str]) -> list[str] | None:
    """The on-disk spelling of `parts` under `root` ignoring case, or None (one unique
    match per component, no guessing between "A" and "a")."""
    found: list[str] = []
    here = root
    for part in parts:
        try:
            names = [n for n in os.listdir(here) if n.casefold() == part.casefold()]
        except OSError:
            return None
        if len(names) != 1:
            return None
        found.append(names[0])
        here = here / names[0]
    return found
