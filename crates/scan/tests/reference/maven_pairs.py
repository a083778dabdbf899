#!/usr/bin/python3
"""Emits Maven version pairs with Maven's own verdict (org.apache.maven.artifact.versioning.
ComparableVersion from Debian's libmaven3-core-java), for tests/version_differential.rs.

Usage: maven_pairs.py OUT. Versions: every version directory in /usr/share/maven-repo plus
random versions built from numbers, qualifiers and separators."""
import os
import random
import subprocess
import sys

JAR = os.environ.get("MAVEN_ARTIFACT_JAR", "/usr/share/java/maven-artifact-3.x.jar")
rng = random.Random(1700)
real = set()
for root, dirs, files in os.walk("/usr/share/maven-repo"):
    if any(f.endswith(".pom") for f in files):
        real.add(os.path.basename(root))
quals = ["alpha", "a", "beta", "b", "milestone", "m", "rc", "cr", "snapshot", "SNAPSHOT", "ga",
         "final", "Final", "release", "sp", "foo", "jre", "RELEASE", "M", "RC"]
synthetic = set()
for _ in range(3000):
    parts = []
    for i in range(rng.randint(1, 5)):
        if i and rng.random() < 0.3:
            parts.append(rng.choice([".", "-"]))
        elif i:
            parts.append(rng.choice([".", ".", "-", ""]))
        parts.append(rng.choice([str(rng.randint(0, 12)), str(rng.randint(0, 12)), "0", rng.choice(quals)]))
    synthetic.add("".join(parts))
versions = sorted(real | synthetic)
seq = []
for _ in range(4):
    s = versions[:]
    rng.shuffle(s)
    seq += s
seq += sorted(versions)
out = open(sys.argv[1], "w")
ops = {"<": -1, "==": 0, ">": 1}
for i in range(0, len(seq) - 1, 1500):
    chunk = seq[i:i + 1501]
    text = subprocess.run(["java", "-cp", JAR, "org.apache.maven.artifact.versioning.ComparableVersion", *chunk],
                          capture_output=True, text=True, check=True).stdout
    for line in text.splitlines():
        if line.startswith("   "):
            a, op, b = line.strip().split(" ")
            out.write(f"{a}\t{b}\t{ops[op]}\n")
