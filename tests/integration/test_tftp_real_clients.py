"""The real TFTP server, in a subprocess on 127.0.0.1, against real clients.

Clients: tftpy (in-process), tftp-hpa (/usr/bin/tftp) and curl, plus a raw UDP socket for
error paths. The server runs as `python -m netboot.tftp.server --port 0` and reports its
ephemeral port on stdout; it is killed by PID at teardown. Every wait has a deadline.
"""

from __future__ import annotations

import hashlib
import random
import selectors
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tftpy

from netboot.tftp.codec import (
    Ack,
    Data,
    Error,
    ErrorCode,
    OptionAck,
    ReadRequest,
    WriteRequest,
    decode,
    encode,
)

HOST = "127.0.0.1"
FILES = {
    "small.txt": b"#!ipxe\nchain http://10.0.0.1/boot.ipxe\n",
    "empty.bin": b"",
    "multiple.bin": random.Random(1).randbytes(512 * 1468),  # exact multiple of both sizes
    "big.bin": random.Random(2).randbytes(3 * 1024 * 1024 + 17),
    "boot/x64/loader.efi": random.Random(3).randbytes(70_000),
    "menu.txt": b"line one\nline two\r\nbare\rcr\n" * 300,
}


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


def require_tool(command: str, package: str) -> None:
    """Fail loudly (never skip) when a real client is missing: CI installs it."""
    if shutil.which(command) is None:
        pytest.fail(f"{command} not found: apt-get install {package} (make deps)", pytrace=False)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def tftp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tftp")
    root = base / "root"
    for name, content in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    with (root / "huge.bin").open("wb") as huge:  # > 32 MiB: block numbers wrap at 512
        huge.write(random.Random(4).randbytes(1 << 20))
        huge.seek(33 << 20)
        huge.write(b"tail after the wrap")
    (base / "secret").write_bytes(b"must not leak")
    (root / "escape").symlink_to(base / "secret")
    return root


