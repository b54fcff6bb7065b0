#!/usr/bin/env bash
# Runs every test of Halyard: installs the real peers the tests talk to
# (idempotently: only what is missing), then fmt, clippy and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: net-snmp tools and daemons, libsmi, libyang, headless
# Chromium with its WebDriver, Prometheus (and promtool), xmllint, curl,
# OpenSSH's sshd and ssh-keygen (the non-peer node the proxy tests manage).
need=()
command -v smilint   >/dev/null || need+=(smitools)
command -v snmpwalk  >/dev/null || need+=(snmp)
[ -x /usr/sbin/snmpd ]     || need+=(snmpd)
[ -x /usr/sbin/snmptrapd ] || need+=(snmptrapd)
command -v yanglint  >/dev/null || need+=(libyang-tools)
[ -x /usr/bin/chromium ]       || need+=(chromium)
[ -x /usr/bin/chromedriver ]   || need+=(chromium-driver)
command -v prometheus >/dev/null || need+=(prometheus)
command -v xmllint   >/dev/null || need+=(libxml2-utils)
command -v curl      >/dev/null || need+=(curl)
command -v openssl   >/dev/null || need+=(openssl)
[ -x /usr/sbin/sshd ]      || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo_ apt-get update -q
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -q "${need[@]}"
fi

# Python peers: pyang (YANG), ncclient, netconf-console2 and ssh2-python
# (libssh2) as NETCONF clients, pysnmp as an SNMP manager.
py_need=()
python3 -c 'import pyang' 2>/dev/null || py_need+=(pyang)
python3 -c 'import ncclient' 2>/dev/null || py_need+=(ncclient)
command -v netconf-console2 >/dev/null || py_need+=(netconf-console2)
python3 -c 'import ssh2' 2>/dev/null || py_need+=(ssh2-python)
# pysnmp (LeXtudio's, pinned: its API moves between releases) is the
# second SNMPv3 peer, for the privacy protocols net-snmp's build lacks.
python3 -c 'import pysnmp, cryptography; assert pysnmp.__version__ == "7.1.21"' 2>/dev/null ||
  py_need+=(pysnmp==7.1.21 cryptography)
if [ ${#py_need[@]} -gt 0 ]; then
  echo "installing from PyPI: ${py_need[*]}"
  python3 -m pip install -q "${py_need[@]}"
fi
# pyenv installs console scripts behind shims that need a rehash.
command -v pyenv >/dev/null && pyenv rehash || true

# Base SMIv2 modules (SNMPv2-SMI, -TC, -CONF): Debian ships none; the npm
# package net-snmp carries them.
npm_dir="${HALYARD_NPM_DIR:-$HOME/.cache/halyard-npm}"
if [ ! -f "$npm_dir/node_modules/net-snmp/lib/mibs/SNMPv2-SMI.mib" ]; then
  mkdir -p "$npm_dir"
  npm install --silent --no-audit --no-fund --prefix "$npm_dir" net-snmp@3 >/dev/null
fi
export HALYARD_BASE_MIBS="$npm_dir/node_modules/net-snmp/lib/mibs"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
