//! GLib key files (`config`, `.origin`, remotes in `remotes.d`): a small order- and
//! comment-preserving reader and writer compatible with `GKeyFile`.
//!
//! ```
//! use ostree_core::keyfile::KeyFile;
//! let mut kf = KeyFile::parse("[core]\nrepo_version=1\nmode=bare\n").unwrap();
//! assert_eq!(kf.get("core", "mode"), Some("bare"));
//! kf.set("core", "fsync", "false");
//! assert_eq!(kf.to_string(), "[core]\nrepo_version=1\nmode=bare\nfsync=false\n");
//! ```

use std::fmt;

use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
enum Line {
    /// A comment or blank line, kept verbatim.
    Comment(String),
    /// `key=value` (value raw, still escaped).
    Entry(String, String),
}

#[derive(Clone, Debug, PartialEq)]
struct Group {
    name: String,
    lines: Vec<Line>,
}

/// A parsed key file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyFile {
    /// Comments before the first group.
    head: Vec<String>,
    groups: Vec<Group>,
}

impl KeyFile {
    /// An empty key file.
    pub fn new() -> Self {
        KeyFile::default()
    }

    /// Parse key-file text. Malformed lines are an error naming the line.
    pub fn parse(text: &str) -> Result<Self> {
        let mut kf = KeyFile::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_start();
            if line.is_empty() || line.starts_with('#') {
                match kf.groups.last_mut() {
                    Some(g) => g.lines.push(Line::Comment(raw.to_string())),
                    None => kf.head.push(raw.to_string()),
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest.trim_end().strip_suffix(']').ok_or_else(|| {
                    Error::invalid(format!("Key file contains line “{raw}” which is not a key-value pair, group, or comment"))
                })?;
                if name.is_empty() || name.contains(['[', ']']) {
                    return Err(Error::invalid(format!("Invalid group name: {name}")));
                }
                if kf.groups.iter().any(|g| g.name == name) {
                    // GLib merges duplicate groups; keep appending to the existing one.
                    let idx = kf.groups.iter().position(|g| g.name == name).unwrap_or(0);
                    let g = kf.groups.remove(idx);
                    kf.groups.push(g);
                } else {
                    kf.groups.push(Group {
                        name: name.to_string(),
                        lines: Vec::new(),
                    });
                }
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(Error::invalid(format!(
                    "Key file contains line “{raw}” which is not a key-value pair, group, or comment (line {})",
                    i + 1
                )));
            };
            let k = k.trim_end();
            if k.is_empty() {
                return Err(Error::invalid(format!(
                    "Key file contains line “{raw}” with an empty key"
                )));
            }
            let Some(g) = kf.groups.last_mut() else {
                return Err(Error::invalid("Key file does not start with a group"));
            };
            let v = v.trim_start().to_string();
            // Later duplicates win, as in GLib.
            if let Some(Line::Entry(_, old)) = g
                .lines
                .iter_mut()
                .find(|l| matches!(l, Line::Entry(kk, _) if kk == k))
            {
                *old = v;
            } else {
                g.lines.push(Line::Entry(k.to_string(), v));
            }
        }
        Ok(kf)
    }

