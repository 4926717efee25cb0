"""RFC 764 netascii translation, read at arbitrary block offsets like a TFTP window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netboot.tftp.netascii import NetasciiReader, to_netascii
from netboot.tftp.session import ReadSession, negotiate


def test_lf_becomes_crlf_and_bare_cr_becomes_cr_nul():
    assert to_netascii(b"a\nb\rc\r\n") == b"a\r\nb\r\0c\r\0\r\n"


def reader_over(data: bytes) -> NetasciiReader:
    return NetasciiReader(lambda offset, length: data[offset : offset + length], keep=100)


@given(st.binary(max_size=3000), st.integers(1, 700))
def test_any_sequence_of_reads_matches_the_whole_translation(data, blksize):
    expected = to_netascii(data)
    reader = reader_over(data)
    offset = 0
    while offset <= len(expected):
        assert reader(offset, blksize) == expected[offset : offset + blksize]
        # A retransmission re-reads the previous block, sometimes from far back.
        back = max(0, offset - blksize)
        assert reader(back, blksize) == expected[back : back + blksize]
        offset += blksize


def test_read_far_behind_the_kept_tail_translates_again_from_the_start():
    data = b"line\n" * 20_000
    reader = reader_over(data)
    assert reader(90_000, 10) == to_netascii(data)[90_000:90_010]
    assert reader(0, 12) == b"line\r\nline\r\n"


def test_netascii_session_sends_translated_blocks():
    data = b"#!ipxe\nchain http://x/\n" * 100
    options = negotiate({"blksize": "512"}, file_size=None)
    session = ReadSession(reader_over(data), options)
    session.start()
    from netboot.tftp.codec import Ack

    received = bytearray()
    step = session.receive(Ack(0))
    while not step.finished:
        received += b"".join(bytes(p.payload) for p in step.send)
        step = session.receive(Ack(step.send[-1].block))
    assert bytes(received) == to_netascii(data)
