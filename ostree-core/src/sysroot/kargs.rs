//! Kernel command lines as ostree edits them (`OstreeKernelArgs`).
//!
//! A command line is an ordered list of arguments, each `KEY` or `KEY=VALUE`; a key may
//! appear several times (`console=ttyS0 console=tty0`). The operations keep ostree's exact
//! semantics, including its quirks: splitting is on single spaces (so doubled spaces keep
//! empty arguments and round-trip), and replacing a key that appears several times leaves one
//! argument at the place of the first.

use crate::{Error, Result};

/// One argument: its key and, after the first `=`, its value (`Some("")` for `KEY=`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Arg {
    key: String,
    value: Option<String>,
}

impl Arg {
    fn parse(arg: &str) -> Arg {
        match arg.split_once('=') {
            Some((k, v)) => Arg {
                key: k.to_string(),
                value: Some(v.to_string()),
            },
            None => Arg {
                key: arg.to_string(),
                value: None,
            },
        }
    }

    fn render(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}", self.key),
            None => self.key.clone(),
        }
    }
}

/// Arguments filtered out when importing `/proc/cmdline` (set by bootloaders, not by us).
const PROC_CMDLINE_FILTERED: &[&str] = &["BOOT_IMAGE=", "initrd="];

/// An ordered kernel command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelArgs {
    args: Vec<Arg>,
}

impl KernelArgs {
    /// No arguments.
    pub fn new() -> Self {
        KernelArgs::default()
    }

    /// Parse a command line (`ostree_kernel_args_from_string`); `None` gives no arguments.
    pub fn parse(options: Option<&str>) -> Self {
        let mut k = KernelArgs::new();
        if let Some(o) = options {
            k.parse_append(o);
        }
        k
    }

    /// Append every argument of `options`, split on single spaces.
    pub fn parse_append(&mut self, options: &str) {
        for a in options.split(' ') {
            self.append(a);
        }
    }

    /// Append one argument, keeping earlier ones with the same key.
    pub fn append(&mut self, arg: &str) {
        self.args.push(Arg::parse(arg));
    }

    /// Append each argument.
    pub fn append_all<S: AsRef<str>>(&mut self, args: &[S]) {
        for a in args {
            self.append(a.as_ref());
        }
    }

    /// Set an argument, replacing every earlier argument with its key; the new one takes the
    /// place of the first of them (`ostree_kernel_args_replace`).
    pub fn replace(&mut self, arg: &str) {
        let new = Arg::parse(arg);
        match self.args.iter().position(|a| a.key == new.key) {
            Some(first) => {
                self.args.retain(|a| a.key != new.key);
                self.args.insert(first, new);
            }
            None => self.args.push(new),
        }
    }

    /// [`KernelArgs::replace`] for each argument.
    pub fn replace_all<S: AsRef<str>>(&mut self, args: &[S]) {
        for a in args {
            self.replace(a.as_ref());
        }
    }

    /// Whether an argument with `arg`'s key exists.
    pub fn contains(&self, arg: &str) -> bool {
        let key = Arg::parse(arg).key;
        self.args.iter().any(|a| a.key == key)
    }

    /// Append `arg` unless its key is present (`ostree_kernel_args_append_if_missing`).
    pub fn append_if_missing(&mut self, arg: &str) {
        if !self.contains(arg) {
            self.append(arg);
        }
    }

    /// Delete an argument (`ostree_kernel_args_delete`): `KEY` alone deletes the only
    /// argument with that key; with several, `KEY=VALUE` picks one (and `KEY` picks the one
    /// without a value).
    pub fn delete(&mut self, arg: &str) -> Result<()> {
        let want = Arg::parse(arg);
        let idx: Vec<usize> = (0..self.args.len())
            .filter(|&i| self.args[i].key == want.key)
            .collect();
        if idx.is_empty() {
            return Err(Error::invalid(format!("No key '{}' found", want.key)));
        }
        if idx.len() == 1 {
            let e = &self.args[idx[0]];
            if want.value.is_some() && want.value != e.value {
                return Err(Error::invalid(format!(
                    "No karg '{}={}' found",
                    want.key,
                    want.value.as_deref().unwrap_or_default()
                )));
            }
            self.args.remove(idx[0]);
            return Ok(());
        }
        match idx.iter().find(|&&i| self.args[i].value == want.value) {
            Some(&i) => {
                self.args.remove(i);
                Ok(())
            }
            None if want.value.is_none() => Err(Error::invalid(format!(
                "Multiple values for key '{arg}' found"
            ))),
            None => Err(Error::invalid(format!("No karg '{arg}' found"))),
        }
    }

    /// Delete `arg` if its key is present.
    pub fn delete_if_present(&mut self, arg: &str) -> Result<()> {
        if self.contains(arg) {
            self.delete(arg)
        } else {
            Ok(())
        }
    }

    /// Remove every argument with this key.
    pub fn remove_key(&mut self, key: &str) {
        self.args.retain(|a| a.key != key);
    }

    /// The value of the last argument with this key (`None` if absent or without value).
    pub fn last_value(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .rev()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_deref())
    }

    /// Append the running kernel's command line (`/proc/cmdline`), without the arguments
    /// bootloaders add (`BOOT_IMAGE=`, `initrd=`).
    pub fn append_proc_cmdline(&mut self) -> Result<()> {
        let text = std::fs::read_to_string("/proc/cmdline")
            .map_err(|e| Error::io("Reading /proc/cmdline", e))?;
        for a in text.trim_end().split(' ') {
            if !PROC_CMDLINE_FILTERED.iter().any(|p| a.starts_with(p)) {
                self.append(a);
            }
        }
        Ok(())
    }

    /// The arguments as strings.
    pub fn to_strv(&self) -> Vec<String> {
        self.args.iter().map(Arg::render).collect()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }
}

impl std::fmt::Display for KernelArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_strv().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_first_position() {
        let mut k = KernelArgs::parse(Some("a=1 b c=2 a=3 d"));
        k.replace("a=9");
        assert_eq!(k.to_string(), "a=9 b c=2 d");
        k.replace("e");
        assert_eq!(k.to_string(), "a=9 b c=2 d e");
    }

    #[test]
    fn delete_rules() {
        let mut k = KernelArgs::parse(Some("quiet console=a console=b x=1"));
        assert!(k.delete("console").is_err());
        k.delete("console=b").unwrap();
        assert_eq!(k.to_string(), "quiet console=a x=1");
        assert!(k.delete("x=2").is_err());
        k.delete("x").unwrap();
        k.delete("quiet").unwrap();
        assert_eq!(k.to_string(), "console=a");
        assert!(k.delete("nope").is_err());
    }

    #[test]
    fn round_trips_odd_spacing() {
        let k = KernelArgs::parse(Some("a  b= c=d=e"));
        assert_eq!(k.to_string(), "a  b= c=d=e");
        assert_eq!(k.last_value("c"), Some("d=e"));
        assert_eq!(k.last_value("b"), Some(""));
    }

    #[test]
    fn append_if_missing_by_key() {
        let mut k = KernelArgs::parse(Some("root=x quiet"));
        k.append_if_missing("quiet");
        k.append_if_missing("root=y");
        k.append_if_missing("t=1");
        assert_eq!(k.to_string(), "root=x quiet t=1");
    }
}
