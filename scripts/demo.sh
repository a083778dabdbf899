#!/usr/bin/env bash
# Palisade's demo: sets everything up on this machine and walks the path a container takes.
# 1. palisade-runtime: a busybox bundle under the hardened default config, the in-container
#    escape battery (THREATS.md rows 3-7, 9) and the runc-style lifecycle.
# 2. palisade: import a busybox image; start palisade's own registry on 127.0.0.1 (argon2
#    users, per-repository rules, a signature gate); push; sign (cosign-compatible) and verify;
#    a reader is refused the unsigned copy by the registry and the engine refuses it too; pull
#    into a fresh store (signature first, then every blob against its digest); import the OSV
#    advisories and scan under a vulnerability policy; run with the secure defaults (the
#    battery again, from the image); a bridge network with anti-spoofing rules; `palisade
#    check` for the defaults and for --privileged; the audit log verified.
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
for applet in sh ls cat echo true sleep id ps hostname mount ip ping httpd wget; do ln -sf busybox "$rootfs/bin/$applet"; done
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

step "image: a busybox image imported from the same rootfs"
pal() { "$bin/palisade" --root "$demo/$1" "${@:2}"; }
mkdir -p "$demo/store" "$demo/pulled"
chmod 755 "$demo/store" "$demo/pulled"
printf 'root:x:0:0:root:/:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"
pal store image import "$rootfs" demo/busybox:1 --cmd '["sh"]'
pal store images

step "keys and trust policy: a cosign-compatible key pair, and a policy that requires its signature"
# A free port on 127.0.0.1, so the demo never collides with a registry already running.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export COSIGN_PASSWORD=demo
"$bin/palisade" key generate --force --output-key-prefix "$demo/demo"
mkdir -p "$demo/policy/keys"
cp "$demo/demo.pub" "$demo/policy/keys/demo.pub"
cat > "$demo/policy/policy.json" <<JSON
{"scopes": {"127.0.0.1:$port/demo/busybox": {"keys": ["demo.pub"]}, "*": "reject"}}
JSON
cat "$demo/policy/policy.json"

step "registry: palisade registry serve on 127.0.0.1 (argon2 users, per-repository rules, a signature gate)"
cat > "$demo/registry.toml" <<TOML
listen = "127.0.0.1:$port"
audit_log = "$demo/registry-audit.log"
[storage]
root = "$demo/registry"
[auth]
users_file = "$demo/registry-users.json"
[auth.roles.demo]
rules = [{ repositories = ["demo/**"], actions = ["pull", "push", "delete"] }]
[auth.roles.reader]
rules = [{ repositories = ["demo/**"], actions = ["pull"] }]
[gates.signature]
policy = "$demo/policy/policy.json"
registry_name = "127.0.0.1:$port"
[[policies]]
repositories = ["demo/**"]
gates = ["signature"]
TOML
echo "demo-password" | "$bin/palisade" registry user add --config "$demo/registry.toml" --role demo demo
echo "reader-password" | "$bin/palisade" registry user add --config "$demo/registry.toml" --role reader reader
"$bin/palisade" registry serve --config "$demo/registry.toml" > "$demo/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")" = 401 ] && break; sleep 0.1; done
export XDG_CONFIG_HOME="$demo/config"   # the demo's credentials stay in the demo directory
echo "demo-password" | pal store login -u demo --password-stdin --insecure-registry "127.0.0.1:$port" "127.0.0.1:$port"
pal store push --insecure-registry "127.0.0.1:$port" demo/busybox:1 "127.0.0.1:$port/demo/busybox:1"
pal store push --insecure-registry "127.0.0.1:$port" demo/busybox:1 "127.0.0.1:$port/demo/unsigned:1"

step "sign: the publisher signs what it pushed; the registry's gate now serves it to readers"
"$bin/palisade" sign --insecure-registry "127.0.0.1:$port" --key "$demo/demo.key" -a demo=yes "127.0.0.1:$port/demo/busybox:1"
"$bin/palisade" verify --insecure-registry "127.0.0.1:$port" --key "$demo/demo.pub" "127.0.0.1:$port/demo/busybox:1"
manifest() { # a reader's GET of a manifest: the status, and the registry's answer when refused
  curl -s -u reader:reader-password -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -o "$demo/answer.json" -w '%{http_code}' "http://127.0.0.1:$port/v2/$1/manifests/1"
}
echo "reader pulls demo/busybox:1 (signed): HTTP $(manifest demo/busybox)"
echo "reader pulls demo/unsigned:1: HTTP $(manifest demo/unsigned) $(jq -c '.errors[0] | {code, message}' "$demo/answer.json")"
export PALISADE_POLICY="$demo/policy/policy.json"
if pal pulled pull --insecure-registry "127.0.0.1:$port" "127.0.0.1:$port/demo/unsigned:1"; then
  echo "AN UNSIGNED IMAGE WAS PULLED"; exit 1
