#!/usr/bin/env bash
# Installs what Palisade's build, tests and demo need on a Debian 12 machine (run as root).
# Idempotent: packages already present are left alone.
set -euo pipefail

packages=(
  busybox-static   # the rootfs of test and demo containers (no internet for images)
  runc crun        # reference runtimes for side-by-side checks and benchmarks
  containerd podman skopeo  # the ecosystem tests drive palisade-runtime through these
  docker-registry  # the reference registry the distribution tests push to and pull from
  iproute2 nftables procps  # namespaces, network tests, ps for `palisade-runtime ps`
  libc6-dev pkg-config      # building the workspace's C-linking crates
  time hyperfine jq curl    # benchmarks and the demo's output
  softhsm2 openssl          # trust: PKCS#11 key tests on SoftHSM2 tokens; OpenSSL checks our signatures
  # (openssl above also serves the audit tests, which make P-256 checkpoint keys)
  python3-apt python3-rpm python3-packaging python3-yaml  # scan: reference version comparators for the differential tests
  debootstrap               # scan: the Debian rootfs of the scanner benchmark
  golang-go                 # scan: tests build a Go 1.19 binary and read its build info
  nodejs node-semver        # scan: node-semver is the reference in the SemVer differential test
  default-jre-headless libmaven3-core-java  # scan: Maven's ComparableVersion, the Maven reference
  python3-venv              # registry: the venv of moto, the local S3 server the S3 storage tests use
)

# Satisfied without the Debian package: a Node.js from elsewhere (nodesource's bundles npm and
# its semver, and conflicts with Debian's node-* packages) or any Java runtime.
provided() {
  case "$1" in
    nodejs) command -v node >/dev/null 2>&1 ;;
    node-semver) [ -d /usr/lib/node_modules/npm/node_modules/semver ] || [ -d /usr/share/nodejs/semver ] ;;
    default-jre-headless) command -v java >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

missing=()
for p in "${packages[@]}"; do
  provided "$p" && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  for c in "$HOME/.cargo/bin/cargo" /usr/local/cargo/bin/cargo; do
    [ -x "$c" ] && export PATH="$(dirname "$c"):$PATH" && break
  done
fi
command -v cargo >/dev/null 2>&1 || {
  echo "setup: cargo (Rust 1.85 or newer) is required; install it with rustup and re-run" >&2
  exit 1
}

# registry: moto's S3 server for crates/registry/tests/s3.rs (from PyPI, into its own venv)
if [ ! -x /opt/palisade-moto/bin/moto_server ]; then
  echo "setup: installing moto (local S3 server) into /opt/palisade-moto"
  python3 -m venv /opt/palisade-moto
  /opt/palisade-moto/bin/pip install -q 'moto[server]'
fi
