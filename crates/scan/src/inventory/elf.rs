//! Just enough ELF to find a named section: the header, the section header table and the
//! section name table, read through positioned reads so a binary on disk is never read whole.

/// Positioned reads over a file or a buffer.
pub(crate) trait ReadAt {
    /// Reads exactly `buf.len()` bytes at `offset`, or fails.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
    /// The total length.
    fn len(&self) -> u64;
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "past the end")
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
    fn len(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

/// Whether the bytes start like an ELF file.
pub(crate) fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// Largest section we read (build info and dependency lists are far smaller).
const MAX_SECTION: u64 = 16 << 20;

/// One section header.
struct Section {
    name: Vec<u8>,
    kind: u64,
    addr: u64,
    offset: u64,
    size: u64,
}

const SHT_NOBITS: u64 = 8;

fn read_range<R: ReadAt + ?Sized>(f: &R, off: u64, size: u64) -> std::io::Result<Vec<u8>> {
    if size > MAX_SECTION || off.checked_add(size).is_none_or(|end| end > f.len()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "section outside the file",
        ));
    }
    let mut v = vec![0u8; size as usize];
    f.read_exact_at(&mut v, off)?;
    Ok(v)
}

/// Reads the section header table and the section names.
fn section_table<R: ReadAt + ?Sized>(f: &R) -> std::io::Result<Vec<Section>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut ident = [0u8; 64];
    f.read_exact_at(&mut ident[..52], 0)?;
    if !is_elf(&ident) {
        return Err(bad("not ELF"));
    }
    let class64 = match ident[4] {
        1 => false,
        2 => true,
        _ => return Err(bad("bad ELF class")),
    };
    let le = match ident[5] {
        1 => true,
        2 => false,
        _ => return Err(bad("bad ELF byte order")),
    };
    if class64 {
        f.read_exact_at(&mut ident, 0)?;
    }
    let u16_at = |b: &[u8], o: usize| -> u64 {
        let a = [b[o], b[o + 1]];
        u64::from(if le {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        })
    };
    let u32_at = |b: &[u8], o: usize| -> u64 {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        u64::from(if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    let u64_at = |b: &[u8], o: usize| -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        if le {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        }
    };
    let (shoff, shentsize, shnum, shstrndx) = if class64 {
        (
            u64_at(&ident, 0x28),
            u16_at(&ident, 0x3a),
            u16_at(&ident, 0x3c),
            u16_at(&ident, 0x3e),
        )
    } else {
        (
            u32_at(&ident, 0x20),
            u16_at(&ident, 0x2e),
            u16_at(&ident, 0x30),
            u16_at(&ident, 0x32),
        )
    };
    let want = if class64 { 64 } else { 40 };
    if shnum == 0 || shentsize < want || shstrndx >= shnum {
        // Without section headers build information cannot be located; say so rather than
        // report the binary as having none.
        return Err(bad("no usable section header table"));
    }
    let table_len = shentsize
        .checked_mul(shnum)
        .ok_or_else(|| bad("section table overflow"))?;
    let table = read_range(f, shoff, table_len)?;
    // (name offset, type, address, file offset, size) of each section.
    let entry = |i: u64| -> (u64, u64, u64, u64, u64) {
        let b = &table[(i * shentsize) as usize..];
        if class64 {
            (
                u32_at(b, 0),
                u32_at(b, 4),
                u64_at(b, 0x10),
                u64_at(b, 0x18),
                u64_at(b, 0x20),
            )
        } else {
            (
                u32_at(b, 0),
                u32_at(b, 4),
                u32_at(b, 0x0c),
                u32_at(b, 0x10),
                u32_at(b, 0x14),
            )
        }
    };
    let (_, _, _, stroff, strsize) = entry(shstrndx);
    let strtab = read_range(f, stroff, strsize)?;
    Ok((0..shnum)
        .map(|i| {
            let (name_off, kind, addr, offset, size) = entry(i);
            let rest = strtab.get(name_off as usize..).unwrap_or_default();
            let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
            Section {
                name: rest[..end].to_vec(),
                kind,
                addr,
                offset,
                size,
            }
        })
        .collect())
}

/// Reads the named sections (each `None` when absent). Errors mean a malformed ELF file.
pub(crate) fn sections<R: ReadAt + ?Sized>(
    f: &R,
    names: &[&str],
) -> std::io::Result<Vec<Option<Vec<u8>>>> {
    let table = section_table(f)?;
    let mut out = vec![None; names.len()];
    for s in &table {
        if let Some(k) = names.iter().position(|n| n.as_bytes() == s.name) {
            out[k] = Some(read_range(f, s.offset, s.size)?);
        }
    }
    Ok(out)
}

/// Reads `len` bytes at virtual address `addr`, from the section that holds them.
pub(crate) fn read_virtual<R: ReadAt + ?Sized>(f: &R, addr: u64, len: u64) -> Option<Vec<u8>> {
    let table = section_table(f).ok()?;
    let s = table.iter().find(|s| {
        s.kind != SHT_NOBITS
            && s.addr != 0
            && addr >= s.addr
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= s.addr + s.size)
    })?;
    read_range(f, s.offset + (addr - s.addr), len).ok()
}
