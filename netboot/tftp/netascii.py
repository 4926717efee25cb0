"""RFC 764 netascii translation for TFTP "netascii" mode (RFC 1350 section 1).

On the wire a line ends in CR LF and a bare CR is sent as CR NUL. The translation is
per octet (LF -> CR LF, CR -> CR NUL, as tftp-hpa does), so any chunk of the source
translates independently of its neighbours. `NetasciiReader` turns a BlockReader over
the local file into a BlockReader over the translated stream: it translates forward in
chunks and keeps a bounded tail of translated bytes, so a window retransmission (which
re-reads at most one window back) is served from memory and a file is never read whole.

The size of the translated stream is not known without reading the file, so netascii
transfers do not answer tsize (tftp-hpa does the same).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["NetasciiReader", "to_netascii"]

BlockReader = Callable[[int, int], bytes]

CHUNK = 64 * 1024  # source octets translated per step


def to_netascii(data: bytes) -> bytes:
    """Translate local text (LF line ends) to netascii."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


class NetasciiReader:
    """A BlockReader over the netascii translation of `source` (a BlockReader)."""

    def __init__(self, source: BlockReader, keep: int = 4 * 1024 * 1024) -> None:
        self._source = source
        self._keep = keep  # translated octets kept behind the latest read, for resends
        self._restart()

    def _restart(self) -> None:
        self._src_offset = 0  # next source octet to translate
        self._base = 0  # translated offset of _buffer[0]
        self._buffer = bytearray()
        self._eof = False

    def __call__(self, offset: int, length: int) -> bytes:
        if offset < self._base:
            self._restart()  # further back than the kept tail: translate again from 0
        end = offset + length
        while self._base + len(self._buffer) < end and not self._eof:
            raw = self._source(self._src_offset, CHUNK)
            if not raw:
                self._eof = True
                break
            self._src_offset += len(raw)
            self._buffer += to_netascii(bytes(raw))
        start = offset - self._base
        result = bytes(self._buffer[start : start + length])
        # Drop what lies more than `keep` octets behind this read.
        drop = start - self._keep
        if drop > 0:
            del self._buffer[:drop]
            self._base += drop
        return result
