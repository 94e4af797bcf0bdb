"""A planted compiled kernel never runs: the kernel cache is a folder of this user's that no one
else can write (else a private temporary folder), and a library is loaded only if it is the one
sheetsync compiled (its SHA-256 recorded beside it)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

import sheetsync
from sheetsync.engine.loop import backend, cc
from sheetsync.engine.loop import cache as kernel_cache

# A real library exporting `kernel`: loading it runs its constructor, which leaves a marker.
PLANTED_C = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) { close(open("%s", O_CREAT | O_WRONLY, 0644)); }
int kernel(void) { return 0; }
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SHEETSYNC_CACHE_DIR", str(folder))
    monkeypatch.setenv("SHEETSYNC_KERNEL", "c")
    monkeypatch.setattr(backend, "_loaded", {})  # this process's kernels: load from disk again
    monkeypatch.setattr(kernel_cache, "_private_dir", None)
    return folder / "kernels"


def train_once():
    x = np.arange(1.0, 30.0)
    return sheetsync.train(sheetsync.Experiment("basic", optimizer="momentum", epochs=2), x, 2 * x + 30)


def plant(path: Path, marker: Path) -> None:
    source = path.with_name("planted.c")
    source.write_text(PLANTED_C % marker)
    subprocess.run([*cc.compiler(), "-shared", "-fPIC", "-o", str(path), str(source)], check=True)
    source.unlink()


def test_a_new_cache_folder_is_private(cache):
    expected = train_once().params
    assert kernel_cache.cache_dir() == cache
    assert stat.S_IMODE(os.lstat(cache).st_mode) == 0o700
    [so] = cache.glob("sheetsync_c_*.so")
    assert (so.with_suffix(".so.sha256")).read_text() == kernel_cache.digest(so)
    assert train_once().params == expected


def test_a_tampered_library_is_not_loaded_but_compiled_again(cache, tmp_path, monkeypatch):
    expected = train_once().params
    [so] = cache.glob("sheetsync_c_*.so")
    marker = tmp_path / "planted-code-ran"
    plant(so, marker)
    monkeypatch.setattr(backend, "_loaded", {})
    assert train_once().params == expected
    assert not marker.exists()
    assert so.with_suffix(".so.sha256").read_text() == kernel_cache.digest(so)  # ours again


@pytest.mark.parametrize("how", ["world-writable", "group-writable", "someone else's", "a symbolic link"])
def test_a_cache_folder_others_could_write_is_not_used(cache, tmp_path, monkeypatch, how):
    train_once()  # compile into the folder while it is ours
    [so] = cache.glob("sheetsync_c_*.so")
    marker = tmp_path / "planted-code-ran"
    plant(so, marker)  # ... then someone plants a library, and its hash too
    so.with_suffix(".so.sha256").write_text(kernel_cache.digest(so))
    if how == "world-writable":
        cache.chmod(0o777)
    elif how == "group-writable":
        cache.chmod(0o770)
    elif how == "someone else's":
        uid = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: uid + 1)  # as seen by another user
    else:
        real = tmp_path / "elsewhere"
        cache.rename(real)
        cache.symlink_to(real)
    monkeypatch.setattr(backend, "_loaded", {})
    used = kernel_cache.cache_dir()
    assert used != cache and stat.S_IMODE(os.lstat(used).st_mode) == 0o700
    assert os.lstat(used).st_uid == os.stat(tmp_path).st_uid
    result = train_once()
    assert not marker.exists()
    assert np.isfinite(list(result.params.values())).all()


def test_our_own_folder_from_an_older_version_is_tightened(cache):
    cache.mkdir(parents=True)
    cache.chmod(0o755)  # only we could write it: its libraries are ours
    assert kernel_cache.cache_dir() == cache
    assert stat.S_IMODE(os.lstat(cache).st_mode) == 0o700


def _index_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("sheetsync_c_spec_*.key"))


def test_a_cached_loop_is_found_through_its_index_without_generating_its_source(cache, monkeypatch):
    """A fresh process finds the library of a loop it ran before by the Spec, the compiler and
    the generator (an index file naming the library), so it neither imports nor runs the
    generator; the library is still checked against its recorded hash."""
    expected = train_once().params
    [so] = cache.glob("sheetsync_c_*.so")
    [index] = _index_files(cache)
    assert so.name == f"sheetsync_c_{index.read_text()}.so"
    from sheetsync.engine.loop import program

    def no_generation(spec):
        raise AssertionError("generated a loop the cache holds")

    monkeypatch.setattr(program, "build", no_generation)
    monkeypatch.setattr(backend, "_loaded", {})
    assert train_once().params == expected


@pytest.mark.parametrize("content", ["0123456789abcdef01234567", "not a key", ""])
def test_an_index_naming_no_library_of_ours_falls_back_to_the_source(cache, monkeypatch, content):
    expected = train_once().params
    [so] = cache.glob("sheetsync_c_*.so")
    [index] = _index_files(cache)
    index.write_text(content)
    monkeypatch.setattr(backend, "_loaded", {})
    assert train_once().params == expected
    assert so.name == f"sheetsync_c_{index.read_text()}.so"  # written again


def test_the_index_follows_the_generators_code(cache, monkeypatch):
    """The index is named by every engine module's size and modification time (Python's own
    rule for its bytecode cache), so an edited generator, model or printer never reuses a
    library built from older code."""
    stamp = backend._generator_stamp()
    engine = Path(backend.__file__).resolve().parents[1]
    for path in (engine / "expr.py", engine / "models.py", engine / "loop" / "program.py",
                 engine / "loop" / "c_printer.py", engine / "loop" / "cc.py"):
        st = path.stat()
        assert f"{path.parent.name}/{path.name} {st.st_size} {st.st_mtime_ns}" in stamp.splitlines()
    train_once()
    [index] = _index_files(cache)
    monkeypatch.setattr(backend, "_generator_stamp", lambda: stamp + "\nloop/program.py edited")
    monkeypatch.setattr(backend, "_loaded", {})
    train_once()
    assert len(_index_files(cache)) == 2 and len(list(cache.glob("sheetsync_c_*.so"))) == 1