    fn group(&self, group: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == group)
    }

    /// Group names in file order.
    pub fn groups(&self) -> Vec<&str> {
        self.groups.iter().map(|g| g.name.as_str()).collect()
    }

    /// True if the group exists.
    pub fn has_group(&self, group: &str) -> bool {
        self.group(group).is_some()
    }

    /// Keys of a group in file order.
    pub fn keys(&self, group: &str) -> Vec<&str> {
        self.group(group)
            .map(|g| {
                g.lines
                    .iter()
                    .filter_map(|l| match l {
                        Line::Entry(k, _) => Some(k.as_str()),
                        Line::Comment(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The raw (still escaped) value of a key.
    pub fn get(&self, group: &str, key: &str) -> Option<&str> {
        self.group(group)?.lines.iter().find_map(|l| match l {
            Line::Entry(k, v) if k == key => Some(v.as_str()),
            _ => None,
        })
    }

    /// A string value with GLib escapes (`\s \n \t \r \\`) decoded.
    pub fn get_string(&self, group: &str, key: &str) -> Option<String> {
        self.get(group, key).map(unescape)
    }

    /// A boolean value (`true`/`false`, also `1`/`0`). Invalid text is an error naming the key.
    pub fn get_bool(&self, group: &str, key: &str) -> Result<Option<bool>> {
        match self.get(group, key) {
            None => Ok(None),
            Some(v) => match v.trim() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(Error::invalid(format!(
                    "Key file contains key “{key}” in group “{group}” which has a value that cannot be interpreted."
                ))),
            },
        }
    }

    /// A `;`-separated list.
    pub fn get_list(&self, group: &str, key: &str) -> Option<Vec<String>> {
        let v = self.get(group, key)?;
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut chars = v.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        if n == ';' {
                            cur.push(';');
                        } else {
                            cur.push('\\');
                            cur.push(n);
                        }
                    }
                }
                ';' => out.push(unescape(&std::mem::take(&mut cur))),
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(unescape(&cur));
        }
        Some(out)
    }

    /// Set a raw value (the caller escapes if needed); creates the group at the end.
    pub fn set(&mut self, group: &str, key: &str, value: &str) {
        let idx = match self.groups.iter().position(|g| g.name == group) {
            Some(i) => i,
            None => {
                if let Some(last) = self.groups.last_mut()
                    && !matches!(last.lines.last(), Some(Line::Comment(c)) if c.trim().is_empty())
                {
                    last.lines.push(Line::Comment(String::new()));
                }
                self.groups.push(Group {
                    name: group.to_string(),
                    lines: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[idx];
        if let Some(Line::Entry(_, v)) = g
            .lines
            .iter_mut()
            .find(|l| matches!(l, Line::Entry(k, _) if k == key))
        {
            *v = value.to_string();
            return;
        }
        // Insert after the last entry (before trailing blank lines/comments).
        let pos = g
            .lines
            .iter()
            .rposition(|l| matches!(l, Line::Entry(..)))
            .map(|p| p + 1)
            .unwrap_or(0);
        g.lines
            .insert(pos, Line::Entry(key.to_string(), value.to_string()));
    }

    /// Set a string value, escaping as GLib does.
    pub fn set_string(&mut self, group: &str, key: &str, value: &str) {
        self.set(group, key, &escape(value));
    }

    /// Set a `;`-terminated list.
    pub fn set_list(&mut self, group: &str, key: &str, values: &[&str]) {
        let mut s = String::new();
        for v in values {
            s.push_str(&escape(v).replace(';', "\\;"));
            s.push(';');
        }
        self.set(group, key, &s);
    }

    /// Remove a key; returns whether it existed.
    pub fn remove_key(&mut self, group: &str, key: &str) -> bool {
        let Some(g) = self.groups.iter_mut().find(|g| g.name == group) else {
            return false;
        };
        let before = g.lines.len();
        g.lines
            .retain(|l| !matches!(l, Line::Entry(k, _) if k == key));
        before != g.lines.len()
    }

    /// Remove a group; returns whether it existed.
    pub fn remove_group(&mut self, group: &str) -> bool {
        let before = self.groups.len();
        self.groups.retain(|g| g.name != group);
        before != self.groups.len()
    }
}

impl fmt::Display for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for h in &self.head {
            writeln!(f, "{h}")?;
        }
        for g in &self.groups {
            writeln!(f, "[{}]", g.name)?;
            for l in &g.lines {
                match l {
                    Line::Comment(c) => writeln!(f, "{c}")?,
                    Line::Entry(k, v) => writeln!(f, "{k}={v}")?,
                }
            }
        }
        Ok(())
    }
}

/// Decode GLib key-file escapes.
pub fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Encode a string value as GLib does (leading space as `\s`, control chars escaped).
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            ' ' if i == 0 => out.push_str("\\s"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_preserves_comments_and_order() {
        let text = "# top\n[core]\nrepo_version=1\nmode=archive-z2\n\n[remote \"origin\"]\nurl=http://x/\ngpg-verify=false\n";
        let kf = KeyFile::parse(text).unwrap();
        assert_eq!(kf.to_string(), text);
        assert_eq!(kf.groups(), vec!["core", "remote \"origin\""]);
        assert_eq!(
            kf.get_bool("remote \"origin\"", "gpg-verify").unwrap(),
            Some(false)
        );
    }

    #[test]
    fn set_adds_groups_with_blank_line() {
        let mut kf = KeyFile::parse("[core]\nrepo_version=1\n").unwrap();
        kf.set("remote \"a\"", "url", "http://a");
        assert_eq!(
            kf.to_string(),
            "[core]\nrepo_version=1\n\n[remote \"a\"]\nurl=http://a\n"
        );
        kf.set_list("remote \"a\"", "branches", &["x", "y"]);
        assert_eq!(
            kf.get_list("remote \"a\"", "branches").unwrap(),
            vec!["x", "y"]
        );
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(KeyFile::parse("key=value\n").is_err());
        assert!(KeyFile::parse("[core]\nnonsense\n").is_err());
        assert!(KeyFile::parse("[core\n").is_err());
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("\\sa\\nb\\\\"), " a\nb\\");
        assert_eq!(escape(" a\nb\\"), "\\sa\\nb\\\\");
    }
}
