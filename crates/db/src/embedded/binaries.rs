//! Finding the local PostgreSQL installation's server binaries.

use std::path::{Path, PathBuf};

/// How to get PostgreSQL when it is missing; shown verbatim to the user.
pub const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, postgres) were not found.\n\
  Install them:   sudo apt-get install -y postgresql     (Debian/Ubuntu; then re-run)\n\
                  brew install postgresql@16             (macOS)\n\
  Or point CROSSLOGIC_PG_BIN at the directory holding initdb and postgres,\n\
  or use an existing server: DATABASE_URL=postgresql://user:password@host:5432/dbname";

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

/// The directory holding `initdb` and `postgres`: `explicit` if given, else
/// PATH, else the newest `/usr/lib/postgresql/*/bin` and other usual places.
pub fn find_server_bin_dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = explicit {
        return if has_server(dir) {
            Ok(dir.to_path_buf())
        } else {
            Err(format!(
                "CROSSLOGIC_PG_BIN={} does not contain initdb and postgres.\n{INSTALL_HINT}",
                dir.display()
            ))
        };
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            // A symlink on PATH (e.g. /usr/local/bin/initdb) points into the
            // real bin directory, where the other tools live too.
            if let Ok(real) = std::fs::canonicalize(dir.join("initdb")) {
                if let Some(parent) = real.parent() {
                    candidates.push(parent.to_path_buf());
                }
            }
            candidates.push(dir);
        }
    }
    candidates.extend(versioned_dirs("/usr/lib/postgresql", "bin"));
    candidates.extend(versioned_dirs("/usr/pgsql-", "bin"));
    for extra in [
        "/usr/local/pgsql/bin",
        "/opt/homebrew/bin",
        "/usr/local/opt/postgresql/bin",
    ] {
        candidates.push(PathBuf::from(extra));
    }
    candidates
        .into_iter()
        .find(|d| has_server(d))
        .ok_or_else(|| INSTALL_HINT.to_owned())
}

/// `/usr/lib/postgresql/{17,16,15,…}/bin`, newest first.
fn versioned_dirs(base: &str, leaf: &str) -> Vec<PathBuf> {
    let (parent, prefix) = match base.rsplit_once('/') {
        Some((p, "")) => (PathBuf::from(p), String::new()),
        Some((p, prefix)) => (PathBuf::from(if p.is_empty() { "/" } else { p }), prefix.to_owned()),
        None => return Vec::new(),
    };
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(&parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name.strip_prefix(&prefix)?.parse::<u32>().ok()?;
            Some((version, e.path().join(leaf)))
        })
        .collect();
    found.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    found.into_iter().map(|(_, p)| p).collect()
}

/// A client tool (`pg_dump`, `psql`): from the embedded server's bin
/// directory when there is one, else PATH, else the newest installed version.
pub fn find_client_tool(name: &str, preferred: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = preferred {
        if dir.join(name).is_file() {
            return Ok(dir.join(name));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(hit) = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()) {
            return Ok(hit);
        }
    }
    versioned_dirs("/usr/lib/postgresql", "bin")
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!("{name} was not found: install the PostgreSQL client (sudo apt-get install -y postgresql-client)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_directory_without_binaries_explains_how_to_install() {
        let dir = std::env::temp_dir();
        let err = find_server_bin_dir(Some(&dir)).unwrap_err();
        assert!(err.contains("apt-get install -y postgresql"), "{err}");
        assert!(err.contains("DATABASE_URL"), "{err}");
    }
}
