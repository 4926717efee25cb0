"""`netboot images import` against a real HTTP server on 127.0.0.1: Range resume after a
dropped connection, two imports at once joining one job, refusing bad images while the
previous version keeps being served by `netboot serve`."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.unit.test_images import make_image


class ImageServer:
    """Serves a directory with Range support; can throttle and cut connections short."""

    def __init__(self, root: Path, rate: int = 0, cut_after: int | None = None) -> None:
        self.root = root
        self.rate = rate  # bytes per second for big files (0: unthrottled)
        self.cut_after = cut_after  # close the first big-file response after N bytes
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 (http.server API)
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                limit = len(body)
                if server.cut_after is not None and len(data) > 100_000:
                    limit, server.cut_after = min(limit, server.cut_after), None
                sent = 0
                while sent < limit:
                    chunk = body[sent : min(limit, sent + 65536)]
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if server.rate and len(data) > 100_000:
                        time.sleep(len(chunk) / server.rate)
                if limit < len(body):
                    self.close_connection = True
                    self.connection.shutdown(2)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """An appliance on 127.0.0.1 only: free ports, no DHCP, no DNS."""
    cfg = tmp_path / "netboot.toml"
    cfg.write_text(
        f'server_address = "127.0.0.1"\nstate_dir = "{tmp_path / "state"}"\n'
        f'boot_dir = "{tmp_path}"\n[http]\nport = {free_port()}\n'
        f"[tftp]\nport = {free_port(socket.SOCK_DGRAM)}\n"
        # No DNS server on the host's loopback (it would forward to real upstreams).
        "[dns]\nenabled = false\n"
    )
    return cfg


def netboot(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netboot.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cached(tmp_path: Path, ref: str, name: str) -> bytes:
    return (tmp_path / "state" / "images" / ref / name).read_bytes()


def test_http_import_resumes_with_a_range_request_after_the_connection_dropped(tmp_path, config):
    payload = os.urandom(3_000_000)
    make_image(tmp_path / "www", files={"root.tar.zst": payload})
    server = ImageServer(tmp_path / "www", cut_after=1_000_000)
    try:
        first = netboot(config, "images", "import", f"{server.url}/manifest.json")
        assert first.returncode == 1
        assert "image refused" in first.stderr  # the short read is refused, not installed
        second = netboot(config, "images", "import", f"{server.url}/manifest.json")
        assert second.returncode == 0, second.stderr
        assert "imported deploy/img/v1" in second.stdout
    finally:
        server.close()
    ranges = [r for p, r in server.requests if p == "/root.tar.zst"]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:-1]) >= 900_000  # continued, did not start over
    assert cached(tmp_path, "deploy/img/v1", "root.tar.zst") == payload


def test_two_imports_at_once_run_one_job_and_both_report_it(tmp_path, config):
    payload = os.urandom(2_000_000)
    make_image(tmp_path / "www", files={"root.tar.zst": payload})
    server = ImageServer(tmp_path / "www", rate=1_000_000)  # about 2 s for the file
    try:
        args = [
            sys.executable,
            "-m",
            "netboot.cli",
            "--config",
            str(config),
            "images",
            "import",
            f"{server.url}/manifest.json",
        ]
        procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
        time.sleep(0.5)  # the first holds the job lock and is downloading
        procs.append(
            subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        server.close()
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0].strip() == "imported deploy/img/v1"
    assert outs[1][0].strip() == "joined the running import of deploy/img/v1"
    assert [p for p, _ in server.requests].count("/root.tar.zst") == 1  # downloaded once
    assert cached(tmp_path, "deploy/img/v1", "root.tar.zst") == payload
    listing = json.loads(netboot(config, "images", "list", "--json").stdout)
    assert [(i["ref"], i["current"]) for i in listing["images"]] == [("deploy/img/v1", True)]
    assert [j["state"] for j in listing["jobs"]] == ["done"]
    assert not list((tmp_path / "state" / "images" / "partial").iterdir())


def test_bad_images_are_refused_and_serve_keeps_serving_the_previous_one(tmp_path, config):
    good = os.urandom(500_000)
    make_image(tmp_path / "v1", version="v1", files={"root.tar.zst": good})
    assert (
        netboot(config, "images", "import", str(tmp_path / "v1" / "manifest.json")).returncode == 0
    )
    # v2 with a wrong checksum, v3 truncated
    make_image(
        tmp_path / "v2",
        version="v2",
        files={"root.tar.zst": os.urandom(500_000)},
        lie={"root.tar.zst": {"sha256": "1" * 64, "size": 500_000}},
    )
    bad = netboot(config, "images", "import", str(tmp_path / "v2" / "manifest.json"))
    assert bad.returncode == 1
    assert "image refused: root.tar.zst: wrong checksum" in bad.stderr
    assert "still serving: deploy/img/v1" in bad.stderr
    make_image(tmp_path / "v3", version="v3", files={"root.tar.zst": os.urandom(500_000)})
    with open(tmp_path / "v3" / "root.tar.zst", "r+b") as fh:
        fh.truncate(4096)
    short = netboot(config, "images", "import", str(tmp_path / "v3" / "manifest.json"))
    assert short.returncode == 1 and "truncated: 4096 bytes" in short.stderr

    # The appliance serves v1, byte for byte, and refuses it once it is damaged on disk.
    serve = subprocess.Popen(
        [sys.executable, "-m", "netboot.cli", "--config", str(config), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = _wait_port(config, serve)
        url = f"http://127.0.0.1:{port}/images/deploy/img/v1/root.tar.zst"
        assert urllib.request.urlopen(url, timeout=10).read() == good
        api = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/images").read())
        assert [(i["version"], i["current"]) for i in api["images"]] == [("v1", True)]
        assert {j["state"] for j in api["jobs"]} == {"done", "failed"}
        path = tmp_path / "state" / "images" / "deploy" / "img" / "v1" / "root.tar.zst"
        with open(path, "r+b") as fh:
            fh.truncate(100)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code == 503
        assert b"changed since it was verified" in err.value.read()
    finally:
        serve.terminate()
        serve.wait(timeout=10)
    verify = netboot(config, "images", "verify")
    assert verify.returncode == 1 and "BAD deploy/img/v1: root.tar.zst: truncated" in verify.stdout


def _wait_port(config: Path, proc: subprocess.Popen) -> int:
    """Wait (bounded) for `netboot serve` to say it is ready; return its HTTP port."""
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "netboot: ready" in line:
            return int(config.read_text().split("[http]\nport = ")[1].split()[0])
        if not line and proc.poll() is not None:
            break
    raise AssertionError("netboot serve did not become ready:\n" + "".join(seen))
