"""What a deploying node is told: pure functions from the node, its images and the
appliance's settings to the installer's config, the cloud-init seed and boot scripts.

No I/O here (templates are read by the caller's jinja2 Environment); the HTTP adapter
(netboot/http/deploy.py) looks things up and calls these.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from netboot.images.cache import ImageVersion
from netboot.store.models import Node

# osystem values that select the classic Debian-installer (preseed) path.
PRESEED_OSYSTEMS = ("debian-installer", "debian-preseed")
DEFAULT_SERIES = "bookworm"
_SAFE_VALUE = re.compile(r"^[^'\x00-\x1f]*$")


class DeployConfigError(ValueError):
    """The deployment cannot be configured (no image, bad value); the message says why."""


@dataclass(frozen=True, slots=True)
class DeploySettings:
    """Appliance-wide deploy settings, built once from the Config."""

    images_dir: Path
    preseeds_dir: Path
    domain: str = "maas"
    debian_mirror: str = "deb.debian.org"
    bootloader: str = "auto"  # auto (the node's firmware) | bios | uefi | both


def deploy_method(node: Node) -> str:
    return "preseed" if node.osystem in PRESEED_OSYSTEMS else "image"


def fqdn(node: Node, domain: str) -> str:
    return f"{node.hostname}.{domain}" if domain else node.hostname


def image_url(http_base: str, image: ImageVersion, filename: str) -> str:
    m = image.manifest
    return f"{http_base}/images/{m.kind}/{m.name}/{m.version}/{filename}"


def installer_env(
    node: Node,
    image: ImageVersion,
    http_base: str,
    settings: DeploySettings,
) -> str:
    """The installer's config: ``NB_NAME='value'`` lines it sources (values may not
    contain a single quote or control characters; refused rather than escaped)."""
    m = image.manifest
    tarballs = [f for f in m.files if f.name.endswith((".tar.zst", ".tar.gz", ".tar"))]
    if len(tarballs) != 1:
        raise DeployConfigError(f"{m.ref} has no single root filesystem tarball")
    tar = tarballs[0]
    values = {
        "NB_TOKEN": node.token,
        "NB_SYSTEM_ID": node.system_id,
        "NB_HOSTNAME": node.hostname,
        "NB_DOMAIN": settings.domain,
        "NB_IMAGE_REF": m.ref,
        "NB_IMAGE_URL": image_url(http_base, image, tar.name),
        "NB_IMAGE_SHA256": tar.sha256,
        "NB_IMAGE_SIZE": str(tar.size or 0),
        "NB_BOOTLOADER": settings.bootloader,
        "NB_DISK": "",
    }
    return _env_lines(values)


def erase_env(node: Node, mode: str) -> str:
    """The installer's config in erase mode (``netboot.purpose=erase``): the token for
    its reports and how to erase (``quick`` or ``secure``)."""
    return _env_lines(
        {
            "NB_TOKEN": node.token,
            "NB_SYSTEM_ID": node.system_id,
            "NB_HOSTNAME": node.hostname,
            "NB_ERASE_MODE": mode,
        }
    )


def rescue_env(node: Node) -> str:
    """The installer's config in rescue mode (``netboot.purpose=rescue``): the token
    for its reports and the name its shell prompt shows."""
    return _env_lines(
        {
            "NB_TOKEN": node.token,
            "NB_SYSTEM_ID": node.system_id,
            "NB_HOSTNAME": node.hostname,
        }
    )


def _env_lines(values: dict[str, str]) -> str:
    lines = []
    for key, value in values.items():
        if not _SAFE_VALUE.match(value):
            raise DeployConfigError(f"{key} has a character the installer cannot take")
        lines.append(f"{key}='{value}'")
    return "\n".join(lines) + "\n"


def meta_data(node: Node, instance_id: str, ssh_keys: list[str], domain: str) -> bytes:
    """NoCloud meta-data. JSON is YAML, so this needs no YAML writer."""
    doc = {
        "instance-id": instance_id,
        "local-hostname": node.hostname,
        "hostname": node.hostname,
        "public-keys": list(ssh_keys),
        "netboot": {"system_id": node.system_id, "fqdn": fqdn(node, domain)},
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def user_data(raw: bytes | None) -> bytes:
    """The deploy call's user_data as given; an empty cloud-config without one."""
    return raw if raw else b"#cloud-config\n{}\n"


def instance_id(node: Node, episode: float) -> str:
    return f"{node.system_id}-{int(episode)}"


def kernel_params_installer(http_base: str, node: Node, purpose: str = "deploy") -> str:
    return (
        f"console=tty0 console=ttyS0,115200n8 quiet loglevel=3 netboot.purpose={purpose} "
        f"netboot.url={http_base} netboot.system_id={node.system_id}"
    )
