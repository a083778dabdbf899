//! Thin wrappers over the `bpf(2)` system call, limited to what the device cgroup needs.
//!
//! cgroup v2 has no `devices.allow` file: the device allow-list is an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the cgroup directory. This module loads such a
//! program from instructions built elsewhere (`palisade-cgroups` owns the compiler), attaches and
//! detaches it, and lists what is attached. Nothing here decides policy.
//!
//! The kernel ABI is `union bpf_attr`; each command reads only its own leading fields, and a
//! caller may pass a shorter structure than the kernel knows as long as the kernel's extra fields
//! would be zero. Each `*Attr` structure below is the prefix of the union that its command reads,
//! laid out exactly as in `<linux/bpf.h>` (offsets are checked in the tests).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `BPF_PROG_LOAD`.
const BPF_PROG_LOAD: libc::c_long = 5;
/// `BPF_PROG_ATTACH`.
const BPF_PROG_ATTACH: libc::c_long = 8;
/// `BPF_PROG_DETACH`.
const BPF_PROG_DETACH: libc::c_long = 9;
/// `BPF_PROG_GET_FD_BY_ID`.
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
/// `BPF_OBJ_GET_INFO_BY_FD`.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
/// `BPF_PROG_QUERY`.
const BPF_PROG_QUERY: libc::c_long = 16;

/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE`, the attach point of device programs on a cgroup.
const BPF_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: several programs may be attached to one cgroup; all must allow.
pub const ATTACH_ALLOW_MULTI: u32 = 1 << 1;

/// `BPF_OBJ_NAME_LEN`: a program name's buffer, including the terminating NUL.
pub const PROGRAM_NAME_CAPACITY: usize = 16;

/// Size of the verifier log buffer requested when a load fails.
const VERIFIER_LOG_SIZE: usize = 256 * 1024;

/// How many attached program ids a query asks for first.
const QUERY_INITIAL_CAPACITY: usize = 64;

/// One eBPF instruction (`struct bpf_insn`), eight bytes in the kernel's layout.
///
/// `registers` packs the destination register in the low nibble and the source register in the
/// high nibble, as the kernel's bitfields do on little-endian machines.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Opcode: class, size or operation, source mode.
    pub code: u8,
    /// `dst_reg` (low nibble) and `src_reg` (high nibble).
    pub registers: u8,
    /// Signed offset: memory offset for loads, instruction delta for jumps.
    pub offset: i16,
    /// Signed immediate operand.
    pub immediate: i32,
}

impl Instruction {
    /// Builds an instruction from its fields. Registers are 0..=10; higher bits are dropped.
    pub const fn new(code: u8, destination: u8, source: u8, offset: i16, immediate: i32) -> Self {
        Self {
            code,
            registers: (destination & 0x0f) | ((source & 0x0f) << 4),
            offset,
            immediate,
        }
    }

    /// The destination register number.
    pub const fn destination(&self) -> u8 {
        self.registers & 0x0f
    }

    /// The source register number.
    pub const fn source(&self) -> u8 {
        self.registers >> 4
    }
}

/// What the kernel reports about a loaded program (a prefix of `struct bpf_prog_info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramInfo {
    /// The kernel's id of the program, stable while it is loaded.
    pub id: u32,
    /// `enum bpf_prog_type`.
    pub program_type: u32,
    /// The name given at load time (at most 15 bytes).
    pub name: String,
}

