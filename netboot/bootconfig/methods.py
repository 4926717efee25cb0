"""Which first file a booting client gets, decided from its DHCP facts and [boot] config.

One table maps the client architecture (DHCP option 93, RFC 4578 section 2.1 / IANA
"Processor Architecture Types") and the configured loader family to a loader. The
chainload loop-breaker is explicit: a client that already runs iPXE (user class "iPXE")
is handed the HTTP URL of its per-node script instead of iPXE again.

| arch | firmware | bios/uefi_loader = ipxe | = pxelinux / shim |
|---|---|---|---|
| 0 | BIOS PXE | undionly.kpxe (TFTP) | lpxelinux.0 (TFTP; kernel over HTTP) |
| 7, 9 | UEFI x64 PXE | snponly.efi (TFTP) | bootx64.efi = shim -> grubx64.efi (TFTP) |
| 16 | UEFI x64 HTTP boot | ipxe.efi (HTTP URL, option 60 echo) | same |
| 11 | UEFI arm64 PXE | grubaa64.efi (TFTP; Debian has no arm64 iPXE) | same |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from netboot.bootconfig.settings import BootConfig
from netboot.dhcp.facts import ClientFacts

__all__ = [
    "ARCH_ARM64",
    "ARCH_BIOS",
    "ARCH_EFI_BC",
    "ARCH_EFI_X64",
    "ARCH_EFI_X64_HTTP",
    "LOADERS",
    "BootAnswer",
    "Loader",
    "Transport",
    "choose_boot",
]


class Transport(Enum):
    TFTP = "tftp"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class Loader:
    filename: str
    transport: Transport


# RFC 4578 section 2.1 / IANA processor architecture types.
ARCH_BIOS = 0
ARCH_EFI_IA32 = 6
ARCH_EFI_BC = 7  # RFC 4578 calls 7 "EFI BC"; x64 firmware (OVMF, most boards) sends it
ARCH_EFI_X64 = 9
ARCH_ARM64 = 11
ARCH_EFI_X64_HTTP = 16
ARCH_ARM64_HTTP = 19

_SNP = Loader("snponly.efi", Transport.TFTP)
_SHIM = Loader("bootx64.efi", Transport.TFTP)  # shim loads grubx64.efi from the same dir
_GRUB_ARM64 = Loader("grubaa64.efi", Transport.TFTP)

# (arch, configured family) -> loader. The family is bios_loader for arch 0 and
# uefi_loader for the x64 UEFI arches; arm64 has one choice whatever is configured.
LOADERS: dict[tuple[int, str], Loader] = {
    (ARCH_BIOS, "ipxe"): Loader("undionly.kpxe", Transport.TFTP),
    (ARCH_BIOS, "pxelinux"): Loader("lpxelinux.0", Transport.TFTP),
    (ARCH_EFI_BC, "ipxe"): _SNP,
    (ARCH_EFI_X64, "ipxe"): _SNP,
    (ARCH_EFI_BC, "shim"): _SHIM,
    (ARCH_EFI_X64, "shim"): _SHIM,
    # UEFI HTTP boot: Debian's signed grub has no http module, so iPXE whatever the family.
    (ARCH_EFI_X64_HTTP, "ipxe"): Loader("ipxe.efi", Transport.HTTP),
    (ARCH_EFI_X64_HTTP, "shim"): Loader("ipxe.efi", Transport.HTTP),
    (ARCH_ARM64, "ipxe"): _GRUB_ARM64,
    (ARCH_ARM64, "shim"): _GRUB_ARM64,
}


@dataclass(frozen=True, slots=True)
class BootAnswer:
    """What to put in the DHCP reply: option 67 / BOOTP ``file``, and option 60 echo."""

    filename: str
    in_file_field: bool
    vendor_class: str | None


def _family(arch: int, boot: BootConfig) -> str:
    return boot.bios_loader if arch == ARCH_BIOS else boot.uefi_loader


def choose_boot(
    facts: ClientFacts, http_base: str, boot: BootConfig | None = None
) -> BootAnswer | None:
    """The boot answer for this client, or None when it is not network booting.

    Only clients that say PXEClient/HTTPClient (option 60) or run iPXE get boot options:
    an installed OS's plain DHCP client must not be handed a boot file.
    """
    boot = boot or BootConfig()
    arch = facts.arch if facts.arch is not None else ARCH_BIOS
    if facts.is_ipxe:
        if arch == ARCH_BIOS and boot.bios_loader == "pxelinux":
            # An iPXE ROM offers the PXE API, so it can run pxelinux when that is asked for.
            return BootAnswer("lpxelinux.0", True, None)
        return BootAnswer(f"{http_base}/boot/ipxe/{facts.mac}", False, None)
    if facts.is_http_client:
        loader = LOADERS.get((arch, _family(arch, boot)))
        if loader is None or loader.transport is not Transport.HTTP:
            return None
        # UEFI HTTP boot ignores offers that do not echo "HTTPClient" (LAB-NOTES).
        return BootAnswer(f"{http_base}/boot/files/{loader.filename}", False, "HTTPClient")
    if not facts.is_pxe:
        return None
    loader = LOADERS.get((arch, _family(arch, boot)))
    if loader is None or loader.transport is not Transport.TFTP:
        return None
    # shim looks for grub next to the BOOTP ``file`` field, so fill it as well as 67.
    return BootAnswer(loader.filename, True, None)
