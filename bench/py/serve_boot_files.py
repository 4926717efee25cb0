"""Serve a directory the way `netboot serve` serves /boot/files (BootFiles on twisted.web).

    python bench/py/serve_boot_files.py ROOT ADDRESS PORT

Used by bench/http_bench.sh so the HTTP path is measured without DHCP/TFTP around it.
"""

import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.web import resource, server

from netboot.http.boot import boot_files


def main() -> None:
    root, address, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    tree = resource.Resource()
    boot = resource.Resource()
    tree.putChild(b"boot", boot)
    boot.putChild(b"files", boot_files(root))
    site = server.Site(tree)
    site.log = lambda request: None  # no access log line per request
    reactor.listenTCP(port, site, interface=address, backlog=1024)
    print(f"listening {address}:{port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