fi
echo "the engine refused the unsigned image too (the publisher's credentials pass the registry's gate, not the engine's policy)"

step "pull into a fresh store: the signature checked first, then every blob against its digest"
pal pulled pull --insecure-registry "127.0.0.1:$port" "127.0.0.1:$port/demo/busybox:1"
pal pulled system check

step "scan: a vulnerability database, a policy, and the image scanned before it runs"
export PALISADE_VULNDB="$demo/vulndb" PALISADE_VULN_POLICY="$demo/vuln-policy.toml"
osv_sources=(crates/scan/tests/fixtures/osv/debian crates/scan/tests/fixtures/osv/alpine)
[ -d ../shared/data/osv ] && osv_sources+=(../shared/data/osv)
"$bin/palisade" db import "${osv_sources[@]}"
"$bin/palisade" db info
printf 'name = "demo"\nmax_severity = "MEDIUM"\n' > "$PALISADE_VULN_POLICY"
pal pulled scan "127.0.0.1:$port/demo/busybox:1"
echo "a Debian 12 extract with old glibc and urllib3 (the gate would refuse it):"
pal store scan --severity HIGH,CRITICAL crates/scan/tests/fixtures/rootfs/debian12 || true

step "palisade run: the battery again, from the pulled image, with the engine's defaults"
if pal pulled run --rm "127.0.0.1:$port/demo/busybox:1" palisade-check battery > "$demo/battery2.jsonl"; then
  verdict2="all refused"
else
  verdict2="SOME GOT THROUGH"
fi
echo "verdict: $verdict2 ($(jq -r 'select(.summary) | .summary | "\(.attempts) attempts, \(.got_through) got through"' "$demo/battery2.jsonl"))"
pal pulled run --rm "127.0.0.1:$port/demo/busybox:1" sh -c 'echo "inside: uid=$(id -u) hostname=$(hostname)"; cat /proc/self/uid_map'
id=$(pal pulled run -d --name web "127.0.0.1:$port/demo/busybox:1" sleep 300)
pal pulled ps
pal pulled exec web sh -c 'echo exec works in $(hostname)'
pal pulled stop -t 1 web >/dev/null
pal pulled rm web >/dev/null
echo "container ${id:0:12} stopped and removed"

step "network: a bridge whose ports accept only their own container's MAC and addresses"
pal pulled network rm demo-net >/dev/null 2>&1 || true
pal pulled network create demo-net
mkdir -p "$demo/www" && echo "hello from a neighbour" > "$demo/www/index.html" && chmod -R 755 "$demo/www"
pal pulled run -d --name www --network demo-net -v "$demo/www:/www:ro" \
  "127.0.0.1:$port/demo/busybox:1" httpd -f -p 8080 -h /www >/dev/null
www_ip=$(pal pulled --format json inspect www | jq -r '.[0].network.ipv4 // .[0].network.address // empty' | cut -d/ -f1)
pal pulled run --rm --network demo-net "127.0.0.1:$port/demo/busybox:1" sh -c \
  "ip -4 -o addr show eth0 | sed 's/^/client: /'; wget -qO- http://$www_ip:8080/"
echo "anti-spoofing rules on the host (nftables bridge table palisade-demo-net):"
nft list table bridge palisade-demo-net | grep -E 'ether saddr|arp saddr|ip saddr' | head -6
pal pulled rm -f www >/dev/null
pal pulled network rm demo-net

step "palisade check: what the defaults cover, and what --privileged takes away"
pal pulled check --run -- "127.0.0.1:$port/demo/busybox:1"
pal pulled check --run -- --privileged "127.0.0.1:$port/demo/busybox:1" || true

step "audit: every decision above is in a hash-chained log"
pal pulled audit verify
pal pulled audit show --since 10m | tail -n 5

step "done"
echo "demo files are in $demo"
[ "$verdict" = "all refused" ] && [ "$verdict2" = "all refused" ]
