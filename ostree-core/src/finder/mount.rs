//! Repositories on mounted volumes as a finder (`OstreeRepoFinderMount`), at priority 50.
//!
//! On each mount root, the repositories looked at are, in this order: the entries of
//! `.ostree/repos.d/` (sorted by name; usually symlinks `ostree create-usb` made), then
//! `.ostree/repo`, `ostree/repo` and `var/lib/flatpak/repo`. A repository counts when it opens,
//! is on the mount's file system (symlinks may not lead off the volume) and is not the
//! repository doing the finding. Each ref asked for is taken from the first repository that
//! has it (its local refs and `refs/mirrors`, not its remotes' refs), provided a configured
//! remote has that ref's collection ID: that remote's keyring will verify what is pulled.
//!
//! Every (repository, keyring) pair becomes a dynamic remote: URL `file://` plus the
//! repository's real path, named after both (URI-escaped, `%` read as `_`), with
//! `gpg-verify=true` and `gpg-verify-summary=false`.
//!
//! Which mounts: ostree asks GLib's volume monitor; [`MountFinder::new`] takes an explicit list
//! of roots instead, and [`system_mount_roots`] lists the mounts GLib's Unix volume monitor
//! shows (from `/proc/self/mountinfo`: under `/media/`, `/run/media/` or the home directory,
//! not hidden in a dot directory, not a system file system). Mounts GLib would show only for a
//! volume in `/etc/fstab`, and those of other (gvfs/udisks) monitors, are not listed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{FinderResult, RepoFinder, compare_results};
use crate::keyfile::KeyFile;
use crate::pull::PullOptions;
use crate::repo::Repo;
use crate::repo::refs::{CollectionRef, CollectionRefFilter, validate_remote_name};
use crate::repo::remote::{Remote, RemotesDir, remote_group};
use crate::store::OpenOptions;
use crate::{Checksum, Error, Result};

/// ostree's priority for repositories on mounts (lower is better; configured remotes have 100).
pub const PRIORITY: i32 = 50;

/// The well-known repository paths of a mount, after `.ostree/repos.d/*`.
pub const WELL_KNOWN_REPOS: [&str; 3] = [".ostree/repo", "ostree/repo", "var/lib/flatpak/repo"];

/// Finds refs in repositories on mounted volumes.
#[derive(Clone, Debug, Default)]
pub struct MountFinder {
    /// The mount roots to look at, in order.
    pub roots: Vec<PathBuf>,
}

impl MountFinder {
    /// A finder over these mount roots (any directories: each is looked at as a volume).
    pub fn new(roots: Vec<PathBuf>) -> Self {
        MountFinder { roots }
    }

    /// A finder over the mounts of this system ([`system_mount_roots`]).
    pub fn system() -> Self {
        MountFinder {
            roots: system_mount_roots(),
        }
    }
}

/// `g_unix_is_system_fs_type` (GLib 2.74).
const SYSTEM_FS_TYPES: &[&str] = &[
    "adfs",
    "afs",
    "auto",
    "autofs",
    "autofs4",
    "cgroup",
    "configfs",
    "cxfs",
    "debugfs",
    "devfs",
    "devpts",
    "devtmpfs",
    "ecryptfs",
    "fdescfs",
    "fusectl",
    "gfs",
    "gfs2",
    "gpfs",
    "hugetlbfs",
    "kernfs",
    "linprocfs",
    "linsysfs",
    "lustre",
    "lustre_lite",
    "mfs",
    "mqueue",
    "ncpfs",
    "nfsd",
    "nullfs",
    "ocfs2",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "ptyfs",
    "rootfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sysfs",
    "tmpfs",
    "usbfs",
];

/// `g_unix_is_system_device_path` (GLib 2.74).
const SYSTEM_DEVICES: &[&str] = &["none", "sunrpc", "devpts", "nfsd", "/dev/loop", "/dev/vn"];

/// One line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted (unescaped).
    pub mount_path: PathBuf,
    /// File system type.
    pub fs_type: String,
    /// Mount source (device path, or a name like `tmpfs`).
    pub device: String,
}

impl MountEntry {
    /// A system mount by file system type or device (`g_unix_is_system_fs_type`,
    /// `g_unix_is_system_device_path`): ostree's mount finder skips those.
    pub fn is_system(&self) -> bool {
        SYSTEM_FS_TYPES.contains(&self.fs_type.as_str())
            || SYSTEM_DEVICES.contains(&self.device.as_str())
    }
}

/// Undo the octal escapes (`\040`) of mountinfo fields.
fn unescape_mount_field(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `/proc/self/mountinfo` text.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mp), Some(fs), Some(dev)) =
            (fields.get(4), fields.get(sep + 1), fields.get(sep + 2))
        else {
            continue;
        };
        out.push(MountEntry {
            mount_path: PathBuf::from(unescape_mount_field(mp)),
            fs_type: fs.to_string(),
            device: unescape_mount_field(dev),
        });
    }
    out
}

