//! `ostree commit`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use ostree_core::gvariant::Variant;
use ostree_core::objects::{Commit, Metadata, S_IFMT, S_IFREG};
use ostree_core::repo::commit::{
    CommitModifier, CommitStats, EntryInfo, FilterResult, MutableTree, glib_hash_order,
    sizes_metadata,
};
use ostree_core::repo::tar_import::ArchiveImportOptions;
use ostree_core::store::{OpenOptions, RefExpect, RepoMode};

use super::{open_repo_opts, parse_boolean};
use crate::opts::Invocation;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Timestamp of a new commit without `--timestamp`: `SOURCE_DATE_EPOCH` or now.
pub fn default_timestamp() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => {
            // g_ascii_strtoll semantics: leading space, optional sign, digits; the rest ignored.
            let t = v.trim_start();
            let (neg, digits) = match t.as_bytes().first() {
                Some(b'-') => (true, &t[1..]),
                Some(b'+') => (false, &t[1..]),
                _ => (false, t),
            };
            let digits: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
            if digits.is_empty() {
                bail!("Failed to convert SOURCE_DATE_EPOCH");
            }
            let n: i64 = format!("{}{digits}", if neg { "-" } else { "" })
                .parse()
                .map_err(|_| {
                    anyhow::anyhow!("Parsing SOURCE_DATE_EPOCH: Numerical result out of range")
                })?;
            Ok(n as u64)
        }
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)),
    }
}

fn parse_kv(s: &str) -> anyhow::Result<(&str, &str)> {
    s.split_once('=')
        .ok_or_else(|| anyhow::anyhow!("Missing '=' in KEY=VALUE metadata '{s}'"))
}

/// `ot_parse_file_by_line`: non-empty lines of a UTF-8 file.
fn file_lines(path: &str) -> anyhow::Result<Vec<String>> {
    let data = std::fs::read(path).with_context(|| format!("Opening {path}"))?;
    let text = String::from_utf8(data).map_err(|_| anyhow::anyhow!("Invalid UTF-8 in {path}"))?;
    Ok(text
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// `g_ascii_strtod` truncated to an integer, as ostree reads statoverride modes.
fn strtod_int(s: &str) -> u32 {
    let t = s.trim_start();
    let end = t
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '-' || *c == '+'))))
        .map_or(t.len(), |(i, _)| i);
    t[..end]
        .parse::<f64>()
        .map_or(0, |v| v as i64 as i32 as u32)
}

/// The statoverride and skip-list state shared with the commit filter (ostree's
/// `CommitFilterData`): entries are removed as they match, what is left is "unmatched".
#[derive(Default)]
struct FilterData {
    /// Insertion order of the statoverride "add" paths (for ostree's report order).
    add_order: Vec<String>,
    mode_adds: HashMap<String, u32>,
    mode_overrides: HashMap<String, u32>,
    skip_order: Vec<String>,
    skip_list: HashSet<String>,
}

fn parse_statoverride(path: &str, fd: &mut FilterData) -> anyhow::Result<()> {
    for line in file_lines(path)? {
        let Some(sp) = line.find(' ') else {
            bail!("Malformed statoverride file (no space found)");
        };
        let file = line[sp + 1..].to_string();
        if let Some(m) = line.strip_prefix('=') {
            fd.mode_overrides.insert(file, strtod_int(m));
        } else {
            if !fd.mode_adds.contains_key(&file) {
                fd.add_order.push(file.clone());
            }
            fd.mode_adds.insert(file, strtod_int(&line));
        }
    }
    Ok(())
}

