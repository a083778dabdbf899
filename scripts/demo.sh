#!/usr/bin/env bash
# Palisade's demo: sets everything up on this machine and walks the path a container takes.
# So far: a busybox bundle run by palisade-runtime under the hardened default config, with
# the in-container escape battery (THREATS.md rows 3-7, 9) and the runc-style lifecycle.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "build (release)"
cargo build --release --locked -p palisade-cli
bin="$PWD/target/release"
rt() { "$bin/palisade-runtime" --root "$demo/state" "$@"; }

demo="$PWD/.demo"
rm -rf "$demo"
mkdir -p "$demo/bundle/rootfs"
chmod 755 "$demo" "$demo/bundle"
rootfs="$demo/bundle/rootfs"

step "a busybox rootfs with palisade-check inside"
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,run,etc}
cp /bin/busybox "$rootfs/bin/"
for applet in sh ls cat echo true sleep id ps hostname mount; do ln -sf busybox "$rootfs/bin/$applet"; done
install_bin() { # copy a binary and the shared libraries it loads
  cp "$1" "$rootfs/bin/"
  for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*'); do
    mkdir -p "$rootfs$(dirname "$lib")"; cp -L "$lib" "$rootfs$lib"
  done
}
install_bin "$bin/palisade-check"
ls "$rootfs/bin" | tr '\n' ' '; echo

step "palisade-runtime spec: the hardened default config"
rt spec --bundle "$demo/bundle"
jq '{user_namespace: .linux.uidMappings, capabilities: .process.capabilities.bounding,
     noNewPrivileges: .process.noNewPrivileges, readonly_rootfs: .root.readonly,
     seccomp_default: .linux.seccomp.defaultAction, landlock: .annotations,
     limits: {pids: .linux.resources.pids.limit, memory: .linux.resources.memory.limit}}' \
   "$demo/bundle/config.json"

step "run: the escape battery from inside the container"
jq '.process.args = ["palisade-check", "battery"]' "$demo/bundle/config.json" > "$demo/c.json"
mv "$demo/c.json" "$demo/bundle/config.json"
if rt run --bundle "$demo/bundle" battery > "$demo/battery.jsonl"; then verdict="all refused"; else verdict="SOME GOT THROUGH"; fi
jq -r 'select(.check) | "\(if .blocked then "refused" else "ALLOWED" end)  \(.check): \(.detail)"' "$demo/battery.jsonl" | column -t -s $'\t' | head -60
echo "verdict: $verdict ($(jq -r 'select(.summary) | .summary | "\(.attempts) attempts, \(.got_through) got through"' "$demo/battery.jsonl"))"

step "lifecycle: create, start, state, exec, ps, pause, resume, delete"
jq '.process.args = ["sleep", "300"]' "$demo/bundle/config.json" > "$demo/c.json"
mv "$demo/c.json" "$demo/bundle/config.json"
rt create --bundle "$demo/bundle" web </dev/null >/dev/null 2>&1
rt state web | jq -c '{id, status, pid}'
rt start web
rt list
rt exec web sh -c 'echo "inside: uid=$(id -u) hostname=$(hostname) pid1=$(cat /proc/1/comm)"; cat /proc/self/uid_map'
rt ps --format json web
rt pause web && rt state web | jq -c '{id, status}'
rt resume web && rt state web | jq -c '{id, status}'
rt events --stats web | jq -c '{type, pids: .data.pids, memory_limit: .data.memory.usage.limit}'
rt delete --force web
rt list

step "done"
echo "demo files are in $demo"
[ "$verdict" = "all refused" ]
