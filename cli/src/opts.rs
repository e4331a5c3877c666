//! A faithful emulation of GLib's `GOption` command-line parsing and `--help` rendering, as
//! ostree 2022.7 uses it (GLib 2.74 `glib/goption.c`).
//!
//! Why not clap: upstream's shell tests grep ostree's help texts and error messages, so the
//! column algorithm, the error wording and even GOption's quirks must match byte for byte.
//! The quirks kept on purpose:
//!
//! * `-sVAL` is *not* `-s VAL`: every character after `-` is a short option, and an option
//!   taking a value takes the *next* argument (`-s VAL`); a second value-taking option in the
//!   same group is `Error parsing option -x`.
//! * `--flag=anything` sets a flag (GOption ignores the value of a `NONE` option).
//! * Options may appear anywhere; `--` stops option parsing and is removed unless an argument
//!   after it starts with `-` (ostree then drops the first remaining `--`).
//! * A short option shared by two entries (`summary -v` is `--view` and `--verbose`) sets
//!   both; `--help` then shows the short name on the first entry only.
//! * `-h`, `-?`, `--help` and `--help-all` print help to stdout and exit 0, wherever they are.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ostree_core::progress::Progress;

/// Validates the value of a [`ArgKind::Callback`] option at parse time (GOption runs the
/// callback while parsing); `Err` is the whole error message.
pub type ValueCheck = fn(&str) -> Result<(), String>;

/// The `GOptionArg` kinds ostree uses.
#[derive(Debug, Clone, Copy)]
pub enum ArgKind {
    /// `G_OPTION_ARG_NONE`: a flag.
    None,
    /// `G_OPTION_ARG_STRING`: the last value wins.
    String,
    /// `G_OPTION_ARG_STRING_ARRAY`: repeatable.
    StringArray,
    /// `G_OPTION_ARG_INT`: a C `int`, parsed like `strtol(…, 0)` (`0x` hex, `0` octal).
    Int,
    /// `G_OPTION_ARG_FILENAME`: the last value wins.
    Filename,
    /// `G_OPTION_ARG_FILENAME_ARRAY`: repeatable.
    FilenameArray,
    /// `G_OPTION_ARG_CALLBACK` taking a value, validated by the function.
    Callback(ValueCheck),
}

impl ArgKind {
    /// GOption's `NO_ARG()`: the option takes no value.
    pub fn is_no_arg(self) -> bool {
        matches!(self, ArgKind::None)
    }
}

/// One `GOptionEntry`.
#[derive(Debug, Clone, Copy)]
pub struct OptEntry {
    /// Long name, without `--`.
    pub long: &'static str,
    /// Short name, without `-`.
    pub short: Option<char>,
    /// What the option takes.
    pub kind: ArgKind,
    /// Help text (`None` prints nothing after the column).
    pub description: Option<&'static str>,
    /// Placeholder printed as `--long=ARG`.
    pub arg_description: Option<&'static str>,
    /// `G_OPTION_FLAG_HIDDEN`: parsed but not listed in `--help`.
    pub hidden: bool,
}

impl OptEntry {
    /// An entry; `short == '\0'`, `description == ""` and `arg_description == ""` mean none
    /// (ostree has no entry whose texts are really empty).
    pub const fn new(
        long: &'static str,
        short: char,
        kind: ArgKind,
        description: &'static str,
        arg_description: &'static str,
    ) -> Self {
        OptEntry {
            long,
            short: if short == '\0' { None } else { Some(short) },
            kind,
            description: if description.is_empty() {
                None
            } else {
                Some(description)
            },
            arg_description: if arg_description.is_empty() {
                None
            } else {
                Some(arg_description)
            },
            hidden: false,
        }
    }

    /// The same entry with `G_OPTION_FLAG_HIDDEN`.
    pub const fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }
}

/// The result of parsing one command line: option occurrences and positionals.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// `(long name, value)` in command-line order; flags have no value.
    occurrences: Vec<(&'static str, Option<String>)>,
    /// Positionals with their index in the parsed argument list.
    positionals: Vec<(usize, String)>,
    /// Positionals only (kept in sync with `positionals`).
    plain: Vec<String>,
}

impl Args {
    /// Whether the option (by long name) was given at least once.
    pub fn flag(&self, long: &str) -> bool {
        self.occurrences.iter().any(|(l, _)| *l == long)
    }