/// The mounts of this process's mount namespace.
pub fn mount_entries() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

/// Whether GLib would show this mount to the user (`g_unix_mount_guess_should_display`):
/// not a system mount, not inside a dot directory, and under `/media/`, `/run/media/`
/// (`/run/media/$USER/` unless root) or the home directory.
pub fn should_display(m: &MountEntry, home: Option<&Path>, user: Option<&str>, root: bool) -> bool {
    if m.is_system() {
        return false;
    }
    let Some(path) = m.mount_path.to_str() else {
        return false;
    };
    if path.contains("/.") {
        return false;
    }
    let in_runtime = match (root, user) {
        (true, _) => path.starts_with("/run/media/"),
        (false, Some(u)) => path
            .strip_prefix("/run/media/")
            .and_then(|r| r.strip_prefix(u))
            .is_some_and(|r| r.starts_with('/')),
        (false, None) => false,
    };
    if in_runtime || path.starts_with("/media/") {
        // GLib also hides mounts under an inaccessible /media/ directory, and block-device
        // mounts the user cannot enter.
        if let Some(parent) = m.mount_path.parent()
            && parent.starts_with("/media/")
            && rustix::fs::access(
                parent,
                rustix::fs::Access::READ_OK | rustix::fs::Access::EXEC_OK,
            )
            .is_err()
        {
            return false;
        }
        if m.device.starts_with('/')
            && std::fs::metadata(&m.device).is_ok_and(|md| {
                use std::os::unix::fs::FileTypeExt;
                md.file_type().is_block_device()
            })
            && rustix::fs::access(
                &m.mount_path,
                rustix::fs::Access::READ_OK | rustix::fs::Access::EXEC_OK,
            )
            .is_err()
        {
            return false;
        }
        return true;
    }
    home.and_then(Path::to_str)
        .and_then(|h| path.strip_prefix(h))
        .is_some_and(|r| r.starts_with('/'))
}

/// The mount roots GLib's Unix volume monitor lists for this user.
pub fn system_mount_roots() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let user = std::env::var("USER").ok();
    let root = rustix::process::getuid().is_root();
    mount_entries()
        .into_iter()
        .filter(|m| should_display(m, home.as_deref(), user.as_deref(), root))
        .map(|m| m.mount_path)
        .collect()
}

/// Refs a result claims, with their commits.
type RefList = Vec<(CollectionRef, Option<Checksum>)>;

/// A repository found on a mount, with its collection–refs.
struct FoundRepo {
    path: PathBuf,
    refs: BTreeMap<CollectionRef, Checksum>,
}

/// Open the repository at `path` if it counts (`scan_repo`): it opens, is on the mount's file
/// system (`mount_dev`), and is not `parent` (device and inode `parent_id`).
async fn scan_repo(
    path: &Path,
    mount_dev: u64,
    parent_id: Option<(u64, u64)>,
) -> Option<FoundRepo> {
    let md = std::fs::metadata(path).ok()?;
    if !md.is_dir() || md.dev() != mount_dev || Some((md.dev(), md.ino())) == parent_id {
        return None;
    }
    let url = crate::registry::repo_url(path.to_str()?).ok()?;
    let repo = Repo::open(&url, OpenOptions::default()).await.ok()?;
    let refs = repo
        .list_collection_refs(
            None,
            CollectionRefFilter {
                exclude_remotes: true,
                exclude_mirrors: false,
            },
        )
        .await
        .ok()?;
    Some(FoundRepo {
        path: path.to_path_buf(),
        refs,
    })
}

/// The configured remote whose keyring verifies refs of collection `collection_id`
/// (`ostree_repo_resolve_keyring_for_collection`): the first remote, by name, with that
/// `collection-id`.
pub async fn resolve_keyring_for_collection(
    repo: &Repo,
    dir: &RemotesDir,
    collection_id: &str,
) -> Result<Remote> {
    for name in repo.remote_list(dir).await? {
        let Ok(r) = repo.remote(dir, &name).await else {
            continue;
        };
        if r.get("collection-id")
            .is_some_and(|c| !c.is_empty() && c == collection_id)
        {
            return Ok(r);
        }
    }
    Err(Error::not_found(format!(
        "No keyring found configured locally for collection ‘{collection_id}’"
    )))
}

/// `g_uri_escape_string (s, NULL, FALSE)` with `%` then replaced by `_`: every byte but
/// ASCII letters, digits and `-._~` becomes `_XX`.
fn escape_for_name(s: &str) -> String {
    crate::fetcher::uri_escape(s).replace('%', "_")
}

/// The name of the dynamic remote for a repository URI and keyring (`uri_and_keyring_to_name`).
pub fn dynamic_remote_name(uri: &str, keyring: &str) -> String {
    format!("{}_{}", escape_for_name(uri), escape_for_name(keyring))
}

