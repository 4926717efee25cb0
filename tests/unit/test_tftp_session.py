"""TFTP read session as a pure state machine: packets and timer ticks in, packets out."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from netboot.tftp.codec import Ack, Data, Error, ErrorCode, OptionAck, ReadRequest
from netboot.tftp.session import (
    DEFAULT_TIMEOUTS,
    ReadAhead,
    ReadSession,
    State,
    Step,
    TransferOptions,
    negotiate,
    reader_for,
    source_size,
)


def pattern(size: int) -> bytes:
    """Deterministic content where every block differs from its neighbours."""
    return bytes((i * 7 + i // 251) & 0xFF for i in range(size))


def session_for(content: bytes, **requested: str) -> ReadSession:
    options = negotiate(requested, file_size=len(content))
    return ReadSession(io.BytesIO(content), options)


def download(session: ReadSession, *, max_steps: int) -> bytes:
    """A well-behaved client: ACK 0 for an OACK, then ACK the last block of each window."""
    received = bytearray()
    expected = 1  # absolute number of the next block this client wants
    step = session.start()
    for _ in range(max_steps):
        if step.finished:
            assert step.state is State.DONE, step.reason
            return bytes(received)
        if step.send and isinstance(step.send[0], OptionAck):
            step = session.receive(Ack(0))
            continue
        for packet in step.send:
            assert isinstance(packet, Data)
            assert packet.block == expected & 0xFFFF
            received += packet.payload
            expected += 1
        step = session.receive(Ack(step.send[-1].block))
    raise AssertionError(f"transfer not finished after {max_steps} steps")


# --- negotiation (RFC 2347, 2348, 2349, 7440) ------------------------------------------


def test_no_options_means_no_oack_and_rfc1350_defaults() -> None:
    assert negotiate({}, file_size=10) == TransferOptions(512, 1, None, None, {})


def test_blksize_above_the_configured_max_is_clamped() -> None:
    assert negotiate({"blksize": "65464"}, file_size=1).oack == {"blksize": "1468"}
    assert negotiate({"blksize": "9000"}, file_size=1, max_blksize=8192).blksize == 8192


def test_blksize_within_limits_is_granted_as_asked() -> None:
    assert negotiate({"blksize": "8"}, file_size=1).blksize == 8
    assert negotiate({"blksize": "1024"}, file_size=1).oack == {"blksize": "1024"}


@pytest.mark.parametrize("value", ["7", "0", "-512", "abc", "", " 512", "1e3", "\u0661\u0662"])
def test_invalid_blksize_is_declined_by_leaving_it_out(value: str) -> None:
    options = negotiate({"blksize": value}, file_size=1)
    assert options.blksize == 512
    assert options.oack == {}


def test_tsize_reports_the_file_size() -> None:
    options = negotiate({"tsize": "0"}, file_size=123456)
    assert options.tsize == 123456
    assert options.oack == {"tsize": "123456"}


def test_tsize_is_left_out_when_the_size_is_unknown() -> None:
    assert negotiate({"tsize": "0"}, file_size=None).oack == {}


@pytest.mark.parametrize(("value", "granted"), [("1", 1), ("5", 5), ("255", 255)])
def test_timeout_in_range_is_echoed_unchanged(value: str, granted: int) -> None:
    options = negotiate({"timeout": value}, file_size=1)
    assert options.timeout == granted
    assert options.oack == {"timeout": value}


@pytest.mark.parametrize("value", ["0", "256", "1.5", "x"])
def test_timeout_out_of_range_is_declined(value: str) -> None:
    assert negotiate({"timeout": value}, file_size=1).oack == {}


def test_windowsize_is_clamped_to_the_configured_max() -> None:
    assert negotiate({"windowsize": "64"}, file_size=1, max_windowsize=8).windowsize == 8
    assert negotiate({"windowsize": "4"}, file_size=1).oack == {"windowsize": "4"}
    assert negotiate({"windowsize": "0"}, file_size=1).oack == {}


def test_unknown_options_are_ignored_and_client_order_is_kept() -> None:
    requested = {"tsize": "0", "multicast": "", "utimeout": "5000", "blksize": "1400"}
    assert list(negotiate(requested, file_size=9).oack.items()) == [
        ("tsize", "9"),
        ("blksize", "1400"),
    ]


@pytest.mark.parametrize(("blksize", "windowsize"), [(7, 1), (65465, 1), (512, 0)])
def test_configured_limits_outside_the_rfc_ranges_are_rejected(
    blksize: int, windowsize: int
) -> None:
    with pytest.raises(ValueError):
        negotiate({}, file_size=1, max_blksize=blksize, max_windowsize=windowsize)


# --- lock-step transfer (RFC 1350 section 6) -------------------------------------------


def test_without_options_the_first_block_is_sent_at_once() -> None:
    session = session_for(pattern(1000))
    assert session.start() == Step((Data(1, pattern(1000)[:512]),), State.SENDING)


def test_oack_is_sent_first_and_ack_0_starts_the_data() -> None:
    content = pattern(3000)
    session = session_for(content, blksize="1024", tsize="0")
    assert session.start().send == (OptionAck({"blksize": "1024", "tsize": "3000"}),)
    assert session.state is State.OACK_SENT
    assert session.receive(Ack(0)).send == (Data(1, content[:1024]),)


def test_only_ack_0_answers_an_oack() -> None:
    session = session_for(pattern(10), tsize="0")
    session.start()
    assert session.receive(Ack(1)) == Step((), State.OACK_SENT)


def test_client_error_after_oack_is_an_abort_not_a_failure() -> None:
    # PXE ROMs probe the size with tsize, then answer the OACK with ERROR and re-request.
    session = session_for(pattern(10), tsize="0")
    session.start()
    step = session.receive(Error(ErrorCode.OPTION_REFUSED, "tsize probe"))
    assert step.send == ()
    assert step.state is State.ABORTED


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 1024, 5000])
def test_download_reassembles_the_file(size: int) -> None:
    content = pattern(size)
    assert download(session_for(content), max_steps=20) == content


@pytest.mark.parametrize("size", [0, 512, 1536])
def test_exact_multiple_of_blksize_ends_with_an_empty_block(size: int) -> None:
    session = session_for(pattern(size))
    step = session.start()
    for block in range(1, size // 512 + 1):
        assert step.send == (Data(block, pattern(size)[(block - 1) * 512 : block * 512]),)
        step = session.receive(Ack(block))
    final = size // 512 + 1
    assert step.send == (Data(final, b""),)
    assert session.receive(Ack(final)) == Step((), State.DONE, "complete")
    assert session.bytes_acked == size


def test_final_short_block_ends_the_transfer() -> None:
    session = session_for(pattern(700))
    session.start()
    assert session.receive(Ack(1)).send == (Data(2, pattern(700)[512:]),)
    done = session.receive(Ack(2))
    assert done.state is State.DONE and done.finished
    assert session.bytes_acked == 700


def test_duplicate_ack_is_ignored_never_answered() -> None:
    # RFC 1350 section 6 / RFC 1123 4.2.3.1: Sorcerer's Apprentice Syndrome.
    session = session_for(pattern(2000))
    session.start()
    assert session.receive(Ack(1)).send == (Data(2, pattern(2000)[512:1024]),)
    assert session.receive(Ack(1)) == Step((), State.SENDING)
    assert session.receive(Ack(0)) == Step((), State.SENDING)


def test_delayed_ack_after_a_retransmission_does_not_double_the_stream() -> None:
    session = session_for(pattern(2000))
    session.start()
    session.receive(Ack(1))
    assert session.timeout().send == (Data(2, pattern(2000)[512:1024]),)
    assert session.receive(Ack(2)).send == (Data(3, pattern(2000)[1024:1536]),)
    assert session.receive(Ack(2)).send == ()  # the ACK of the retransmitted copy


def test_ack_for_a_block_not_yet_sent_is_ignored() -> None:
    session = session_for(pattern(5000))
    session.start()
    assert session.receive(Ack(7)) == Step((), State.SENDING)
    assert session.receive(Ack(1)).send[0].block == 2


def test_unexpected_packet_from_client_fails_with_illegal_operation() -> None:
    session = session_for(pattern(10))
    session.start()
    step = session.receive(Data(1, b"x"))
    assert step.state is State.FAILED
    assert step.send == (Error(ErrorCode.ILLEGAL_OPERATION, "unexpected Data"),)
    assert session.receive(ReadRequest("x", "octet")) == Step((), State.FAILED, step.reason)


def test_packets_after_completion_are_ignored() -> None:
    session = session_for(b"abc")
    session.start()
    session.receive(Ack(1))
    assert session.receive(Ack(1)) == Step((), State.DONE, "complete")
    assert session.timeout() == Step((), State.DONE, "complete")


def test_read_error_fails_the_transfer_with_error_0() -> None:
    def broken(offset: int, length: int) -> bytes:
        raise OSError("EIO")

    session = ReadSession(broken, TransferOptions())
    step = session.start()
    assert step.state is State.FAILED
    assert step.send == (Error(ErrorCode.NOT_DEFINED, "read error"),)


def test_file_is_read_one_block_at_a_time() -> None:
    content = pattern(4000)
    calls: list[tuple[int, int]] = []

    def reader(offset: int, length: int) -> bytes:
        calls.append((offset, length))
        return content[offset : offset + length]

    session = ReadSession(reader, negotiate({"blksize": "1000"}, file_size=None))
    assert download(session, max_steps=10) == content
    assert calls == [(n * 1000, 1000) for n in range(5)]


# --- retransmission on timer ticks ------------------------------------------------------


def test_timeout_retransmits_with_backoff_then_gives_up() -> None:
    session = session_for(pattern(600))
    first = session.start().send
    waits = [session.timeout_seconds]
    for _ in range(len(DEFAULT_TIMEOUTS) - 1):
        assert session.timeout().send == first
        waits.append(session.timeout_seconds)
    assert waits == list(DEFAULT_TIMEOUTS)
    step = session.timeout()
    assert step.state is State.FAILED
    assert step.send == (Error(ErrorCode.NOT_DEFINED, "timed out"),)


def test_progress_resets_the_retry_count() -> None:
    session = session_for(pattern(2000))
    session.start()
    session.timeout()
    session.timeout()
    session.receive(Ack(1))
    assert session.timeout_seconds == DEFAULT_TIMEOUTS[0]


def test_lost_oack_is_retransmitted() -> None:
    session = session_for(pattern(10), tsize="0")
    oack = session.start().send
    assert session.timeout().send == oack


def test_negotiated_timeout_replaces_the_backoff_schedule() -> None:
    session = ReadSession(io.BytesIO(b"x"), negotiate({"timeout": "3"}, file_size=1))
    session.start()
    session.receive(Ack(0))
    for _ in range(len(DEFAULT_TIMEOUTS) - 1):
        assert session.timeout_seconds == 3.0
        assert session.timeout().send == (Data(1, b"x"),)
    assert session.timeout().state is State.FAILED


# --- block-number rollover past 65535 ---------------------------------------------------


def test_block_numbers_wrap_to_zero_after_65535() -> None:
    content = pattern(65536 * 8 + 3)  # blocks 1..65536 full, block 65537 holds 3 bytes
    session = session_for(content, blksize="8")
    assert download(session, max_steps=65540) == content
    assert session.bytes_acked == len(content)


def test_sparse_file_larger_than_32_mib_wraps_at_blksize_512(tmp_path: Path) -> None:
    path = tmp_path / "big.img"
    size = 33 * 1024 * 1024 + 100
    with path.open("wb") as sparse:
        sparse.truncate(size)
        sparse.seek(65534 * 512)  # block 65535, then absolute 65536
        sparse.write(b"last-before-wrap".ljust(512, b"!") + b"first-after-wrap")
    with path.open("rb") as source:
        options = negotiate({"tsize": "0"}, file_size=source_size(source))
        assert options.oack == {"tsize": str(size)}
        session = ReadSession(source, options)
        session.start()
        step = session.receive(Ack(0))
        for block in range(1, 65536):
            step = session.receive(Ack(block))
        assert step.send[0].block == 0  # absolute block 65536
        assert bytes(step.send[0].payload).startswith(b"first-after-wrap")
        assert session.receive(Ack(65535)).send == ()  # now a duplicate
        assert session.receive(Ack(0)).send[0].block == 1  # absolute block 65537
        total = size // 512 + 1
        for absolute in range(65537, total + 1):
            step = session.receive(Ack(absolute & 0xFFFF))
        assert step.state is State.DONE
        assert session.bytes_acked == size


# --- RFC 7440 windows ------------------------------------------------------------------


def test_window_sends_windowsize_blocks_per_ack() -> None:
    content = pattern(10 * 512 + 1)
    session = session_for(content, windowsize="4")
    session.start()
    assert [p.block for p in session.receive(Ack(0)).send] == [1, 2, 3, 4]
    assert [p.block for p in session.receive(Ack(4)).send] == [5, 6, 7, 8]


def test_ack_inside_the_window_restarts_it_after_that_block() -> None:
    # RFC 7440 section 4: the receiver ACKs the last block it got in order.
    session = session_for(pattern(10 * 512 + 1), windowsize="4")
    session.start()
    session.receive(Ack(0))
    assert [p.block for p in session.receive(Ack(2)).send] == [3, 4, 5, 6]
    assert session.receive(Ack(2)).send == ()  # duplicate stays ignored


def test_timeout_resends_the_whole_window() -> None:
    session = session_for(pattern(3 * 512), windowsize="8")
    session.start()
    window = session.receive(Ack(0)).send
    assert [p.block for p in window] == [1, 2, 3, 4]  # stops at the empty final block
    assert session.timeout().send == window


@pytest.mark.parametrize("windowsize", ["2", "3", "16"])
def test_windowed_download_across_the_wrap(windowsize: str) -> None:
    content = pattern(65540 * 8)
    session = session_for(content, blksize="8", windowsize=windowsize)
    assert download(session, max_steps=65545) == content


# --- misuse ----------------------------------------------------------------------------


def test_start_twice_or_receive_before_start_is_a_bug() -> None:
    session = session_for(b"x")
    with pytest.raises(RuntimeError):
        session.receive(Ack(1))
    session.start()
    with pytest.raises(RuntimeError):
        session.start()


def test_source_size_of_unseekable_stream_is_unknown() -> None:
    class Stream(io.RawIOBase):
        def readable(self) -> bool:
            return True

    assert source_size(Stream()) is None
    assert source_size(io.BytesIO(b"12345")) == 5


def test_file_is_read_one_window_per_call() -> None:
    content = pattern(10_000)
    calls: list[tuple[int, int]] = []

    def reader(offset: int, length: int) -> bytes:
        calls.append((offset, length))
        return content[offset : offset + length]

    session = ReadSession(reader, negotiate({"blksize": "1000", "windowsize": "4"}, file_size=None))
    assert download(session, max_steps=10) == content
    assert calls == [(0, 4000), (4000, 4000), (8000, 4000)]


def test_real_file_is_read_with_pread(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(pattern(3000))
    with path.open("rb") as f:
        read = reader_for(f)
        assert read(1000, 600) == pattern(3000)[1000:1600]
        assert f.tell() == 0  # pread: the shared file offset is untouched


def test_read_ahead_serves_blocks_from_one_pread_per_chunk(tmp_path: Path) -> None:
    path = tmp_path / "f"
    content = pattern(10_000)
    path.write_bytes(content)
    preads: list[tuple[int, int]] = []

    def pread(fd: int, length: int, offset: int) -> bytes:
        preads.append((offset, length))
        return os.pread(fd, length, offset)

    with path.open("rb") as f:
        read = ReadAhead(f.fileno(), chunk=4096, pread=pread)
        got = [bytes(read(offset, 512)) for offset in range(0, 10_240, 512)]
        assert b"".join(got) == content  # the last reads are short, then empty
        assert preads == [(0, 4096), (4096, 4096), (8192, 4096)]  # the last one hit EOF
        assert read(10_000, 512) == b""
        assert bytes(read(1000, 600)) == content[1000:1600]  # a resend reaching back
        assert bytes(read(3900, 600)) == content[3900:4500]  # across a chunk boundary
        assert f.tell() == 0


def test_read_ahead_of_a_session_matches_the_file_at_every_window(tmp_path: Path) -> None:
    path = tmp_path / "f"
    content = pattern(200_003)
    path.write_bytes(content)
    for blksize, windowsize in ((512, 1), (1468, 16), (8, 3)):
        options = negotiate(
            {"blksize": str(blksize), "windowsize": str(windowsize)},
            file_size=len(content),
        )
        with path.open("rb") as f:
            session = ReadSession(f, options)
            assert download(session, max_steps=100_000) == content
