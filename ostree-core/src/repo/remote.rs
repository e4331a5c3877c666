//! Remotes: the `[remote "NAME"]` groups of the repository `config`, of `*.conf` files in a
//! remotes config directory (`/etc/ostree/remotes.d` for the system repository), and of a
//! `core.parent` repository; adding, replacing and deleting them as `ostree remote` does;
//! cookie jars (`NAME.cookies.txt`).
//!
//! Where remotes are read from and written to follows ostree 2022.7:
//!
//! * a plain repository (`--repo`) has remotes in its `config` only;
//! * the system repository (`/ostree/repo`) and a non-physical sysroot's repository (`--sysroot`
//!   pointing at a deployment) also read `<sysroot>/etc/ostree/remotes.d/*.conf`, and new
//!   remotes go there as `NAME.conf` unless `core.add-remotes-config-dir=false`;
//! * the same remote defined twice is an error (`Multiple specifications found for remote`).
//!
//! The caller says which directory applies with [`RemotesDir`]; [`RemotesDir::detect`] gives
//! ostree's default for a repository opened by path.

use std::path::{Path, PathBuf};

use super::Repo;
use super::refs::validate_remote_name;
use crate::keyfile::KeyFile;
use crate::{Error, Result};

/// Where `*.conf` remote files live for a repository (ostree's `get_remotes_d_dir`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemotesDir {
    /// The directory, when one applies.
    pub path: Option<PathBuf>,
}

impl RemotesDir {
    /// No remotes directory: remotes live in the repository `config` only.
    pub fn none() -> Self {
        RemotesDir::default()
    }

    /// ostree's default for a repository opened by path: `/etc/ostree/remotes.d` when the
    /// repository is the system one (`/ostree/repo`, same device and inode), else none.
    pub fn detect(repo: &Repo) -> Self {
        use std::os::unix::fs::MetadataExt;
        let Some(root) = repo.store().local_root() else {
            return RemotesDir::none();
        };
        match (std::fs::metadata(root), std::fs::metadata("/ostree/repo")) {
            (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino() => RemotesDir {
                path: Some(PathBuf::from("/etc/ostree/remotes.d")),
            },
            _ => RemotesDir::none(),
        }
    }

    /// For a repository reached through `--sysroot=SYSROOT`: a physical sysroot (no
    /// `SYSROOT/sysroot`) keeps remotes in the repository config; a deployment root uses
    /// `SYSROOT/etc/ostree/remotes.d`.
    pub fn for_sysroot(sysroot: &Path) -> Self {
        if sysroot.join("sysroot").symlink_metadata().is_err() {
            RemotesDir::none()
        } else {
            RemotesDir {
                path: Some(sysroot.join("etc/ostree/remotes.d")),
            }
        }
    }
}

/// One configured remote.
#[derive(Clone, Debug)]
pub struct Remote {
    /// The remote's name.
    pub name: String,
    /// Its options (the group's keys, unescaped on read).
    pub options: KeyFile,
    /// The `*.conf` file it was read from; `None` when it lives in the repository config.
    pub file: Option<PathBuf>,
}

/// A remote option value for [`Repo::remote_change`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteValue {
    /// A string (`--set=KEY=VALUE`, `contenturl`, `collection-id`).
    Str(String),
    /// A boolean (`gpg-verify=false`).
    Bool(bool),
    /// A string list (`branches`).
    List(Vec<String>),
}

/// What [`Repo::remote_change`] does (`OstreeRepoRemoteChange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteChange {
    /// Add; an existing remote is an error.
    Add,
    /// Add unless it exists.
    AddIfNotExists,
    /// Delete; a missing remote is an error.
    Delete,
    /// Delete if it exists.
    DeleteIfExists,
    /// Replace the whole group (or add).
    Replace,
}

/// The key-file group of a remote.
pub fn remote_group(name: &str) -> String {
    format!("remote \"{name}\"")
}

fn group_remote_name(group: &str) -> Option<&str> {
    group
        .strip_prefix("remote \"")?
        .strip_suffix('"')
        .filter(|n| !n.is_empty())
}