    /// The last value given for the option.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.occurrences
            .iter()
            .rev()
            .find(|(l, v)| *l == long && v.is_some())
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value given for the option, in order (for `STRING_ARRAY` options).
    pub fn values(&self, long: &str) -> Vec<&str> {
        self.occurrences
            .iter()
            .filter(|(l, _)| *l == long)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// The last value of an `INT` option (validated while parsing).
    pub fn int(&self, long: &str) -> Option<i64> {
        self.value(long).and_then(|v| strtol(v).ok())
    }

    /// How many times the option was given.
    pub fn count(&self, long: &str) -> usize {
        self.occurrences.iter().filter(|(l, _)| *l == long).count()
    }

    /// The arguments left once options (and the first `--`) are removed.
    pub fn positionals(&self) -> &[String] {
        &self.plain
    }

    fn push(&mut self, long: &'static str, value: Option<String>) {
        self.occurrences.push((long, value));
    }

    /// Drops the positional that came from argument `index`, if it is one.
    pub(crate) fn remove_positional_at(&mut self, index: usize) {
        self.positionals.retain(|(i, _)| *i != index);
        self.plain = self.positionals.iter().map(|(_, s)| s.clone()).collect();
    }

    /// Removes the first `--` left among the positionals, as `ostree_option_context_parse`
    /// does after `g_option_context_parse`.
    pub(crate) fn drop_first_double_dash(&mut self) {
        if let Some(pos) = self.positionals.iter().position(|(_, s)| s == "--") {
            self.positionals.remove(pos);
            self.plain = self.positionals.iter().map(|(_, s)| s.clone()).collect();
        }
    }
}

/// What [`OptionContext::parse`] found.
#[derive(Debug)]
pub enum Parsed {
    /// `-h`/`--help`/`-?`/`--help-all` was seen: print [`OptionContext::help`] to stdout and
    /// exit 0.
    Help,
    /// The parsed options and positionals.
    Args(Args),
}

/// A `GOptionContext` with one main group (ostree never adds option groups).
#[derive(Debug, Clone)]
pub struct OptionContext {
    /// `g_get_prgname()` at help time: `ostree`, `ostree admin deploy`…
    pub prgname: String,
    /// Text after `[OPTION…]` (`g_option_context_new`'s argument).
    pub parameter_string: Option<String>,
    /// Paragraph after the usage line.
    pub summary: Option<String>,
    /// The main group's entries, in the order added.
    pub entries: Vec<OptEntry>,
}

impl OptionContext {
    /// `g_option_context_new(parameter_string)` with `prgname` as the program name.
    pub fn new(prgname: impl Into<String>, parameter_string: Option<&str>) -> Self {
        OptionContext {
            prgname: prgname.into(),
            parameter_string: parameter_string.map(str::to_owned),
            summary: None,
            entries: Vec::new(),
        }
    }

    /// `g_option_context_add_main_entries`.
    pub fn add_entries(&mut self, entries: &[OptEntry]) {
        self.entries.extend_from_slice(entries);
    }

    /// `g_option_context_get_help(context, TRUE, NULL)` (identical to the `FALSE` variant
    /// without groups).
    pub fn help(&self) -> String {
        let mut s = String::with_capacity(1024);
        s.push_str("Usage:\n  ");
        s.push_str(&self.prgname);
        // help_enabled is always TRUE in ostree.
        s.push_str(" [OPTION…]");
        if let Some(p) = &self.parameter_string {
            s.push(' ');
            s.push_str(p);
        }
        s.push_str("\n\n");
        if let Some(summary) = &self.summary {
            s.push_str(summary);
            s.push_str("\n\n");
        }

        // GOption drops a short name already used by an earlier entry.
        let mut seen: Vec<Option<char>> = Vec::new();
        let entries: Vec<OptEntry> = self
            .entries
            .iter()
            .map(|e| {
                let mut e = *e;
                if seen.contains(&e.short) {
                    e.short = None;
                } else {
                    seen.push(e.short);
                }
                e
            })
            .collect();

        let mut max_length = strwidth("-?, --help");
        for e in entries.iter().filter(|e| !e.hidden) {
            let mut len = strwidth(e.long);
            if e.short.is_some() {
                len += 4;
            }
            if !e.kind.is_no_arg()
                && let Some(a) = e.arg_description
            {
                len += 1 + strwidth(a);
            }
            max_length = max_length.max(len);
        }
        max_length += 4;

        let token = if entries.iter().any(|e| e.short == Some('h')) {
            '?'
        } else {
            'h'
        };
        s.push_str("Help Options:\n");
        s.push_str(&format!(
            "  -{token}, --{:<width$} {}\n",
            "help",
            "Show help options",
            width = max_length - 4
        ));
        s.push('\n');

        if entries.iter().any(|e| !e.hidden && !e.long.is_empty()) {
            s.push_str("Application Options:\n");
            for e in &entries {
                print_entry(&mut s, max_length, e);
            }
            s.push('\n');
        }
        s
    }

