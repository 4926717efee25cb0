"""One TFTP worker process (see workers.py): `python -m netboot.tftp.worker ...`.

A small composition root: binds the shared port with SO_REUSEPORT and, when given the
store's database, serves the same dynamic files (per-machine pxelinux/grub configs) as
the main process, reading node state from the same SQLite file (WAL: readers never
block the writer).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from netboot.tftp.session import DEFAULT_MAX_BLKSIZE, DEFAULT_MAX_WINDOWSIZE


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m netboot.tftp.worker")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-sessions", type=int, default=256)
    parser.add_argument("--max-blksize", type=int, default=DEFAULT_MAX_BLKSIZE)
    parser.add_argument("--max-windowsize", type=int, default=DEFAULT_MAX_WINDOWSIZE)
    parser.add_argument("--no-gso", action="store_true")
    parser.add_argument("--no-fastpath", action="store_true")
    parser.add_argument("--database", type=Path)
    parser.add_argument("--http-base")
    args = parser.parse_args()

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from netboot.tftp.server import listen_tftp

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    open_file = None
    if args.database is not None:
        from netboot.bootconfig.scripts import ScriptRenderer
        from netboot.bootconfig.tftpfiles import DynamicBootFiles
        from netboot.images.cache import ImageCache
        from netboot.images.nodeboot import NodeBootFacts
        from netboot.store.sqlite import SQLiteStore

        store = SQLiteStore(args.database)
        # The image cache sits beside the store in state_dir (netboot/images/settings.py).
        images = ImageCache(args.database.parent / "images")
        open_file = DynamicBootFiles(
            store.node_by_mac,
            ScriptRenderer(),
            args.http_base,
            NodeBootFacts(store, images, args.http_base),
            images,
        )
    listen_tftp(
        reactor,
        args.root,
        args.address,
        args.port,
        reuse_port=True,
        max_sessions=args.max_sessions,
        max_blksize=args.max_blksize,
        max_windowsize=args.max_windowsize,
        use_gso=not args.no_gso,
        fastpath=not args.no_fastpath,
        open_file=open_file,
    )
    reactor.run()


if __name__ == "__main__":
    main()