def start_server(root: Path, log: Path, *extra: str) -> Server:
    command = [sys.executable, "-m", "netboot.tftp.server", "--root", str(root)]
    command += ["--address", HOST, "--port", "0", *extra]
    with log.open("wb") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
    assert proc.stdout is not None
    deadline = time.monotonic() + 15
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=deadline - time.monotonic()):
                    line = proc.stdout.readline().decode()
                    assert line.startswith("listening "), (line, log.read_text())
                    return Server(int(line.split()[1]), proc, log)
                if proc.poll() is not None:
                    break
        raise AssertionError(f"server did not start: {log.read_text()}")
    except BaseException:
        stop_server(proc)
        raise


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="module", params=["C", "python"])
def server(
    request: pytest.FixtureRequest, tftp_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    # Every test runs against both data loops: C for files (the default) and the Python
    # engine (dynamic files, netascii, and the fallback when the extension is missing).
    extra = ["--no-fastpath"] if request.param == "python" else []
    running = start_server(tftp_root, tmp_path_factory.mktemp("log") / "server.log", *extra)
    try:
        yield running
    finally:
        stop_server(running.proc)
    assert "Traceback" not in running.log.read_text()


@pytest.fixture
def client_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


def request(sock: socket.socket, port: int, packet: object) -> tuple[object, tuple[str, int]]:
    sock.sendto(encode(packet), (HOST, port))
    data, addr = sock.recvfrom(65536)
    return decode(data), addr


# --- downloads with real clients --------------------------------------------------------


@pytest.mark.parametrize("blksize", [512, 1468])
@pytest.mark.parametrize("name", ["big.bin", "multiple.bin", "empty.bin"])
def test_tftpy_download(server: Server, tmp_path: Path, name: str, blksize: int) -> None:
    dest = tmp_path / "out"
    client = tftpy.TftpClient(HOST, server.port, options={"blksize": blksize})
    client.download(name, str(dest), timeout=5, retries=3)
    assert sha(dest.read_bytes()) == sha(FILES[name])


def test_tftpy_download_with_tsize(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    client = tftpy.TftpClient(HOST, server.port, options={"tsize": 0, "blksize": 1468})
    client.download("boot/x64/loader.efi", str(dest), timeout=5, retries=3)
    assert sha(dest.read_bytes()) == sha(FILES["boot/x64/loader.efi"])
    assert int(client.context.options["tsize"]) == len(FILES["boot/x64/loader.efi"])


@pytest.mark.parametrize("name", ["big.bin", "small.txt", "multiple.bin", "/boot/x64/loader.efi"])
def test_tftp_hpa_download(server: Server, tmp_path: Path, name: str) -> None:
    require_tool("tftp", "tftp-hpa")
    dest = tmp_path / "out"
    command = ["tftp", HOST, str(server.port), "-m", "binary", "-c", "get", name, str(dest)]
    subprocess.run(command, check=True, timeout=60, capture_output=True)
    assert sha(dest.read_bytes()) == sha(FILES[name.lstrip("/")])


@pytest.mark.parametrize("extra", [[], ["--tftp-blksize", "1468"], ["--tftp-blksize", "8192"]])
@pytest.mark.parametrize("name", ["big.bin", "multiple.bin", "boot/x64/loader.efi"])
def test_curl_download(server: Server, name: str, extra: list[str]) -> None:
    require_tool("curl", "curl")
    url = f"tftp://{HOST}:{server.port}/{name}"
    result = subprocess.run(
        ["curl", "-s", "--max-time", "60", *extra, url], check=True, timeout=90, capture_output=True
    )
    assert sha(result.stdout) == sha(FILES[name])


def test_curl_reports_missing_file(server: Server) -> None:
    require_tool("curl", "curl")
    url = f"tftp://{HOST}:{server.port}/nope.bin"
    result = subprocess.run(["curl", "-s", "--max-time", "20", url], timeout=30)
    assert result.returncode == 68  # CURLE_TFTP_NOTFOUND


# --- negotiation and errors on the wire -------------------------------------------------


def test_oack_reports_tsize_and_clamped_blksize(
    server: Server, client_socket: socket.socket
) -> None:
    rrq = ReadRequest("big.bin", "octet", {"tsize": "0", "blksize": "65464"})
    reply, addr = request(client_socket, server.port, rrq)
    assert reply == OptionAck({"tsize": str(len(FILES["big.bin"])), "blksize": "1468"})
    assert addr[1] != server.port  # RFC 1350 section 4: a fresh TID for the transfer
    client_socket.sendto(encode(Error(ErrorCode.OPTION_REFUSED, "size probe only")), addr)


def test_write_request_is_refused_as_read_only(
    server: Server, client_socket: socket.socket, tftp_root: Path
) -> None:
    reply, _ = request(client_socket, server.port, WriteRequest("upload.bin", "octet"))
    assert reply == Error(ErrorCode.ACCESS_VIOLATION, "read-only server")
    assert not (tftp_root / "upload.bin").exists()


def test_missing_file_is_error_1(server: Server, client_socket: socket.socket) -> None:
    reply, _ = request(client_socket, server.port, ReadRequest("missing.bin", "octet"))
    assert isinstance(reply, Error) and reply.code == ErrorCode.FILE_NOT_FOUND


@pytest.mark.parametrize(
    "name", ["../secret", "/../secret", "boot/../../secret", "..\\secret", "escape", "boot"]
)
def test_hostile_path_is_error_2(server: Server, client_socket: socket.socket, name: str) -> None:
    reply, _ = request(client_socket, server.port, ReadRequest(name, "octet"))
    assert isinstance(reply, Error) and reply.code == ErrorCode.ACCESS_VIOLATION


def test_unsupported_mode_is_error_4(server: Server, client_socket: socket.socket) -> None:
    reply, _ = request(client_socket, server.port, ReadRequest("small.txt", "mail"))
    assert isinstance(reply, Error) and reply.code == ErrorCode.ILLEGAL_OPERATION


def test_foreign_tid_gets_error_5_and_transfer_continues(
    server: Server, client_socket: socket.socket
) -> None:
    content = FILES["multiple.bin"]
    first, transfer = request(client_socket, server.port, ReadRequest("multiple.bin", "octet"))
    assert first == Data(1, content[:512])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder:
        intruder.bind((HOST, 0))
        intruder.settimeout(5)
        reply, _ = request(intruder, transfer[1], Ack(1))
        assert isinstance(reply, Error) and reply.code == ErrorCode.UNKNOWN_TID
    second, _ = request(client_socket, transfer[1], Ack(1))
    assert second == Data(2, content[512:1024])
    client_socket.sendto(encode(Error(ErrorCode.NOT_DEFINED, "done testing")), transfer)


def test_session_cap_answers_server_busy(tftp_root: Path, tmp_path: Path) -> None:
    capped = start_server(tftp_root, tmp_path / "capped.log", "--max-sessions", "1")
    try:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second,
        ):
            for sock in (first, second):
                sock.bind((HOST, 0))
                sock.settimeout(5)
            data, transfer = request(first, capped.port, ReadRequest("big.bin", "octet"))
            assert isinstance(data, Data) and data.block == 1
            busy, _ = request(second, capped.port, ReadRequest("small.txt", "octet"))
            assert busy == Error(
                ErrorCode.NOT_DEFINED, "server busy: too many transfers, retry later"
            )
            first.sendto(encode(Error(ErrorCode.NOT_DEFINED, "abandon")), transfer)
            # The abort frees the slot once the server has read it: poll, with a deadline.
            # (A busy request port can delay the transfer port for one reactor iteration.)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                reply, _ = request(second, capped.port, ReadRequest("small.txt", "octet"))
                if isinstance(reply, Data):
                    break
                time.sleep(0.02)
            assert reply == Data(1, FILES["small.txt"])
    finally:
        stop_server(capped.proc)


def test_server_survives_a_burst_of_garbage(server: Server, client_socket: socket.socket) -> None:
    rng = random.Random(1350)
    junk = [rng.randbytes(rng.randrange(0, 600)) for _ in range(300)]
    junk += [b"", b"\x00\x01", b"\x00\x01x", b"\x00\x04\x00\x01", b"\x00\x03\x00\x01data"]
    junk += [b"\x00\x05\x00\x00no-nul", b"\x00\x06odd\x00", b"\xff" * 1400]
    for datagram in junk:
        client_socket.sendto(datagram, (HOST, server.port))
    # The kernel may drop part of the burst (and our request) when the socket buffer
    # fills, so retransmit the RRQ like a real client would, a bounded number of times.
    client_socket.settimeout(0.5)
    for _ in range(20):
        try:
            reply, transfer = request(client_socket, server.port, ReadRequest("small.txt", "octet"))
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError("no answer after the garbage burst")
    assert reply == Data(1, FILES["small.txt"])
    client_socket.sendto(encode(Ack(1)), transfer)
    assert server.proc.poll() is None


# --- windowsize (RFC 7440) with atftp, netascii, hostile input ------------------------


@pytest.mark.parametrize("options", [["blksize 1468", "windowsize 16"], ["windowsize 4"]])
def test_atftp_windowed_download(server: Server, tmp_path: Path, options: list[str]) -> None:
    require_tool("atftp", "atftp")
    dest = tmp_path / "out"
    command = ["atftp"]
    for option in options:
        command += ["--option", option]
    command += ["--get", "-r", "big.bin", "-l", str(dest), HOST, str(server.port)]
    subprocess.run(command, check=True, timeout=120, capture_output=True)
    assert sha(dest.read_bytes()) == sha(FILES["big.bin"])


def test_windowsize_is_granted_in_the_oack(server: Server, client_socket: socket.socket) -> None:
    rrq = ReadRequest("big.bin", "octet", {"blksize": "1468", "windowsize": "64"})
    reply, addr = request(client_socket, server.port, rrq)
    assert reply == OptionAck({"blksize": "1468", "windowsize": "16"})
    client_socket.sendto(encode(Ack(0)), addr)
    blocks = [decode(client_socket.recvfrom(65536)[0]) for _ in range(16)]
    assert [b.block for b in blocks] == list(range(1, 17))  # a whole window, unasked
    assert b"".join(b.payload for b in blocks) == FILES["big.bin"][: 16 * 1468]
    client_socket.sendto(encode(Error(ErrorCode.NOT_DEFINED, "enough")), addr)


def test_netascii_download_is_translated_on_the_wire(
    server: Server, client_socket: socket.socket
) -> None:
    reply, addr = request(client_socket, server.port, ReadRequest("small.txt", "netascii"))
    assert reply == Data(1, FILES["small.txt"].replace(b"\n", b"\r\n"))
    client_socket.sendto(encode(Ack(1)), addr)


def test_netascii_round_trip_through_tftp_hpa_ascii_mode(server: Server, tmp_path: Path) -> None:
    require_tool("tftp", "tftp-hpa")
    dest = tmp_path / "menu"
    command = ["tftp", HOST, str(server.port), "-m", "ascii", "-c", "get", "menu.txt", str(dest)]
    subprocess.run(command, check=True, timeout=60, capture_output=True)
    assert dest.read_bytes() == FILES["menu.txt"]  # the client undoes RFC 764 exactly


def test_the_log_names_the_loop_that_sent_each_file(
    server: Server, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Octet files go through C unless --no-fastpath; netascii always through Python."""
    tftpy.TftpClient(HOST, server.port).download("multiple.bin", str(tmp_path / "a"), timeout=5)
    require_tool("tftp", "tftp-hpa")
    command = ["tftp", HOST, str(server.port), "-m", "ascii", "-c", "get", "small.txt"]
    subprocess.run([*command, str(tmp_path / "b")], check=True, timeout=60, capture_output=True)
    file_loop = request.node.callspec.params["server"]
    wanted = [f"sent multiple.bin to {HOST}", f"sent small.txt to {HOST}"]
    deadline = time.monotonic() + 5  # the line is written when the reactor hears the end
    while time.monotonic() < deadline:
        lines = [line for line in server.log.read_text().splitlines() if "tftp: sent " in line]
        found = {w: [line for line in lines if w in line] for w in wanted}
        if all(found.values()):
            break
        time.sleep(0.05)
    assert found[wanted[0]] and found[wanted[0]][-1].endswith(f", {file_loop} loop")
    assert found[wanted[1]] and found[wanted[1]][-1].endswith(", python loop")


def test_netascii_declines_tsize(server: Server, client_socket: socket.socket) -> None:
    rrq = ReadRequest("menu.txt", "netascii", {"tsize": "0", "blksize": "1024"})
    reply, addr = request(client_socket, server.port, rrq)
    assert reply == OptionAck({"blksize": "1024"})  # translated size unknown up front
    client_socket.sendto(encode(Error(ErrorCode.NOT_DEFINED, "probe")), addr)


@pytest.mark.parametrize(
    "name",
    [
        "boot\\..\\..\\secret",
        "C:\\..\\secret",
        "/" * 300 + "../secret",
        "boot/%2e%2e/%2e%2e/secret",
        "\udcff\udcfe../secret",
        "x" * 4000,
        ".",
        "",
    ],
)
def test_more_hostile_names_get_an_error_never_a_file(
    server: Server, client_socket: socket.socket, name: str
) -> None:
    reply, _ = request(client_socket, server.port, ReadRequest(name, "octet"))
    assert isinstance(reply, Error)
    assert reply.code in (ErrorCode.FILE_NOT_FOUND, ErrorCode.ACCESS_VIOLATION)


def test_windows_style_request_is_served(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    client = tftpy.TftpClient(HOST, server.port, options={"blksize": 1468})
    client.download("\\boot\\x64\\loader.efi", str(dest), timeout=5, retries=3)
    assert sha(dest.read_bytes()) == sha(FILES["boot/x64/loader.efi"])


def test_fuzzed_requests_and_acks_never_kill_the_server(
    server: Server, client_socket: socket.socket
) -> None:
    rng = random.Random(7440)
    # Structured junk: valid opcodes with corrupt options, absurd values, truncated ACKs.
    junk = [
        b"\x00\x01big.bin\x00octet\x00blksize\x00" + b"9" * 50 + b"\x00",
        b"\x00\x01big.bin\x00octet\x00windowsize\x00-1\x00tsize\x00x\x00",
        b"\x00\x01big.bin\x00octet\x00blksize\x00" + b"\x00" * 30,
        b"\x00\x01big.bin\x00octet\x00dup\x001\x00DUP\x002\x00",
        b"\x00\x02big.bin\x00octet\x00",
        b"\x00\x06blksize\x00512\x00",
    ]
    junk += [b"\x00\x01" + rng.randbytes(rng.randrange(1, 80)) for _ in range(200)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fuzzer:
        fuzzer.bind((HOST, 0))  # answers to the junk (errors, OACKs) go here
        for datagram in junk:
            fuzzer.sendto(datagram, (HOST, server.port))
    # Mid-transfer: garbage and out-of-range ACKs on the transfer port.
    first, transfer = request(client_socket, server.port, ReadRequest("multiple.bin", "octet"))
    for datagram in [b"", b"\x00\x04", b"\x00\x04\xff\xff", b"\x00\x09zz", rng.randbytes(700)]:
        client_socket.sendto(datagram, transfer)
    second, _ = request(client_socket, transfer[1], Ack(1))
    assert first == Data(1, FILES["multiple.bin"][:512])
    # The junk may have drawn a retransmission of block 1 first; block 2 follows.
    while isinstance(second, Data) and second.block == 1:
        second = decode(client_socket.recvfrom(65536)[0])
    assert second == Data(2, FILES["multiple.bin"][512:1024])
    client_socket.sendto(encode(Error(ErrorCode.NOT_DEFINED, "done")), transfer)
    assert server.proc.poll() is None


@pytest.mark.parametrize("options", [["blksize 512", "windowsize 16"], ["blksize 512"]])
def test_file_over_32_mib_survives_block_number_rollover(
    server: Server, tftp_root: Path, tmp_path: Path, options: list[str]
) -> None:
    require_tool("atftp", "atftp")
    dest = tmp_path / "out"
    command = ["atftp"]
    for option in options:
        command += ["--option", option]
    command += ["--get", "-r", "huge.bin", "-l", str(dest), HOST, str(server.port)]
    subprocess.run(command, check=True, timeout=240, capture_output=True)
    assert sha(dest.read_bytes()) == sha((tftp_root / "huge.bin").read_bytes())


def test_stalled_client_does_not_hold_up_concurrent_transfers(
    server: Server, client_socket: socket.socket, tmp_path: Path
) -> None:
    # All transfers of a process share one loop (tftp/engine.py): a client that never
    # ACKs waits on its own retransmission timer while eight real clients, lock-step
    # and windowed, run to the end beside it.
    require_tool("atftp", "atftp")
    stalled, transfer = request(client_socket, server.port, ReadRequest("big.bin", "octet"))
    assert stalled == Data(1, FILES["big.bin"][:512])
    clients = []
    for i in range(8):
        command = ["timeout", "120", "atftp", "--option", "blksize 1468"]
        if i % 2:
            command += ["--option", "windowsize 8"]
        command += ["--get", "-r", "big.bin", "-l", str(tmp_path / f"c{i}"), HOST]
        clients.append(subprocess.Popen([*command, str(server.port)], stderr=subprocess.PIPE))
    for proc in clients:
        _, err = proc.communicate(timeout=150)
        assert proc.returncode == 0, err
    for i in range(8):
        assert sha((tmp_path / f"c{i}").read_bytes()) == sha(FILES["big.bin"])
    # Meanwhile the stalled transfer was only retransmitted by its timer (1 s first).
    again, addr = client_socket.recvfrom(2048)
    assert addr == transfer and decode(again) == Data(1, FILES["big.bin"][:512])
    client_socket.sendto(encode(Error(ErrorCode.NOT_DEFINED, "done")), transfer)