    /// `g_option_context_parse` over `args` (the arguments after the program name).
    /// `Err` is GOption's message (`Unknown option --foo`…).
    pub fn parse(&self, args: &[String]) -> Result<Parsed, String> {
        // Index 0 stands for argv[0], as in GOption.
        let argc = args.len() + 1;
        let argv = |i: usize| args[i - 1].as_str();
        let mut nulled = vec![false; argc];
        let mut out = Args::default();
        let has_h_entry = self.entries.iter().any(|e| e.short == Some('h'));
        let mut stop_parsing = false;
        let mut separator_pos = 0usize;

        let mut i = 1;
        while i < argc {
            let a = argv(i);
            let bytes = a.as_bytes();
            if bytes.first() == Some(&b'-') && bytes.len() > 1 && !stop_parsing {
                if bytes[1] == b'-' {
                    let arg = &a[2..];
                    if arg.is_empty() {
                        separator_pos = i;
                        stop_parsing = true;
                        i += 1;
                        continue;
                    }
                    if arg == "help" || arg == "help-all" {
                        return Ok(Parsed::Help);
                    }
                    let parsed =
                        self.parse_long(&mut i, arg, argc, &argv, &mut nulled, &mut out)?;
                    if !parsed {
                        return Err(format!("Unknown option {a}"));
                    }
                } else {
                    let mut new_i = i;
                    let mut parsed = false;
                    for c in a[1..].chars() {
                        if c == '?' || (c == 'h' && !has_h_entry) {
                            return Ok(Parsed::Help);
                        }
                        parsed =
                            self.parse_short(i, &mut new_i, c, argc, &argv, &mut nulled, &mut out)?;
                        if !parsed {
                            break;
                        }
                    }
                    if parsed {
                        nulled[i] = true;
                        i = new_i;
                    } else {
                        return Err(format!("Unknown option {a}"));
                    }
                }
            } else if bytes.first() == Some(&b'-') {
                // A remaining argument starting with '-' keeps the `--` separator.
                separator_pos = 0;
            }
            i += 1;
        }
        if separator_pos > 0 {
            nulled[separator_pos] = true;
        }
        for (idx, gone) in nulled.iter().enumerate().skip(1) {
            if !gone {
                out.positionals.push((idx - 1, argv(idx).to_owned()));
            }
        }
        out.plain = out.positionals.iter().map(|(_, s)| s.clone()).collect();
        Ok(Parsed::Args(out))
    }

    /// GOption's `parse_long_option` over the main group.
    fn parse_long<'a>(
        &self,
        idx: &mut usize,
        arg: &str,
        argc: usize,
        argv: &impl Fn(usize) -> &'a str,
        nulled: &mut [bool],
        out: &mut Args,
    ) -> Result<bool, String> {
        let mut parsed = false;
        for e in &self.entries {
            if *idx >= argc {
                return Ok(parsed);
            }
            if e.kind.is_no_arg() && arg == e.long {
                parse_arg(e, None, &format!("--{}", e.long), out)?;
                nulled[*idx] = true;
                return Ok(true);
            }
            let len = e.long.len();
            if arg.starts_with(e.long) && (arg.len() == len || arg.as_bytes()[len] == b'=') {
                nulled[*idx] = true;
                let option_name = format!("--{}", e.long);
                let value = if arg.len() > len {
                    arg[len + 1..].to_owned()
                } else if *idx < argc - 1 {
                    *idx += 1;
                    nulled[*idx] = true;
                    argv(*idx).to_owned()
                } else {
                    return Err(format!("Missing argument for {option_name}"));
                };
                parse_arg(e, Some(value), &option_name, out)?;
                parsed = true;
            }
        }
        Ok(parsed)
    }

