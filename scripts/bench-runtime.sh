#!/usr/bin/env bash
# Runtime benchmark: the lifecycle a container manager drives for a short-lived container,
# `create` + `start` + wait for exit + `delete` of /bin/true, as four separate commands (the
# way containerd's shim calls runc), for palisade-runtime, runc and crun side by side.
#
# Usage (as root):  scripts/bench-runtime.sh [-n ITERATIONS] [-w WARMUP] [-r RSS_SAMPLES]
#   -n  measured cycles per runtime and config (default 50, or $ITERATIONS)
#   -w  unmeasured warm-up cycles per runtime and config (default 3, or $WARMUP)
#   -r  extra cycles whose `create` runs under /usr/bin/time for its peak RSS (default 5)
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: the workspace's target/)
#   SKIP_BUILD=1      use the palisade-runtime already built there
#   RUNC, CRUN        the reference runtimes (default: from PATH; CRUN= skips crun)
#   BENCH_RAW=FILE    also keep every sample (TSV, microseconds)
#
# Configs (all run on one busybox rootfs):
#   default   runc's `runc spec` template, args ["/bin/true"], terminal false. Run by all three.
#   hardened  palisade's `palisade-runtime spec` template (user namespace mapped to host uid
#             1000000, seccomp allow-list, Landlock annotation, pids/memory limits, cgroup,
#             network and time namespaces), args ["/bin/true"]. Run by palisade-runtime
#             unchanged, and by runc/crun with the smallest edit each one needs to accept it;
#             the edit is printed beside the results. runc and crun ignore the Landlock
#             annotation, so they do strictly less work under this config.
#
# Timing: bash's $EPOCHREALTIME around each command (no extra fork). The wait is a builtin
# loop on /proc/<pid>/stat of the init (pid from --pid-file) that sleeps 1 ms between looks,
# until the process is gone or a zombie; it costs every runtime the same. Cycles are
# interleaved (one cycle of each runtime and config in turn) so drift on the host hits all
# of them alike. Each runtime keeps its state under its own --root on a private tmpfs, and
# every container gets a fresh id.
set -euo pipefail
export LC_ALL=C # $EPOCHREALTIME must use '.' as its decimal separator

iterations=${ITERATIONS:-50}
warmup=${WARMUP:-3}
rss_samples=${RSS_SAMPLES:-5}
while getopts "n:w:r:h" opt; do
  case $opt in
    n) iterations=$OPTARG ;;
    w) warmup=$OPTARG ;;
    r) rss_samples=$OPTARG ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
  esac
done
for v in "$iterations" "$warmup" "$rss_samples"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "bench: -n, -w and -r take a number, got '$v'" >&2; exit 2; }
done
((iterations > 0)) || { echo "bench: -n must be at least 1" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "bench: $*" >&2; exit 1; }

# --- prerequisites ---------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "run as root (runtimes need it to create namespaces and cgroups)"
((BASH_VERSINFO[0] >= 5)) || die "bash 5 or newer is needed (\$EPOCHREALTIME)"
for tool in jq busybox cargo; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install jq busybox-static; cargo via rustup)"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing: apt-get install time"
runc=${RUNC-$(command -v runc || true)}
crun=${CRUN-$(command -v crun || true)}
[[ -n $runc && -x $runc ]] || die "runc is missing: apt-get install runc"

# --- build ------------------------------------------------------------------------------------
target_dir=${CARGO_TARGET_DIR:-$repo/target}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  echo "bench: building palisade-runtime (release) in $target_dir" >&2
  (cd "$repo" && CARGO_TARGET_DIR=$target_dir cargo build --release --locked -p palisade-cli >&2)
fi
palisade=$target_dir/release/palisade-runtime
[[ -x $palisade ]] || die "$palisade not found (build it, or unset SKIP_BUILD)"

# --- scratch space and cleanup ----------------------------------------------------------------
# 0755, not mktemp's 0700: under the hardened config container root is host uid 1000000 and
# must be able to walk down to the rootfs.
work=$(mktemp -d /tmp/palisade-bench.XXXXXX)
chmod 0755 "$work"
state=$work/state # the runtimes' --root directories and the pid files, on a tmpfs of our own
mkdir "$state"
mounted_state=0 mounted_hugetlb=0
runtimes=() # name=binary, filled in below

