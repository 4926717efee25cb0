"""``netboot apikey create|list|delete``: operator API keys for the MAAS API.

``create`` prints the key (``consumer:token:secret``) once, on its own line, so scripts
can capture it (``KEY=$(netboot apikey create)``); the store keeps it for verification.
"""

from __future__ import annotations

import argparse
import sys
import time

from netboot.config import Config
from netboot.store.sqlite import open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("apikey", help="manage MAAS API keys")
    verbs = keys.add_subparsers(dest="apikey_command", required=True)
    create = verbs.add_parser("create", help="create a key and print it")
    create.add_argument("--user", default="admin", help="user name the key acts as")
    create.add_argument("--name", default="", help="a label to recognise the key by")
    verbs.add_parser("list", help="list keys (token keys and users, never secrets)")
    delete = verbs.add_parser("delete", help="revoke a key")
    delete.add_argument("token_key", help="the middle part of the key")


def run(cfg: Config, args: argparse.Namespace) -> int:
    store = open_store(cfg.database_path)
    try:
        if args.apikey_command == "create":
            user = args.user.strip()
            if not user or len(user) > 64 or any(c.isspace() or c == ":" for c in user):
                print(f"netboot: --user: {args.user!r} is not a valid user name", file=sys.stderr)
                return 2
            print(store.create_api_key(user, args.name, time.time()).key)
            return 0
        if args.apikey_command == "list":
            for key in store.api_keys():
                print(f"{key.token_key}\t{key.username}\t{key.name}")
            return 0
        if store.delete_api_key(args.token_key):
            return 0
        print(f"netboot: no API key with token key {args.token_key!r}", file=sys.stderr)
        return 1
    finally:
        store.close()