    /// GOption's `parse_short_option` over the main group: every entry with that short name.
    #[allow(clippy::too_many_arguments)]
    fn parse_short<'a>(
        &self,
        idx: usize,
        new_idx: &mut usize,
        c: char,
        argc: usize,
        argv: &impl Fn(usize) -> &'a str,
        nulled: &mut [bool],
        out: &mut Args,
    ) -> Result<bool, String> {
        let mut parsed = false;
        for e in &self.entries {
            if e.short != Some(c) {
                continue;
            }
            let option_name = format!("-{c}");
            let value = if e.kind.is_no_arg() {
                None
            } else {
                if *new_idx > idx {
                    return Err(format!("Error parsing option {option_name}"));
                }
                if idx < argc - 1 {
                    nulled[idx + 1] = true;
                    *new_idx = idx + 1;
                    Some(argv(idx + 1).to_owned())
                } else {
                    return Err(format!("Missing argument for {option_name}"));
                }
            };
            parse_arg(e, value, &option_name, out)?;
            parsed = true;
        }
        Ok(parsed)
    }
}

/// GOption's `parse_arg`: validates and records one occurrence.
fn parse_arg(
    e: &OptEntry,
    value: Option<String>,
    option_name: &str,
    out: &mut Args,
) -> Result<(), String> {
    match e.kind {
        ArgKind::None => out.push(e.long, None),
        ArgKind::Int => {
            let v = value.unwrap_or_default();
            match strtol(&v) {
                Ok(n) if i32::try_from(n).is_ok() => {}
                Ok(_) | Err(StrtolError::Range) => {
                    return Err(format!(
                        "Integer value “{v}” for {option_name} out of range"
                    ));
                }
                Err(StrtolError::Invalid) => {
                    return Err(format!(
                        "Cannot parse integer value “{v}” for {option_name}"
                    ));
                }
            }
            out.push(e.long, Some(v));
        }
        ArgKind::Callback(check) => {
            let v = value.unwrap_or_default();
            check(&v)?;
            out.push(e.long, Some(v));
        }
        ArgKind::String | ArgKind::StringArray | ArgKind::Filename | ArgKind::FilenameArray => {
            out.push(e.long, Some(value.unwrap_or_default()))
        }
    }
    Ok(())
}

/// GOption's `print_entry`.
fn print_entry(s: &mut String, max_length: usize, e: &OptEntry) {
    if e.hidden || e.long.is_empty() {
        return;
    }
    let mut head = match e.short {
        Some(c) => format!("  -{c}, --{}", e.long),
        None => format!("  --{}", e.long),
    };
    if let Some(a) = e.arg_description {
        head.push('=');
        head.push_str(a);
    }
    // printf("%*s", n, "") with a negative n pads to |n|.
    let pad = (max_length as i64 + 4 - strwidth(&head) as i64).unsigned_abs() as usize;
    s.push_str(&head);
    s.extend(std::iter::repeat_n(' ', pad));
    s.push(' ');
    s.push_str(e.description.unwrap_or(""));
    s.push('\n');
}

/// `_g_utf8_strwidth` for the texts ostree uses (wide characters count 2).
fn strwidth(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let c = c as u32;
            // CJK and fullwidth ranges; everything in ostree's tables is narrow.
            if (0x1100..=0x115F).contains(&c)
                || (0x2E80..=0xA4CF).contains(&c)
                || (0xAC00..=0xD7A3).contains(&c)
                || (0xF900..=0xFAFF).contains(&c)
                || (0xFF00..=0xFF60).contains(&c)
                || (0xFFE0..=0xFFE6).contains(&c)
            {
                2
            } else {
                1
            }
        })
        .sum()
}

/// Why [`strtol`] failed.
#[derive(Debug, PartialEq, Eq)]
enum StrtolError {
    /// Not entirely a number.
    Invalid,
    /// Does not fit a C `long`.
    Range,
}

