"""DeploySettings from the appliance Config (no new configuration keys: the image cache
lives under ``state_dir``, the node domain is DNS's or DHCP's, templates in preseeds/)."""

from __future__ import annotations

from pathlib import Path

from netboot.config import Config
from netboot.images.deploycfg import DeploySettings

# Operator-editable templates: preseeds/ of the netboot checkout.
PRESEEDS_DIR = Path(__file__).resolve().parents[2] / "preseeds"


def images_dir(cfg: Config) -> Path:
    return cfg.state_dir / "images"


def deploy_settings(cfg: Config) -> DeploySettings:
    domain = ""
    dns = getattr(cfg, "dns", None)
    dhcp = getattr(cfg, "dhcp", None)
    if dns is not None and getattr(dns, "domain", ""):
        domain = dns.domain
    elif dhcp is not None and getattr(dhcp, "domain", ""):
        domain = dhcp.domain
    return DeploySettings(images_dir=images_dir(cfg), preseeds_dir=PRESEEDS_DIR, domain=domain)
