"""Run ``netboot serve`` inside a lab namespace, on the lab bridge only."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from netboot.lab.netns import LabNetwork

READY_LINE = "netboot: ready"


def lab_config(lab: LabNetwork, state_dir: Path, boot_dir: Path, http_port: int = 5248) -> str:
    net = lab.address.network
    hosts = list(net.hosts())
    return f"""\
# Written by netboot.lab for a private lab namespace ({lab.name}).
server_address = "{lab.address.ip}"
state_dir = "{state_dir}"
boot_dir = "{boot_dir}"

[http]
port = {http_port}

[tftp]
port = 69

[dhcp]
interfaces = ["{lab.bridge}"]
subnet = "{net}"
range_start = "{hosts[99]}"
range_end = "{hosts[198]}"
lease_seconds = 600
domain = "maas.lan"

[dns]
upstreams = []  # the lab has no internet: node names only (tests add fake upstreams)
"""


class LabAppliance:
    """A ``netboot serve`` process in the lab namespace; its log is kept in workdir."""

    def __init__(
        self, lab: LabNetwork, workdir: Path, boot_dir: Path, http_port: int = 5248
    ) -> None:
        self.lab = lab
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = workdir / "state"
        self.config_path = workdir / "netboot.toml"
        self.log_path = workdir / "netboot.log"
        self.config_path.write_text(lab_config(lab, self.state_dir, boot_dir, http_port))
        self.http_base = f"http://{lab.address.ip}:{http_port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> LabAppliance:
        with open(self.log_path, "ab") as log:
            self.proc = self.lab.popen(
                [sys.executable, "-m", "netboot.cli", "--config", str(self.config_path), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.log_text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"netboot serve exited {self.proc.returncode}:\n{self.log_text()}"
                )
            time.sleep(0.1)
        raise TimeoutError(f"netboot serve not ready after {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def netboot(self, *args: str) -> subprocess.CompletedProcess:
        """Run a ``netboot`` CLI command against this appliance's config (root namespace)."""
        return subprocess.run(
            [sys.executable, "-m", "netboot.cli", "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
