#!/usr/bin/env bash
# Installs every Debian 12 package the project needs to build, test and run. Idempotent: when
# everything is present it installs nothing and does not touch the network.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libboost1.81-dev libboost-system1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libpaho-mqtt-dev libpaho-mqttpp-dev
  libtss2-dev libtss2-tcti-swtpm0 swtpm swtpm-tools tpm2-tools
  liblmdb-dev lmdb-utils catch2 mosquitto mosquitto-clients
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev libre2-dev
  # zstd-compressed artifacts (docs/ota.md): the library, and the CLI the tests compress with.
  libzstd-dev zstd
  procps iproute2 curl
  # grub-editenv: the GRUB boot-control backend's tests run against the real tool; grub-emu
  # (GRUB as a user-space program) and e2fsprogs (mke2fs, debugfs) let the tests boot the
  # shipped deploy/boot/grub/ab-select.cfg with GRUB itself.
  grub-common grub-emu e2fsprogs
  # fw_printenv/fw_setenv (libubootenv): the U-Boot backend's tests run against the real tools;
  # U-Boot for QEMU's arm64 board, QEMU and mkimage let the tests run the shipped
  # deploy/boot/uboot/ab-select.cmd in U-Boot itself.
  libubootenv-tool qemu-system-arm u-boot-qemu u-boot-tools
  # libfuse3: tests/tools/lazyfs.cpp, a file system that loses unsynced writes at a power cut.
  # (fuse3 replaces the older fuse package where that is installed.)
  libfuse3-dev fuse3
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
