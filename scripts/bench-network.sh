#!/usr/bin/env bash
# Network benchmark (issue 7), as root, on an idle-ish host:
#  1. time of `palisade run --rm IMAGE true` with --network none and on a bridge network
#     (what veth, addresses, routes, hosts/resolv.conf and the nftables rules add), beside
#     podman (runc) with --network none and its default bridge (netavark), hyperfine medians;
#  2. TCP throughput between two containers on one bridge, anti-spoofing rules on (a palisade
#     network) versus off (the same setup created with --insecure-allow-spoofing), measured
#     with palisade-netprobe tcp-sink/tcp-source, interleaved rounds, medians.
#
# Usage: scripts/bench-network.sh [ROUNDS]   (default 7 throughput rounds of 5 s each)
# Environment: CARGO_TARGET_DIR (default target/), SKIP_BUILD=1, NO_PODMAN=1.
set -euo pipefail

rounds=${1:-7}
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -p palisade-cli >&2
bin=$target/release
work=$(mktemp -d /tmp/palisade-netbench.XXXXXX)
chmod 711 "$work"
pal="$bin/palisade --root $work/store"
export PALISADE_RUNTIME=$bin/palisade-runtime PALISADE_RUNTIME_ROOT=$work/run
mkdir -p "$work/run" "$work/rootfs"/{bin,etc,tmp,lib64,lib/x86_64-linux-gnu}
cp /bin/busybox "$work/rootfs/bin/"
for a in sh true sleep; do ln -s busybox "$work/rootfs/bin/$a"; done
cp "$bin/palisade-netprobe" "$work/rootfs/bin/"
for lib in $(ldd "$bin/palisade-netprobe" | grep -o '/[^ ]*'); do cp -n "$lib" "$work/rootfs$lib"; done
echo 'root:x:0:0:root:/:/bin/sh' >"$work/rootfs/etc/passwd"
echo 'root:x:0:' >"$work/rootfs/etc/group"
$pal image import "$work/rootfs" bench:1 >/dev/null
$pal network create nbprot --subnet 10.47.250.0/24 >/dev/null
$pal network create nbplain --subnet 10.47.251.0/24 --insecure-allow-spoofing >/dev/null 2>&1
cleanup() {
  for c in $($pal ps -a -q --no-trunc 2>/dev/null); do $pal rm -f "$c" >/dev/null 2>&1 || true; done
  $pal network rm nbprot nbplain >/dev/null 2>&1 || true
  if [ -n "${podman:-}" ]; then $podman rm -af >/dev/null 2>&1 || true; fi
  umount -R "$work"/podroot/overlay 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

echo "== 1. palisade run --rm IMAGE true"
commands=("$pal run --rm --network none bench:1 true" "$pal run --rm --network nbprot bench:1 true")
if [ "${NO_PODMAN:-0}" != 1 ] && command -v podman >/dev/null; then
  podman="podman --root $work/podroot --runroot $work/podrun --cgroup-manager=cgroupfs"
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  $podman import "$work/rootfs.tar" localhost/bench:1 >/dev/null
  common="--runtime /usr/sbin/runc --ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
  commands+=("$podman run --rm --network none $common localhost/bench:1 true"
    "$podman run --rm $common localhost/bench:1 true")
fi
hyperfine -N -w 3 -r 20 --export-json "$work/run.json" "${commands[@]}" >&2
jq -r '.results[] | "\(.median * 1000 | floor) ms median  \(.command)"' "$work/run.json"

echo "== 2. TCP throughput between two containers, rules on vs off"
throughput() { # network -> Gbit/s of one 5 s round
  local net=$1 sink ip
  sink=$($pal run -d --network "$net" bench:1 palisade-netprobe tcp-sink --port 5201)
  ip=$($pal inspect "$sink" | jq -r '.[0].network.ipv4')
  sleep 0.3
  $pal run --rm --network "$net" bench:1 palisade-netprobe tcp-source --to "$ip:5201" --seconds 5 >/dev/null
  $pal wait "$sink" >/dev/null
  $pal logs "$sink" | jq -r '.gbit_per_s'
  $pal rm "$sink" >/dev/null
}
on=() off=()
for ((i = 0; i < rounds; i++)); do
  on+=("$(throughput nbprot)")
  off+=("$(throughput nbplain)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "rules on  (palisade network):         median $(median "${on[@]}") Gbit/s  [${on[*]}]"
echo "rules off (--insecure-allow-spoofing): median $(median "${off[@]}") Gbit/s  [${off[*]}]"
