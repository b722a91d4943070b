"""Keep the viewer local and inside RUNS_DIR.

Why: attention maps and videos are unpublished work. The server binds the loopback interface unless the user
asks otherwise, and every file the app opens must resolve (symlinks followed) inside the runs folder, so a
crafted run name, a ``baseline`` entry in meta.json or a symlinked video cannot reach the rest of the disk.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from ..errors import AttnscopeError

LOOPBACK_NAMES = ("localhost",)


class OutsideRunsDirError(AttnscopeError):
    """A path the viewer was asked to open lies outside RUNS_DIR."""


def inside(root: Path, path: str | Path) -> Path:
    """``path`` (absolute, or relative to ``root``) resolved, or an error when it leaves ``root``."""
    root = Path(root).resolve()
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise OutsideRunsDirError(f"{path} is outside the runs folder {root}; the viewer only opens runs inside "
                                  "it (move or copy the run there)")
    return resolved


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_warning(host: str) -> str | None:
    """The warning to print when the server will listen beyond this machine, else None."""
    if is_loopback(host):
        return None
    return (f"warning: serving on {host}: anyone who can reach this address can see the runs in this folder "
            "(there is no login). Use --host 127.0.0.1 to keep the viewer on this machine.")
