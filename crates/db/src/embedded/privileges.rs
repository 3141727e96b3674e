//! PostgreSQL refuses to run as root. When we are root, the embedded cluster
//! runs as an unprivileged system user (`postgres` by default, or
//! `CROSSLOGIC_PG_USER`), which must be able to reach the data directory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Gid, Uid, User};

/// Who the PostgreSQL processes run as.
#[derive(Debug, Clone)]
pub struct RunAs {
    /// `Some` when we are root and must switch to this user for children.
    pub user: Option<(Uid, Gid, String)>,
}

impl RunAs {
    /// Decides the user: ourselves, or an unprivileged one when root.
    pub fn detect() -> Result<RunAs, String> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(RunAs { user: None });
        }
        let name = std::env::var("CROSSLOGIC_PG_USER").unwrap_or_else(|_| "postgres".to_owned());
        match User::from_name(&name) {
            Ok(Some(u)) if !u.uid.is_root() => Ok(RunAs {
                user: Some((u.uid, u.gid, name)),
            }),
            _ => Err(format!(
                "running as root, and PostgreSQL refuses to run as root: the embedded database runs as user {name:?}, \
                 which does not exist. Create it (useradd --system {name}), set CROSSLOGIC_PG_USER to another \
                 unprivileged user, or run crosslogic as a non-root user."
            )),
        }
    }

    /// Makes `path` (created by us) owned by the run-as user.
    pub fn chown(&self, path: &Path) -> Result<(), String> {
        if let Some((uid, gid, _)) = &self.user {
            nix::unistd::chown(path, Some(*uid), Some(*gid))
                .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Checks that the run-as user can traverse every ancestor of `dir`.
    pub fn check_reachable(&self, dir: &Path) -> Result<(), String> {
        let Some((uid, gid, name)) = &self.user else {
            return Ok(());
        };
        for ancestor in dir.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            let mode = meta.permissions().mode();
            let ok = if meta.uid() == uid.as_raw() {
                mode & 0o100 != 0
            } else if meta.gid() == gid.as_raw() {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            if !ok {
                return Err(format!(
                    "running as root, so the embedded PostgreSQL runs as user {name:?}, which cannot reach {} \
                     ({} is not searchable by it). Use a data directory it can reach \
                     (CROSSLOGIC_DATA_DIR=/var/lib/crosslogic), run as a non-root user, or set DATABASE_URL.",
                    dir.display(),
                    ancestor.display()
                ));
            }
        }
        Ok(())
    }

    /// Applies the user switch to a command.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        if let Some((uid, gid, _)) = &self.user {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
    }
}
