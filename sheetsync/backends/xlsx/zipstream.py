"""Zip members: kept parts copied with their compressed bytes, new ones deflated in blocks by
worker threads while the next rows render (`write_streamed`)."""

from __future__ import annotations

import collections
import contextlib
import copy
import datetime as dt
import struct
import sys
import threading
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Iterable, Iterator

from ...errors import BackendError

try:  # Intel's ISA-L deflate: the same format, ~3x faster than zlib at level 1, a smaller file
    from isal import isal_zlib as deflate_lib
except ImportError:  # a platform without isal's wheels
    deflate_lib = zlib


def copy_info(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    copy = zipfile.ZipInfo(info.filename, info.date_time)
    copy.compress_type = info.compress_type
    copy.external_attr = info.external_attr
    copy.create_system = info.create_system
    return copy


def new_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, dt.datetime.now().timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    # Our parts are big and repetitive: level 1 is ~3x faster than the default and nearly as small.
    setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", 1)
    return info


def copy_part(src: zipfile.ZipFile, dst: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Copy a user part as it is: its compressed bytes when possible, else decompressed."""
    if not copy_compressed(src, dst, info):
        with src.open(info) as r, dst.open(copy_info(info), "w", force_zip64=info.file_size > 2**30) as w:
            while chunk := r.read(1 << 20):
                w.write(chunk)


def copy_compressed(src: zipfile.ZipFile, dst: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """Copy a member's compressed stream without inflating and deflating it again.

    Big user sheets then cost a file copy, not a recompression. zipfile has no public API for
    this, so it uses the (long stable) ZipInfo.FileHeader and ZipFile bookkeeping attributes;
    anything unexpected (encryption, odd headers) falls back to the ordinary copy.
    """
    if info.flag_bits & 0x1 or not all(hasattr(dst, a) for a in ("start_dir", "filelist", "NameToInfo", "fp")):
        return False
    src.fp.seek(info.header_offset)
    header = src.fp.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        return False
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    src.fp.seek(info.header_offset + 30 + name_len + extra_len)
    out = copy.copy(info)
    out.flag_bits = info.flag_bits & ~0x08  # sizes go in the local header: no data descriptor
    out.extra = b""  # only timestamps and zip64 sizes live there; zipfile rewrites the latter
    out.header_offset = dst.fp.tell()
    dst.fp.write(out.FileHeader())
    remaining = info.compress_size
    while remaining:
        chunk = src.fp.read(min(remaining, 1 << 20))
        if not chunk:
            raise BackendError(f"{src.filename}: the workbook is truncated ({info.filename})")
        dst.fp.write(chunk)
        remaining -= len(chunk)
    dst.filelist.append(out)
    dst.NameToInfo[out.filename] = out
    dst.start_dir = dst.fp.tell()
    dst._didModify = True
    return True


def write_part(zf: zipfile.ZipFile, info: zipfile.ZipInfo, data) -> None:
    """Write one part; `data` is bytes, str, or a function returning an iterable of chunks
    (str or bytes)."""
    with zf.open(info, "w", force_zip64=True) as w:
        if isinstance(data, bytes):
            w.write(data)
        elif isinstance(data, str):
            w.write(data.encode("utf-8"))
        else:
            write_streamed(w, data())


STREAM_BLOCK = 1 << 21  # characters encoded and deflated at a time
DEFLATE_THREADS = 2  # blocks deflated at once, besides the rendering thread
WINDOW = 1 << 15  # deflate's window: each block may refer back this far into the one before


def write_streamed(w: BinaryIO, chunks: Iterable[str | bytes]) -> None:
    """Write the text `chunks` make to the zip member `w`, deflating on other cores.

    This thread renders and encodes blocks of ~2 MB; worker threads deflate them (zlib releases
    the GIL), each block on its own as pigz does: a raw deflate of the block, primed with the
    last 32 KB of the one before (so matches reach back as in one stream), ended by a sync flush
    (byte-aligned, not final); the member's compressor is replaced by `_Deflated`, which hands
    the zip writer those bytes in order while it checksums and counts the text as usual, and
    ends the stream with an empty final block. Compression thus overlaps the rendering of the
    next blocks instead of following it. A member whose compressor is not zlib (or a writer
    without one) is written plainly. At most DEFLATE_THREADS + 2 blocks are in flight.
    """
    compressor = getattr(w, "_compressor", None)
    if not isinstance(compressor, type(zlib.compressobj())):
        for block in _blocks(chunks):
            w.write(block)
        return
    deflated = _Deflated(compressor)
    w._compressor = deflated
    pending: collections.deque = collections.deque()
    with _quick_gil_handover(), ThreadPoolExecutor(DEFLATE_THREADS, "sheetsync-deflate") as pool:
        try:
            previous = b""
            for block in _blocks(chunks):
                pending.append((block, pool.submit(_deflate_block, block, previous[-WINDOW:])))
                previous = block
                while len(pending) > DEFLATE_THREADS + 1:
                    _write_oldest(w, deflated, pending)
            while pending:
                _write_oldest(w, deflated, pending)
        finally:
            for _, future in pending:
                future.cancel()


def _blocks(chunks: Iterable[str | bytes]) -> Iterator[bytes]:
    """The chunks encoded and gathered into blocks of about STREAM_BLOCK bytes."""
    buffer: list[bytes] = []
    size = 0
    for chunk in chunks:
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        buffer.append(chunk)
        size += len(chunk)
        if size >= STREAM_BLOCK:
            yield buffer[0] if len(buffer) == 1 else b"".join(buffer)  # a big chunk: no copy
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def _deflate_block(block: bytes, previous: bytes) -> bytes:
    """`block` as raw deflate at level 1 (the level of our other parts), continuing a stream
    whose last 32 KB of text were `previous`, flushed to a byte boundary, not final. ISA-L
    where installed (it releases the GIL as zlib does)."""
    primed = {"zdict": previous} if previous else {}
    compressor = deflate_lib.compressobj(1, deflate_lib.DEFLATED, -15, **primed)
    return compressor.compress(block) + compressor.flush(deflate_lib.Z_SYNC_FLUSH)


def _write_oldest(w: BinaryIO, deflated: "_Deflated", pending: collections.deque) -> None:
    block, future = pending.popleft()
    deflated.ready.append(future.result())
    w.write(block)  # counts and checksums the text; writes what `deflated` hands it


class _Deflated:
    """Stands in for a zip member's compressor: hands back each block as deflated beforehand."""

    def __init__(self, replaced):
        self.replaced = replaced  # not used: the stream is made of the blocks deflated apart
        self.ready: collections.deque = collections.deque()

    def compress(self, data) -> bytes:
        return self.ready.popleft()

    def flush(self) -> bytes:
        return b"\x03\x00"  # an empty final block (fixed Huffman codes) ends the deflate stream


_handover_lock = threading.Lock()
_handover_users = 0
_handover_saved = 0.005


@contextlib.contextmanager
def _quick_gil_handover():
    """A short GIL switch interval while a writer thread compresses.

    A deflating thread needs the GIL for a moment before and after each block (zlib releases it
    meanwhile); by default it waits up to 5 ms for the rendering thread to let go each time,
    which idles it for a good part of the time it works. Counted, so that concurrent writes
    (the server) restore the interval only when the last one ends."""
    global _handover_users, _handover_saved
    with _handover_lock:
        if _handover_users == 0:
            _handover_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_handover_saved, 0.0002))
        _handover_users += 1
    try:
        yield
    finally:
        with _handover_lock:
            _handover_users -= 1
            if _handover_users == 0:
                sys.setswitchinterval(_handover_saved)