/// C `strtol(s, &end, 0)` requiring the whole string to be consumed (GOption's `parse_int`).
fn strtol(s: &str) -> Result<i64, StrtolError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(StrtolError::Invalid);
    }
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let radix: u32 = if i + 1 < b.len()
        && b[i] == b'0'
        && (b[i + 1] | 0x20) == b'x'
        && i + 2 < b.len()
        && b[i + 2].is_ascii_hexdigit()
    {
        i += 2;
        16
    } else if i < b.len() && b[i] == b'0' {
        8
    } else {
        10
    };
    let start = i;
    let mut acc: i128 = 0;
    let mut overflow = false;
    while i < b.len() {
        let Some(d) = (b[i] as char).to_digit(radix) else {
            break;
        };
        acc = acc * i128::from(radix) + i128::from(d);
        if acc > i128::from(i64::MAX) + 1 {
            overflow = true;
            acc = i128::from(i64::MAX) + 1;
        }
        i += 1;
    }
    if i == start || i != b.len() {
        return Err(StrtolError::Invalid);
    }
    let v = if neg { -acc } else { acc };
    if overflow || v > i128::from(i64::MAX) || v < i128::from(i64::MIN) {
        return Err(StrtolError::Range);
    }
    Ok(v as i64)
}

/// `ot_parse_boolean`, the check behind `--fsync=POLICY`.
pub fn check_boolean(value: &str) -> Result<(), String> {
    parse_boolean(value).map(|_| ())
}

/// `ot_parse_boolean`: `1`/`true`/`yes` or `0`/`false`/`no`/`none`, case-insensitively.
pub fn parse_boolean(value: &str) -> Result<bool, String> {
    let v = value.to_ascii_lowercase();
    match v.as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "none" => Ok(false),
        _ => Err(format!("Invalid boolean argument '{value}'")),
    }
}

/// The `OstreeAdminBuiltinFlags` of an `admin` subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdminFlags(pub u32);

impl AdminFlags {
    /// No flag.
    pub const NONE: AdminFlags = AdminFlags(0);
    /// Requires root when the sysroot is booted.
    pub const SUPERUSER: AdminFlags = AdminFlags(1);
    /// Does not take the sysroot lock (nor set up the mount namespace).
    pub const UNLOCKED: AdminFlags = AdminFlags(2);
    /// Does not use a sysroot at all.
    pub const NO_SYSROOT: AdminFlags = AdminFlags(4);
    /// Creates the sysroot object but does not load it.
    pub const NO_LOAD: AdminFlags = AdminFlags(8);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: AdminFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union.
    pub const fn with(self, other: AdminFlags) -> AdminFlags {
        AdminFlags(self.0 | other.0)
    }
}

/// Everything a command handler gets: parsed options, positionals, the resolved repository
/// and sysroot paths, and output helpers.
#[derive(Debug)]
pub struct Invocation {
    pub(crate) args: Args,
    pub(crate) command_path: Vec<&'static str>,
    pub(crate) context: OptionContext,
    pub(crate) repo: Option<String>,
    pub(crate) sysroot: Option<PathBuf>,
    pub(crate) verbose: bool,
    pub(crate) admin_flags: Option<AdminFlags>,
}

impl Invocation {
    /// The parsed command line.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// [`Args::flag`].
    pub fn flag(&self, long: &str) -> bool {
        self.args.flag(long)
    }

    /// [`Args::value`].
    pub fn value(&self, long: &str) -> Option<&str> {
        self.args.value(long)
    }

    /// [`Args::values`].
    pub fn values(&self, long: &str) -> Vec<&str> {
        self.args.values(long)
    }

    /// [`Args::int`].
    pub fn int(&self, long: &str) -> Option<i64> {
        self.args.int(long)
    }

    /// The arguments after the command words, options removed: C's `argv[1..]` (for
    /// `static-delta` subcommands, C's `argv[2..]`: the subcommand word is removed too).
    pub fn positionals(&self) -> &[String] {
        self.args.positionals()
    }

    /// The command words, e.g. `["admin", "deploy"]`.
    pub fn command_path(&self) -> &[&'static str] {
        &self.command_path
    }

    /// `g_get_prgname()`: `ostree admin deploy` (argv\[0\] followed by the command words).
    pub fn prgname(&self) -> &str {
        &self.context.prgname
    }

