"""Atomic file output: write to a temporary name beside the target, then rename over it.

Temporary names are ``.NAME.HOST-PID.RANDOM.tmp``. A process killed mid-write (``kill -9``)
leaves its temporary behind; the first write of a later process into the same folder removes
the ones whose process (on this host) no longer runs.

A folder of outputs that belong together (a scene's masks and their index) is published the
same way (:func:`atomic_folder`): written in a temporary folder beside it, then swapped in whole.
"""

from __future__ import annotations

import os
import re
import shutil
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
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
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
    handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.chmod(temporary_path, 0o666 & ~_current_umask())  # mkstemp makes 0600; give what open() would
        os.replace(temporary_path, path)
    finally:
        if temporary_path.exists():
            temporary_path.unlink()


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` whole
    (an earlier ``path`` is renamed aside, the new one renamed in, the old one removed).

    A reader sees the old folder or the new one, never a mix of the two runs' files; a crash or an
    exception leaves ``path`` as it was. Files of the old folder that the new one lacks go with
    it, so callers check first that ``path`` holds nothing but their own earlier outputs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    staging = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_current_umask())  # mkdtemp makes 0700; give what mkdir would
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent))
            os.replace(path, retired)  # an empty folder is replaced by a rename
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _temporary_prefix(path: Path) -> str:
    """``.NAME.HOST-PID.``: the start of a temporary's name beside ``path`` (see the module)."""
    return f".{path.name}.{_host()}-{os.getpid()}."


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
