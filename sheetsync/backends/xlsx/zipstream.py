"""Zip members: kept parts copied with their compressed bytes, new ones deflated in blocks by
worker threads while the next rows render (`write_streamed`), a member made of compressed
pieces written as given (`write_compressed`, the appended log), and the CRC arithmetic that
lets a member's CRC follow an edit of its ends without reading its middle (`crc32_combine`)."""

from __future__ import annotations

import collections
import contextlib
import copy
import datetime as dt
import itertools
import struct
import sys
import threading
import zipfile
import zlib
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


def write_compressed(dst: zipfile.ZipFile, info: zipfile.ZipInfo, pieces: list[bytes], crc: int, size: int) -> None:
    """A deflated member whose compressed bytes (`pieces`, one raw deflate stream), CRC and
    length are known already: written as they are (the bookkeeping as in `copy_compressed`)."""
    out = copy_info(info)
    out.compress_type = zipfile.ZIP_DEFLATED
    out.CRC, out.file_size, out.compress_size = crc, size, sum(map(len, pieces))
    out.flag_bits = 0
    out.external_attr = out.external_attr or 0o600 << 16  # as zipfile gives a member it writes
    out.header_offset = dst.fp.tell()
    dst.fp.write(out.FileHeader())
    for piece in pieces:
        dst.fp.write(piece)
    dst.filelist.append(out)
    dst.NameToInfo[out.filename] = out
    dst.start_dir = dst.fp.tell()
    dst._didModify = True


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


WHOLE_PART = 1 << 24  # a part given whole up to this size is deflated in one call and written as it is


def write_part(zf: zipfile.ZipFile, info: zipfile.ZipInfo, data) -> None:
    """Write one part; `data` is bytes, str, or a function returning an iterable of chunks
    (str or bytes). A deflated part given whole (most of a write's ~100 parts are small) is
    deflated in one call, the compressor zipfile would use, and written with its sizes known
    (`write_compressed`): the same bytes, without zipfile's streaming bookkeeping per member."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, bytes) and info.compress_type == zipfile.ZIP_DEFLATED and len(data) <= WHOLE_PART:
        level = getattr(info, "compress_level", getattr(info, "_compresslevel", None))
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION if level is None else level, zlib.DEFLATED, -15)
        write_compressed(zf, info, [compressor.compress(data) + compressor.flush()], zlib.crc32(data), len(data))
        return
    with zf.open(info, "w", force_zip64=True) as w:
        if isinstance(data, bytes):
            w.write(data)
        elif isinstance(data, str):
            w.write(data.encode("utf-8"))
        else:
            write_streamed(w, data())


class _Segment(str):
    """The type of `SEGMENT`: an empty text, so joining chunks still gives the part's text."""


# Yielded among a part's chunks: the deflate stream is flushed here and what follows starts
# afresh (no match reaches back across), so a reader can inflate from this point on its own
# and a writer can replace what follows (`xlsx.append`). A part needs at most a few.
SEGMENT = _Segment("")
SYNC_MARK = b"\x00\x00\xff\xff"  # how a sync flush ends: an empty stored block
FINAL_BLOCK = b"\x03\x00"  # an empty final block (fixed Huffman codes) ends a deflate stream

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
    A `SEGMENT` among the chunks ends a block there, and the next one is not primed. A part of
    one block, or of a few with less than a STREAM_BLOCK of text in all (a demo's every part:
    SEGMENTs end blocks early), is deflated in this thread: starting a pool would cost more
    than the deflate, and the bytes are the same.
    """
    compressor = getattr(w, "_compressor", None)
    if not isinstance(compressor, type(zlib.compressobj())):
        for block, _fresh in _blocks(chunks):
            w.write(block)
        return
    deflated = _Deflated(compressor)
    w._compressor = deflated
    blocks = _blocks(chunks)
    head, size = [], 0  # blocks read ahead: two at least, up to a whole STREAM_BLOCK of text
    for block, fresh in blocks:
        head.append((block, fresh))
        size += len(block)
        if size >= STREAM_BLOCK and len(head) > 1:
            break
    else:  # one block, or a few (ended by SEGMENTs) of less than a STREAM_BLOCK in all: deflated
        previous = b""  # here, in the calls a pool makes (the same bytes), without starting its threads
        for block, fresh in head:
            deflated.ready.append(_deflate_block(block, b"" if fresh else previous[-WINDOW:]))
            w.write(block)
            previous = block
        return
    from concurrent.futures import ThreadPoolExecutor  # here: a run of small tabs does without it

    pending: collections.deque = collections.deque()
    with _quick_gil_handover(), ThreadPoolExecutor(DEFLATE_THREADS, "sheetsync-deflate") as pool:
        try:
            previous = b""
            for block, fresh in itertools.chain(head, blocks):
                primer = b"" if fresh else previous[-WINDOW:]
                pending.append((block, pool.submit(_deflate_block, block, primer)))
                previous = block
                while len(pending) > DEFLATE_THREADS + 1:
                    _write_oldest(w, deflated, pending)
            while pending:
                _write_oldest(w, deflated, pending)
        finally:
            for _, future in pending:
                future.cancel()


def _blocks(chunks: Iterable[str | bytes]) -> Iterator[tuple[bytes, bool]]:
    """The chunks encoded and gathered into blocks of about STREAM_BLOCK bytes, each with
    whether it starts a segment (the first block, and the first after a `SEGMENT`)."""
    buffer: list[bytes] = []
    size = 0
    fresh = True
    for chunk in chunks:
        if chunk is SEGMENT:
            if buffer:
                yield b"".join(buffer), fresh
                buffer, size = [], 0
            fresh = True
            continue
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        if not chunk:
            continue
        buffer.append(chunk)
        size += len(chunk)
        if size >= STREAM_BLOCK:
            yield (buffer[0] if len(buffer) == 1 else b"".join(buffer)), fresh  # a big chunk: no copy
            buffer, size, fresh = [], 0, False
    if buffer:
        yield b"".join(buffer), fresh


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
        return FINAL_BLOCK


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


# ---------------------------------------------------------------------------------------------
# CRC-32 arithmetic (zlib's crc32_combine, which Python's zlib does not expose)
#
# A CRC-32 is the text as a polynomial over GF(2), times x^32, modulo the polynomial P (in
# the reflected bit order zlib uses). Appending n bytes of zeros multiplies it by x^(8n), so
# crc(A + B) = crc(A) * x^(8 len B) + crc(B). P is primitive (x has order 2^32 - 1; checked in
# the tests), so the step can be undone: x^(-k) = x^(2^32 - 1 - k).

_POLY = 0xEDB88320
_ONE = 1 << 31  # the polynomial 1 in the reflected order
_ORDER = (1 << 32) - 1


def _multmodp(a: int, b: int) -> int:
    """a * b modulo P."""
    m, p = _ONE, 0
    while a:
        if a & m:
            p ^= b
            a ^= m
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


_X2N = [1 << 30]  # x^(2^k) mod P
for _ in range(31):
    _X2N.append(_multmodp(_X2N[-1], _X2N[-1]))


def _xpow(k: int) -> int:
    """x^k mod P, for any integer k (negative: the inverse)."""
    k %= _ORDER
    p, i = _ONE, 0
    while k:
        if k & 1:
            p = _multmodp(_X2N[i], p)
        k >>= 1
        i += 1
    return p


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A + B from crc(A), crc(B) and len(B)."""
    return _multmodp(_xpow(8 * len2), crc1) ^ crc2


def crc32_uncombine(crc12: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A from crc(A + B), crc(B) and len(B)."""
    return _multmodp(_xpow(-8 * len2), crc12 ^ crc2)