impl Remote {
    fn group(&self) -> String {
        remote_group(&self.name)
    }

    /// A string option.
    pub fn get(&self, key: &str) -> Option<String> {
        self.options.get_string(&self.group(), key)
    }

    /// A boolean option with a default; a value that is not a boolean is an error.
    pub fn get_bool(&self, key: &str, default: bool) -> Result<bool> {
        Ok(self
            .options
            .get_bool(&self.group(), key)?
            .unwrap_or(default))
    }

    /// A list option.
    pub fn get_list(&self, key: &str) -> Option<Vec<String>> {
        self.options.get_list(&self.group(), key)
    }

    /// `url` (as `ostree_repo_remote_get_url`: an error naming the remote when absent).
    pub fn url(&self) -> Result<String> {
        self.get("url").ok_or_else(|| {
            Error::not_found(format!("No \"url\" option in remote \"{}\"", self.name))
        })
    }

    /// The GPG keyring file name of this remote (`NAME.trustedkeys.gpg`).
    pub fn keyring(&self) -> String {
        format!("{}.trustedkeys.gpg", self.name)
    }
}

fn remotes_of_keyfile(kf: &KeyFile, file: Option<&Path>, out: &mut Vec<Remote>) -> Result<()> {
    let mut found = Vec::new();
    for g in kf.groups() {
        if let Some(name) = group_remote_name(g) {
            if out
                .iter()
                .chain(found.iter())
                .any(|r: &Remote| r.name == name)
            {
                return Err(Error::Other(format!(
                    "Multiple specifications found for remote \"{name}\""
                )));
            }
            let mut options = KeyFile::new();
            for k in kf.keys(g) {
                if let Some(v) = kf.get(g, k) {
                    options.set(g, k, v);
                }
            }
            found.push(Remote {
                name: name.to_string(),
                options,
                file: file.map(Path::to_path_buf),
            });
        }
    }
    out.extend(found);
    Ok(())
}

fn set_value(kf: &mut KeyFile, group: &str, key: &str, v: &RemoteValue) {
    match v {
        RemoteValue::Str(s) => kf.set_string(group, key, s),
        RemoteValue::Bool(b) => kf.set(group, key, if *b { "true" } else { "false" }),
        RemoteValue::List(l) => {
            let refs: Vec<&str> = l.iter().map(String::as_str).collect();
            kf.set_list(group, key, &refs)
        }
    }
}

fn copy_group(from: &KeyFile, to: &mut KeyFile, group: &str) {
    for k in from.keys(group) {
        if let Some(v) = from.get(group, k) {
            to.set(group, k, v);
        }
    }
}