/// Errors from the `bpf(2)` wrappers.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The program name is too long or holds characters the kernel refuses.
    #[error("invalid eBPF program name {name:?}: at most 15 ASCII letters, digits, '_' or '.'")]
    InvalidName {
        /// The name that was given.
        name: String,
    },
    /// The program is empty or longer than the kernel can take.
    #[error("invalid eBPF program length {length}")]
    InvalidLength {
        /// Number of instructions.
        length: usize,
    },
    /// The verifier or the loader refused the program.
    #[error("failed to load eBPF program {name:?}; verifier log: {log:?}")]
    Load {
        /// The program name.
        name: String,
        /// The verifier's log (empty when the kernel gave none).
        log: String,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// Attaching a program to a cgroup failed.
    #[error("failed to attach eBPF program to a cgroup")]
    Attach {
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// Detaching a program from a cgroup failed.
    #[error("failed to detach eBPF program from a cgroup")]
    Detach {
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// Listing the programs attached to a cgroup failed.
    #[error("failed to query eBPF programs attached to a cgroup")]
    Query {
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// Opening a program by id failed (it may have been unloaded meanwhile: `ENOENT`).
    #[error("failed to open eBPF program {id}")]
    OpenById {
        /// The program id.
        id: u32,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// Reading a program's information failed.
    #[error("failed to read eBPF program information")]
    Info {
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
}

/// `union bpf_attr` as read by `BPF_PROG_LOAD` (through `expected_attach_type`).
#[repr(C)]
#[derive(Debug, Default)]
struct ProgramLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; PROGRAM_NAME_CAPACITY],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` as read by `BPF_PROG_ATTACH` and `BPF_PROG_DETACH`.
#[repr(C)]
#[derive(Debug, Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `union bpf_attr` as read by `BPF_PROG_QUERY`.
#[repr(C)]
#[derive(Debug, Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _padding: u32,
}

/// `union bpf_attr` as read by `BPF_PROG_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Debug, Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr` as read by `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Debug, Default)]
struct InfoByFdAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The prefix of `struct bpf_prog_info` up to and including `name`.
#[repr(C)]
#[derive(Debug, Default)]
struct ProgramInfoRaw {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; PROGRAM_NAME_CAPACITY],
}

/// Calls `bpf(command, attr, size_of::<A>())` and returns the non-negative result.
///
/// The `bpf(2)` contract for the commands used here is that the kernel reads (and for some,
/// writes) at most `size_of::<A>()` bytes at `attr`, and that any pointer stored inside `attr`
/// refers to memory the caller keeps valid for the duration of the call.
fn bpf<A>(command: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    let size = std::mem::size_of::<A>();
    // SAFETY: `attr` is an exclusive reference to a live `#[repr(C)]` value of `size` bytes, so
    // the kernel may read and write exactly that range. Every caller stores in `attr` only
    // pointers into buffers it owns and keeps alive until this call returns. The call creates no
    // Rust-visible aliasing: the kernel writes only plain integer fields.
    let result = unsafe { libc::syscall(libc::SYS_bpf, command, attr as *mut A, size) };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Takes ownership of a descriptor the kernel has just returned from `bpf(2)`.
fn owned_fd(result: libc::c_long) -> io::Result<OwnedFd> {
    let fd = libc::c_int::try_from(result)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "descriptor out of range"))?;
    // SAFETY: `fd` is a new descriptor the kernel returned to this process for the command just
    // issued; nothing else in the process knows it, so the `OwnedFd` is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Checks a program name against the kernel's rules (`bpf_obj_name_cpy`) and NUL-pads it.
fn program_name(name: &str) -> Result<[u8; PROGRAM_NAME_CAPACITY], BpfError> {
    let valid = name.len() < PROGRAM_NAME_CAPACITY
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if !valid {
        return Err(BpfError::InvalidName {
            name: name.to_owned(),
        });
    }
    let mut buffer = [0u8; PROGRAM_NAME_CAPACITY];
    buffer[..name.len()].copy_from_slice(name.as_bytes());
    Ok(buffer)
}

/// Issues one `BPF_PROG_LOAD`, optionally with a verifier log buffer.
fn load_once(
    instructions: &[Instruction],
    license: &CStr,
    name: [u8; PROGRAM_NAME_CAPACITY],
    log: Option<&mut [u8]>,
) -> io::Result<OwnedFd> {
    let insn_cnt = u32::try_from(instructions.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "program too long"))?;
    let mut attr = ProgramLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: instructions.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..ProgramLoadAttr::default()
    };
    if let Some(log) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(log.len()).unwrap_or(u32::MAX);
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    // `instructions`, `license` and `log` outlive the call; the kernel reads the first two and
    // writes at most `log_size` bytes into the third.
    bpf(BPF_PROG_LOAD, &mut attr).and_then(owned_fd)
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program and returns its descriptor.
///
/// When the kernel refuses the program, the load is repeated with a verifier log so the error
/// says why. `name` is at most 15 characters of `[A-Za-z0-9_.]`; it lets a later query tell this
/// program apart from programs attached by someone else.
pub fn load_cgroup_device_program(
    instructions: &[Instruction],
    license: &CStr,
    name: &str,
) -> Result<OwnedFd, BpfError> {
    let name_buffer = program_name(name)?;
    // BPF_MAXINSNS is the limit for unprivileged loads; device programs stay far below it.
    if instructions.is_empty() || instructions.len() > 4096 {
        return Err(BpfError::InvalidLength {
            length: instructions.len(),
        });
    }
    match load_once(instructions, license, name_buffer, None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut log = vec![0u8; VERIFIER_LOG_SIZE];
            let source = match load_once(instructions, license, name_buffer, Some(&mut log)) {
                // The verbose load succeeded where the quiet one did not (a transient failure
                // such as ENOMEM or EAGAIN); the program is valid, so keep it.
                Ok(fd) => return Ok(fd),
                Err(_) => first,
            };
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(BpfError::Load {
                name: name.to_owned(),
                log: String::from_utf8_lossy(&log[..end]).trim_end().to_owned(),
                source,
            })
        }
    }
}

