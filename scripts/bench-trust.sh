#!/usr/bin/env bash
# Trust benchmark: sign and verify latency (cosign.key file key and a SoftHSM2 token key)
# against Debian's docker-registry on 127.0.0.1, OpenSSL's sign/verify of the same payload as
# the reference for the cryptography alone, and what `palisade run --rm IMAGE true` pays for
# the trust policy (offline re-check of cached signatures) against no policy file.
#
# Usage (as root, after a release build):  scripts/bench-trust.sh [RUNS]
# Environment: CARGO_TARGET_DIR (default target/), BENCH_DIR (default /tmp/palisade-bench-trust)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
dir=${BENCH_DIR:-/tmp/palisade-bench-trust}
rm -rf "$dir"
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/hsm/tokens" "$dir/policy/keys" "$dir/run"
chmod 755 "$dir"
cp /bin/busybox "$dir/rootfs/bin/" && ln -s busybox "$dir/rootfs/bin/true"
echo 'root:x:0:0:root:/:/bin/sh' > "$dir/rootfs/etc/passwd"
export PALISADE_RUNTIME="$bin/palisade-runtime" PALISADE_RUNTIME_ROOT="$dir/run"
pal() { "$bin/palisade" --root "$dir/store" "$@"; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' "$dir/registry" "$host" > "$dir/registry.yml"
/usr/bin/docker-registry serve "$dir/registry.yml" > "$dir/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://$host/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

pal image import "$dir/rootfs" bench/busybox:1 >/dev/null
for repo in signed sign-file sign-hsm; do
  pal push --insecure-registry "$host" bench/busybox:1 "$host/bench/$repo:1" >/dev/null
done
export COSIGN_PASSWORD=bench
unset PALISADE_POLICY # and /etc/palisade/policy.json must not exist: the built-in default
"$bin/palisade" key generate --output-key-prefix "$dir/file" >/dev/null
export SOFTHSM2_CONF="$dir/hsm/softhsm2.conf"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir/hsm/tokens" > "$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >/dev/null
uri="pkcs11:token=bench;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234"
"$bin/palisade" key generate --pkcs11 "$uri" --output-key-prefix "$dir/hsm" >/dev/null
"$bin/palisade" sign --insecure-registry "$host" --key "$dir/file.key" "$host/bench/signed:1" >/dev/null
"$bin/palisade" sign --insecure-registry "$host" --key "$dir/file.key" --tag-form "$host/bench/signed:1" >/dev/null

# The OpenSSL reference: the same kind of key (P-256), the same payload size.
openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ossl.pem" 2>/dev/null
openssl ec -in "$dir/ossl.pem" -pubout -out "$dir/ossl.pub" 2>/dev/null
head -c 300 /dev/urandom > "$dir/payload"
openssl dgst -sha256 -sign "$dir/ossl.pem" -out "$dir/payload.sig" "$dir/payload"

S="$bin/palisade sign --insecure-registry $host"
V="$bin/palisade verify --insecure-registry $host"
hyperfine -N -w 3 -r "$runs" --export-markdown "$dir/sign-verify.md" \
  "$S --key $dir/file.key $host/bench/sign-file:1" \
  "$S --key $uri $host/bench/sign-hsm:1" \
  "$V --key $dir/file.pub $host/bench/signed:1" \
  "openssl dgst -sha256 -sign $dir/ossl.pem -out $dir/x.sig $dir/payload" \
  "openssl dgst -sha256 -verify $dir/ossl.pub -signature $dir/payload.sig $dir/payload"

# palisade run of the pulled, signed image: under the built-in default (no policy file: the
# image's scope is insecure-accept-anything, warned and audited), and under a policy that
# requires the signature (verified offline from the signatures cached at pull, audited).
cp "$dir/file.pub" "$dir/policy/keys/file.pub"
echo "{\"scopes\": {\"$host/bench/*\": {\"keys\": [\"file.pub\"]}, \"*\": \"reject\"}}" > "$dir/policy/policy.json"
PALISADE_POLICY="$dir/policy/policy.json" "$bin/palisade" --root "$dir/pulled" pull --insecure-registry "$host" "$host/bench/signed:1" >/dev/null
R="$bin/palisade --root $dir/pulled run --rm $host/bench/signed:1 true"
hyperfine -N -w 3 -r "$runs" --export-markdown "$dir/run.md" \
  "$R" \
  "env PALISADE_POLICY=$dir/policy/policy.json $R"
cat "$dir/sign-verify.md" "$dir/run.md"
