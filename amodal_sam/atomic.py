"""Atomic file output: write to a temporary name beside the target, then rename over it.

Temporary names are ``.NAME.HOST-PID.RANDOM.tmp``. A process killed mid-write (``kill -9``)
leaves its temporary behind; the first write of a later process into the same folder removes
the ones whose process (on this host) no longer runs.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_TEMPORARY = re.compile(r"^\..+\.(?P<host>[^.]+)-(?P<pid>\d+)\.[^.]+\.tmp$")
_swept: set[Path] = set()


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries in ``folder`` left by dead processes of this host; returns them."""
    host, removed = _host(), []
    for entry in Path(folder).glob(".*.tmp"):
        match = _TEMPORARY.match(entry.name)
        if match and match["host"] == host and not _alive(int(match["pid"])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed to ``path``.

    A crash or an exception leaves ``path`` as it was (absent, or its old content) and removes
    the temporary file, so readers never see a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    if folder not in _swept:
        _swept.add(folder)
        remove_stale_temporaries(folder)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.{_host()}-{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.chmod(temporary_path, 0o666 & ~_current_umask())  # mkstemp makes 0600; give what open() would
        os.replace(temporary_path, path)
    finally:
        if temporary_path.exists():
            temporary_path.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
