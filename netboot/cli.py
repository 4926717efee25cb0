"""The ``netboot`` command: serve, nodes, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from netboot.config import Config, ConfigError, load_config
from netboot.dhcp.leases_cli import add_parser as leases_parser
from netboot.http.maas.keys import add_parser as apikey_parser
from netboot.http.maas.keys import run as apikey_command
from netboot.http.ui.accounts import add_parser as user_parser
from netboot.images.cli import add_parser as images_parser
from netboot.init_config import add_parser as init_parser
from netboot.nodes.table import add_parser as nodes_parser
from netboot.power.cli import add_parser as power_parser
from netboot.status import add_parser as status_parser

DEFAULT_CONFIG = Path("/etc/netboot/netboot.toml")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netboot", description="bare-metal provisioning")
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"TOML configuration file (default {DEFAULT_CONFIG})",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run DHCP, TFTP and HTTP in the foreground")
    nodes_parser(sub)
    power_parser(sub)
    leases_parser(sub)
    user_parser(sub)
    apikey_parser(sub)
    images_parser(sub)
    init_parser(sub)
    status_parser(sub)
    demo = sub.add_parser("demo", help="boot two QEMU nodes through netboot in a private lab")
    demo.add_argument("--boot-dir", type=Path, default=Path("build/boot"))
    demo.add_argument("--workdir", type=Path, default=Path("build/demo"))
    demo.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for the nodes to enlist"
    )
    return parser


def _config(path: Path) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"netboot: bad configuration: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from netboot.lab.demo import run_demo

        return run_demo(args.boot_dir.resolve(), args.workdir.resolve(), args.timeout)
    if args.command == "init":  # writes the configuration, so it needs none
        from netboot.init_config import main as init_main

        return init_main(args, args.config)
    if args.command == "status":  # reports a broken configuration instead of stopping
        from netboot.status import run_status

        return run_status(args.config, args.state_dir, as_json=args.json)
    cfg = _config(args.config)
    if cfg is None:
        return 2
    if args.command == "serve":
        from netboot.serve import serve

        return serve(cfg, config_path=args.config.resolve())
    if args.command == "leases":
        from netboot.dhcp.leases_cli import run as leases_command

        return leases_command(cfg, args)
    if args.command == "apikey":
        return apikey_command(cfg, args)
    if args.command in ("images", "sshkey"):
        from netboot.images.cli import run as images_command

        return images_command(cfg, args)
    if args.command == "user":
        from netboot.http.ui.accounts import run as user_command

        return user_command(cfg, args)
    if args.command == "power":
        from netboot.power.cli import run as power_command

        return power_command(cfg, args)
    from netboot.nodes.table import run as nodes_command

    return nodes_command(cfg, args)


if __name__ == "__main__":
    sys.exit(main())