/// The dynamic remote for a repository URI, verified with `keyring_remote`'s keyring.
pub fn dynamic_remote(uri: &str, keyring_remote: &Remote) -> Option<Remote> {
    let name = dynamic_remote_name(uri, &keyring_remote.keyring());
    validate_remote_name(&name).ok()?;
    let group = remote_group(&name);
    let mut options = KeyFile::new();
    options.set_string(&group, "url", uri);
    options.set(&group, "gpg-verify", "true");
    options.set(&group, "gpg-verify-summary", "false");
    Some(Remote {
        name,
        options,
        file: None,
    })
}

impl MountFinder {
    async fn resolve_mount(
        &self,
        root: &Path,
        refs: &[CollectionRef],
        repo: &Repo,
        opts: &PullOptions,
        system: &[MountEntry],
        out: &mut Vec<FinderResult>,
    ) {
        let Ok(root_md) = std::fs::metadata(root) else {
            return;
        };
        if !root_md.is_dir() {
            return;
        }
        let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        if system
            .iter()
            .any(|m| m.mount_path == canonical && m.is_system())
        {
            return;
        }
        let parent_id = repo
            .store()
            .local_root()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| (m.dev(), m.ino()));
        let mut repos: Vec<FoundRepo> = Vec::new();
        let repos_d = root.join(".ostree/repos.d");
        if let Ok(rd) = std::fs::read_dir(&repos_d) {
            let mut names: Vec<std::ffi::OsString> =
                rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
            names.sort();
            for n in names {
                if let Some(f) = scan_repo(&repos_d.join(n), root_md.dev(), parent_id).await {
                    repos.push(f);
                }
            }
        }
        for w in WELL_KNOWN_REPOS {
            if let Some(f) = scan_repo(&root.join(w), root_md.dev(), parent_id).await {
                repos.push(f);
            }
        }

        // (repository URI, keyring remote) → refs it serves, in the order first found.
        let mut found: Vec<(String, Remote, RefList)> = Vec::new();
        for r in refs {
            for f in &repos {
                let Some(c) = f.refs.get(r) else { continue };
                let Ok(keyring_remote) =
                    resolve_keyring_for_collection(repo, &opts.remotes_dir, &r.collection_id).await
                else {
                    continue;
                };
                let Ok(real) = std::fs::canonicalize(&f.path) else {
                    continue;
                };
                let uri = format!("file://{}", real.display());
                match found
                    .iter_mut()
                    .find(|(u, k, _)| *u == uri && k.keyring() == keyring_remote.keyring())
                {
                    Some((_, _, list)) => {
                        if !list.iter().any(|(x, _)| x == r) {
                            list.push((r.clone(), Some(*c)));
                        }
                    }
                    None => found.push((uri, keyring_remote, vec![(r.clone(), Some(*c))])),
                }
                // Pulling the same ref from several repositories of one volume does not help.
                break;
            }
        }
        for (uri, keyring_remote, list) in found {
            let Some(remote) = dynamic_remote(&uri, &keyring_remote) else {
                continue;
            };
            out.push(FinderResult {
                remote,
                keyring: keyring_remote.keyring(),
                refspec_name: Some(keyring_remote.name.clone()),
                finder: "OstreeRepoFinderMount",
                priority: PRIORITY,
                ref_to_checksum: list,
                ref_to_timestamp: Vec::new(),
                summary_last_modified: 0,
            });
        }
    }
}

#[async_trait]
impl RepoFinder for MountFinder {
    fn name(&self) -> &'static str {
        "OstreeRepoFinderMount"
    }

    async fn resolve(
        &self,
        refs: &[CollectionRef],
        repo: &Repo,
        opts: &PullOptions,
    ) -> Result<Vec<FinderResult>> {
        let system = mount_entries();
        let mut results = Vec::new();
        for root in &self.roots {
            self.resolve_mount(root, refs, repo, opts, &system, &mut results)
                .await;
        }
        results.sort_by(compare_results);
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_and_display() {
        let text = "36 35 98:0 /mnt1 /media/usb\\040stick rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:5 / /proc rw - proc proc rw\n\
                    38 35 0:6 / /home/u/.cache/x rw - fuse.x x rw\n\
                    39 35 0:7 / /home/u/data rw - ext4 /dev/sdb1 rw\n\
                    40 35 0:8 / /srv rw - ext4 /dev/sdc1 rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].mount_path, PathBuf::from("/media/usb stick"));
        assert_eq!(m[0].fs_type, "ext3");
        assert!(m[1].is_system());
        let home = Path::new("/home/u");
        let shown: Vec<bool> = m
            .iter()
            .map(|e| should_display(e, Some(home), Some("u"), false))
            .collect();
        assert_eq!(shown, [true, false, false, true, false]);
    }

    #[test]
    fn dynamic_names_as_ostree() {
        assert_eq!(
            dynamic_remote_name("file:///tmp/d/.ostree/repo", "remote1.trustedkeys.gpg"),
            "file_3A_2F_2F_2Ftmp_2Fd_2F.ostree_2Frepo_remote1.trustedkeys.gpg"
        );
    }
}
