"""DNS of `netboot serve` in a lab namespace, asked by real clients (dig, kdig) from other
namespaces on the lab bridge, with a fake "internet" upstream in yet another namespace.

Lab addresses: appliance 10.66.0.1; fake upstream 10.66.0.60 (tests/integration/
fake_dns_upstream.py); a client inside the recursion ACL 10.66.0.50; a client outside
it 10.66.0.70 (the ACL is set to 10.66.0.0/26 here). `x.down.test` is conditionally
forwarded to two dead upstreams (no host at 10.66.0.61; a closed port on 10.66.0.60).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabHost, LabNetwork
from tests.conftest import require_root

pytestmark = pytest.mark.netns

HERE = Path(__file__).resolve().parent
UPSTREAM = "10.66.0.60"
SERVER = "10.66.0.1"

DNS_TABLE = f"""[dns]
upstreams = ["{UPSTREAM}"]
upstream_timeout = 0.5
allow_recursion = ["10.66.0.0/26"]
records = ["gw IN A 10.66.0.254", "wiki IN CNAME gw", "mail IN MX 10 gw"]

[dns.forward_zones]
"down.test" = ["10.66.0.61", "{UPSTREAM}:5399"]
"""


# Log readers of the running appliances: a query that gets no answer shows their logs.
_APPLIANCE_LOGS: list = []


@dataclass
class DNSLab:
    lab: LabNetwork
    app: LabAppliance
    upstream: LabHost
    client: LabHost
    outsider: LabHost


@pytest.fixture(scope="module")
def dns_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DNSLab]:
    require_root()
    tmp = tmp_path_factory.mktemp("dns")
    boot = tmp / "boot"
    boot.mkdir()
    with LabNetwork(prefix="nbdns") as lab:
        upstream = lab.add_host(f"{UPSTREAM}/24")
        with open(tmp / "upstream.log", "wb") as out:
            up = upstream.popen(
                [sys.executable, str(HERE / "fake_dns_upstream.py"), "--bind", UPSTREAM],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        app = LabAppliance(lab, tmp / "appliance", boot)
        text = app.config_path.read_text()
        start = text.index("[dns]")
        app.config_path.write_text(text[:start] + DNS_TABLE)
        app.start()
        _APPLIANCE_LOGS.append(app.log_text)
        try:
            app.wait_ready()
            _wait_for(lambda: "ready" in (tmp / "upstream.log").read_text(), "fake upstream")
            assert up.poll() is None, (tmp / "upstream.log").read_text()
            yield DNSLab(
                lab, app, upstream, lab.add_host("10.66.0.50/24"), lab.add_host("10.66.0.70/24")
            )
        finally:
            _APPLIANCE_LOGS.remove(app.log_text)
            app.stop()


# -- clients -----------------------------------------------------------------------


@dataclass
class Reply:
    status: str
    flags: set[str]
    answers: list[tuple[str, str, str]]  # (name, type, data)
    authority: list[tuple[str, str, str]]
    text: str


def dig(host: LabHost, *args: str, tool: str = "dig") -> Reply:
    """Run dig (or kdig) against the appliance and parse its answer."""
    # One retry: a loaded CI box can stall the appliance for a moment (a disk sync).
    extra = ["+time=5", "+tries=2"] if tool == "dig" else ["+time=5", "+retry=1"]
    result = host.run([tool, f"@{SERVER}", *extra, *args], timeout=30)
    text = result.stdout.decode(errors="replace")
    status = re.search(r"status: (\w+)", text)
    if not status:
        logs = "\n".join(f() for f in _APPLIANCE_LOGS)[-4000:]
        where = "\n".join(_where(f.__self__.proc) for f in _APPLIANCE_LOGS)
        pytest.fail(
            f"{tool} {' '.join(args)} got no answer:\n{text}\nappliance: {where}\n"
            f"appliance log:\n{logs}"
        )
    flags = re.search(r"flags: ([a-z ]*)[;]", text, re.IGNORECASE)
    return Reply(
        status=status.group(1),
        flags=set(flags.group(1).split()) if flags else set(),
        answers=_section(text, "ANSWER"),
        authority=_section(text, "AUTHORITY"),
        text=text,
    )


def _where(proc) -> str:
    """What the appliance process is doing (state, kernel wait channel, syscall): tells
    a blocked reactor (e.g. a disk sync) from a lost datagram when a query goes unanswered."""
    if proc is None or proc.poll() is not None:
        return f"exited {proc.returncode if proc else '?'}"
    parts = []
    for name in ("wchan", "syscall"):
        with contextlib.suppress(OSError):
            parts.append(f"{name}={Path(f'/proc/{proc.pid}/{name}').read_text().strip()}")
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        parts += [ln for ln in state if ln.startswith(("State", "Threads"))]
    return f"pid {proc.pid} " + " ".join(parts)


def _section(text: str, name: str) -> list[tuple[str, str, str]]:
    match = re.search(rf";; {name} SECTION:\n(.*?)(?:\n\n|\n;;|\Z)", text, re.S)
    rows = []
    for line in match.group(1).splitlines() if match else []:
        parts = line.split()
        if len(parts) >= 5 and not line.startswith(";"):
            rows.append((parts[0].lower(), parts[3], " ".join(parts[4:])))
    return rows


def upstream_queries(env: DNSLab) -> int:
    result = env.upstream.run(
        ["dig", f"@{UPSTREAM}", "+short", "+time=3", "+tries=1", "queries.stats.fake", "TXT"]
    )
    return int(result.stdout.decode().strip().strip('"'))


def enlist(env: DNSLab, mac: str, ipv4: str) -> dict:
    body = json.dumps(
        {
            "boot_mac": mac,
            "interfaces": [{"name": "eth0", "mac": mac, "ipv4": ipv4}],
            "cpu": {"count": 1},
            "memory": {"total_mib": 512},
        }
    )
    result = env.client.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--data-binary",
            body,
            f"http://{SERVER}:5248/api/enlist",
        ]
    )
    return json.loads(result.stdout)


def _wait_for(check, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout}s")


# -- authoritative -------------------------------------------------------------------


def test_enlisted_node_answers_at_once_forward_and_reverse(dns_lab: DNSLab):
    node = enlist(dns_lab, "52:54:00:d0:00:01", "10.66.0.123")
    fqdn = f"{node['hostname']}.maas.lan."
    forward = dig(dns_lab.client, fqdn, "A")
    assert forward.status == "NOERROR" and "aa" in forward.flags, forward.text
    assert forward.answers == [(fqdn, "A", "10.66.0.123")]
    reverse = dig(dns_lab.client, "-x", "10.66.0.123", tool="kdig")
    assert reverse.status == "NOERROR" and "aa" in reverse.flags, reverse.text
    assert reverse.answers == [("123.0.66.10.in-addr.arpa.", "PTR", fqdn)]
    # The same answer over TCP.
    assert dig(dns_lab.client, "+tcp", fqdn, tool="kdig").answers == forward.answers


def test_nxdomain_and_nodata_carry_the_soa(dns_lab: DNSLab):
    missing = dig(dns_lab.client, "no-such-node.maas.lan", "A")
    assert missing.status == "NXDOMAIN" and "aa" in missing.flags
    assert [r[1] for r in missing.authority] == ["SOA"]
    nodata = dig(dns_lab.client, "gw.maas.lan", "AAAA")
    assert nodata.status == "NOERROR" and nodata.answers == []
    assert [r[1] for r in nodata.authority] == ["SOA"]
    apex = dig(dns_lab.client, "maas.lan", "NS")
    assert apex.answers == [("maas.lan.", "NS", "ns.maas.lan.")]
    assert dig(dns_lab.client, "ns.maas.lan").answers == [("ns.maas.lan.", "A", SERVER)]


def test_static_records_from_config(dns_lab: DNSLab):
    cname = dig(dns_lab.client, "wiki.maas.lan", "A")
    assert cname.answers == [
        ("wiki.maas.lan.", "CNAME", "gw.maas.lan."),
        ("gw.maas.lan.", "A", "10.66.0.254"),
    ]
    assert dig(dns_lab.client, "mail.maas.lan", "MX").answers == [
        ("mail.maas.lan.", "MX", "10 gw.maas.lan.")
    ]


def test_dhcp_lease_hostname_resolves_and_goes_away_on_release(dns_lab: DNSLab, tmp_path: Path):
    host = dns_lab.lab.add_host()
    (tmp_path / "cf").write_text('send host-name "leasehost";\n')  # DHCP option 12
    args = ["dhclient", "-4", "-cf", str(tmp_path / "cf"), "-lf", str(tmp_path / "l")]
    args += ["-pf", str(tmp_path / "pid"), "-sf", "/bin/true"]
    try:
        got = host.run([*args, "-1", host.interface], timeout=60)
        assert got.returncode == 0, got.stderr.decode()[-1500:]
        ip = re.findall(r"fixed-address ([0-9.]+);", (tmp_path / "l").read_text())[-1]
        answer = dig(dns_lab.client, "leasehost.maas.lan")
        assert answer.answers == [("leasehost.maas.lan.", "A", ip)]
        assert dig(dns_lab.client, "-x", ip).answers[0][2] == "leasehost.maas.lan."
        # dhclient -r unicasts the RELEASE from the leased address: configure it first
        # (-sf /bin/true kept dhclient from touching the interface).
        host.run(["ip", "addr", "add", f"{ip}/24", "dev", host.interface])
        released = host.run([*args, "-r", host.interface], timeout=60)
        assert released.returncode == 0, released.stderr.decode()[-1500:]
        try:
            _wait_for(
                lambda: dig(dns_lab.client, "leasehost.maas.lan").status == "NXDOMAIN",
                "released lease to leave DNS",
                timeout=10,
            )
        except TimeoutError:
            pytest.fail(f"released lease still in DNS; log:\n{dns_lab.app.log_text()[-3000:]}")
    finally:
        _stop_daemon(tmp_path / "pid")  # dhclient -1 forks into the background


def _stop_daemon(pid_file: Path) -> None:
    """Stop the daemon whose PID is in ``pid_file`` (one we started), if it still runs."""
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if str(pid_file).encode() in cmdline:  # still ours, not a recycled PID
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


# -- forwarding ------------------------------------------------------------------------


def test_forwarded_name_from_the_fake_internet(dns_lab: DNSLab):
    for tool in ("dig", "kdig"):
        answer = dig(dns_lab.client, "www.example.test", "A", tool=tool)
        assert answer.status == "NOERROR" and "ra" in answer.flags and "aa" not in answer.flags
        assert answer.answers == [("www.example.test.", "A", "198.51.100.10")]


def test_forged_upstream_answers_are_ignored_and_poison_is_not_cached(dns_lab: DNSLab):
    # The fake upstream first sends a reply with a wrong ID and a right-ID reply for
    # poison.example.test, then the real answer.
    answer = dig(dns_lab.client, "spoof.example.test")
    assert answer.answers == [("spoof.example.test.", "A", "198.51.100.13")]
    poison = dig(dns_lab.client, "poison.example.test")
    assert poison.status == "NXDOMAIN" and poison.answers == []


def test_upstream_without_edns_is_asked_again_plainly(dns_lab: DNSLab):
    answer = dig(dns_lab.client, "a.old.example.test")
    assert answer.answers == [("a.old.example.test.", "A", "198.51.100.99")]


def test_several_queries_on_one_tcp_connection(dns_lab: DNSLab):
    names = ["gw.maas.lan", "www.example.test", "ns.maas.lan"]
    result = dns_lab.client.run(
        ["kdig", f"@{SERVER}", "+tcp", "+keepopen", "+short", "+time=5", *names], timeout=30
    )
    assert result.stdout.decode().split() == ["10.66.0.254", "198.51.100.10", SERVER]


def test_cache_hit_after_miss_does_not_ask_upstream_again(dns_lab: DNSLab):
    name = f"c{os.getpid()}.wild.example.test"
    before = upstream_queries(dns_lab)
    first = dig(dns_lab.client, name)
    assert first.answers == [(name + ".", "A", "198.51.100.99")]
    assert upstream_queries(dns_lab) == before + 1
    for _ in range(3):
        again = dig(dns_lab.client, name)
        assert again.answers[0][2] == "198.51.100.99"
        ttl = re.search(rf"^{re.escape(name)}\.\s+(\d+)\s+IN", again.text, re.M)
        assert ttl and 0 < int(ttl.group(1)) <= 300  # aged TTL
    # kdig sends different bytes (EDNS options): a hit in the cache all the same.
    assert dig(dns_lab.client, name, tool="kdig").answers[0][2] == "198.51.100.99"
    assert upstream_queries(dns_lab) == before + 1


def test_negative_answers_are_cached(dns_lab: DNSLab):
    name = f"n{os.getpid()}.example.test"
    before = upstream_queries(dns_lab)
    for _ in range(3):
        reply = dig(dns_lab.client, name)
        assert reply.status == "NXDOMAIN" and [r[1] for r in reply.authority] == ["SOA"]
    assert upstream_queries(dns_lab) == before + 1


def test_large_answer_is_truncated_on_udp_and_complete_over_tcp(dns_lab: DNSLab):
    udp = dig(dns_lab.client, "+ignore", "+bufsize=1232", "big.example.test", "TXT")
    assert "tc" in udp.flags and udp.answers == [], udp.text
    auto = dig(dns_lab.client, "big.example.test", "TXT")  # dig retries over TCP itself
    assert len(auto.answers) == 24 and "tc" not in auto.flags, auto.text
    tcp = dig(dns_lab.client, "+tcp", "big.example.test", "TXT", tool="kdig")
    assert sorted(a[2] for a in tcp.answers) == sorted(a[2] for a in auto.answers)


def test_all_upstreams_down_gives_servfail_within_the_client_timeout(dns_lab: DNSLab):
    # dig waits at most 2 x 5 s (+time=5 +tries=2): an answer at all proves the bound.
    first = dig(dns_lab.client, "a.down.test")
    assert first.status == "SERVFAIL", first.text
    # The refusing one is held down now, the silent one after its second timeout: later
    # queries fail at once, and every one still gets its answer.
    second = dig(dns_lab.client, "b.down.test", tool="kdig")
    assert second.status == "SERVFAIL"
    assert dig(dns_lab.client, "c.down.test").status == "SERVFAIL"
    assert dig(dns_lab.client, "www.example.test").status == "NOERROR"  # others unaffected


# -- access control -------------------------------------------------------------------


def test_client_outside_the_acl_is_refused_recursion_but_gets_our_zone(dns_lab: DNSLab):
    refused = dig(dns_lab.outsider, "www.example.test")
    assert refused.status == "REFUSED" and refused.answers == []
    assert "ra" not in refused.flags
    ours = dig(dns_lab.outsider, "gw.maas.lan")
    assert ours.status == "NOERROR" and ours.answers == [("gw.maas.lan.", "A", "10.66.0.254")]
    # A cached name stays refused too (the UDP fast path checks the ACL).
    dig(dns_lab.client, "www.example.test")
    assert dig(dns_lab.outsider, "www.example.test").status == "REFUSED"


# -- robustness -------------------------------------------------------------------------


def test_malformed_queries_get_formerr_or_are_dropped_and_the_server_keeps_answering(
    dns_lab: DNSLab,
):
    result = dns_lab.client.run(
        [sys.executable, str(HERE / "dns_fuzz_probe.py"), SERVER, "600"], timeout=120
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["sent"] == 600
    assert report["bad_replies"] == [], report
    assert report["formerr"] > 0 and report["dropped"] > 0  # both paths were exercised
    assert dns_lab.app.proc is not None and dns_lab.app.proc.poll() is None
    assert dig(dns_lab.client, "gw.maas.lan").answers == [("gw.maas.lan.", "A", "10.66.0.254")]


# -- worker processes -------------------------------------------------------------------


def test_worker_processes_share_the_port_and_answer_new_nodes_at_once(
    lab: LabNetwork, fake_boot_dir: Path, tmp_path: Path
):
    app = LabAppliance(lab, tmp_path / "app", fake_boot_dir)
    text = app.config_path.read_text()
    app.config_path.write_text(text[: text.index("[dns]")] + "[dns]\nupstreams = []\nworkers = 1\n")
    app.start()
    try:
        app.wait_ready()
        _wait_for(lambda: "dns worker 0 started" in app.log_text(), "dns worker\n" + app.log_text())
        pid = int(re.search(r"dns worker 0 started \(pid (\d+)\)", app.log_text()).group(1))
        sockets = lambda: lab.run(["ss", "-Hlun", "sport = :53"]).stdout.decode().splitlines()  # noqa: E731
        _wait_for(lambda: len(sockets()) == 2, "the worker's socket on port 53")
        env = DNSLab(lab, app, lab.add_host("10.66.0.60/24"), lab.add_host("10.66.0.50/24"), None)  # type: ignore[arg-type]
        node = enlist(env, "52:54:00:d0:00:02", "10.66.0.124")
        # Each dig uses a new source port, so the kernel spreads them over both processes.
        for _ in range(12):
            answer = dig(env.client, f"{node['hostname']}.maas.lan")
            assert answer.answers == [(f"{node['hostname']}.maas.lan.", "A", "10.66.0.124")]
        # Even a kill -9 of the appliance takes its workers along (PR_SET_PDEATHSIG).
        os.kill(app.proc.pid, signal.SIGKILL)
        app.proc.wait(timeout=10)
        _wait_for(lambda: not _alive(pid), "the worker to exit with the appliance")
    finally:
        app.stop()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except OSError:
        return False
