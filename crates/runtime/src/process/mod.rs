//! Creating the processes of a container.

pub(crate) mod channel;
pub(crate) mod console;
pub(crate) mod identity;
pub(crate) mod init;
pub(crate) mod launch;
pub(crate) mod limits;
