"""Real power endpoints for the power driver tests, all on loopback.

- ThreadedReactor: a private (not installed) Twisted reactor run on a thread, so tests
  drive the drivers' Deferreds with a bounded wait and no global reactor is touched.
- LibvirtDaemon: a private, unprivileged libvirtd (session mode, run as ``nobody`` with
  its own XDG dirs under /tmp) reachable through its own socket. Session mode has no
  "default" network and no privileges: it cannot create bridges or start dnsmasq on
  the host. Domains are tiny TCG VMs with no disk and no NIC that sit in SeaBIOS.
- VirtualBMC (IPMI) and the sushy-tools Redfish emulator, on 127.0.0.1 high ports, in
  front of that libvirtd.
- Silent endpoints: a UDP or TCP socket that accepts and never answers (a "slow BMC").
Everything is stopped by PID in ``close()``; nothing is left behind on failure.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from twisted.internet.epollreactor import EPollReactor

NOBODY = 65534
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class ThreadedReactor:
    """A private reactor on a daemon thread; ``call`` runs a Deferred-returning function
    on it and waits (bounded) for the result."""

    def __init__(self) -> None:
        self.reactor = EPollReactor()
        self._thread = threading.Thread(
            target=self.reactor.run,
            kwargs={"installSignalHandlers": False},
            name="power-test-reactor",
            daemon=True,
        )
        self._thread.start()
        wait_until(lambda: self.reactor.running, 10, "the test reactor to run")

    def call(self, fn, *args: Any, timeout: float = 60.0) -> Any:
        """fn(*args) on the reactor thread; its Deferred's result, or raise its error."""
        box: queue.Queue = queue.Queue()

        def start() -> None:
            from twisted.internet import defer

            d = defer.maybeDeferred(fn, *args)
            d.addBoth(box.put)

        self.reactor.callFromThread(start)
        try:
            outcome = box.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no result within {timeout:g} s from {fn!r}") from None
        from twisted.python.failure import Failure

        if isinstance(outcome, Failure):
            outcome.raiseException()
        return outcome

    def start(self, fn, *args: Any) -> queue.Queue:
        """fn(*args) on the reactor thread without waiting; the queue gets its outcome."""
        box: queue.Queue = queue.Queue()

        def go() -> None:
            from twisted.internet import defer

            defer.maybeDeferred(fn, *args).addBoth(box.put)

        self.reactor.callFromThread(go)
        return box

    def close(self) -> None:
        if self.reactor.running:
            self.reactor.callFromThread(self.reactor.stop)
        self._thread.join(timeout=15)


def domain_xml(name: str, domain_uuid: str) -> str:
    """A minimal TCG guest: 64 MiB, no disk, no NIC (so libvirt touches no network);
    SeaBIOS finds nothing to boot and waits."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <uuid>{domain_uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='null'/>
    <memballoon model='none'/>
  </devices>
</domain>"""


