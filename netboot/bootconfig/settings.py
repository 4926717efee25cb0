"""The ``[boot]`` configuration table: which loader each firmware family gets.

```toml
[boot]
bios_loader = "ipxe"    # "ipxe" (undionly.kpxe) or "pxelinux" (lpxelinux.0)
uefi_loader = "ipxe"    # "ipxe" (snponly.efi) or "shim" (shim + signed grub: Secure Boot)
```
A DHCP request does not say whether Secure Boot is on, so UEFI machines with Secure
Boot enabled need ``uefi_loader = "shim"`` (it also boots machines without Secure Boot,
only slower: grub fetches kernel and initrd over TFTP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BIOS_LOADERS", "UEFI_LOADERS", "BootConfig", "parse_boot"]

BIOS_LOADERS = ("ipxe", "pxelinux")
UEFI_LOADERS = ("ipxe", "shim")


@dataclass(frozen=True, slots=True)
class BootConfig:
    bios_loader: str = "ipxe"
    uefi_loader: str = "ipxe"


def parse_boot(raw: Any) -> BootConfig:
    """Validate the ``[boot]`` table; errors name the key (config.ConfigError)."""
    from netboot.config import ConfigError

    if not isinstance(raw, dict):
        raise ConfigError("boot", "must be a table")
    known = {"bios_loader": BIOS_LOADERS, "uefi_loader": UEFI_LOADERS}
    for key in raw:
        if key not in known:
            raise ConfigError(f"boot.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    values = {}
    for key, choices in known.items():
        value = raw.get(key, choices[0])
        if value not in choices:
            raise ConfigError(f"boot.{key}", f"{value!r} is not one of {', '.join(choices)}")
        values[key] = value
    return BootConfig(**values)
