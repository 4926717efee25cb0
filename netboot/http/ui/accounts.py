"""``netboot user create|list|delete``: operator accounts for the web UI.

The password is read from the terminal (twice) or, with ``--password-stdin``, from the
first line of standard input (for scripts: ``echo "$PW" | netboot user create admin
--password-stdin``); it is never taken from the command line, where ``ps`` would show it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from netboot.config import Config
from netboot.http.ui.auth import WeakPassword, check_password_policy, hash_password
from netboot.store.sqlite import open_store
from netboot.store.users import BadUsername, UserExists, check_username


def add_parser(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("user", help="manage web UI operator accounts")
    verbs = users.add_subparsers(dest="user_command", required=True)
    create = verbs.add_parser("create", help="create an account (or reset its password)")
    create.add_argument("name", help="user name (lower case)")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    create.add_argument(
        "--replace", action="store_true", help="set a new password if the user exists"
    )
    verbs.add_parser("list", help="list accounts and their last login")
    delete = verbs.add_parser("delete", help="delete an account")
    delete.add_argument("name")


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        print("netboot: no terminal to ask the password on: use --password-stdin", file=sys.stderr)
        return None
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        print("netboot: the passwords differ", file=sys.stderr)
        return None
    return first


def run(cfg: Config, args: argparse.Namespace) -> int:
    if args.user_command == "create":
        try:
            check_username(args.name)
        except BadUsername as exc:
            print(f"netboot: {exc}", file=sys.stderr)
            return 2
        password = _read_password(args.password_stdin)
        if password is None:
            return 2
        try:
            check_password_policy(password)
        except WeakPassword as exc:
            print(f"netboot: {exc}", file=sys.stderr)
            return 2
    store = open_store(cfg.database_path)
    try:
        if args.user_command == "create":
            try:
                store.create_user(args.name, hash_password(password), time.time(), args.replace)
            except UserExists as exc:
                print(f"netboot: {exc} (use --replace to set a new password)", file=sys.stderr)
                return 1
            print(f"user {args.name} {'updated' if args.replace else 'created'}")
            return 0
        if args.user_command == "list":
            for user in store.users():
                last = (
                    time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(user.last_login))
                    if user.last_login
                    else "never"
                )
                print(f"{user.username}\tlast login: {last}")
            return 0
        if store.delete_user(args.name):
            print(f"user {args.name} deleted")
            return 0
        print(f"netboot: no user {args.name!r}", file=sys.stderr)
        return 1
    finally:
        store.close()
