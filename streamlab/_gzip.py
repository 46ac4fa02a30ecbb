"""Gzip files read as far as they can be read, and written a member per commit.

A file copied while it was written ends in the middle of its compressed stream; one damaged on a disk
fails its checksum. Arrow's and Python's readers raise there and drop what they had decompressed in
that call; :class:`GzipBytes` gives every byte before the damage, then raises once. A sink appending to
a ``.gz`` file writes one gzip member per flush (:class:`GzipMemberWriter`): a checkpoint's file
length is a member's end, so truncating to it leaves a whole file, and readers (``gzip``, ``zcat``,
:class:`GzipBytes`) read the members as one stream.
"""

from __future__ import annotations

import os
import zlib
from typing import Any


def is_gzip_name(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a gzipped file (``.gz``, in any case).

    Examples
    --------
    >>> is_gzip_name("out.jsonl.GZ"), is_gzip_name("out.jsonl")
    (True, False)
    """
    return os.fspath(path).lower().endswith(".gz")


def open_bytes(path: str | os.PathLike[str]) -> Any:
    """``path``'s bytes as a binary file, decompressed when its name ends with ``.gz`` (:class:`GzipBytes`)."""
    return GzipBytes(path) if is_gzip_name(path) else open(path, "rb")


class GzipBytes:
    """A gzip file's decompressed bytes, every one of them that can be read.

    Arrow's and Python's gzip readers raise when a file is truncated or damaged, and the bytes they
    had decompressed within that call are lost: a truncated file copied while it was written lost its
    last block of lines (all of them, for a file smaller than a block). This reader gives every byte
    before the damage first, then raises :class:`OSError` once, naming it. Members one after another
    (``cat a.gz b.gz``) are one stream, as for ``gzip``; NUL bytes between them are padding.

    Examples
    --------
    >>> import gzip, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.jsonl.gz")
    >>> data = gzip.compress(b"".join(b"%d\\n" % i for i in range(1000)))
    >>> _ = open(path, "wb").write(data[: len(data) // 2])
    >>> f = GzipBytes(path)
    >>> head = f.read(1 << 20)
    >>> head.startswith(b"0\\n1\\n") and len(head) > 0
    True
    >>> f.read(1)
    Traceback (most recent call last):
    OSError: the compressed stream ends before its end marker: the file is truncated
    >>> f.read(1), f.close()
    (b'', None)
    """

    _IN = 1 << 16  # compressed bytes decompressed at a time
    _OUT = 1 << 20  # the most bytes one step decompresses

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._raw = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._raw_read = 0  # compressed bytes read
        #: where the last whole member read so far ends in the file (0 before the first), and the last
        #: byte of the text up to there (None before any)
        self.member_end = 0
        self.member_last: int | None = None
        self._last: int | None = None  # the last byte decompressed
        self._inflate = zlib.decompressobj(31)
        self._started = False  # whether the current member has begun
        self._leftover = b""  # compressed bytes after the last member's end
        self._pending = memoryview(b"")  # decompressed, not read yet
        self._error: OSError | None = None  # what stopped the stream, raised once when its bytes are read
        self._ended = False
        self.produced = 0  # bytes decompressed

    def _step(self) -> bytes:
        """The next decompressed bytes; ``b""`` at the end of the stream, or where it cannot go on."""
        while not self._ended:
            d = self._inflate
            data = d.unconsumed_tail or self._leftover
            if not data:
                data = self._raw.read(self._IN)
                self._raw_read += len(data)
            self._leftover = b""
            if not self._started:  # between members: NUL bytes are padding, and the file may end
                stripped = data.lstrip(b"\0")
                if not stripped:
                    if data:
                        continue
                    self._ended = True
                    return b""
                data, self._started = stripped, True
            elif not data:
                self._ended = True
                self._error = OSError(
                    "the compressed stream ends before its end marker: the file is truncated"
                )
                return b""
            saved = d.copy()
            try:
                out = d.decompress(data, self._OUT)
            except zlib.error as e:  # damaged: what comes before the damage, in small steps
                self._ended = True
                self._error = OSError(f"the compressed stream is damaged ({e})")
                out = _inflate_until_error(saved, data)
                self.produced += len(out)
                return out
            if out:
                self._last = out[-1]
            if d.eof:  # the member ended: another may follow
                self._leftover = d.unused_data
                self.member_end, self.member_last = self._raw_read - len(self._leftover), self._last
                self._inflate, self._started = zlib.decompressobj(31), False
            if out:
                self.produced += len(out)
                return out
        return b""

    def readinto(self, buffer: Any) -> int:
        """Decompressed bytes into ``buffer``: how many (0 at the end)."""
        target = memoryview(buffer).cast("B")
        got = 0
        while got < len(target):
            if not len(self._pending):
                more = self._step()
                if not more:
                    break
                self._pending = memoryview(more)
            n = min(len(self._pending), len(target) - got)
            target[got : got + n] = self._pending[:n]
            self._pending = self._pending[n:]
            got += n
        if not got and self._error is not None:
            error, self._error = self._error, None
            raise error
        return got

    def read(self, size: int) -> bytes:
        """Up to ``size`` decompressed bytes (``b""`` at the end)."""
        buffer = bytearray(size)
        n = self.readinto(buffer)
        return bytes(buffer[:n])

    def close(self) -> None:
        """Close the file."""
        self._raw.close()


def _inflate_until_error(inflate: Any, data: bytes) -> bytes:
    """What ``inflate`` gives of ``data`` fed a byte at a time, up to the byte where it raises (at most
    :attr:`GzipBytes._IN` bytes, once per damaged file)."""
    out = []
    for at in range(len(data)):
        try:
            out.append(inflate.decompress(data[at : at + 1]))
        except zlib.error:
            break
    return b"".join(out)


class GzipMemberWriter:
    """Text appended to a binary file as gzip members: one per :meth:`finish` (each flush).

    Examples
    --------
    >>> import gzip, io
    >>> out = io.BytesIO()
    >>> w = GzipMemberWriter(out)
    >>> w.write("a\\n"); w.finish(); w.write("b\\n"); w.finish(); w.finish()
    >>> gzip.decompress(out.getvalue())
    b'a\\nb\\n'
    """

    def __init__(self, file: Any) -> None:
        self.file = file
        self._deflate: Any = None  # the member being written, if any

    def write(self, text: str) -> None:
        """Compress ``text`` (UTF-8) into the current member, starting one if none is open."""
        if self._deflate is None:
            self._deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
        self.file.write(self._deflate.compress(text.encode("utf-8")))

    def finish(self) -> None:
        """End the current member (nothing when no text was written since the last)."""
        if self._deflate is not None:
            deflate, self._deflate = self._deflate, None
            self.file.write(deflate.flush(zlib.Z_FINISH))


def gzip_end(path: str | os.PathLike[str]) -> tuple[int, bool, OSError | None]:
    """Where the last whole member of the gzip file at ``path`` ends, whether the text there ends with a
    line break (or the file is empty), and what stopped it being read to its end, if anything.

    The last member is found from the end of the file where it can be (:func:`_last_whole_member`),
    so a long output is not decompressed to reopen it; otherwise the file is read from its start.

    Examples
    --------
    >>> import gzip, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.jsonl.gz")
    >>> whole = gzip.compress(b"a\\n")
    >>> _ = open(path, "wb").write(whole + gzip.compress(b"b\\n")[:9])  # a second member cut short
    >>> end, newline, error = gzip_end(path)
    >>> end == len(whole), newline, type(error).__name__
    (True, True, 'OSError')
    """
    found = _last_whole_member(path)
    if found is not None:
        end, last, size, damaged = found
        error = None
        if damaged:
            error = OSError(
                f"the {size - end:,} bytes after the last whole member do not make a member: the file "
                "is truncated or damaged"
            )
        return end, last == 10, error
    reader = GzipBytes(path)
    error = None
    try:
        while reader.read(1 << 22):
            pass
    except OSError as e:
        error = e
    finally:
        reader.close()
    return reader.member_end, reader.member_last in (None, 10), error


_MAGIC = b"\x1f\x8b\x08"  # a gzip member's first bytes (deflate)


def _last_whole_member(path: str | os.PathLike[str]) -> tuple[int, int, int, bool] | None:
    """The last whole member of the file, found from its end: where it ends, the last byte of its text,
    the file's size and whether bytes other than NUL padding follow it; None when no member from the
    end is whole, or the last whole one has no text (then reading the file from its start tells).

    A sink appends one member per flush, so this decompresses one member, not the file. A candidate is a
    member's magic bytes from which one whole member decompresses, its CRC-32 and length checked (a
    false start inside compressed data passes both with odds of about 2**-64). What comes before it is
    taken as whole (it was when the file was opened last; damage in the middle is for a reader to find).
    """
    import mmap

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if not size:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            before = size
            while (start := view.rfind(_MAGIC, 0, before)) >= 0:
                member = _one_member(view, start)
                if member is not None:
                    end, last = member
                    if last is None:
                        return None
                    step = GzipBytes._OUT
                    damaged = any(view[at : at + step].strip(b"\0") for at in range(end, size, step))
                    return end, last, size, damaged
                before = start
    return None


def _one_member(view: Any, start: int) -> tuple[int, int | None] | None:
    """Where the gzip member at ``start`` ends and the last byte of its text (None when it has none), or
    None when no whole member decompresses from there."""
    inflate = zlib.decompressobj(31)
    at, last = start, None
    try:
        while not inflate.eof:
            if at >= len(view):
                return None  # cut short
            data = view[at : at + GzipBytes._IN]
            at += len(data)
            while data and not inflate.eof:
                out = inflate.decompress(data, GzipBytes._OUT)
                if out:
                    last = out[-1]
                data = inflate.unconsumed_tail
    except zlib.error:
        return None
    return at - len(inflate.unused_data), last