    /// The repository, resolved like `parse_repo_option`: `--repo`, else the current
    /// directory if it holds `objects/` and `config`, else `$OSTREE_REPO`, else
    /// `$OSTREE_SYSROOT/ostree/repo` (default `/ostree/repo`). A path is made absolute and
    /// lexically normalized (like `GFile`) and already checked to open (directory,
    /// `objects/`, `config`) unless the command is `NO_CHECK` (`init`) and `--repo` was
    /// given; a URL (`scheme://…`) is kept verbatim and not checked. `None` for commands
    /// without a repository, and for `remote add/delete --sysroot`.
    pub fn repo(&self) -> Option<&str> {
        self.repo.as_deref()
    }

    /// [`Invocation::repo`], or an error for commands without a repository.
    pub fn repo_path(&self) -> anyhow::Result<String> {
        self.repo.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no repository for this command",
                self.command_path.join(" ")
            )
        })
    }

    /// The `--sysroot` value (admin commands, `remote add/delete`), absolute.
    pub fn sysroot_arg(&self) -> Option<&Path> {
        self.sysroot.as_deref()
    }

    /// The sysroot to use: `--sysroot`, else `$OSTREE_SYSROOT`, else `/`.
    pub fn sysroot_path(&self) -> PathBuf {
        self.sysroot.clone().unwrap_or_else(default_sysroot)
    }

    /// The `OstreeAdminBuiltinFlags` of this `admin` subcommand (`None` outside admin).
    pub fn admin_flags(&self) -> Option<AdminFlags> {
        self.admin_flags
    }

    /// `-v`/`--verbose` was given.
    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// `g_debug`: prints `OT: msg` to stderr when verbose.
    pub fn debug(&self, msg: impl fmt::Display) {
        if self.verbose {
            eprint_text(&format!("OT: {msg}\n"));
        }
    }

    /// This command's `--help` text.
    pub fn help(&self) -> String {
        self.context.help()
    }

    /// `ot_util_usage_error`: prints the help and a blank line to stderr and returns the
    /// error to propagate (`return Err(inv.usage_error("REV must be specified"))`).
    pub fn usage_error(&self, message: impl Into<String>) -> anyhow::Error {
        eprint_text(&format!("{}\n", self.context.help()));
        anyhow::Error::msg(message.into())
    }

    /// A progress sink: an `indicatif` bar when stderr is a terminal, silent otherwise.
    pub fn progress(&self) -> Arc<dyn Progress> {
        crate::progress::progress()
    }
}

/// An error that makes `ostree` exit with this status without printing anything
/// (`return Err(Exit(77).into())`); print your own message first if you need one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub i32);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// `$OSTREE_SYSROOT`, else `/` (`_ostree_get_default_sysroot_path`).
pub fn default_sysroot() -> PathBuf {
    match std::env::var_os("OSTREE_SYSROOT") {
        Some(p) if !p.is_empty() => absolute(Path::new(&p)),
        _ => PathBuf::from("/"),
    }
}

/// `g_file_new_for_path`: absolute (relative to the current directory) and lexically
/// normalized (`.`, `..` and repeated slashes removed).
pub fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Whether GLib would print UTF-8 as is: the `LC_ALL`/`LC_CTYPE`/`LANG` locale is a UTF-8
/// one. Otherwise GLib converts to ASCII with `?` for every other character.
fn console_is_utf8() -> bool {
    for var in ["LC_ALL", "LC_CTYPE", "LANG"] {
        if let Some(v) = std::env::var_os(var)
            && !v.is_empty()
        {
            let v = v.to_string_lossy().to_ascii_lowercase();
            return v.contains("utf-8") || v.contains("utf8");
        }
    }
    false
}

/// Text as `g_print`/`g_printerr` would write it in the current locale.
pub fn console_text(s: &str) -> Cow<'_, str> {
    if s.is_ascii() || console_is_utf8() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .map(|c| if c.is_ascii() { c } else { '?' })
                .collect(),
        )
    }
}