class LibvirtDaemon:
    """A private session-mode libvirtd run as ``nobody``; ``uri`` reaches it."""

    def __init__(self) -> None:
        if shutil.which("libvirtd") is None and not Path("/usr/sbin/libvirtd").exists():
            raise AssertionError(
                "libvirtd is not installed: apt-get install libvirt-daemon "
                "libvirt-daemon-driver-qemu (the Makefile's APT_PACKAGES has them)"
            )
        self.root = Path(tempfile.mkdtemp(prefix="nb-libvirt-", dir="/tmp"))
        self.proc: subprocess.Popen | None = None
        self.domains: list[str] = []
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    @property
    def socket(self) -> Path:
        return self.root / "run" / "libvirt" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///session?socket={self.socket}"

    def _start(self) -> None:
        for sub in ("home", "run", "config/libvirt", "cache"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # QEMU output to plain files: no virtlogd daemon to spawn (and leave) behind.
        (self.root / "config/libvirt/qemu.conf").write_text('stdio_handler = "file"\n')
        (self.root / "config/libvirt/libvirtd.conf").write_text(
            'unix_sock_rw_perms = "0777"\nkeepalive_interval = 5\n'
        )
        os.chmod(self.root, 0o755)
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.root / "home"),
            "XDG_RUNTIME_DIR": str(self.root / "run"),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_CACHE_HOME": str(self.root / "cache"),
        }
        self.log = open(self.root / "libvirtd.log", "wb")  # noqa: SIM115 (closed in close)
        self.proc = subprocess.Popen(
            [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "/usr/sbin/libvirtd",
                "--timeout=0",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            lambda: self.socket.exists() or self.proc.poll() is not None,
            60,
            "libvirtd's socket",
        )
        if self.proc.poll() is not None:
            raise AssertionError(f"libvirtd exited: {self.tail()}")

    def tail(self) -> str:
        try:
            return (self.root / "libvirtd.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def connect(self):
        import libvirt

        libvirt.registerErrorHandler(lambda *_: None, None)
        return libvirt.open(self.uri)

    def define(self, name: str) -> str:
        """Define (not start) a tiny domain; returns its UUID."""
        domain_uuid = str(uuid.uuid4())
        conn = self.connect()
        try:
            conn.defineXML(domain_xml(name, domain_uuid))
        finally:
            conn.close()
        self.domains.append(name)
        return domain_uuid

    def is_active(self, name: str) -> bool:
        conn = self.connect()
        try:
            return bool(conn.lookupByName(name).isActive())
        finally:
            conn.close()

    def set_active(self, name: str, active: bool) -> None:
        conn = self.connect()
        try:
            dom = conn.lookupByName(name)
            if active and not dom.isActive():
                dom.create()
            elif not active and dom.isActive():
                dom.destroy()
        finally:
            conn.close()

    def _qemu_pids(self) -> list[int]:
        pids = []
        for pidfile in (self.root / "run" / "libvirt" / "qemu" / "run").glob("*.pid"):
            try:
                pids.append(int(pidfile.read_text().strip()))
            except (OSError, ValueError):
                continue
        return pids

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                conn = self.connect()
                for dom in conn.listAllDomains():
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
                conn.close()
            except Exception:  # noqa: BLE001 - best effort; the kill below still runs
                pass
        leftover = self._qemu_pids()
        if self.proc is not None:
            stop_process(self.proc)
        for pid in leftover:  # QEMU processes outlive libvirtd: end ours by PID
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(self.root).encode() in cmdline:  # not a reused PID
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM then SIGKILL one process we started (its own session), by PID."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(timeout=10)


class VirtualBMC:
    """virtualbmc's VirtualBMC for one domain, on UDP 127.0.0.1:port (power_vbmc.py)."""

    def __init__(self, libvirt_uri: str, domain: str, user: str, password: str) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.address = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "power_vbmc.py"),
                libvirt_uri,
                domain,
                str(self.port),
                user,
                password,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        line = _read_line(self.proc, 60)
        if "listening" not in line:
            stop_process(self.proc)
            raise AssertionError(f"virtualbmc did not start: {line!r}")

    def close(self) -> None:
        stop_process(self.proc)


class SushyEmulator:
    """sushy-tools' Redfish emulator on http://127.0.0.1:port with basic auth."""

    def __init__(self, libvirt_uri: str, user: str, password: str, workdir: Path) -> None:
        import bcrypt

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        htpasswd = workdir / "htpasswd"
        digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        htpasswd.write_text(f"{user}:{digest}\n")
        config = workdir / "emulator.conf"
        config.write_text(
            f"SUSHY_EMULATOR_AUTH_FILE = {str(htpasswd)!r}\n"
            f"SUSHY_EMULATOR_LIBVIRT_URI = {libvirt_uri!r}\n"
            "SUSHY_EMULATOR_IGNORE_BOOT_DEVICE = True\n"
        )
        self.log = open(workdir / "emulator.log", "wb")  # noqa: SIM115 (closed in close)
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "sushy-emulator"),
                "--config",
                str(config),
                "--interface",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--libvirt-uri",
                libvirt_uri,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(self._answers, 60, "the Redfish emulator to answer")
        except AssertionError:
            self.close()
            raise

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"sushy-emulator exited with {self.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def close(self) -> None:
        stop_process(self.proc)
        self.log.close()


