"""Which first file a booting client gets, decided from its DHCP facts alone.

One table maps the client architecture (DHCP option 93, RFC 4578 / IANA registry) to
a loader. The chainload loop-breaker is explicit: a client that already runs iPXE
(user class "iPXE") is handed the HTTP URL of its per-node script instead of iPXE again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from netboot.dhcp.facts import ClientFacts


class Transport(Enum):
    TFTP = "tftp"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class Loader:
    filename: str
    transport: Transport


# RFC 4578 section 2.1 processor architecture types.
ARCH_BIOS = 0
ARCH_EFI_IA32 = 6
ARCH_EFI_X64 = 7
ARCH_EFI_BC = 9
ARCH_EFI_X64_HTTP = 16

LOADERS: dict[int, Loader] = {
    ARCH_BIOS: Loader("undionly.kpxe", Transport.TFTP),
    ARCH_EFI_X64: Loader("snponly.efi", Transport.TFTP),
    ARCH_EFI_BC: Loader("snponly.efi", Transport.TFTP),
    ARCH_EFI_X64_HTTP: Loader("ipxe.efi", Transport.HTTP),
}


@dataclass(frozen=True, slots=True)
class BootAnswer:
    """What to put in the DHCP reply: option 67 / BOOTP ``file``, and option 60 echo."""

    filename: str
    in_file_field: bool
    vendor_class: str | None


def choose_boot(facts: ClientFacts, http_base: str) -> BootAnswer | None:
    """The boot answer for this client, or None when it is not network booting.

    Only clients that say PXEClient/HTTPClient (option 60) or run iPXE get boot options:
    an installed OS's plain DHCP client must not be handed a boot file.
    """
    if facts.is_ipxe:
        return BootAnswer(f"{http_base}/boot/ipxe/{facts.mac}", False, None)
    if facts.is_http_client and facts.arch == ARCH_EFI_X64_HTTP:
        # UEFI HTTP boot ignores offers that do not echo "HTTPClient" (LAB-NOTES).
        loader = LOADERS[ARCH_EFI_X64_HTTP]
        return BootAnswer(f"{http_base}/boot/files/{loader.filename}", False, "HTTPClient")
    if not facts.is_pxe:
        return None
    loader = LOADERS.get(facts.arch if facts.arch is not None else ARCH_BIOS)
    if loader is None:
        return None
    # shim looks for grub next to the BOOTP ``file`` field, so fill it as well as 67.
    return BootAnswer(loader.filename, True, None)
