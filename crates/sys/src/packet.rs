//! Binding an `AF_PACKET` socket to one interface: `sockaddr_ll`, which neither `nix` (only
//! through an `unsafe` constructor) nor `rustix` builds. The network attack tests use raw
//! packet sockets from inside containers to forge frames and to sniff.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Binds the packet socket `socket` to the interface with index `ifindex`, receiving (and
/// sending) frames of EtherType `protocol` (host byte order; `0x0003` is ETH_P_ALL).
pub fn bind_packet_socket(socket: BorrowedFd<'_>, ifindex: i32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is a plain C struct of integers and a byte array, for which all
    // zeroes is a valid value.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol.to_be();
    address.sll_ifindex = ifindex;
    let length = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `address` is a live, initialised sockaddr_ll and `length` is its exact size;
    // bind only reads it. The descriptor is borrowed, so it stays open for the call.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            std::ptr::addr_of!(address).cast::<libc::sockaddr>(),
            length,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