/// `g_print`: writes `s` to stdout in one `write()` where possible.
pub fn print_text(s: &str) {
    let text = console_text(s);
    let mut out = std::io::stdout().lock();
    // Errors (a closed pipe) are ignored like g_print does.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// `g_printerr`: writes `s` to stderr.
pub fn eprint_text(s: &str) {
    let text = console_text(s);
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: ArgKind = ArgKind::None;
    const STRING: ArgKind = ArgKind::String;
    const INT: ArgKind = ArgKind::Int;

    fn ctx() -> OptionContext {
        let mut c = OptionContext::new("ostree commit", Some("[PATH]"));
        c.summary = Some("Commit a new revision".into());
        c.add_entries(&[
            OptEntry::new("repo", '\0', ArgKind::Filename, "Path to repo", "PATH"),
            OptEntry::new("subject", 's', STRING, "One line subject", "SUBJECT"),
            OptEntry::new("body", 'm', STRING, "Full description", "BODY"),
            OptEntry::new(
                "add-metadata-string",
                '\0',
                ArgKind::StringArray,
                "Add",
                "KEY=VALUE",
            ),
            OptEntry::new("owner-uid", '\0', INT, "Set file ownership user id", "UID"),
            OptEntry::new("editor", 'e', NONE, "Use an editor", ""),
            OptEntry::new("tree", '\0', ArgKind::StringArray, "Overlay", "dir=PATH"),
            OptEntry::new(
                "fsync",
                '\0',
                ArgKind::Callback(check_boolean),
                "fsync",
                "POLICY",
            ),
            OptEntry::new("secret", '\0', NONE, "Hidden", "").hidden(),
            OptEntry::new("verbose", 'v', NONE, "Print debug information", ""),
            OptEntry::new("view", 'v', NONE, "View", ""),
        ]);
        c
    }

    fn parse(args: &[&str]) -> Result<Args, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match ctx().parse(&args)? {
            Parsed::Args(a) => Ok(a),
            Parsed::Help => Err("HELP".into()),
        }
    }

    #[test]
    fn long_forms() {
        let a = parse(&["--subject=hi", "--body", "b", "pos", "--repo=r"]).unwrap();
        assert_eq!(a.value("subject"), Some("hi"));
        assert_eq!(a.value("body"), Some("b"));
        assert_eq!(a.value("repo"), Some("r"));
        assert_eq!(a.positionals(), ["pos"]);
        // A value that looks like an option is still a value.
        let a = parse(&["--subject", "--body"]).unwrap();
        assert_eq!(a.value("subject"), Some("--body"));
        assert!(!a.flag("body"));
    }

    #[test]
    fn short_forms_and_groups() {
        let a = parse(&["-s", "x", "-ev", "p"]).unwrap();
        assert_eq!(a.value("subject"), Some("x"));
        assert!(a.flag("editor"));
        // Shared short name sets both entries.
        assert!(a.flag("verbose") && a.flag("view"));
        // A group whose value-taking option takes the next argument.
        let a = parse(&["-es", "subj", "rest"]).unwrap();
        assert_eq!(a.value("subject"), Some("subj"));
        assert_eq!(a.positionals(), ["rest"]);
        // Two value-taking options in one group.
        assert_eq!(
            parse(&["-sm", "a", "b"]).unwrap_err(),
            "Error parsing option -m"
        );
        // -sVAL is characters, not a value.
        assert_eq!(parse(&["-sX", "v"]).unwrap_err(), "Unknown option -sX");
    }

    #[test]
    fn repeated_and_anywhere() {
        let a = parse(&[
            "a",
            "--tree=dir=x",
            "b",
            "--tree",
            "ref=y",
            "-s",
            "1",
            "-s",
            "2",
        ])
        .unwrap();
        assert_eq!(a.values("tree"), vec!["dir=x", "ref=y"]);
        assert_eq!(a.value("subject"), Some("2"));
        assert_eq!(a.positionals(), ["a", "b"]);
        assert_eq!(a.count("subject"), 2);
    }

    #[test]
    fn flag_with_value_is_a_flag() {
        let a = parse(&["--editor=whatever"]).unwrap();
        assert!(a.flag("editor"));
    }

    #[test]
    fn double_dash() {
        // Removed when nothing after it starts with '-'.
        let a = parse(&["a", "--", "b", "c"]).unwrap();
        assert_eq!(a.positionals(), ["a", "b", "c"]);
        // Kept otherwise, and options after it are positionals.
        let mut a = parse(&["a", "--", "b", "--subject"]).unwrap();
        assert_eq!(a.positionals(), ["a", "--", "b", "--subject"]);
        assert!(!a.flag("subject"));
        a.drop_first_double_dash();
        assert_eq!(a.positionals(), ["a", "b", "--subject"]);
        // Kept by GOption when something after it starts with '-'; ostree drops it.
        let a = parse(&["--", "-x", "y"]).unwrap();
        assert_eq!(a.positionals(), ["--", "-x", "y"]);
        let mut a = parse(&["a", "--", "b", "--", "c"]).unwrap();
        assert_eq!(a.positionals(), ["a", "--", "b", "--", "c"]);
        a.drop_first_double_dash();
        assert_eq!(a.positionals(), ["a", "b", "--", "c"]);
        // A lone '-' is positional.
        assert_eq!(parse(&["-"]).unwrap().positionals(), ["-"]);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(&["--foo"]).unwrap_err(), "Unknown option --foo");
        assert_eq!(parse(&["-x"]).unwrap_err(), "Unknown option -x");
        assert_eq!(
            parse(&["--subject"]).unwrap_err(),
            "Missing argument for --subject"
        );
        assert_eq!(parse(&["-s"]).unwrap_err(), "Missing argument for -s");
        assert_eq!(
            parse(&["--owner-uid=x"]).unwrap_err(),
            "Cannot parse integer value “x” for --owner-uid"
        );
        assert_eq!(
            parse(&["--owner-uid", "99999999999"]).unwrap_err(),
            "Integer value “99999999999” for --owner-uid out of range"
        );
        assert_eq!(
            parse(&["--fsync=maybe"]).unwrap_err(),
            "Invalid boolean argument 'maybe'"
        );
        assert_eq!(
            parse(&["--subjectx=1"]).unwrap_err(),
            "Unknown option --subjectx=1"
        );
    }

    #[test]
    fn ints() {
        assert_eq!(
            parse(&["--owner-uid=0x10"]).unwrap().int("owner-uid"),
            Some(16)
        );
        assert_eq!(
            parse(&["--owner-uid=010"]).unwrap().int("owner-uid"),
            Some(8)
        );
        assert_eq!(
            parse(&["--owner-uid= -5"]).unwrap().int("owner-uid"),
            Some(-5)
        );
        assert!(parse(&["--owner-uid=5 "]).is_err());
        assert!(parse(&["--owner-uid="]).is_err());
        assert!(parse(&["--owner-uid=0x"]).is_err());
        assert_eq!(strtol("-2147483648"), Ok(-2147483648));
        assert_eq!(strtol("99999999999999999999"), Err(StrtolError::Range));
    }

    #[test]
    fn help_requests() {
        for h in [
            &["-h"][..],
            &["--help"],
            &["x", "-vh"],
            &["-?"],
            &["--help-all"],
        ] {
            assert_eq!(parse(h).unwrap_err(), "HELP", "{h:?}");
        }
        // Help wins even after an error-free prefix, but not after an error.
        assert_eq!(
            parse(&["--foo", "--help"]).unwrap_err(),
            "Unknown option --foo"
        );
    }

    #[test]
    fn hidden_still_parses() {
        assert!(parse(&["--secret"]).unwrap().flag("secret"));
    }

    #[test]
    fn help_rendering() {
        let expected = "Usage:
  ostree commit [OPTION…] [PATH]

Commit a new revision

Help Options:
  -h, --help                          Show help options

Application Options:
  --repo=PATH                         Path to repo
  -s, --subject=SUBJECT               One line subject
  -m, --body=BODY                     Full description
  --add-metadata-string=KEY=VALUE     Add
  --owner-uid=UID                     Set file ownership user id
  -e, --editor                        Use an editor
  --tree=dir=PATH                     Overlay
  --fsync=POLICY                      fsync
  -v, --verbose                       Print debug information
  --view                              View

";
        assert_eq!(ctx().help(), expected);
    }

    #[test]
    fn help_with_h_entry_uses_question_mark() {
        let mut c = OptionContext::new("x", None);
        c.add_entries(&[OptEntry::new("hardlink", 'h', NONE, "Hardlink", "")]);
        assert!(c.help().contains("  -?, --help "));
        let args = vec!["-h".to_string()];
        assert!(matches!(c.parse(&args), Ok(Parsed::Args(a)) if a.flag("hardlink")));
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(
            absolute(Path::new("/a/./b/../c//d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(absolute(Path::new("/..")), PathBuf::from("/"));
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_boolean("YES"), Ok(true));
        assert_eq!(parse_boolean("none"), Ok(false));
        assert!(parse_boolean("").is_err());
    }
}
