"""The kernel cache: one folder per user for generated sources and compiled loops.

A library found there is loaded into this process, so the folder must be one nobody else can
write, and a library is loaded only if its SHA-256 matches the one recorded when sheetsync
compiled it (`written_by_us`).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import threading
from pathlib import Path

_private_dir: Path | None = None
_private_lock = threading.Lock()


def cache_dir() -> Path:
    """The kernel cache: a folder only this user can write, or else a private temporary one.

    A folder anyone else can write (a shared ``/tmp/sheetsync-kernels``, a group-writable home
    cache) would run their code inside sheetsync. The folder must be a real directory (not a
    symbolic link) owned by this user, writable by no one else, and is kept at 0700; otherwise
    this process compiles into a fresh ``mkdtemp`` folder of its own.
    """
    global _private_dir
    configured = os.environ.get("SHEETSYNC_CACHE_DIR")
    base = Path(configured) if configured else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sheetsync"
    folder = base / "kernels"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _private(folder):
            return folder
    except OSError:  # read-only home (a server account)
        pass
    with _private_lock:  # not the loader's lock: kernels are loaded under it
        if _private_dir is None or not _private(_private_dir):
            _private_dir = Path(tempfile.mkdtemp(prefix="sheetsync-kernels-"))
        return _private_dir


def _private(folder: Path) -> bool:
    """`folder` is a directory of this user's, mode 0700. One that only we could ever write
    (0755, say, from an older sheetsync) is tightened; one others can write is refused, since
    they may have planted a library there already (and its recorded hash with it)."""
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o022:
        return False
    if stat.S_IMODE(st.st_mode) & 0o077:
        try:
            os.chmod(folder, 0o700)
        except OSError:
            return False
        st = os.lstat(folder)
    return stat.S_IMODE(st.st_mode) & 0o077 == 0 and os.access(folder, os.W_OK)


def key(*parts: str) -> str:
    """A file name's worth of hash over everything that decides a cached file's content."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def digest_path(so_path: Path) -> Path:
    return so_path.with_suffix(".so.sha256")


def written_by_us(so_path: Path) -> bool:
    """The library under this name is the one sheetsync built: its SHA-256 matches the one
    recorded beside it when it was compiled (checked before every load)."""
    try:
        return digest_path(so_path).read_text().strip() == digest(so_path)
    except OSError:
        return False


def write_atomic(path: Path, text: str) -> None:
    """Concurrent processes never see half a file."""
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