/// Run the user's editor on the commit message template (`commit_editor`, `ot_editor_prompt`).
fn commit_editor(
    branch: Option<&str>,
    subject: &str,
    body: &str,
) -> anyhow::Result<(String, String)> {
    let term = std::env::var("TERM").ok();
    let dumb = term.as_deref().is_none_or(|t| t == "dumb");
    let mut editor = std::env::var("OSTREE_EDITOR").ok();
    if editor.is_none() && !dumb {
        editor = std::env::var("VISUAL").ok();
    }
    if editor.is_none() {
        editor = std::env::var("EDITOR").ok();
    }
    let editor = match editor {
        Some(e) => e,
        None if dumb => bail!("Terminal is dumb, but EDITOR unset"),
        None => "vi".to_string(),
    };
    let mut input = String::from(
        "\n# Please enter the commit message for your changes. The first line will\n\
         # become the subject, and the remainder the body. Lines starting\n\
         # with '#' will be ignored, and an empty message aborts the commit.",
    );
    if let Some(b) = branch {
        input.push_str(&format!("\n#\n# Branch: {b}"));
    }
    if !subject.is_empty() {
        input.push_str(&format!("\n{subject}"));
    }
    if !body.is_empty() {
        input.push_str(&format!("\n{body}"));
    }
    input.push('\n');
    let tmp = std::env::temp_dir().join(format!(
        "ostree-commit-msg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::write(&tmp, &input).context("Writing the commit message template")?;
    let quoted = format!("'{}'", tmp.display().to_string().replace('\'', "'\\''"));
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} {quoted}"))
        .status();
    let result = match status {
        Ok(st) if st.success() => {
            std::fs::read_to_string(&tmp).context("Reading the commit message")
        }
        Ok(st) => Err(anyhow::anyhow!(
            "There was a problem with the editor '{editor}'Child process exited with code {}",
            st.code().unwrap_or(1)
        )),
        Err(e) => Err(anyhow::anyhow!(
            "There was a problem with the editor '{editor}'{e}"
        )),
    };
    let _ = std::fs::remove_file(&tmp);
    let output = result?;
    let mut subject: Option<String> = None;
    let mut body: Option<String> = None;
    for line in output.split('\n') {
        let line = line.trim_end();
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() && body.is_none() {
            continue;
        }
        if subject.is_none() {
            subject = Some(line.to_string());
        } else if let Some(b) = body.as_mut() {
            b.push('\n');
            b.push_str(line);
        } else {
            body = Some(line.to_string());
        }
    }
    let Some(subject) = subject else {
        bail!("Aborting commit due to empty commit subject.");
    };
    Ok((
        subject,
        body.map(|b| b.trim_end().to_string()).unwrap_or_default(),
    ))
}

/// Expand a GRegex replacement (`\0`…`\99`, `\g<N>`, `\g<name>`, `\n`, `\t`, `\\`).
fn expand_replacement(caps: &regex_lite::Captures<'_>, repl: &str, out: &mut String) {
    let b = repl.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            let ch = repl[i..].chars().next().unwrap_or('\0');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let c = b[i + 1];
        if c.is_ascii_digit() {
            let mut j = i + 1;
            while j < b.len() && j < i + 3 && b[j].is_ascii_digit() {
                j += 1;
            }
            let n: usize = repl[i + 1..j].parse().unwrap_or(0);
            if let Some(m) = caps.get(n) {
                out.push_str(m.as_str());
            }
            i = j;
        } else if c == b'g' && b.get(i + 2) == Some(&b'<') {
            if let Some(end) = repl[i + 3..].find('>') {
                let name = &repl[i + 3..i + 3 + end];
                let m = match name.parse::<usize>() {
                    Ok(n) => caps.get(n),
                    Err(_) => caps.name(name),
                };
                if let Some(m) = m {
                    out.push_str(m.as_str());
                }
                i = i + 3 + end + 1;
            } else {
                out.push_str("\\g");
                i += 2;
            }
        } else {
            out.push(match c {
                b'n' => '\n',
                b't' => '\t',
                b'r' => '\r',
                b'f' => '\x0c',
                b'v' => '\x0b',
                b'a' => '\x07',
                b'e' => '\x1b',
                other => other as char,
            });
            i += 2;
        }
    }
}

/// `--tar-pathname-filter=REGEX,REPLACEMENT` as a path translation (`g_regex_replace`).
fn pathname_filter(spec: &str) -> anyhow::Result<ostree_core::repo::tar_import::TranslatePathname> {
    let Some((re, repl)) = spec.split_once(',') else {
        bail!("Missing ',' in --tar-pathname-filter");
    };
    let re =
        regex_lite::Regex::new(re).map_err(|e| anyhow::anyhow!("--tar-pathname-filter: {e}"))?;
    let repl = repl.to_string();
    Ok(Arc::new(move |path: &str| {
        let mut out = String::new();
        let mut last = 0;
        for caps in re.captures_iter(path) {
            let Some(m) = caps.get(0) else { continue };
            out.push_str(&path[last..m.start()]);
            expand_replacement(&caps, &repl, &mut out);
            last = m.end();
        }
        out.push_str(&path[last..]);
        out
    }))
}