impl Repo {
    /// Every remote defined for this repository (config, then the remotes directory), not
    /// including a parent repository's.
    pub fn remotes_local(&self, dir: &RemotesDir) -> Result<Vec<Remote>> {
        let mut out = Vec::new();
        remotes_of_keyfile(&self.config().keyfile, None, &mut out)?;
        if let Some(d) = &dir.path {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(d) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(Error::io_path("Reading", d, e)),
            };
            files.sort();
            for f in files {
                let text = std::fs::read(&f).map_err(|e| Error::io_path("Reading", &f, e))?;
                let text = String::from_utf8(text)
                    .map_err(|_| Error::invalid(format!("{}: not valid UTF-8", f.display())))?;
                let kf = KeyFile::parse(&text)?;
                remotes_of_keyfile(&kf, Some(&f), &mut out)?;
            }
        }
        Ok(out)
    }

    /// The parent repository (`core.parent`), if configured.
    pub async fn parent_repo(&self) -> Result<Option<Repo>> {
        let Some(p) = self.config().keyfile.get_string("core", "parent") else {
            return Ok(None);
        };
        let url = crate::registry::repo_url(&p)?;
        let parent = Box::pin(Repo::open(&url, crate::store::OpenOptions::default()))
            .await
            .map_err(|e| Error::Other(format!("While checking parent repository '{p}': {e}")))?;
        Ok(Some(parent))
    }

    /// Remote names, sorted, including those of the parent repository
    /// (`ostree_repo_remote_list`).
    pub async fn remote_list(&self, dir: &RemotesDir) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .remotes_local(dir)?
            .into_iter()
            .map(|r| r.name)
            .collect();
        if let Some(p) = self.parent_repo().await? {
            names.extend(Box::pin(p.remote_list(&RemotesDir::none())).await?);
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// A remote by name, falling back to the parent repository's (`Remote "NAME" not found`
    /// when neither has it).
    pub async fn remote(&self, dir: &RemotesDir, name: &str) -> Result<Remote> {
        if let Some(r) = self
            .remotes_local(dir)?
            .into_iter()
            .find(|r| r.name == name)
        {
            return Ok(r);
        }
        if let Some(p) = self.parent_repo().await?
            && let Ok(r) = Box::pin(p.remote(&RemotesDir::none(), name)).await
        {
            return Ok(r);
        }
        Err(Error::not_found(format!("Remote \"{name}\" not found")))
    }

    /// Add, replace or delete a remote (`ostree_repo_remote_change`). `url` starting with
    /// `metalink=` sets `metalink` instead of `url`. Options are written in the given order.
    pub async fn remote_change(
        &self,
        dir: &RemotesDir,
        change: RemoteChange,
        name: &str,
        url: Option<&str>,
        options: &[(String, RemoteValue)],
    ) -> Result<()> {
        validate_remote_name(name)?;
        let existing = self
            .remotes_local(dir)?
            .into_iter()
            .find(|r| r.name == name);
        let group = remote_group(name);
        let fill = |kf: &mut KeyFile| {
            if let Some(u) = url {
                match u.strip_prefix("metalink=") {
                    Some(m) => kf.set_string(&group, "metalink", m),
                    None => kf.set_string(&group, "url", u),
                }
            }
            for (k, v) in options {
                set_value(kf, &group, k, v);
            }
        };
        match change {
            RemoteChange::Add | RemoteChange::AddIfNotExists => {
                if let Some(r) = &existing {
                    if change == RemoteChange::AddIfNotExists {
                        return Ok(());
                    }
                    return Err(Error::Other(format!(
                        "Remote configuration for \"{name}\" already exists: {}",
                        r.file
                            .as_ref()
                            .map(|f| f.display().to_string())
                            .unwrap_or_else(|| "(in config)".into())
                    )));
                }
                let mut opts = KeyFile::new();
                fill(&mut opts);
                let add_to_dir = self
                    .config()
                    .keyfile
                    .get_bool("core", "add-remotes-config-dir")?
                    .unwrap_or(dir.path.is_some());
                match (&dir.path, add_to_dir) {
                    (Some(d), true) => {
                        std::fs::create_dir_all(d).map_err(|e| Error::io_path("mkdir", d, e))?;
                        let f = d.join(format!("{name}.conf"));
                        write_atomic(&f, opts.to_string().as_bytes())?;
                    }
                    _ => {
                        let mut cfg = self.config();
                        copy_group(&opts, &mut cfg.keyfile, &group);
                        self.write_config(cfg).await?;
                    }
                }
                Ok(())
            }
            RemoteChange::Replace => match existing {
                None => {
                    Box::pin(self.remote_change(dir, RemoteChange::Add, name, url, options)).await
                }
                Some(r) => {
                    let mut opts = KeyFile::new();
                    fill(&mut opts);
                    match &r.file {
                        Some(f) => write_atomic(f, opts.to_string().as_bytes()),
                        None => {
                            let mut cfg = self.config();
                            cfg.keyfile.remove_group(&group);
                            copy_group(&opts, &mut cfg.keyfile, &group);
                            self.write_config(cfg).await
                        }
                    }
                }
            },
            RemoteChange::Delete | RemoteChange::DeleteIfExists => {
                let Some(r) = existing else {
                    if change == RemoteChange::DeleteIfExists {
                        return Ok(());
                    }
                    return Err(Error::not_found(format!("Remote \"{name}\" not found")));
                };
                match &r.file {
                    Some(f) => {
                        std::fs::remove_file(f).map_err(|e| Error::io_path("unlinkat", f, e))?
                    }
                    None => {
                        let mut cfg = self.config();
                        if cfg.keyfile.remove_group(&group) {
                            self.write_config(cfg).await?;
                        }
                    }
                }
                self.store().delete_file(&r.keyring()).await?;
                Ok(())
            }
        }
    }

    /// Path of a remote's cookie jar (`<repo>/NAME.cookies.txt`), for local repositories.
    pub fn cookie_jar_path(&self, remote: &str) -> Option<PathBuf> {
        self.store()
            .local_root()
            .map(|r| r.join(format!("{remote}.cookies.txt")))
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("remote"),
        std::process::id()
    ));
    std::fs::write(&tmp, data).map_err(|e| Error::io_path("Writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io_path("Renaming to", path, e))
}

/// One line of a Netscape/Mozilla cookie jar (what `remote add-cookie` writes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieLine {
    /// Domain.
    pub domain: String,
    /// `TRUE` when the domain starts with `.`.
    pub flag: String,
    /// Path.
    pub path: String,
    /// `TRUE`/`FALSE`.
    pub secure: String,
    /// Expiry, seconds since the epoch.
    pub expiration: i64,
    /// Cookie name.
    pub name: String,
    /// Cookie value.
    pub value: String,
    /// The raw line.
    pub line: String,
}

