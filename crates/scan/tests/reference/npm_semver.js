#!/usr/bin/env node
// Emits version pairs with node-semver's verdict, for tests/version_differential.rs.
// Usage: npm_semver.js VERSIONS_FILE OUT   (node-semver: npm's bundled copy, or NODE_SEMVER)
"use strict";
const fs = require("fs");
const semver = require(process.env.NODE_SEMVER || "/usr/lib/node_modules/npm/node_modules/semver");
const [file, out] = process.argv.slice(2);
const versions = [...new Set(fs.readFileSync(file, "utf8").split("\n").filter((v) => v.length))];
versions.push("1.0.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0", "v1.2.3", "01.2.3", "1.2.3-01", "1.2", "1.2.3+build.7");
let seed = 440;
const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const lines = [];
const valid = [];
for (const v of new Set(versions)) {
  if (semver.valid(v) === null) lines.push(`${v}\t${v}\tinvalid`); else valid.push(v);
}
valid.sort();
const pairs = [];
for (let i = 0; i + 1 < valid.length; i++) pairs.push([valid[i], valid[i + 1]]);
for (let i = 0; i < 30000; i++) pairs.push([valid[rand(valid.length)], valid[rand(valid.length)]]);
for (const [a, b] of pairs) lines.push(`${a}\t${b}\t${semver.compare(a, b)}`);
fs.writeFileSync(out, lines.join("\n") + "\n");
