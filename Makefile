# netboot: `make demo` and `make test` do all their own set-up and are idempotent.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BUILD  := build
BOOT   := $(BUILD)/boot
APT_PACKAGES := gcc python3-dev qemu-system-x86 ipxe-qemu ipxe ovmf busybox-static cpio kmod xz-utils \
                isc-dhcp-client dnsutils knot-dnsutils tftp-hpa curl iproute2 python3-venv \
                chromium \
                atftp pxelinux syslinux-common qemu-system-arm qemu-efi-aarch64 \
                kea-admin dnsmasq-base isc-dhcp-relay udhcpc \
                libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config \
                dropbear-bin netcat-openbsd openssh-client \
                mmdebstrap zstd syslinux mtools dosfstools fdisk e2fsprogs qemu-utils \
                vagrant vagrant-libvirt iptables nftables grub-efi-amd64-bin
IPXE_LOADERS := undionly.kpxe snponly.efi ipxe.efi

.PHONY: all demo test lint unit integration e2e deps venv boot images clean appliance vagrant-box vagrant-up-check

all: test

# System packages (Debian 12, root). Installs only what is missing.
$(BUILD)/.deps: Makefile
	@mkdir -p $(BUILD)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends $$missing; \
	fi
	@# isc-dhcp-relay enables its boot-time service: tests start dhcrelay themselves.
	@update-rc.d isc-dhcp-relay disable >/dev/null 2>&1 || true
	@systemctl disable --now isc-dhcp-relay >/dev/null 2>&1 || true
	@touch $@
deps: $(BUILD)/.deps

# setup.py builds the C extension netboot/tftp/_fastpath.c in place (gcc, python3-dev).
$(VENV)/.installed: pyproject.toml setup.py netboot/tftp/_fastpath.c $(BUILD)/.deps
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@
venv: $(VENV)/.installed

# Boot files: iPXE loaders from Debian's ipxe package, kernel + enlistment initramfs.
boot: $(BUILD)/.deps
	@mkdir -p $(BOOT)
	@for f in $(IPXE_LOADERS); do cmp -s /usr/lib/ipxe/$$f $(BOOT)/$$f || cp /usr/lib/ipxe/$$f $(BOOT)/$$f; done
	images/enlist/build.sh $(BOOT)
	images/commission/build.sh $(BOOT)
	images/loaders/build.sh $(BOOT)

# Deploy images (docs/images.md): the installer boot image (same kernel as build/boot,
# its initrd also as build/boot/deploy.initrd) and the Debian 12 rootfs, each rebuilt
# only when its recipe changes (build/images/deploy/<recipe hash>/).
images: boot
	images/installer/build.sh $(BOOT) $(BUILD)/images/installer
	@cmp -s $(BUILD)/images/installer/deploy.initrd $(BOOT)/deploy.initrd || \
	  cp $(BUILD)/images/installer/deploy.initrd $(BOOT)/deploy.initrd
	images/deploy/build.sh $(BUILD)/images/deploy
	@# The Debian installer's netboot package, for the preseed path (docs/deploy.md).
	@mkdir -p $(BUILD)/cache/debs && cd $(BUILD)/cache/debs && \
	  { ls debian-installer-12-netboot-amd64_*.deb >/dev/null 2>&1 || \
	    apt-get download -q debian-installer-12-netboot-amd64; }

lint: venv
	$(VENV)/bin/ruff check netboot tests bench
	$(VENV)/bin/ruff format --check netboot tests bench

# The README's test command: everything, unit + integration (netns) + e2e (QEMU).
test: venv lint boot images
	$(VENV)/bin/pytest tests

unit: venv
	$(VENV)/bin/pytest tests/unit

# The admin VM (images/appliance/, docs/appliance.md): Debian 12 qcow2 with netboot
# installed by packaging/install.sh; cached in build/appliance by input hash.
appliance: venv boot
	images/appliance/build.sh $(BUILD)/appliance

# A vagrant-libvirt box of that image, added as netboot/appliance when vagrant exists.
vagrant-box: appliance
	images/appliance/make-box.sh $(BUILD)/appliance/netboot-appliance.qcow2 $(BUILD)/netboot-appliance.box
	@if command -v vagrant >/dev/null; then \
	  vagrant box add --force --name netboot/appliance $(BUILD)/netboot-appliance.box; \
	else echo "vagrant is not installed: box left at $(BUILD)/netboot-appliance.box"; fi

# `vagrant up` of that box, confined: private libvirtd in a throw-away network + mount
# namespace, TCG; not part of `make test` (4-10 min under TCG). docs/appliance.md.
vagrant-up-check: vagrant-box
	vagrant/try-up.sh $(BUILD)/netboot-appliance.box

demo: venv boot
	$(PY) -m netboot.cli demo --boot-dir $(BOOT) --workdir $(BUILD)/demo

clean:
	rm -rf $(BUILD) $(VENV)