/// `--selinux-policy`: this build cannot label; a root without an SELinux policy (what
/// ostree then treats as "no labels") is accepted, one with a policy is an error.
fn check_selinux_root(path: &str) -> anyhow::Result<()> {
    let root = Path::new(path);
    if !root.is_dir() {
        bail!("opendir({path}): No such file or directory");
    }
    let cfg = root.join("etc/selinux/config");
    if let Ok(text) = std::fs::read_to_string(&cfg) {
        for line in text.lines() {
            if let Some(t) = line.trim().strip_prefix("SELINUXTYPE=")
                && root.join("etc/selinux").join(t.trim()).is_dir()
            {
                bail!(
                    "SELinux labeling is not supported by this ostree (policy '{}' found in {path})",
                    t.trim()
                );
            }
        }
    }
    Ok(())
}

/// The kernel release of a bootable tree (`ostree_commit_metadata_for_bootable`): the one
/// directory of `usr/lib/modules` holding a `vmlinuz`.
async fn linux_release(
    repo: &ostree_core::repo::Repo,
    tree: ostree_core::Checksum,
    meta: ostree_core::Checksum,
) -> anyhow::Result<String> {
    use ostree_core::repo::read::TreeEntry;
    // Missing components are reported like OstreeRepoFile does: by their absolute path.
    let mut cur = TreeEntry::Dir(tree, meta);
    let mut path = String::new();
    for comp in ["usr", "lib", "modules"] {
        path.push('/');
        path.push_str(comp);
        let TreeEntry::Dir(t, _) = cur else {
            bail!("Opening usr/lib/modules: Not a directory");
        };
        let dt = repo.load_dirtree(&t).await?;
        cur = if let Some((_, st, sm)) = dt.dirs.iter().find(|(n, _, _)| n == comp) {
            TreeEntry::Dir(*st, *sm)
        } else if let Some((_, f)) = dt.files.iter().find(|(n, _)| n == comp) {
            TreeEntry::File(*f)
        } else {
            bail!("No such file or directory: {path}");
        };
    }
    let TreeEntry::Dir(modules, _) = cur else {
        bail!("Opening usr/lib/modules: Not a directory");
    };
    let dt = repo.load_dirtree(&modules).await?;
    let mut release: Option<String> = None;
    for (name, t, _) in &dt.dirs {
        let sub = repo.load_dirtree(t).await?;
        let has = sub.files.iter().any(|(n, _)| n == "vmlinuz")
            || sub.dirs.iter().any(|(n, _, _)| n == "vmlinuz");
        if !has {
            continue;
        }
        if release.is_some() {
            bail!("Multiple kernels found in /usr/lib/modules");
        }
        release = Some(name.clone());
    }
    release.ok_or_else(|| anyhow::anyhow!("No kernel found in /usr/lib/modules"))
}

/// `ostree commit`.
pub fn commit(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(inv))
}

