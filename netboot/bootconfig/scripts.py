"""Render per-node boot configs (iPXE script, grub.cfg, pxelinux.cfg) from the node's state.

One decision, three dialects: `boot_purpose(node, installed)` says what the machine
should boot now (the narrow interface between inventory and the boot protocols);
`ENVIRONMENTS` says which kernel, initrd and kernel parameters a purpose that boots Linux
from the boot root uses; each loader has one template for "boot this Linux environment"
(`<loader>/linux.<ext>.j2`) and one for "boot the local disk" (`<loader>/local.<ext>.j2`).

Deploying, erasing and rescue boot the installer image instead (`NodeBoot.installer`, chosen by
netboot/images/installerboot.py, the same kernel and initrd iPXE gets from
/api/deploy/<id>/boot.ipxe): `<loader>/installer.<ext>.j2` for grub and pxelinux (iPXE
chains the deploy API). Once the installer reported success (`NodeBoot.installed`) a
deploying node boots its disk in every dialect, before cloud-init phones home.

Adding a purpose (e.g. commissioning): a `BootPurpose` member, a row in
`_PURPOSE_BY_STATUS` and a row in `ENVIRONMENTS`. A template named
`<loader>/<purpose>.<ext>.j2` (e.g. `ipxe/commission.ipxe.j2`), when present, is used
instead of the generic one for that loader; it gets the same variables.

Templates render with StrictUndefined: a missing variable is an error, not an empty
string in a kernel command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from jinja2 import Environment, PackageLoader, StrictUndefined

from netboot.images.installerboot import InstallerBoot
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.models import Node

__all__ = [
    "ENVIRONMENTS",
    "BootEnvironment",
    "BootPurpose",
    "NodeBoot",
    "ScriptRenderer",
    "boot_purpose",
]


class BootPurpose(Enum):
    ENLIST = "enlist"
    COMMISSION = "commission"
    DEPLOY = "deploy"
    ERASE = "erase"
    RESCUE = "rescue"
    LOCAL = "local"


# Purposes that boot the installer image (not a file of the boot root).
INSTALLER_PURPOSES = frozenset({BootPurpose.DEPLOY, BootPurpose.ERASE, BootPurpose.RESCUE})


@dataclass(frozen=True, slots=True)
class NodeBoot:
    """What the boot layer knows about a machine beyond its status (for the loaders that
    render its config here: grub, pxelinux; iPXE asks the deploy API).

    installed: the installer of the current deploy episode reported success.
    installer: the installer to boot for DEPLOY / ERASE / RESCUE; None with ``error``
    saying why.
    """

    installed: bool = False
    installer: InstallerBoot | None = None
    error: str = ""


NO_FACTS = NodeBoot()


# Statuses not listed (NEW, READY, ALLOCATED, failures, BROKEN, RELEASING ...) re-enlist:
# refreshing the inventory is harmless and the environment powers the machine off.
_PURPOSE_BY_STATUS: dict[NodeStatus, BootPurpose] = {
    NodeStatus.COMMISSIONING: BootPurpose.COMMISSION,
    NodeStatus.DEPLOYING: BootPurpose.DEPLOY,
    NodeStatus.DEPLOYED: BootPurpose.LOCAL,
    NodeStatus.DISK_ERASING: BootPurpose.ERASE,
    # Rescue: the installer in rescue mode (a shell, no disk writes) while entering and
    # while in rescue (a reboot inside rescue comes back to it); exiting boots the disk
    # (a DEPLOYED node is power cycled back into its OS; any other is powered off).
    NodeStatus.ENTERING_RESCUE_MODE: BootPurpose.RESCUE,
    NodeStatus.RESCUE_MODE: BootPurpose.RESCUE,
    NodeStatus.EXITING_RESCUE_MODE: BootPurpose.LOCAL,
}


@dataclass(frozen=True, slots=True)
class BootEnvironment:
    """A Linux environment booted over the network: files in the boot root + parameters.

    `params` is a str.format template; fields: http_base, system_id (may be empty).
    """

    kernel: str
    initrd: str
    params: str


ENVIRONMENTS: dict[BootPurpose, BootEnvironment] = {
    BootPurpose.ENLIST: BootEnvironment(
        "vmlinuz", "enlist.initrd", "netboot.enlist_url={http_base}/api/enlist"
    ),
    # The node's token authenticates its callbacks (netboot/http/metadata.py); it is in
    # the script only while the node is COMMISSIONING.
    BootPurpose.COMMISSION: BootEnvironment(
        "vmlinuz",
        "commission.initrd",
        "netboot.purpose=commission netboot.url={http_base} netboot.system_id={system_id}"
        " netboot.token={token}",
    ),
}

# Parameters every environment gets (console on VGA and the first serial port).
COMMON_PARAMS = "console=tty0 quiet loglevel=3"


def boot_purpose(node: Node | None, installed: bool = False) -> BootPurpose:
    """What a machine should boot now; unknown machines enlist. A deploying node whose
    installer reported success (``installed``) boots its disk."""
    if node is None:
        return BootPurpose.ENLIST
    if installed and node.status is NodeStatus.DEPLOYING:
        return BootPurpose.LOCAL
    return _PURPOSE_BY_STATUS.get(node.status, BootPurpose.ENLIST)


class ScriptRenderer:
    """Renders one config per (loader, node); pure apart from reading templates once."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("netboot", "templates"),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )

    def ipxe(self, node: Node | None, mac: str, http_base: str, boot: NodeBoot = NO_FACTS) -> str:
        """The iPXE script served at /boot/ipxe/<mac>."""
        return self._render("ipxe", "ipxe", node, mac, http_base, boot)

    def grub(
        self, node: Node | None, mac: str | None, http_base: str, boot: NodeBoot = NO_FACTS
    ) -> str:
        """grub/grub.cfg-<mac> (TFTP); mac None renders grub.cfg-default (enlistment)."""
        return self._render("grub", "cfg", node, mac, http_base, boot)

    def pxelinux(
        self, node: Node | None, mac: str | None, http_base: str, boot: NodeBoot = NO_FACTS
    ) -> str:
        """pxelinux.cfg/01-<mac> (TFTP); mac None renders pxelinux.cfg/default."""
        return self._render("pxelinux", "cfg", node, mac, http_base, boot)

    def grub_dispatch(self) -> str:
        """grub/grub.cfg: Debian's signed grub asks only this name, so it picks per MAC."""
        return self._env.get_template("grub/grub.cfg.j2").render()

    def _render(
        self,
        loader: str,
        ext: str,
        node: Node | None,
        mac: str | None,
        http_base: str,
        boot: NodeBoot,
    ) -> str:
        purpose = boot_purpose(node, boot.installed)
        kind = "local" if purpose is BootPurpose.LOCAL else "linux"
        if purpose in INSTALLER_PURPOSES:
            kind = "installer" if boot.installer is not None else "installer-error"
        template = self._env.select_template(
            [f"{loader}/{purpose.value}.{ext}.j2", f"{loader}/{kind}.{ext}.j2"]
        )
        system_id = node.system_id if node else ""
        env = ENVIRONMENTS.get(purpose)
        return template.render(
            purpose=purpose.value,
            mac=mac,
            mac_dashes=mac.replace(":", "-") if mac else None,
            http_base=http_base,
            hostname=node.hostname if node else None,
            system_id=system_id,
            kernel=env.kernel if env else None,
            initrd=env.initrd if env else None,
            params=env.params.format(
                http_base=http_base, system_id=system_id, token=node.token if node else ""
            )
            if env
            else "",
            common_params=COMMON_PARAMS,
            installer=boot.installer,
            error=boot.error or "no installer boot image",
        )