/// Parse a cookie jar (`ot_parse_cookies_next`: comment and malformed lines are skipped).
pub fn parse_cookie_jar(text: &str) -> Vec<CookieLine> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 7 {
            continue;
        }
        out.push(CookieLine {
            domain: f[0].to_string(),
            flag: f[1].to_string(),
            path: f[2].to_string(),
            secure: f[3].to_string(),
            expiration: f[4].trim().parse().unwrap_or(0),
            name: f[5].to_string(),
            value: f[6].to_string(),
            line: line.to_string(),
        });
    }
    out
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `now` plus whole calendar years (`g_date_time_add_years`: Feb 29 becomes Feb 28).
pub fn add_years(now: i64, years: i64) -> i64 {
    let days = now.div_euclid(86400);
    let secs = now.rem_euclid(86400);
    let (y, m, mut d) = civil_from_days(days);
    let ny = y + years;
    let leap = (ny % 4 == 0 && ny % 100 != 0) || ny % 400 == 0;
    if m == 2 && d == 29 && !leap {
        d = 28;
    }
    days_from_civil(ny, m, d) * 86400 + secs
}

/// Format seconds since the epoch as `%Y-%m-%d %H:%M:%S +0000`.
pub fn format_utc(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86400));
    let s = t.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// The line `remote add-cookie` appends (expiry 25 years from `now`).
pub fn cookie_jar_line(domain: &str, path: &str, name: &str, value: &str, now: i64) -> String {
    let expires = add_years(now, 25);
    format!(
        "{domain}\t{}\t{path}\tFALSE\t{expires}\t{name}\t{value}\n",
        if domain.starts_with('.') {
            "TRUE"
        } else {
            "FALSE"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_cookies() {
        assert_eq!(group_remote_name("remote \"origin\""), Some("origin"));
        assert_eq!(group_remote_name("remote \"\""), None);
        assert_eq!(group_remote_name("core"), None);
        let kf = KeyFile::parse(
            "[core]\nrepo_version=1\n\n[remote \"a\"]\nurl=http://x\nbranches=m;n;\n",
        )
        .unwrap();
        let mut out = Vec::new();
        remotes_of_keyfile(&kf, None, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].url().unwrap(), "http://x");
        assert_eq!(out[0].get_list("branches").unwrap(), vec!["m", "n"]);
        assert!(remotes_of_keyfile(&kf, None, &mut out).is_err());
        assert_eq!(format_utc(2584626681), "2051-11-26 15:51:21 +0000");
        assert_eq!(add_years(1795708281, 25), 2584626681);
        let line = cookie_jar_line("127.0.0.1", "/", "foo", "bar", 0);
        let c = parse_cookie_jar(&line);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].name.as_str(), c[0].value.as_str()), ("foo", "bar"));
    }
}