cleanup() {
  local status=$? entry name bin id
  trap - EXIT INT TERM
  # Force-delete whatever a failed or interrupted run left behind (kills it, removes its
  # cgroup), then drop the tmpfs and the scratch directory.
  for entry in "${runtimes[@]}"; do
    name=${entry%%=*} bin=${entry#*=}
    [[ -d $state/$name ]] || continue
    for id in $("$bin" --root "$state/$name" list -q 2>/dev/null); do
      "$bin" --root "$state/$name" delete -f "$id" >/dev/null 2>&1 ||
        echo "bench: could not delete leftover $name container $id" >&2
    done
  done
  if ((mounted_state)); then umount "$state" || umount -l "$state"; fi
  rm -rf "$work"
  if ((mounted_hugetlb)); then
    if umount /sys/fs/cgroup/hugetlb; then
      rmdir /sys/fs/cgroup/hugetlb
    else
      echo "bench: could not unmount /sys/fs/cgroup/hugetlb" >&2
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mount -t tmpfs -o size=64m,mode=0755 palisade-bench "$state" && mounted_state=1

# A descriptor that never becomes readable: `read -t 0.001 -u $tick` is a 1 ms sleep without
# forking sleep(1).
mkfifo "$work/tick"
exec {tick}<>"$work/tick"

# --- the busybox bundle -----------------------------------------------------------------------
# One rootfs shared by every config: /bin/busybox plus a symlink per applet (`true` among
# them), and the mount points the configs use. Directories 0755 and the binary 0755, so
# uid 1000000 can read it.
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,proc,dev,sys,tmp,run,etc}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(busybox --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
done
chmod -R a+rX "$rootfs"
[[ -L $rootfs/bin/true ]] || die "busybox has no 'true' applet"

# write_config DIR JQ-FILTER: DIR/config.json = runc's or palisade's template (DIR/template.json)
# with the shared rootfs, /bin/true and no terminal, then FILTER.
write_config() {
  jq --arg rootfs "$rootfs" '.root.path = $rootfs | .process.args = ["/bin/true"]
      | .process.terminal = false | '"$2" "$1/template.json" >"$1/config.json"
}
mkdir -p "$work/default" "$work/hardened"
(cd "$work/default" && "$runc" spec && mv config.json template.json)
"$palisade" spec --bundle "$work/hardened" && mv "$work/hardened/config.json" "$work/hardened/template.json"
write_config "$work/default" . # the hardened bundles are written per runtime, below

# --- one lifecycle ----------------------------------------------------------------------------
# cycle NAME BIN BUNDLE ID: create, start, wait, delete; sets t_create t_start t_wait t_delete
# (microseconds). With RSS_FILE set, `create` runs under /usr/bin/time, which writes its
# peak RSS (KiB) there. Stdout of the container goes to $CYCLE_OUT (default /dev/null).
cycle() {
  local name=$1 bin=$2 bundle=$3 id=$4 root=$state/$1 pidfile=$state/$4.pid err=$work/err
  local t0 t1 t2 t3 t4 pid line st deadline
  local -a pre=()
  [[ -n ${RSS_FILE:-} ]] && pre=(/usr/bin/time -f %M -o "$RSS_FILE")
  t0=${EPOCHREALTIME/./}
  "${pre[@]}" "$bin" --root "$root" create --bundle "$bundle" --pid-file "$pidfile" "$id" \
    </dev/null >"${CYCLE_OUT:-/dev/null}" 2>"$err" || { cat "$err" >&2; return 1; }
  t1=${EPOCHREALTIME/./}
  "$bin" --root "$root" start "$id" </dev/null >/dev/null 2>"$err" || { cat "$err" >&2; return 1; }
  t2=${EPOCHREALTIME/./}
  pid=
  read -r pid <"$pidfile" || [[ -n $pid ]] # pid files often lack a final newline
  deadline=$((t2 + 10000000))
  while { read -r line <"/proc/$pid/stat"; } 2>/dev/null; do
    st=${line##*) } st=${st%% *} # the state letter follows the last ')'
    [[ $st == Z || $st == X ]] && break
    ((${EPOCHREALTIME/./} < deadline)) || { echo "bench: $name: $id still running after 10 s" >&2; return 1; }
    read -r -t 0.001 -u "$tick" _ || true
  done
  t3=${EPOCHREALTIME/./}
  "$bin" --root "$root" delete "$id" </dev/null >/dev/null 2>"$err" || { cat "$err" >&2; return 1; }
  t4=${EPOCHREALTIME/./}
  rm -f "$pidfile"
  t_create=$((t1 - t0)) t_start=$((t2 - t1)) t_wait=$((t3 - t2)) t_delete=$((t4 - t3))
}

# works NAME BIN BUNDLE: one real cycle of `sh -c 'echo bench-ok'` in BUNDLE's config, so a
# runtime that fails quietly (or never runs the process) cannot post a good time.
probe_seq=0
works() {
  local probe=$work/probe-$1
  rm -rf "$probe" && mkdir -p "$probe"
  jq '.process.args = ["/bin/sh", "-c", "echo bench-ok"]' "$3/config.json" >"$probe/config.json"
  CYCLE_OUT=$work/probe.out cycle "$1" "$2" "$probe" "probe-$1-$((probe_seq += 1))" 2>"$work/probe.err" &&
    [[ $(<"$work/probe.out") == bench-ok ]]
}
why() { tail -n 3 "$work/probe.err" | sed 's/^/    /' >&2; }

# --- which runtime runs which config ----------------------------------------------------------
runtimes=("palisade-runtime=$palisade" "runc=$runc")
if [[ -n $crun ]]; then
  # crun refuses a hybrid cgroup layout without a hugetlb v1 hierarchy; mount one if needed.
  if [[ $(stat -f -c %T /sys/fs/cgroup) != cgroup2fs ]] && ! grep -q '[ ,]hugetlb[ ,]' /proc/mounts &&
    grep -q '^hugetlb' /proc/cgroups; then
    mkdir -p /sys/fs/cgroup/hugetlb
    mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb && mounted_hugetlb=1
  fi
  runtimes+=("crun=$crun")
fi

# pairs: "config name bin bundle", in the order they appear in the table.
pairs=()
notes=()
for entry in "${runtimes[@]}"; do
  name=${entry%%=*} bin=${entry#*=}
  if works "$name" "$bin" "$work/default"; then
    pairs+=("default $name $bin $work/default")
  else
    echo "bench: $name cannot run runc's default config here, leaving it out:" >&2; why
    notes+=("$name: left out, it cannot run runc's default config here ($(tail -n 1 "$work/probe.err"))")
  fi
done
# The hardened config, unchanged first; if a runtime refuses it, the smallest edits that
# older runc/crun need, alone and then together:
#   ociVersion 1.0.2   crun <= 1.8 rejects any ociVersion but 1.0.x ("unknown version specified")
#   no time namespace  runc < 1.2 does not know the time namespace
edits=("." '.ociVersion = "1.0.2"' '.linux.namespaces |= map(select(.type != "time"))'
  '.ociVersion = "1.0.2" | .linux.namespaces |= map(select(.type != "time"))')
edit_names=("" "ociVersion set to 1.0.2" "time namespace removed" "ociVersion set to 1.0.2, time namespace removed")
for entry in "${runtimes[@]}"; do
  name=${entry%%=*} bin=${entry#*=}
  for i in "${!edits[@]}"; do
    bundle=$work/hardened-$name
    mkdir -p "$bundle" && cp "$work/hardened/template.json" "$bundle/"
    write_config "$bundle" "${edits[$i]}"
    if works "$name" "$bin" "$bundle"; then
      pairs+=("hardened $name $bin $bundle")
      [[ -n ${edit_names[$i]} ]] && notes+=("$name, hardened config: ${edit_names[$i]} (it refuses the config as written)")
      continue 2
    fi
    [[ $i == 0 ]] && { echo "bench: $name refuses the hardened config as written:" >&2; why; }
  done
  echo "bench: $name cannot run the hardened config even with the edits; leaving it out" >&2
  notes+=("$name: cannot run the hardened config ($(tail -n 1 "$work/probe.err"))")
done

# --- measure ----------------------------------------------------------------------------------
samples=$work/samples.tsv # config runtime iteration create start wait delete (microseconds)
rss=$work/rss.tsv         # config runtime peak-RSS-of-create (KiB)
: >"$samples" && : >"$rss"
seq_no=0
# Other work on the machine skews every row; the load average is printed with the table.
read -r load_before _ </proc/loadavg
echo "bench: ${#pairs[@]} runtime/config pairs, $warmup warm-up + $iterations measured cycles each," \
  "then $rss_samples under /usr/bin/time" >&2
for ((i = 1 - warmup; i <= iterations + rss_samples; i++)); do
  for pair in "${pairs[@]}"; do
    read -r config name bin bundle <<<"$pair"
    id=bench-$name-$config-$((seq_no += 1))
    if ((i > iterations)); then
      RSS_FILE=$work/rss.one cycle "$name" "$bin" "$bundle" "$id" || die "$name ($config) failed in cycle $i"
      printf '%s\t%s\t%s\n' "$config" "$name" "$(tail -n 1 "$work/rss.one")" >>"$rss"
    else
      cycle "$name" "$bin" "$bundle" "$id" || die "$name ($config) failed in cycle $i"
      ((i >= 1)) && printf '%s\t%s\t%d\t%d\t%d\t%d\t%d\n' "$config" "$name" "$i" \
        "$t_create" "$t_start" "$t_wait" "$t_delete" >>"$samples"
    fi
  done
done
read -r load_after _ </proc/loadavg
if [[ -n ${BENCH_RAW:-} ]]; then cp "$samples" "$BENCH_RAW"; fi

# --- report -----------------------------------------------------------------------------------
# summarize CONFIG RUNTIME COLUMN: "median p95" in ms of one column (4-7 a phase, 0 the total) of
# the samples. p95 is the nearest-rank value: the ceil(0.95 n)-th smallest.
summarize() {
  awk -F'\t' -v c="$1" -v r="$2" -v col="$3" \
    '$1 == c && $2 == r { print (col ? $col : $4 + $5 + $6 + $7) / 1000 }' "$samples" | sort -n |
    awk '{ v[NR] = $1 } END {
      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      k = int(0.95 * NR); if (k < 0.95 * NR) k++
      printf "%.1f %.1f\n", m, v[k] }'
}
rss_median() {
  awk -F'\t' -v c="$1" -v r="$2" '$1 == c && $2 == r { print $3 }' "$rss" | sort -n |
    awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "n/a" }'
}
echo
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1))," \
  "$(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r)"
# The commit palisade-runtime was built from, and whether its build inputs had local edits.
revision=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$repo" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null) ]]; then
  revision+=" with uncommitted changes to crates/ or Cargo.*"
fi
echo "palisade-runtime $revision," \
  "$("$runc" --version | head -n 1)${crun:+, $("$crun" --version | head -n 1)}"
echo "create + start + wait + delete of /bin/true: $iterations cycles per row, times in ms" \
  "(1-min load average $load_before before, $load_after after)"
echo
echo "| config | runtime | median | p95 | create (median) | start (median) | wait (median) | delete (median) | create peak RSS, KiB (median of $rss_samples) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for pair in "${pairs[@]}"; do
  read -r config name _ <<<"$pair"
  read -r med p95 < <(summarize "$config" "$name" 0)
  phases=()
  for col in 4 5 6 7; do read -r m _ < <(summarize "$config" "$name" "$col"); phases+=("$m"); done
  echo "| $config | $name | $med | $p95 | ${phases[0]} | ${phases[1]} | ${phases[2]} | ${phases[3]} | $(rss_median "$config" "$name") |"
done
if ((${#notes[@]})); then
  echo
  for n in "${notes[@]}"; do echo "- $n"; done
fi