class SshServer:
    """Dropbear (Debian's dropbear-bin: binaries only, no service) on 127.0.0.1, key-only
    logins as root, for libvirt's ``qemu+ssh`` transport.

    ssh looks up ``~/.ssh`` through the password database, and the real root's home must
    not be touched (no authorized_keys, no known_hosts written on the host). So the
    server, and every client the test runs (``client_command``), run in a private mount
    namespace in which a copy of /etc/passwd, bind-mounted over the real one, gives root
    a home in this server's temporary directory. The key pair is generated here.
    """

    def __init__(self) -> None:
        for tool in ("dropbear", "dropbearkey", "ssh", "ssh-keygen", "nc", "unshare"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                raise AssertionError(
                    f"{tool} is not installed: apt-get install dropbear-bin openssh-client "
                    "netcat-openbsd util-linux (the Makefile's APT_PACKAGES has them)"
                )
        self.root = Path(tempfile.mkdtemp(prefix="nb-ssh-", dir="/tmp"))
        self.proc: subprocess.Popen | None = None
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        home = self.root / "home"
        (home / ".ssh").mkdir(parents=True, mode=0o700)
        self.key = home / ".ssh" / "id_netboot_test"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "netboot-test", "-f", self.key],
            check=True,
            timeout=30,
        )
        (home / ".ssh" / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        self.other_key = self.root / "not-authorized"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.other_key],
            check=True,
            timeout=30,
        )
        host_key = self.root / "host_ed25519"
        subprocess.run(
            ["dropbearkey", "-t", "ed25519", "-f", host_key], check=True, capture_output=True
        )
        rows = []
        for line in Path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == "root" and len(fields) == 7:
                fields[5] = str(home)
            rows.append(":".join(fields))
        self.passwd = self.root / "passwd"
        self.passwd.write_text("\n".join(rows) + "\n")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = open(self.root / "dropbear.log", "wb")  # noqa: SIM115 (closed in close)
        # -F foreground, -E log to stderr, -s no password logins, -p loopback only.
        self.proc = subprocess.Popen(
            self.client_command(
                ["dropbear", "-F", "-E", "-s", "-p", self.address, "-r", str(host_key)]
                + ["-P", str(self.root / "dropbear.pid")]
            ),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._listening, 30, "dropbear to listen")

    def client_command(self, argv: list[str]) -> list[str]:
        """``argv`` run with root's home in this server's directory (mount namespace)."""
        script = f'mount --bind "{self.passwd}" /etc/passwd && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]

    def libvirt_uri(self, socket_path: Path, key: Path | None = None) -> str:
        """qemu+ssh to the libvirtd behind ``socket_path`` (libvirt runs nc there)."""
        return (
            f"qemu+ssh://root@{self.address}/session?socket={socket_path}"
            f"&keyfile={key or self.key}&no_verify=1&no_tty=1"
        )

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"dropbear exited: {self.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def tail(self) -> str:
        try:
            return (self.root / "dropbear.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


class SilentServer:
    """A loopback socket that takes requests and never answers: a hung BMC."""

    def __init__(self, kind: int) -> None:
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            self.sock.listen(16)  # the kernel completes handshakes; nobody ever reads
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    box: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: box.put(proc.stdout.readline()), daemon=True).start()
    try:
        return box.get(timeout=timeout).decode(errors="replace")
    except queue.Empty:
        return f"(nothing within {timeout:g} s)"