async fn run(inv: Invocation) -> anyhow::Result<()> {
    let fsync = match inv.value("fsync") {
        Some(v) => Some(parse_boolean(v)?),
        None => None,
    };
    let repo = open_repo_opts(
        &inv,
        OpenOptions {
            fsync,
            ..Default::default()
        },
    )
    .await?;
    // Held for the whole transaction, as ostree's prepare_transaction does.
    let _lock = repo.lock(false).await?;
    let branch = inv.value("branch").map(str::to_string);
    let orphan = inv.flag("orphan");
    if branch.is_none() && !orphan {
        bail!("A branch must be specified with --branch, or use --orphan");
    }
    let branch_spec = match &branch {
        Some(b) => Some(ostree_core::repo::refs::parse_refspec(b)?),
        None => None,
    };
    // Current value of the branch: the parent unless --parent says otherwise.
    let current = match &branch_spec {
        Some((remote, name)) => {
            repo.store()
                .read_ref(&ostree_core::repo::refs::store_ref_name(
                    remote.as_deref(),
                    name,
                ))
                .await?
        }
        None => None,
    };
    let parent = match inv.value("parent") {
        Some("none") => None,
        Some(p) => Some(ostree_core::Checksum::from_hex(p)?),
        None if !orphan => current,
        None => None,
    };
    let keep = inv.values("keep-metadata");
    if parent.is_none() && !keep.is_empty() {
        bail!("Either --branch or --parent must be specified when using --keep-metadata");
    }
    let owner_uid = inv.int("owner-uid");
    let owner_gid = inv.int("owner-gid");
    let canonical = inv.flag("canonical-permissions");
    if canonical && owner_uid.is_some_and(|u| u > 0) {
        bail!("Cannot specify both --canonical-permissions and non-zero --owner-uid");
    }
    if canonical && owner_gid.is_some_and(|g| g > 0) {
        bail!("Cannot specify both --canonical-permissions and non-zero --owner-gid");
    }
    let statoverride = inv.value("statoverride").map(str::to_string);
    let skiplist = inv.value("skip-list").map(str::to_string);
    let mut fdata = FilterData::default();
    if let Some(p) = &statoverride {
        parse_statoverride(p, &mut fdata)?;
    }
    if let Some(p) = &skiplist {
        for l in file_lines(p)? {
            if fdata.skip_list.insert(l.clone()) {
                fdata.skip_order.push(l);
            }
        }
    }
    if inv.value("selinux-policy").is_some() && inv.flag("selinux-policy-from-base") {
        bail!("Cannot specify both --selinux-policy and --selinux-policy-from-base");
    }
    if let Some(p) = inv.value("selinux-policy") {
        check_selinux_root(p)?;
    }
    let ro_exec = inv.flag("mode-ro-executables");

    // Metadata, in ostree's insertion order.
    let mut metadata = Metadata::new();
    for s in inv.values("add-metadata-string") {
        let (k, v) = parse_kv(s)?;
        metadata
            .0
            .push((k.to_string(), Variant::Str(v.to_string())));
    }
    for s in inv.values("add-metadata") {
        let (k, v) = parse_kv(s)?;
        let val =
            ostree_core::gvariant::text::parse(v, None).with_context(|| format!("Parsing {s}"))?;
        metadata.0.push((k.to_string(), val));
    }
    if !keep.is_empty() {
        let Some(p) = parent else {
            bail!("Either --branch or --parent must be specified when using --keep-metadata");
        };
        let pc = repo.load_commit(&p).await?;
        for k in &keep {
            let v = pc
                .metadata
                .get(k)
                .ok_or_else(|| anyhow::anyhow!("Missing metadata key '{k}' from commit '{p}'"))?;
            metadata.0.push((k.to_string(), v.clone()));
        }
    }
    let mut detached = Metadata::new();
    for s in inv.values("add-detached-metadata-string") {
        let (k, v) = parse_kv(s)?;
        detached
            .0
            .push((k.to_string(), Variant::Str(v.to_string())));
    }

    let body = if let Some(f) = inv.value("body-file") {
        std::fs::read_to_string(f).with_context(|| format!("Reading {f}"))?
    } else {
        inv.value("body").unwrap_or("").to_string()
    };
    let mut subject = inv.value("subject").unwrap_or("").to_string();
    let mut body = body;
    if inv.flag("editor") {
        (subject, body) = commit_editor(branch.as_deref(), &subject, &body)?;
    }

    let generate_sizes = inv.flag("generate-sizes");
    let devino_canonical = inv.flag("devino-canonical");
    let link_speedup = inv.flag("link-checkout-speedup") || devino_canonical;
    let consume = inv.flag("consume");
    // ostree installs its commit filter whenever it builds a modifier at all; some paths
    // (`--tree=ref=`) then take the slow road, which --generate-sizes relies on.
    let want_modifier = canonical
        || inv.flag("no-xattrs")
        || consume
        || devino_canonical
        || generate_sizes
        || owner_uid.is_some_and(|u| u >= 0)
        || owner_gid.is_some_and(|g| g >= 0)
        || statoverride.is_some()
        || skiplist.is_some()
        || ro_exec
        || inv.value("selinux-policy").is_some()
        || inv.flag("selinux-policy-from-base");
    let fdata = Arc::new(Mutex::new(fdata));
    let filter: Option<ostree_core::repo::commit::CommitFilter> = if want_modifier {
        let (u, g) = (owner_uid, owner_gid);
        let fd = fdata.clone();
        Some(Arc::new(move |path: &str, info: &mut EntryInfo| {
            if let Some(u) = u.filter(|u| *u >= 0) {
                info.uid = u as u32;
            }
            if let Some(g) = g.filter(|g| *g >= 0) {
                info.gid = g as u32;
            }
            if ro_exec && info.mode & S_IFMT == S_IFREG && info.mode & 0o111 != 0 {
                info.mode &= !0o222;
            }
            let mut fd = fd.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(add) = fd.mode_adds.remove(path) {
                info.mode |= add;
            } else if let Some(ov) = fd.mode_overrides.get(path) {
                // ostree removes the path from the *adds* table here, so overrides never
                // count as unmatched.
                info.mode = (info.mode & S_IFMT) | ov;
            }
            if fd.skip_list.remove(path) {
                return FilterResult::Skip;
            }
            FilterResult::Allow
        }))
    } else {
        None
    };
    let devino_cache = if link_speedup {
        Some(Arc::new(repo.scan_hardlinks().await?))
    } else {
        None
    };
    let modifier = CommitModifier {
        canonical_permissions: canonical,
        skip_xattrs: inv.flag("no-xattrs"),
        filter,
        progress: Some(inv.progress()),
        devino_cache,
        devino_canonical,
        consume,
    };
    let tar_opts = ArchiveImportOptions {
        autocreate_parents: inv.flag("tar-autocreate-parents"),
        translate_pathname: match inv.value("tar-pathname-filter") {
            Some(spec) => Some(pathname_filter(spec)?),
            None => None,
        },
    };

    let mut stats = CommitStats::default();
    if generate_sizes && repo.mode() == RepoMode::Archive {
        stats.sizes = Some(BTreeMap::new());
    }
    let mut mtree = MutableTree::new();
    if let Some(base) = inv.value("base") {
        let b = super::resolve(&repo, base).await?;
        repo.write_commit_tree_to_mtree(&b, &mut mtree).await?;
    }
    let mut trees: Vec<String> = inv.values("tree").iter().map(|s| s.to_string()).collect();
    if trees.is_empty() {
        let path = inv
            .positionals()
            .first()
            .cloned()
            .unwrap_or_else(|| ".".to_string());
        trees.push(format!("dir={path}"));
    }
    for (i, t) in trees.iter().enumerate() {
        let Some((ty, val)) = t.split_once('=') else {
            bail!("Missing type in tree specification '{t}'");
        };
        // Like ostree's _ostree_repo_setup_generate_sizes, each tree starts a new size table.
        if let Some(s) = stats.sizes.as_mut() {
            s.clear();
        }
        let first = i == 0;
        match ty {
            "dir" => {
                if first && inv.flag("selinux-policy-from-base") && inv.value("base").is_none() {
                    check_selinux_root(val)?;
                }
                repo.write_dir_to_mtree(Path::new(val), &mut mtree, &modifier, &mut stats)
                    .await?
            }
            "tar" => {
                if first && inv.flag("selinux-policy-from-base") && inv.value("base").is_none() {
                    bail!("Cannot use --selinux-policy-from-base with tar");
                }
                let input: Box<dyn Read + Send> = if val == "-" {
                    Box::new(std::io::stdin())
                } else {
                    Box::new(
                        std::fs::File::open(val)
                            .map_err(|e| anyhow::anyhow!("Failed to open '{val}': {e}"))?,
                    )
                };
                repo.write_archive_to_mtree(input, &mut mtree, &modifier, &tar_opts, &mut stats)
                    .await?;
            }
            "ref" => {
                let c = super::resolve(&repo, val).await?;
                repo.write_commit_tree_to_mtree_modified(&c, &mut mtree, &modifier, &mut stats)
                    .await?;
            }
            other => bail!("Invalid tree type specification '{other}'"),
        }
    }
    {
        let fd = fdata.lock().unwrap_or_else(|p| p.into_inner());
        if !fd.mode_adds.is_empty() {
            for i in glib_hash_order(fd.add_order.iter().map(String::as_str)) {
                let k = &fd.add_order[i];
                if fd.mode_adds.contains_key(k) {
                    eprintln!("Unmatched statoverride path: {k}");
                }
            }
            bail!("Unmatched statoverride paths");
        }
        if !fd.skip_list.is_empty() {
            for i in glib_hash_order(fd.skip_order.iter().map(String::as_str)) {
                let k = &fd.skip_order[i];
                if fd.skip_list.contains(k) {
                    eprintln!("Unmatched skip-list path: {k}");
                }
            }
            bail!("Unmatched skip-list paths");
        }
    }
    if mtree.meta.is_none() {
        bail!("Can't commit an empty tree");
    }
    let (root_tree, root_meta) = repo.write_mtree(&mtree, &mut stats).await?;

    let mut skip = false;
    if inv.flag("skip-if-unchanged")
        && let Some(p) = parent
    {
        let pc = repo.load_commit(&p).await?;
        skip = pc.root_tree == root_tree && pc.root_meta == root_meta;
    }
    let checksum = if skip {
        parent.unwrap_or_default()
    } else {
        if !inv.flag("no-bindings") {
            let mut refs: Vec<String> = branch.iter().cloned().collect();
            refs.extend(inv.values("bind-ref").iter().map(|s| s.to_string()));
            refs.sort();
            metadata
                .0
                .push(("ostree.ref-binding".into(), Variant::str_array(&refs)));
            if metadata.get("ostree.collection-binding").is_none()
                && let Some(cid) = repo.collection_id()
            {
                metadata
                    .0
                    .push(("ostree.collection-binding".into(), Variant::Str(cid)));
            }
        }
        if inv.flag("bootable") {
            // ostree goes through a GVariantDict: the keys come out in GHashTable order.
            let release = linux_release(&repo, root_tree, root_meta).await?;
            let mut entries = std::mem::take(&mut metadata.0);
            entries.push(("ostree.bootable".into(), Variant::Bool(true)));
            entries.push(("ostree.linux".into(), Variant::Str(release)));
            let mut last: HashMap<String, Variant> = HashMap::new();
            for (k, v) in &entries {
                last.insert(k.clone(), v.clone());
            }
            let order = glib_hash_order(entries.iter().map(|(k, _)| k.as_str()));
            for i in order {
                let k = entries[i].0.clone();
                let v = last.remove(&k).unwrap_or(Variant::Bool(true));
                metadata.0.push((k, v));
            }
        }
        if let Some(sizes) = stats.sizes.as_ref()
            && !sizes.is_empty()
        {
            metadata
                .0
                .push(("ostree.sizes".into(), sizes_metadata(sizes)));
        }
        let timestamp = match inv.value("timestamp") {
            // gnulib parse_datetime forms; negative times wrap as ostree stores them.
            Some(ts) => super::prune::parse_datetime(ts, now_secs())
                .map(|t| t as u64)
                .ok_or_else(|| anyhow::anyhow!("Could not parse '{ts}'"))?,
            None => default_timestamp()?,
        };
        let commit = Commit {
            metadata,
            parent,
            related: vec![],
            subject,
            body,
            timestamp,
            root_tree,
            root_meta,
        };
        crate::builtins::sign::sign_new_commit(&inv, &commit.to_bytes(), &mut detached)?; // signatures
        let det = (!detached.is_empty()).then_some(&detached);
        let c = repo.write_commit(&commit, det, &mut stats).await?;
        // Like ostree, the ref is set unconditionally at the end of the transaction
        // (concurrent commits to one branch both succeed; the last one wins).
        let refs = match &branch_spec {
            Some((remote, name)) => vec![(remote.clone(), name.clone(), RefExpect::Any, Some(c))],
            None => vec![],
        };
        repo.commit_transaction(&refs).await?;
        c
    };
    inv.progress().finish();
    if inv.flag("table-output") {
        println!("Commit: {checksum}");
        println!("Metadata Total: {}", stats.metadata_objects_total);
        println!("Metadata Written: {}", stats.metadata_objects_written);
        println!("Content Total: {}", stats.content_objects_total);
        println!("Content Written: {}", stats.content_objects_written);
        println!("Content Cache Hits: {}", stats.devino_cache_hits);
        println!("Content Bytes Written: {}", stats.content_bytes_written);
    } else {
        println!("{checksum}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::prune::parse_datetime;

    #[test]
    fn timestamps() {
        assert_eq!(parse_datetime("@1234567890", 0), Some(1234567890));
        assert_eq!(parse_datetime("2021-01-01T00:00:00Z", 0), Some(1609459200));
        assert_eq!(parse_datetime("2023-11-14T22:13:20Z", 0), Some(1700000000));
        assert_eq!(
            parse_datetime("2021-01-01 01:00:00+01:00", 0),
            Some(1609459200)
        );
        assert_eq!(parse_datetime("garbage", 0), None);
    }
}
