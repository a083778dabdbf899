#!/usr/bin/python3
"""Emits version pairs with the reference implementation's verdict, for the Rust
differential test (crates/scan/tests/version_differential.rs).

Usage: version_pairs.py SCHEME OUT [EXTRA_VERSION_FILES...]
  SCHEME  dpkg | rpm | pep440
  OUT     file to write: one "a<TAB>b<TAB>result" line per pair, result one of -1 0 1
          (or "invalid" for a version the reference rejects; pep440 only)

References: dpkg -> python3-apt's apt_pkg.version_compare, with a subset cross-checked by
`dpkg --compare-versions` (the pair line gets a 4th column "dpkg" when it was); rpm ->
python3-rpm's rpm.labelCompare; pep440 -> python3-packaging's Version ordering.
"""
import glob
import os
import random
import re
import subprocess
import sys

rng = random.Random(440)


def debian_versions():
    out = set()
    targets = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(FILENAME)", "Identifier: Packages"],
        capture_output=True, text=True, check=True).stdout.split()
    for path in targets:
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", path],
                              capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            if line.startswith("Version: "):
                out.add(line[9:].strip())
            elif line.startswith("Source: ") and "(" in line:
                out.add(line.split("(", 1)[1].rstrip(")").strip())
    return out


def pairs_from(versions, random_pairs):
    vs = sorted(versions)
    pairs = list(zip(vs, vs[1:]))  # neighbours in text order: the subtle cases
    for _ in range(random_pairs):
        pairs.append((rng.choice(vs), rng.choice(vs)))
    return pairs


def dpkg(out, extra):
    import apt_pkg
    apt_pkg.init_system()
    versions = debian_versions() | extra
    versions |= {"1.0a", "1.0a0", "1.0", "1.0-0", "1.0~", "1.0~~", "1.0+", "0:1.0", "1.0.", "1.0a.0"}
    pairs = pairs_from(versions, 40000)
    pairs += [("1.0a", "1.0a0"), ("1.0a0", "1.0a"), ("1.0", "1.0-0"), ("1:1.0", "1.0")]
    checked = set(rng.sample(range(len(pairs)), min(3000, len(pairs))))
    for i, (a, b) in enumerate(pairs):
        r = apt_pkg.version_compare(a, b)
        r = (r > 0) - (r < 0)
        tag = ""
        if i in checked or i >= len(pairs) - 4:
            ok = lambda op: subprocess.run(["dpkg", "--compare-versions", a, op, b],
                                           stderr=subprocess.DEVNULL).returncode == 0
            d = -1 if ok("lt") else (0 if ok("eq") else 1)
            if d != r:
                sys.exit(f"apt_pkg and dpkg disagree on {a} vs {b}")
            tag = "\tdpkg"
        out.write(f"{a}\t{b}\t{r}{tag}\n")


def rpm_(out, extra):
    import rpm
    alphabet = "0123456789" * 3 + "abcxyz" + "..__++~~^^"
    synthetic = set()
    for _ in range(4000):
        n = rng.randint(1, 9)
        s = "".join(rng.choice(alphabet) for _ in range(n))
        synthetic.add(s)
    # Realistic strings: Debian upstream versions with their '-' and ':' removed.
    real = {v.split(":")[-1].replace("-", ".") for v in list(debian_versions())[:20000]}
    vs = sorted(synthetic | real)
    pairs = pairs_from(vs, 30000)
    for a, b in pairs:
        ea, eb = rng.choice(["", "", "", "1"]), rng.choice(["", "", "", "1"])
        ra, rb = rng.choice(["1", "2", "1.el9", "1~rc"]), rng.choice(["1", "2", "1.el9", "1~rc"])
        r = rpm.labelCompare((ea or None, a, ra), (eb or None, b, rb))
        la = (ea + ":" if ea else "") + a + "-" + ra
        lb = (eb + ":" if eb else "") + b + "-" + rb
        out.write(f"{la}\t{lb}\t{r}\n")


def pypi_versions(extra):
    import yaml
    import json
    out = set(extra)
    root = os.environ.get("PALISADE_OSV_DATA", "/work/shared/data/osv")
    files = glob.glob(os.path.join(root, "pypi", "**", "*.yaml"), recursive=True)
    files += glob.glob(os.path.join(root, "pypi", "**", "*.json"), recursive=True)
    for f in files:
        try:
            with open(f) as fh:
                doc = yaml.safe_load(fh) if f.endswith(".yaml") else json.load(fh)
        except Exception:
            continue
        for aff in doc.get("affected", []) or []:
            for v in aff.get("versions", []) or []:
                out.add(str(v))
            for rg in aff.get("ranges", []) or []:
                for ev in rg.get("events", []) or []:
                    for v in ev.values():
                        out.add(str(v))
    return out


def pep440(out, extra):
    from packaging.version import Version, InvalidVersion
    versions = pypi_versions(extra)
    versions |= {"1.0.dev456", "1.0a1", "1.0.post1", "1.0-1", "1!1.0", "1.0+abc.5", "1.0+5",
                 "v1.0", "1.0RC1", "1.0.0", "1.0c1", "1.0-r1", "1.0a.1", "1.0.", " 1.0 ",
                 "1.0.post", "1.0a", "1.0-dev", "1.0+", "1.0+a..b", "0"}
    valid = {}
    for v in versions:
        try:
            valid[v] = Version(v)
        except InvalidVersion:
            out.write(f"{v}\t{v}\tinvalid\n")
    for a, b in pairs_from(valid.keys(), 40000):
        va, vb = valid[a], valid[b]
        r = (va > vb) - (va < vb)
        out.write(f"{a}\t{b}\t{r}\n")


def main():
    scheme, path = sys.argv[1], sys.argv[2]
    extra = set()
    for f in sys.argv[3:]:
        with open(f) as fh:
            extra |= {line.strip() for line in fh if line.strip()}
    with open(path, "w") as out:
        {"dpkg": dpkg, "rpm": rpm_, "pep440": pep440}[scheme](out, extra)


if __name__ == "__main__":
    main()
