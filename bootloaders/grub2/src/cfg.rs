//! A small reader of `grub.cfg` files: enough of GRUB's script syntax to find the menu
//! entries and their `linux`, `initrd` and `devicetree` commands (no crate exists for it).
//!
//! It understands what generated configurations use: comments, `;` and newlines between
//! commands, single quotes (literal), double quotes (with `\` escapes of `$ " \` and newline),
//! backslash escapes and line continuations, `{ … }` bodies of `menuentry`, `submenu` and
//! `function`, and `if`/`for`/`while` blocks (read through, so entries inside them are
//! found). Variables (`$x`, `${x}`) are kept as written, not expanded. Unbalanced quotes or
//! braces are errors.

use ostree_core::{Error, Result};

/// One `menuentry` of a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MenuEntry {
    /// The title (the first argument).
    pub title: String,
    /// The other arguments before `{` (`--class gnu-linux`, `--unrestricted`, an id…).
    pub args: Vec<String>,
    /// The titles of the enclosing `submenu`s, outermost first.
    pub submenus: Vec<String>,
    /// The commands of the body, as words.
    pub commands: Vec<Vec<String>>,
}

impl MenuEntry {
    fn command(&self, prefix: &str) -> Option<&Vec<String>> {
        self.commands
            .iter()
            .find(|c| c.first().is_some_and(|w| w.starts_with(prefix)))
    }

    /// The kernel command (`linux`, `linux16`, `linuxefi`): its name.
    pub fn linux_command(&self) -> Option<&str> {
        self.command("linux").map(|c| c[0].as_str())
    }

    /// The kernel path.
    pub fn linux(&self) -> Option<&str> {
        self.command("linux")
            .and_then(|c| c.get(1))
            .map(String::as_str)
    }

    /// The kernel arguments, joined by one space.
    pub fn options(&self) -> Option<String> {
        self.command("linux")
            .filter(|c| c.len() > 2)
            .map(|c| c[2..].join(" "))
    }

    /// The initrd paths (`initrd`, `initrd16`, `initrdefi`).
    pub fn initrds(&self) -> Vec<&str> {
        self.command("initrd")
            .map(|c| c[1..].iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The `devicetree` path.
    pub fn devicetree(&self) -> Option<&str> {
        self.command("devicetree")
            .and_then(|c| c.get(1))
            .map(String::as_str)
    }

    /// The value of `--id ID` / `--id=ID`, or else the last positional argument (ostree puts
    /// its `ostree-N-DEVICE` id there).
    pub fn id(&self) -> Option<&str> {
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if a == "--id" {
                return it.next().map(String::as_str);
            }
            if let Some(v) = a.strip_prefix("--id=") {
                return Some(v);
            }
        }
        let mut positional = None;
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if a.starts_with("--") {
                if matches!(a.as_str(), "--class" | "--users" | "--hotkey") {
                    it.next();
                }
            } else {
                positional = Some(a.as_str());
            }
        }
        positional
    }
}

/// A parsed configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrubConfig {
    /// Commands outside any menu entry or function (`set default=0`, `insmod …`), as words.
    pub commands: Vec<Vec<String>>,
    /// Every menu entry, in file order (entries of submenus included, flattened).
    pub entries: Vec<MenuEntry>,
    /// Names of the functions defined.
    pub functions: Vec<String>,
}

impl GrubConfig {
    /// The value of the first top-level `set NAME=VALUE`.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.commands.iter().find_map(|c| {
            (c.first()? == "set")
                .then(|| c.get(1)?.strip_prefix(name)?.strip_prefix('='))
                .flatten()
        })
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    /// End of a command (newline or `;`).
    End,
}

fn lex(text: &str) -> Result<Vec<Tok>> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let mut in_word = false;
    let flush = |word: &mut String, in_word: &mut bool, toks: &mut Vec<Tok>| {
        if *in_word {
            toks.push(Tok::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                toks.push(Tok::End);
            }
            ' ' | '\t' | '\r' => flush(&mut word, &mut in_word, &mut toks),
            '\n' | ';' => {
                flush(&mut word, &mut in_word, &mut toks);
                toks.push(Tok::End);
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(n) => {
                    word.push(n);
                    in_word = true;
                }
                None => return Err(Error::invalid("grub.cfg: trailing backslash")),
            },
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => word.push(x),
                        None => return Err(Error::invalid("grub.cfg: unterminated ' quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(x @ ('$' | '"' | '\\')) => word.push(x),
                            Some(x) => {
                                word.push('\\');
                                word.push(x);
                            }
                            None => {
                                return Err(Error::invalid("grub.cfg: unterminated \" quote"));
                            }
                        },
                        Some(x) => word.push(x),
                        None => return Err(Error::invalid("grub.cfg: unterminated \" quote")),
                    }
                }
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    flush(&mut word, &mut in_word, &mut toks);
    toks.push(Tok::End);
    Ok(toks)
}

