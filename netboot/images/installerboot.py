"""Which kernel, initrd and parameters boot a node's installer, for every loader.

One answer for iPXE (``/api/deploy/<id>/boot.ipxe``), grub (``grub.cfg-<mac>``) and
pxelinux (``pxelinux.cfg/01-<mac>``): the current ``boot/installer`` image (or the
Debian installer's, for a preseed deploy), checked on use, as HTTP URLs (iPXE,
lpxelinux) and as TFTP paths under ``images/`` (Debian's signed grub has no http
module). Purposes: ``deploy`` (install the node's image) and ``erase`` (release with
erase: wipe the disks, report, power off).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from netboot.images.cache import ImageCache
from netboot.images.deploycfg import (
    DeployConfigError,
    deploy_method,
    image_url,
    kernel_params_installer,
)
from netboot.store.models import Node

INSTALLER_IMAGE = "installer"
DI_IMAGE = "debian-installer"

__all__ = ["DI_IMAGE", "INSTALLER_IMAGE", "InstallerBoot", "installer_boot", "tftp_path"]


@dataclass(frozen=True, slots=True)
class InstallerBoot:
    ref: str  # kind/name/version of the boot image
    method: str  # "image" (fast installer) | "preseed" (Debian installer)
    purpose: str  # "deploy" | "erase" | "rescue"
    kernel_url: str
    initrd_url: str
    kernel_tftp: str  # the same files for TFTP-only loaders (images/<kind>/<name>/<ver>/f)
    initrd_tftp: str
    initrd_name: str
    params: str  # kernel parameters, BOOTIF excepted (each loader adds it its own way)


def tftp_path(kind: str, name: str, version: str, filename: str) -> str:
    """The TFTP name of an image file: the HTTP path without its leading slash."""
    return f"images/{kind}/{name}/{version}/{filename}"


def installer_boot(
    node: Node,
    cache: ImageCache,
    http_base: str,
    purpose: str = "deploy",
    domain: str = "",
) -> InstallerBoot:
    """The installer for ``node``; raises DeployConfigError (no such image) or
    ImageRejected (a file changed since it was verified) with the reason."""
    # Erase and rescue run the fast installer whatever the node was deployed with.
    method = "image" if purpose in ("erase", "rescue") else deploy_method(node)
    name = DI_IMAGE if method == "preseed" else INSTALLER_IMAGE
    boot = cache.get("boot", name)
    if boot is None:
        raise DeployConfigError(f"no {name} boot image: import one with `netboot images import`")
    m = boot.manifest
    kernel = m.extra.get("kernel", "vmlinuz")
    initrd = (m.extra.get("initrds") or ["initrd"])[0]
    for f in (kernel, initrd):
        cache.checked_path(boot, f)
    if method == "preseed":
        api = f"{http_base}/api/deploy/{node.system_id}"
        params = (
            f"auto=true priority=critical url={api}/preseed/{node.token} "
            f"hostname={node.hostname} domain={domain} netcfg/choose_interface=auto "
            "netcfg/no_default_route=true "
            f"netcfg/get_nameservers={urlsplit(http_base).hostname} console=ttyS0,115200n8"
        )
    else:
        params = kernel_params_installer(http_base, node, purpose)
    return InstallerBoot(
        ref=boot.ref,
        method=method,
        purpose=purpose,
        kernel_url=image_url(http_base, boot, kernel),
        initrd_url=image_url(http_base, boot, initrd),
        kernel_tftp=tftp_path(m.kind, m.name, m.version, kernel),
        initrd_tftp=tftp_path(m.kind, m.name, m.version, initrd),
        initrd_name=initrd,
        params=params,
    )
