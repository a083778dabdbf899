//! Exit codes, Docker's way: the container's own code when it ran, and three reserved codes
//! for when it did not.

/// Palisade itself failed: a bad flag, an unknown image, a runtime failure that is not about
/// the command.
pub const ENGINE_FAILURE: i32 = 125;
/// The command was found but could not be invoked (permission denied, not executable).
pub const CANNOT_INVOKE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

/// The exit code for a container that could not be started, from the runtime's error message:
/// the runtime says `exec: "x": no such file or directory`, `... executable file not found in
/// $PATH` or `... permission denied`, in runc's words.
pub fn for_start_error(message: &str) -> i32 {
    let about_exec = message.contains("exec:") || message.contains("exec ");
    if about_exec
        && (message.contains("no such file or directory")
            || message.contains("executable file not found"))
    {
        NOT_FOUND
    } else if about_exec && message.contains("permission denied") {
        CANNOT_INVOKE
    } else {
        ENGINE_FAILURE
    }
}

/// The exit code for a process that ended with `status` (128+n for signal n).
pub fn for_status(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => ENGINE_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_messages_map_to_dockers_codes() {
        assert_eq!(
            for_start_error(r#"exec: "nope": executable file not found in $PATH"#),
            NOT_FOUND
        );
        assert_eq!(
            for_start_error(r#"container init failed: exec: "/x": no such file or directory"#),
            NOT_FOUND
        );
        assert_eq!(
            for_start_error(r#"exec: "/etc/passwd": permission denied"#),
            CANNOT_INVOKE
        );
        assert_eq!(
            for_start_error("mount /data: no such file or directory"),
            ENGINE_FAILURE
        );
        assert_eq!(for_start_error("cgroup: permission denied"), ENGINE_FAILURE);
    }
}
