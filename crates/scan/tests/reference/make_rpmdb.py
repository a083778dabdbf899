#!/usr/bin/python3
"""Writes tests/fixtures/rootfs/rocky9/var/lib/rpm/rpmdb.sqlite: header blobs made by librpm
(python3-rpm's rpm.hdr().unload()) in rpm's sqlite schema, plus one corrupt blob that the
scanner must report without losing the others. Run it to regenerate the committed fixture."""
import os
import sqlite3
import sys

import rpm

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "../fixtures/rootfs/rocky9/var/lib/rpm/rpmdb.sqlite")
os.makedirs(os.path.dirname(out), exist_ok=True)
if os.path.exists(out):
    os.remove(out)
db = sqlite3.connect(out)
db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
packages = [
    ("openssl-libs", 1, "3.0.7", "24.el9", "openssl-3.0.7-24.el9.src.rpm"),
    ("bash", None, "5.1.8", "6.el9_1", "bash-5.1.8-6.el9_1.src.rpm"),
    ("gpg-pubkey", None, "350d275d", "6279464b", None),
]
for name, epoch, version, release, srpm in packages:
    h = rpm.hdr()
    h[rpm.RPMTAG_NAME] = name
    h[rpm.RPMTAG_VERSION] = version
    h[rpm.RPMTAG_RELEASE] = release
    h[rpm.RPMTAG_ARCH] = "x86_64"
    if epoch is not None:
        h[rpm.RPMTAG_EPOCH] = epoch
    if srpm:
        h[rpm.RPMTAG_SOURCERPM] = srpm
    db.execute("INSERT INTO Packages (blob) VALUES (?)", (h.unload(),))
db.execute("INSERT INTO Packages (blob) VALUES (?)", (b"\x00\x00\x00\x09garbage",))
db.commit()
db.close()