/// Attaches `program` to the cgroup directory `cgroup` at the device hook with `flags`
/// (normally [`ATTACH_ALLOW_MULTI`]).
pub fn attach_cgroup_device_program(
    cgroup: BorrowedFd<'_>,
    program: BorrowedFd<'_>,
    flags: u32,
) -> Result<(), BpfError> {
    let mut attr = AttachAttr {
        target_fd: fd_field(cgroup),
        attach_bpf_fd: fd_field(program),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map(drop)
        .map_err(|source| BpfError::Attach { source })
}

/// Detaches `program` from the device hook of the cgroup directory `cgroup`.
pub fn detach_cgroup_device_program(
    cgroup: BorrowedFd<'_>,
    program: BorrowedFd<'_>,
) -> Result<(), BpfError> {
    let mut attr = AttachAttr {
        target_fd: fd_field(cgroup),
        attach_bpf_fd: fd_field(program),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_DETACH, &mut attr)
        .map(drop)
        .map_err(|source| BpfError::Detach { source })
}

/// Lists the ids of the programs attached directly to the device hook of `cgroup`.
pub fn query_cgroup_device_programs(cgroup: BorrowedFd<'_>) -> Result<Vec<u32>, BpfError> {
    let mut capacity = QUERY_INITIAL_CAPACITY;
    loop {
        let mut ids = vec![0u32; capacity];
        let mut attr = QueryAttr {
            target_fd: fd_field(cgroup),
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            ..QueryAttr::default()
        };
        // `ids` outlives the call and holds `prog_cnt` slots for the kernel to fill.
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                let count = usize::try_from(attr.prog_cnt).unwrap_or(usize::MAX);
                ids.truncate(count.min(capacity));
                return Ok(ids);
            }
            // More programs than slots: the kernel wrote the real count; ask again.
            Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => {
                let needed = usize::try_from(attr.prog_cnt).unwrap_or(usize::MAX);
                if needed <= capacity || needed > 1 << 16 {
                    return Err(BpfError::Query { source: error });
                }
                capacity = needed;
            }
            Err(source) => return Err(BpfError::Query { source }),
        }
    }
}

/// Opens a loaded program by its id.
pub fn program_by_id(id: u32) -> Result<OwnedFd, BpfError> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..GetFdByIdAttr::default()
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)
        .and_then(owned_fd)
        .map_err(|source| BpfError::OpenById { id, source })
}

/// Reads the id, type and name of a loaded program.
pub fn program_info(program: BorrowedFd<'_>) -> Result<ProgramInfo, BpfError> {
    let mut raw = ProgramInfoRaw::default();
    let mut attr = InfoByFdAttr {
        bpf_fd: fd_field(program),
        info_len: u32::try_from(std::mem::size_of::<ProgramInfoRaw>()).unwrap_or(0),
        info: &mut raw as *mut ProgramInfoRaw as u64,
    };
    // `raw` outlives the call; the kernel writes at most `info_len` bytes into it. All its
    // length fields are zero, so the kernel copies out no instruction or map arrays.
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map_err(|source| BpfError::Info { source })?;
    let end = raw
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(raw.name.len());
    Ok(ProgramInfo {
        id: raw.id,
        program_type: raw.prog_type,
        name: String::from_utf8_lossy(&raw.name[..end]).into_owned(),
    })
}

/// A descriptor as the `u32` the kernel ABI stores (descriptors are never negative).
fn fd_field(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd().unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn attr_layouts_match_linux_bpf_h() {
        assert_eq!(size_of::<Instruction>(), 8);
        assert_eq!(offset_of!(ProgramLoadAttr, insns), 8);
        assert_eq!(offset_of!(ProgramLoadAttr, license), 16);
        assert_eq!(offset_of!(ProgramLoadAttr, log_level), 24);
        assert_eq!(offset_of!(ProgramLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgramLoadAttr, kern_version), 40);
        assert_eq!(offset_of!(ProgramLoadAttr, prog_flags), 44);
        assert_eq!(offset_of!(ProgramLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgramLoadAttr, prog_ifindex), 64);
        assert_eq!(offset_of!(ProgramLoadAttr, expected_attach_type), 68);
        assert_eq!(offset_of!(AttachAttr, attach_bpf_fd), 4);
        assert_eq!(offset_of!(AttachAttr, attach_type), 8);
        assert_eq!(offset_of!(AttachAttr, attach_flags), 12);
        assert_eq!(offset_of!(AttachAttr, replace_bpf_fd), 16);
        assert_eq!(offset_of!(QueryAttr, prog_ids), 16);
        assert_eq!(offset_of!(QueryAttr, prog_cnt), 24);
        assert_eq!(offset_of!(ProgramInfoRaw, name), 64);
    }

    #[test]
    fn instruction_packs_registers_like_the_kernel() {
        let insn = Instruction::new(0x61, 2, 1, 4, 0);
        assert_eq!(insn.registers, 0x12);
        assert_eq!(insn.destination(), 2);
        assert_eq!(insn.source(), 1);
    }

    #[test]
    fn program_names_are_checked() {
        assert!(program_name("palisade_device").is_ok());
        assert!(program_name("palisade_devices").is_err());
        assert!(program_name("bad name").is_err());
        assert!(program_name("../x").is_err());
    }

    #[test]
    fn empty_programs_are_refused_before_the_kernel() {
        let error = load_cgroup_device_program(&[], c"Apache", "x").unwrap_err();
        assert!(matches!(error, BpfError::InvalidLength { length: 0 }));
    }
}
