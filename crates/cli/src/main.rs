//! `crosslogic`: the one binary of the platform.
//!
//! Invariant: argument parsing and wiring only; every behaviour lives in a
//! library crate.

mod cli;
mod commands;
mod output;

/// mimalloc instead of glibc's malloc: under load the gateway's profile
/// (`perf`, 64 connections) spent about a tenth of its CPU in glibc's
/// allocator, partly waiting on its arena locks between tokio's workers;
/// mimalloc's per-thread heaps avoid both.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            output::error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
