//! `ostree`: a drop-in, pure-Rust replacement for the ostree 2022.7 command line.
//!
//! * [`opts`]: GOption-compatible option parsing and help rendering, [`opts::Invocation`];
//! * [`commands`]: the command tree, dispatch and the texts ostree prints around it;
//! * [`progress`]: terminal progress bars;
//! * [`plugins`]: links the plugin crates;
//! * [`builtins`]: the command implementations.

mod builtins;
// The framework is an API for `builtins`: parts of it wait for their first handler.
#[allow(dead_code)]
mod commands;
#[allow(dead_code)]
mod opts;
mod plugins;
#[allow(dead_code)]
mod progress;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use commands::Outcome;
use opts::{Exit, Invocation, eprint_text};

fn main() {
    tune_malloc();
    restore_sigpipe();
    raise_nofile_limit();
    let raw: Vec<OsString> = std::env::args_os().collect();
    let argv: Vec<String> = raw
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();

    if let Some(ext) = commands::lookup_external(&argv) {
        exec_external(&ext, &raw);
    }

    let code = match commands::dispatch(&argv) {
        Outcome::Exit(code) => code,
        Outcome::Error(e) => {
            print_error(&e);
            1
        }
        Outcome::Run(handler, inv) => run(handler, *inv),
    };
    exit(code);
}

/// The runtime's worker threads for a command: `None` for one per CPU (tokio's default).
///
/// `pull` gets one. Most of its work per fetched object is short and done where the object
/// arrives (a small object is inflated, hashed and written in place; larger ones go to the
/// blocking pool either way): with a worker per CPU, the workers kept waking and stealing
/// from each other for every object. Over loopback HTTP on two CPUs, one worker took 15%
/// less CPU and 6–10% less time (bench/pull.md). A pull from a local repository spreads its
/// reads over a multi-thread runtime of its own (`ostree_core::pull::Engine::run`); other
/// commands keep the default (checkout and export were slower with one worker).
fn worker_threads(command_path: &[&str]) -> Option<usize> {
    matches!(command_path, ["pull"]).then_some(1)
}

/// Runs a handler on a multi-thread runtime and turns its result into an exit status.
fn run(handler: commands::Handler, inv: Invocation) -> i32 {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads(inv.command_path()) {
        builder.worker_threads(n);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            print_error(&anyhow::Error::new(e).context("starting the async runtime"));
            return 1;
        }
    };
    let result = rt.block_on(handler(inv));
    // The runtime is not dropped: `exit` ends the process without waiting for stray tasks.
    std::mem::forget(rt);
    match result {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<Exit>() {
            Some(Exit(code)) => *code,
            None => {
                print_error(&e);
                1
            }
        },
    }
}

fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

/// `ot_get_red_start()` and friends: escape sequences when stdout is a terminal.
fn colors() -> (&'static str, &'static str, &'static str, &'static str) {
    if std::io::stdout().is_terminal() {
        ("\x1b[31m", "\x1b[1m", "\x1b[0m", "\x1b[22m")
    } else {
        ("", "", "", "")
    }
}

/// `ostree_main`'s error line: `error: <message>` (the causes joined with `: `).
fn print_error(e: &anyhow::Error) {
    let (red, bold, bold_end, red_end) = colors();
    eprint_text(&format!(
        "{red}{bold}error:{bold_end}{red_end} {}\n",
        error_text(e)
    ));
}

/// The error and its causes joined with `: `, like `{:#}`, except that a cause whose text the
/// message already carries (library errors include their source in their own message) is
/// not printed a second time.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// `ostree_command_exec_external`: replaces the process with the extension, passing the
/// whole command line (the verb included) with the extension as `argv[0]`.
fn exec_external(program: &str, raw: &[OsString]) -> ! {
    let err = std::process::Command::new(program)
        .arg0(program)
        .args(raw.iter().skip(1))
        .exec();
    let (red, bold, bold_end, red_end) = colors();
    eprint_text(&format!(
        "{red}{bold}error:{bold_end}{red_end}: Executing {program}: {}\n",
        commands::strerror(&err)
    ));
    exit(1)
}

/// Rust starts programs with `SIGPIPE` ignored, so writing to a closed pipe would fail (and
/// `print!` panic). Like the C ostree, die from `SIGPIPE` instead: the handler runs the
/// default action, and exec'd extensions get the default disposition back.
fn restore_sigpipe() {
    let _ = signal_hook::flag::register_conditional_default(
        signal_hook::consts::SIGPIPE,
        Arc::new(AtomicBool::new(true)),
    );
}

/// Raise the soft open-file limit to the hard limit (as systemd recommends for programs that
/// need many descriptors): the local backend keeps written objects open until they are synced.
/// glibc's allocator, tuned for a process whose blocking pool runs dozens of threads that each
/// hold an object or a network buffer for a moment: at most two arenas per core (glibc allows
/// eight per core, each keeping its own freed memory), and a fixed 1 MiB threshold above which
/// buffers are mapped and returned to the system on free (glibc raises the threshold after each
/// large free, after which multi-megabyte buffers stay in the arenas). On the pull benchmark
/// this takes the peak RSS from 52–80 MB to 41–53 MB. `MALLOC_ARENA_MAX` or
/// `MALLOC_MMAP_THRESHOLD_` in the environment win (glibc reads them itself).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let arenas = libc::c_int::try_from((2 * cores).clamp(4, 16)).unwrap_or(4);
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called first thing in
        // main, before any other thread exists, and takes no pointer.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: as above.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn raise_nofile_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let backend = ostree_core::Error::Backend {
            plugin: "s3",
            source: "connection refused".into(),
        };
        let e = anyhow::Error::new(backend).context("pushing to s3://bucket");
        assert_eq!(
            error_text(&e),
            "pushing to s3://bucket: s3: connection refused"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&plain), "outer: inner");
    }
}
