//! `--user` and the image's `User`: `name`, `uid`, `name:group` or `uid:gid`, resolved against
//! the image's own `/etc/passwd` and `/etc/group` (read by [`crate::rootfs::RootDir`], so a
//! hostile image cannot point them outside its rootfs).

/// Largest `/etc/passwd` or `/etc/group` read.
pub const MAX_ACCOUNT_FILE: u64 = 4 << 20;

/// A user that cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A name not in the image's `/etc/passwd`.
    #[error("unable to find user {name}: no matching entries in the image's /etc/passwd")]
    UnknownUser {
        /// The name.
        name: String,
    },
    /// A group name not in the image's `/etc/group`.
    #[error("unable to find group {name}: no matching entries in the image's /etc/group")]
    UnknownGroup {
        /// The name.
        name: String,
    },
    /// An empty user or group part.
    #[error("invalid user {value:?}: expected NAME, UID, NAME:GROUP or UID:GID")]
    Invalid {
        /// The value.
        value: String,
    },
}

/// Who the container's process runs as, in container ids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from `/etc/group` membership).
    pub additional_gids: Vec<u32>,
    /// The home directory from `/etc/passwd`, if the user is listed there.
    pub home: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn passwd_entries(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: (*fields.first()?).to_owned(),
                uid: fields.get(2)?.trim().parse().ok()?,
                gid: fields.get(3)?.trim().parse().ok()?,
                home: fields.get(5).map(|h| (*h).to_owned()).unwrap_or_default(),
            })
        })
        .collect()
}

fn group_entries(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(GroupEntry {
                name: (*fields.first()?).to_owned(),
                gid: fields.get(2)?.trim().parse().ok()?,
                members: fields
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `user` (empty means root) with the image's `passwd` and `group` files, Docker's
/// way: a numeric uid need not be listed (its group is then 0), a name must be.
pub fn resolve(
    user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, UserError> {
    let users = passwd.map(passwd_entries).unwrap_or_default();
    let groups = group.map(group_entries).unwrap_or_default();
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if user.is_empty() {
        return Ok(ResolvedUser {
            home: users.iter().find(|u| u.uid == 0).map(|u| u.home.clone()),
            ..ResolvedUser::default()
        });
    }
    if user_part.is_empty() || group_part == Some("") {
        return Err(UserError::Invalid {
            value: user.to_owned(),
        });
    }
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => users
            .iter()
            .find(|u| u.uid == uid)
            .cloned()
            .or(Some(PasswdEntry {
                name: String::new(),
                uid,
                gid: 0,
                home: String::new(),
            })),
        Err(_) => users.iter().find(|u| u.name == user_part).cloned(),
    }
    .ok_or_else(|| UserError::UnknownUser {
        name: user_part.to_owned(),
    })?;
    let gid = match group_part {
        None => entry.gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::UnknownGroup { name: g.to_owned() })?,
        },
    };
    let mut additional_gids: Vec<u32> = if entry.name.is_empty() {
        Vec::new()
    } else {
        groups
            .iter()
            .filter(|g| g.members.contains(&entry.name) && g.gid != gid)
            .map(|g| g.gid)
            .collect()
    };
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(ResolvedUser {
        uid: entry.uid,
        gid,
        additional_gids,
        home: (!entry.home.is_empty()).then_some(entry.home),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken\nwww:x:33:34:www:/var/www:/bin/false\nnobody:x:65534:65534::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww-data:x:34:\nadm:x:4:www,other\nstaff:x:50:www\n";

    #[test]
    fn names_and_numbers_resolve_like_docker() {
        let r = |u| resolve(u, Some(PASSWD), Some(GROUP));
        assert_eq!(r("").unwrap().uid, 0);
        assert_eq!(r("").unwrap().home.as_deref(), Some("/root"));
        let www = r("www").unwrap();
        assert_eq!((www.uid, www.gid), (33, 34));
        assert_eq!(www.additional_gids, vec![4, 50]);
        assert_eq!(www.home.as_deref(), Some("/var/www"));
        let numeric = r("1234").unwrap();
        assert_eq!((numeric.uid, numeric.gid), (1234, 0));
        assert_eq!(r("33").unwrap().gid, 34);
        assert_eq!(r("www:adm").unwrap().gid, 4);
        assert_eq!(r("1000:1000").unwrap().gid, 1000);
        assert!(matches!(r("ghost"), Err(UserError::UnknownUser { .. })));
        assert!(matches!(
            r("www:ghost"),
            Err(UserError::UnknownGroup { .. })
        ));
        assert!(matches!(r(":5"), Err(UserError::Invalid { .. })));
        assert!(matches!(r("5:"), Err(UserError::Invalid { .. })));
        assert_eq!(resolve("7", None, None).unwrap().uid, 7);
        assert!(resolve("root", None, None).is_err());
    }
}
