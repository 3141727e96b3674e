//! Checking the SkyPilot installation `crosslogic skypilot setup-state`
//! configures, and running the seed's next step for the user: SkyPilot
//! opens a PostgreSQL state database through SQLAlchemy's psycopg dialect,
//! so without the `psycopg` package in SkyPilot's own Python its API server
//! exits with `ModuleNotFoundError: No module named 'psycopg'`. With it,
//! `sky status` creates SkyPilot's tables (`clusters`, `cluster_history`,
//! `cluster_yaml`, `spot`, `services`, … — not the seed's
//! `cluster_status`/`task_history`), which are then listed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::state::SetupError;

/// `sky` on `PATH`, if any.
pub fn find_sky() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("sky"))
        .find(|p| p.is_file())
}

/// The Python that runs a `sky` entry point (its `#!` line; `env python3`
/// forms resolved by name).
pub fn interpreter(sky: &Path) -> Option<String> {
    let text = std::fs::read(sky).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?.trim();
    let mut parts = line.split_whitespace();
    let prog = parts.next()?;
    if prog.ends_with("/env") {
        parts.find(|p| !p.starts_with('-')).map(str::to_owned)
    } else {
        Some(prog.to_owned())
    }
}

/// Fails, saying exactly what to install, when SkyPilot's Python cannot
/// load the PostgreSQL driver.
pub async fn check_driver(sky: &Path) -> Result<String, SetupError> {
    let python = interpreter(sky).ok_or_else(|| {
        SetupError::new(format!(
            "{} is not a SkyPilot entry point this tool can read (no #! line); pass --sky with the `sky` of your SkyPilot installation",
            sky.display()
        ))
    })?;
    let out = tokio::process::Command::new(&python)
        .args(["-c", "import psycopg"])
        .output()
        .await
        .map_err(|e| SetupError::new(format!("cannot run SkyPilot's Python {python}: {e}")))?;
    if !out.status.success() {
        return Err(SetupError::new(format!(
            "SkyPilot at {} cannot use a PostgreSQL state database: its Python ({python}) lacks the psycopg driver \
             (its API server would exit with \"No module named 'psycopg'\"). Install it with:\n    {python} -m pip install 'psycopg[binary]'\n\
             then run this command again",
            sky.display()
        )));
    }
    Ok(python)
}

/// Runs `sky status` against `url` (the seed's verification, which makes
/// SkyPilot create its tables). SkyPilot starts its local API server for
/// this user if none runs.
pub async fn sky_status(sky: &Path, url: &str, timeout: Duration) -> Result<(), SetupError> {
    let child = tokio::process::Command::new(sky)
        .arg("status")
        .env("SKYPILOT_DB_CONNECTION_URI", url)
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(timeout, child)
        .await
        .map_err(|_| SetupError::new(format!("`sky status` did not finish within {timeout:?}")))?
        .map_err(|e| SetupError::new(format!("cannot run {}: {e}", sky.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(8).collect();
    Err(SetupError::new(format!(
        "`sky status` failed:\n    {}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n    ")
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_interpreter_comes_from_the_entry_points_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sky");
        std::fs::write(&p, "#!/opt/sky/bin/python3\nimport sky\n").unwrap();
        assert_eq!(interpreter(&p).as_deref(), Some("/opt/sky/bin/python3"));
        std::fs::write(&p, "#!/usr/bin/env -S python3 -u\n").unwrap();
        assert_eq!(interpreter(&p).as_deref(), Some("python3"));
        std::fs::write(&p, "binary").unwrap();
        assert_eq!(interpreter(&p), None);
    }
}