/// Group tokens into commands (lists of words).
fn commands(toks: Vec<Tok>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for t in toks {
        match t {
            Tok::Word(w) => cur.push(w),
            Tok::End => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    out
}

/// Parse a configuration.
pub fn parse(text: &str) -> Result<GrubConfig> {
    let mut cfg = GrubConfig::default();
    // A `{` ends the words of the command it closes a header of; split such commands so
    // that `menuentry 'x' { linux /k }` on one line works too.
    let mut flat: Vec<Vec<String>> = Vec::new();
    for c in commands(lex(text)?) {
        let mut cur = Vec::new();
        for w in c {
            if w == "{" {
                cur.push(w);
                flat.push(std::mem::take(&mut cur));
            } else if w == "}" {
                if !cur.is_empty() {
                    flat.push(std::mem::take(&mut cur));
                }
                flat.push(vec![w]);
            } else {
                cur.push(w);
            }
        }
        if !cur.is_empty() {
            flat.push(cur);
        }
    }
    enum Frame {
        Entry(MenuEntry),
        Submenu(String),
        Function,
    }
    let mut stack: Vec<Frame> = Vec::new();
    for c in flat {
        if c.last().is_some_and(|w| w == "{") {
            let head = &c[..c.len() - 1];
            let frame = match head.first().map(String::as_str) {
                Some("menuentry") => {
                    let title = head
                        .get(1)
                        .cloned()
                        .ok_or_else(|| Error::invalid("grub.cfg: menuentry without a title"))?;
                    let submenus = stack
                        .iter()
                        .filter_map(|f| match f {
                            Frame::Submenu(t) => Some(t.clone()),
                            _ => None,
                        })
                        .collect();
                    Frame::Entry(MenuEntry {
                        title,
                        args: head[2..].to_vec(),
                        submenus,
                        commands: Vec::new(),
                    })
                }
                Some("submenu") => Frame::Submenu(head.get(1).cloned().unwrap_or_default()),
                Some("function") => {
                    cfg.functions.push(head.get(1).cloned().unwrap_or_default());
                    Frame::Function
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "grub.cfg: unexpected '{{' after '{}'",
                        head.join(" ")
                    )));
                }
            };
            stack.push(frame);
            continue;
        }
        if c.len() == 1 && c[0] == "}" {
            match stack.pop() {
                Some(Frame::Entry(e)) => cfg.entries.push(e),
                Some(_) => {}
                None => return Err(Error::invalid("grub.cfg: unbalanced '}'")),
            }
            continue;
        }
        if stack.is_empty() {
            cfg.commands.push(c);
        } else if let Some(e) = stack.iter_mut().rev().find_map(|f| match f {
            Frame::Entry(e) => Some(e),
            _ => None,
        }) {
            e.commands.push(c);
        }
    }
    if !stack.is_empty() {
        return Err(Error::invalid("grub.cfg: unterminated '{' block"));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ostree_shapes() {
        let text = "\
# comment\nset default=0 ; set timeout=5\n\
menuentry 'TestOS 42 (ostree:0)' --class gnu-linux --class gnu --class os --unrestricted 'ostree-0-dev' {\n\
load_video\nset gfxpayload=keep\ninsmod gzio\n\
linux /ostree/x/vmlinuz root=LABEL=r quiet\ninitrd /ostree/x/initramfs.img\ndevicetree /ostree/x/dt\n}\n\
menuentry 'It'\\''s' {\n\t linux /boot/k a=\"b c\" \\\n  d\n}\n\
function load_video { insmod all_video; }\n\
if [ x$feature = xy ]; then\n submenu 'More' { menuentry \"Inner \\\"q\\\" $x\" { linux16 /k2 } }\nfi\n";
        let c = parse(text).unwrap();
        assert_eq!(c.var("default"), Some("0"));
        assert_eq!(c.var("timeout"), Some("5"));
        assert_eq!(c.functions, ["load_video"]);
        assert_eq!(c.entries.len(), 3);
        let e = &c.entries[0];
        assert_eq!(e.title, "TestOS 42 (ostree:0)");
        assert_eq!(e.id(), Some("ostree-0-dev"));
        assert_eq!(e.linux(), Some("/ostree/x/vmlinuz"));
        assert_eq!(e.options().as_deref(), Some("root=LABEL=r quiet"));
        assert_eq!(e.initrds(), ["/ostree/x/initramfs.img"]);
        assert_eq!(e.devicetree(), Some("/ostree/x/dt"));
        assert_eq!(c.entries[1].title, "It's");
        assert_eq!(c.entries[1].options().as_deref(), Some("a=b c d"));
        let inner = &c.entries[2];
        assert_eq!(inner.title, "Inner \"q\" $x");
        assert_eq!(inner.submenus, ["More"]);
        assert_eq!(inner.linux_command(), Some("linux16"));
        assert!(parse("menuentry 'x' {\n").is_err());
        assert!(parse("}\n").is_err());
        assert!(parse("echo 'x\n").is_err());
    }
}
