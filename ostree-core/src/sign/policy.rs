//! ostree's signature policy, written once over the [`Signer`]/[`Verifier`] plugins: which
//! keys are trusted where (remote keyrings, `gpgkeypath=`, global keyring directories,
//! `verification-<type>-key/file`), what a pull requires (`gpg-verify`,
//! `gpg-verify-summary`, `sign-verify`, `sign-verify-summary`), and the repository-level
//! operations (`commit --gpg-sign/--sign`, `gpg-sign`, `sign`, `summary --gpg-sign/--sign`,
//! signed static delta superblocks). Messages follow ostree's wording.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{
    GPG_METADATA_KEY, Signer, SignerConfig, Verifier, VerifierConfig, VerifyReport,
    append_signature, parse_signature_metadata, set_signatures, signatures_in,
};
use crate::gvariant::{Variant, VariantType};
use crate::objects::Metadata;
use crate::registry::Registry;
use crate::repo::Repo;
use crate::repo::remote::{Remote, RemotesDir};
use crate::{Checksum, Error, ObjectType, Result};

/// The GPG signature type name.
pub const GPG: &str = "gpg";

/// `DATADIR/ostree/trusted.gpg.d`, the global keyring directory.
pub const GLOBAL_GPG_DIR: &str = "/usr/share/ostree/trusted.gpg.d";

/// Which remote keyrings GPG verification trusts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpgScope<'a> {
    /// No remote keyring (only the global directory and explicit directories).
    None,
    /// Every `*.gpg` keyring in the repository directory (`ostree show`, `gpg-sign --delete`).
    AllRemotes,
    /// One remote's keyring and `gpgkeypath=`.
    Remote(&'a str),
}

/// The global keyring directory: `$OSTREE_GPG_HOME`, else [`GLOBAL_GPG_DIR`], when it is a
/// directory.
pub fn global_gpg_dir() -> Option<PathBuf> {
    let p = std::env::var_os("OSTREE_GPG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(GLOBAL_GPG_DIR));
    p.is_dir().then_some(p)
}

/// Split a `gpgkeypath=` value: `;` or `,` separated, but not both
/// (`ot_keyfile_get_string_list_with_separator_choice`).
pub fn split_key_paths(value: &str) -> Result<Vec<String>> {
    let has_semi = value.contains(';');
    let has_comma = value.contains(',');
    let sep = match (has_semi, has_comma) {
        (true, true) => {
            return Err(Error::invalid(
                "key value list contains more than one separator",
            ));
        }
        (true, false) => ';',
        (false, true) => ',',
        (false, false) => return Ok(vec![value.to_string()]),
    };
    let mut parts: Vec<String> = value.split(sep).map(str::to_string).collect();
    // GKeyFile lists: a trailing separator ends the list, it does not add an empty item.
    if parts.last().is_some_and(String::is_empty) {
        parts.pop();
    }
    Ok(parts)
}

/// Expand one `gpgkeypath` entry: a directory gives every regular file in it, a file itself.
/// A path that does not exist is an error naming it.
fn add_key_path(cfg: &mut VerifierConfig, path: &str) -> Result<()> {
    let p = Path::new(path);
    match std::fs::read_dir(p) {
        Ok(rd) => {
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .collect();
            files.sort();
            cfg.key_files.extend(files);
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            cfg.key_files.push(p.to_path_buf());
            Ok(())
        }
        Err(e) => Err(Error::io(format!("opendir({path})"), e)),
    }
}

/// The keyring of remote `remote`: `<repo>/NAME.trustedkeys.gpg`, else the one beside the
/// remotes directory's `*.conf`, else the parent repository's (`find_keyring`).
pub async fn find_remote_keyring(
    repo: &Repo,
    dir: &RemotesDir,
    remote: &Remote,
) -> Result<Option<Bytes>> {
    let name = remote.keyring();
    if let Some(b) = repo.store().read_file(&name).await? {
        return Ok(Some(b));
    }
    if let Some(d) = &dir.path {
        let p = d.join(&name);
        match std::fs::read(&p) {
            Ok(b) => return Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io_path("Reading", p, e)),
        }
    }
    if let Some(parent) = repo.parent_repo().await? {
        return Box::pin(find_remote_keyring(&parent, &RemotesDir::none(), remote)).await;
    }
    Ok(None)
}

/// The keys GPG verification trusts (`_ostree_repo_gpg_prepare_verifier`): the scope's
/// keyrings; the global directory unless the remote has its own keyring; `keyringdir`'s
/// `*.gpg`; `extra_keyring`.
pub async fn gpg_verifier_config(
    repo: &Repo,
    dir: &RemotesDir,
    scope: GpgScope<'_>,
    keyringdir: Option<&Path>,
    extra_keyring: Option<&Path>,
) -> Result<VerifierConfig> {
    let mut cfg = VerifierConfig::default();
    let mut add_global = true;
    match scope {
        GpgScope::None => {}
        GpgScope::AllRemotes => {
            if let Some(root) = repo.store().local_root() {
                cfg.key_dirs.push(root.to_path_buf());
            }
        }
        GpgScope::Remote(name) => {
            let remote = repo.remote(dir, name).await?;
            if let Some(data) = find_remote_keyring(repo, dir, &remote).await? {
                cfg.key_data.push(data.to_vec());
                add_global = false;
            }
            if let Some(v) = remote.get("gpgkeypath") {
                for p in split_key_paths(&v)? {
                    add_key_path(&mut cfg, &p)?;
                }
            }
        }
    }
    if add_global && let Some(g) = global_gpg_dir() {
        cfg.key_dirs.push(g);
    }
    if let Some(d) = keyringdir {
        cfg.key_dirs.push(d.to_path_buf());
    }
    if let Some(k) = extra_keyring {
        cfg.key_files.push(k.to_path_buf());
    }
    Ok(cfg)
}

fn registry_or_global(registry: Option<&Registry>) -> &Registry {
    match registry {
        Some(r) => r,
        None => Registry::global(),
    }
}

/// Verify the signatures of type `verifier` found in `md` over `data`. `None` signatures
/// (the key is absent) is ostree's `commit have no signatures of my type` error.
pub fn verify_metadata(
    verifier: &dyn Verifier,
    data: &[u8],
    md: Option<&Metadata>,
) -> Result<VerifyReport> {
    match md.and_then(|m| signatures_in(m, verifier.metadata_key())) {
        Some(sigs) => verifier.verify(data, &sigs),
        None => Err(Error::BadSignature(format!(
            "{}: commit have no signatures of my type",
            verifier.name()
        ))),
    }
}

/// `GPG verification enabled, but no signatures found` (no `ostree.gpgsigs`).
fn no_gpg_signatures() -> Error {
    Error::BadSignature(
        "GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)".into(),
    )
}

/// GPG-verify `data` against the signatures in `md` (`_ostree_repo_gpg_verify_with_metadata`).
pub fn gpg_verify_metadata(
    verifier: &dyn Verifier,
    data: &[u8],
    md: Option<&Metadata>,
) -> Result<VerifyReport> {
    match md.and_then(|m| signatures_in(m, GPG_METADATA_KEY)) {
        Some(sigs) => verifier.verify(data, &sigs),
        None => Err(no_gpg_signatures()),
    }
}

/// Accept `data` if any of `verifiers` finds a valid signature of its type in `md`
/// (`_sign_verify_for_remote`); the first success message is returned.
pub fn verify_any(verifiers: &[Box<dyn Verifier>], data: &[u8], md: &Metadata) -> Result<String> {
    let mut found = false;
    let mut invalid = 0usize;
    let mut first_error: Option<String> = None;
    for v in verifiers {
        let Some(sigs) = signatures_in(md, v.metadata_key()) else {
            continue;
        };
        found = true;
        match v.verify(data, &sigs) {
            Ok(r) if r.is_valid() => return Ok(r.message),
            Ok(r) => {
                invalid += 1;
                first_error.get_or_insert_with(|| r.failure_text());
            }
            Err(e) => {
                invalid += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if !found {
        return Err(Error::BadSignature("No signatures found".into()));
    }
    let msg = first_error.unwrap_or_else(|| "No valid signatures found".into());
    Err(Error::BadSignature(if invalid > 1 {
        format!("({} other invalid signatures): {msg}", invalid - 1)
    } else {
        msg
    }))
}

/// GKeyFile's boolean words.
fn truthy(v: &str) -> Option<bool> {
    match v {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// A verifier of `name` loaded with the remote's `verification-<name>-key` and
/// `verification-<name>-file` (`_signapi_load_public_keys`); `required` makes the absence
/// of both an error.
pub fn remote_signapi_verifier(
    registry: &Registry,
    remote: &Remote,
    name: &str,
    required: bool,
) -> Result<Box<dyn Verifier>> {
    let file = remote.get(&format!("verification-{name}-file"));
    let key = remote.get(&format!("verification-{name}-key"));
    if file.is_none() && key.is_none() && required {
        return Err(Error::Other(format!(
            "No keys found for required signapi type {name}"
        )));
    }
    let mut cfg = VerifierConfig::default();
    if let Some(f) = &file {
        cfg.key_files.push(PathBuf::from(f));
        registry
            .build_verifier(name, &cfg)
            .map_err(|e| Error::Other(format!("Failed loading '{name}' keys from '{f}': {e}")))?;
    }
    if let Some(k) = &key {
        let only = VerifierConfig {
            keys: vec![k.clone()],
            ..Default::default()
        };
        registry.build_verifier(name, &only).map_err(|e| {
            Error::Other(format!(
                "Failed loading '{name}' keys from inline `verification-key`: {e}"
            ))
        })?;
        cfg.keys.push(k.clone());
    }
    cfg.system_fallback = file.is_none() && key.is_none();
    registry.build_verifier(name, &cfg)
}

/// The verifiers a remote option (`sign-verify`, `sign-verify-summary`) asks for
/// (`verifiers_from_config`): `None` when off; `true` means every signature type but GPG,
/// with keys where configured; a list names the types, each needing keys.
pub fn remote_signapi_verifiers(
    registry: &Registry,
    remote: &Remote,
    option: &str,
) -> Result<Option<Vec<Box<dyn Verifier>>>> {
    let raw = match remote.get(option) {
        None => return Ok(None),
        Some(v) if v.is_empty() => return Ok(None),
        Some(v) => v,
    };
    match truthy(&raw) {
        Some(false) => Ok(None),
        Some(true) => {
            let mut out = Vec::new();
            for p in registry.signer_plugins() {
                if p.name == GPG {
                    continue;
                }
                out.push(remote_signapi_verifier(registry, remote, p.name, false)?);
            }
            Ok(Some(out))
        }
        None => {
            let names = remote.get_list(option).unwrap_or_default();
            let mut out = Vec::new();
            for n in names.iter().filter(|n| !n.is_empty()) {
                registry.signer_plugin(n)?;
                out.push(remote_signapi_verifier(registry, remote, n, true)?);
            }
            if out.is_empty() {
                return Ok(None);
            }
            Ok(Some(out))
        }
    }
}

/// What a pull from one remote requires of signatures, with the keys loaded.
#[derive(Debug, Default)]
pub struct PullVerification {
    /// The remote's name (for messages).
    pub remote: String,
    /// The remote's GPG keys, loaded when `gpg_commits` or `gpg_summary`.
    pub gpg: Option<Box<dyn Verifier>>,
    /// `gpg-verify`: every commit needs a valid GPG signature.
    pub gpg_commits: bool,
    /// `gpg-verify-summary`: the summary needs a valid GPG signature.
    pub gpg_summary: bool,
    /// `sign-verify`: commits need a valid signature from one of these.
    pub commit: Option<Vec<Box<dyn Verifier>>>,
    /// `sign-verify-summary`: the summary needs a valid signature from one of these.
    pub summary: Option<Vec<Box<dyn Verifier>>>,
    /// The GPG reports of the commits verified so far (what `ostree pull` prints).
    pub gpg_reports: std::sync::Mutex<Vec<(Checksum, VerifyReport)>>,
}

impl PullVerification {
    /// The policy of `remote` (`gpg_verify`/`gpg_verify_summary` override its options, as
    /// pull's `--gpg-verify` flags do). A named remote is verified whatever its URL (only a
    /// bare `file://` URL given instead of a remote name is exempt, as in ostree: such pulls
    /// have no remote and so no policy).
    pub async fn for_remote(
        repo: &Repo,
        dir: &RemotesDir,
        remote: &Remote,
        gpg_verify: Option<bool>,
        gpg_verify_summary: Option<bool>,
        registry: Option<&Registry>,
    ) -> Result<Self> {
        let registry = registry_or_global(registry);
        let gpg_commits = match gpg_verify {
            Some(v) => v,
            None => remote.get_bool("gpg-verify", true)?,
        };
        let gpg_summary = match gpg_verify_summary {
            Some(v) => v,
            None => remote.get_bool("gpg-verify-summary", false)?,
        };
        let gpg = if gpg_commits || gpg_summary {
            let cfg =
                gpg_verifier_config(repo, dir, GpgScope::Remote(&remote.name), None, None).await?;
            Some(registry.build_verifier(GPG, &cfg)?)
        } else {
            None
        };
        Ok(PullVerification {
            remote: remote.name.clone(),
            gpg,
            gpg_commits,
            gpg_summary,
            commit: remote_signapi_verifiers(registry, remote, "sign-verify")?,
            summary: remote_signapi_verifiers(registry, remote, "sign-verify-summary")?,
            gpg_reports: Default::default(),
        })
    }

    /// Nothing to verify for commits.
    pub fn verifies_commits(&self) -> bool {
        self.gpg_commits || self.commit.is_some()
    }

    /// The summary must be signed (so `summary.sig` is needed).
    pub fn verifies_summary(&self) -> bool {
        self.gpg_summary || self.summary.is_some()
    }

    /// Verify a commit before anything of it is stored (`_verify_unwritten_commit`):
    /// `commit` is the commit object's bytes, `detached` its detached metadata as fetched.
    /// Returns the success messages (GPG descriptions, then the signapi message).
    pub fn verify_commit(
        &self,
        csum: &Checksum,
        commit: &[u8],
        detached: Option<&Metadata>,
    ) -> Result<String> {
        let mut out = String::new();
        if self.gpg_commits {
            let v = self
                .gpg
                .as_deref()
                .ok_or_else(|| Error::Other("GPG keys not loaded".into()))?;
            let r = gpg_verify_metadata(v, commit, detached)
                .and_then(|r| r.require_valid().map(|_| r))
                .map_err(|e| Error::BadSignature(format!("Commit {csum}: {e}")))?;
            if let Ok(mut g) = self.gpg_reports.lock() {
                g.push((*csum, r.clone()));
            }
            for s in &r.signatures {
                out.push_str(&super::describe_signature(s, "GPG: "));
            }
        }
        if let Some(vs) = &self.commit {
            let Some(md) = detached else {
                return Err(Error::BadSignature(
                    "Can't verify commit without detached metadata".into(),
                ));
            };
            let msg = verify_any(vs, commit, md)
                .map_err(|e| Error::BadSignature(format!("Can't verify commit: {e}")))?;
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&msg);
        }
        Ok(out)
    }

    /// Verify `summary` against `summary.sig` bytes (`sig`), as a pull does.
    pub fn verify_summary(&self, summary: &[u8], sig: Option<&[u8]>) -> Result<()> {
        if self.gpg_summary {
            let Some(sig) = sig else {
                return Err(Error::BadSignature(
                    "GPG verification enabled, but no summary.sig found (use gpg-verify-summary=false in remote config to disable)".into(),
                ));
            };
            let md = parse_signature_metadata(sig);
            let v = self
                .gpg
                .as_deref()
                .ok_or_else(|| Error::Other("GPG keys not loaded".into()))?;
            gpg_verify_metadata(v, summary, Some(&md))?.require_valid()?;
        }
        if let Some(vs) = &self.summary {
            let Some(sig) = sig else {
                return Err(Error::BadSignature(
                    "Signatures verification enabled, but no summary.sig found (use sign-verify-summary=false in remote config to disable)".into(),
                ));
            };
            let md = parse_signature_metadata(sig);
            verify_any(vs, summary, &md)?;
        }
        Ok(())
    }
}

/// The bytes of a commit object.
async fn commit_bytes(repo: &Repo, csum: &Checksum) -> Result<Bytes> {
    repo.load_meta(ObjectType::Commit, csum)
        .await
        .map_err(|e| Error::Other(format!("Failed to read commit: {e}")))
}

/// Add one signature made by `signer` to a commit's detached metadata (`ostree_sign_commit`,
/// and the GPG half of `ostree_repo_sign_commit`).
pub async fn sign_commit(repo: &Repo, csum: &Checksum, signer: &dyn Signer) -> Result<()> {
    let data = commit_bytes(repo, csum).await?;
    let mut md = repo
        .read_commit_detached_metadata(csum)
        .await
        .map_err(|e| Error::Other(format!("Failed to read detached metadata: {e}")))?
        .unwrap_or_default();
    let sig = signer.sign(&data)?;
    append_signature(&mut md, signer.metadata_key(), sig);
    repo.write_commit_detached_metadata(csum, Some(&md)).await
}

/// `ostree gpg-sign` / `commit --gpg-sign`: refuse a key that already signed the commit
/// (`Commit is already signed with GPG key …`), then sign. Existing signatures are matched
/// against the keys of `homedir` and the global keyring directory.
pub async fn gpg_sign_commit(
    repo: &Repo,
    csum: &Checksum,
    key_id: &str,
    homedir: Option<&Path>,
    registry: Option<&Registry>,
) -> Result<()> {
    let registry = registry_or_global(registry);
    let signer = registry.build_signer(
        GPG,
        &SignerConfig {
            key: key_id.to_string(),
            homedir: homedir.map(Path::to_path_buf),
        },
    )?;
    let data = commit_bytes(repo, csum).await?;
    let md = repo.read_commit_detached_metadata(csum).await?;
    if let Some(sigs) = md.as_ref().and_then(|m| signatures_in(m, GPG_METADATA_KEY)) {
        let cfg =
            gpg_verifier_config(repo, &RemotesDir::none(), GpgScope::None, homedir, None).await?;
        let verifier = registry.build_verifier(GPG, &cfg)?;
        let report = verifier.verify(&data, &sigs)?;
        let mut mine = signer.fingerprints();
        if let Some(p) = verifier.lookup_key(key_id) {
            mine.push(p);
        }
        // The issuer named by a signature identifies the key even when it is not trusted
        // here (a GnuPG 2 home keeps public keys in pubring.kbx, which ostree never reads).
        let dup = report.signatures.iter().any(|s| {
            mine.iter().any(|f| {
                (!s.fingerprint.is_empty() && *f == s.fingerprint)
                    || (!s.key_missing && *f == s.fingerprint_primary)
            })
        });
        if dup {
            return Err(Error::AlreadyExists {
                what: format!("Commit is already signed with GPG key {key_id}; signature"),
            });
        }
    }
    sign_commit(repo, csum, signer.as_ref()).await
}

/// `ostree gpg-sign --delete`: remove the GPG signatures made by any of `key_ids` (matched
/// through the keys of every remote and the global directory); returns how many went.
pub async fn delete_gpg_signatures(
    repo: &Repo,
    csum: &Checksum,
    key_ids: &[String],
    registry: Option<&Registry>,
) -> Result<usize> {
    let registry = registry_or_global(registry);
    let Some(mut md) = repo.read_commit_detached_metadata(csum).await? else {
        return Ok(0);
    };
    let Some(sigs) = signatures_in(&md, GPG_METADATA_KEY) else {
        return Ok(0);
    };
    let data = commit_bytes(repo, csum).await?;
    let cfg =
        gpg_verifier_config(repo, &RemotesDir::none(), GpgScope::AllRemotes, None, None).await?;
    let verifier = registry.build_verifier(GPG, &cfg)?;
    let wanted: Vec<String> = key_ids
        .iter()
        .filter_map(|k| verifier.lookup_key(k))
        .collect();
    let mut keep = Vec::new();
    let mut deleted = 0;
    for s in sigs {
        let r = verifier.verify(&data, std::slice::from_ref(&s))?;
        let matches = r
            .signatures
            .iter()
            .any(|x| !x.key_missing && wanted.contains(&x.fingerprint_primary));
        if matches {
            deleted += 1;
        } else {
            keep.push(s);
        }
    }
    set_signatures(&mut md, GPG_METADATA_KEY, &keep);
    repo.write_commit_detached_metadata(csum, Some(&md)).await?;
    Ok(deleted)
}

/// The GPG signatures of a commit checked against the keys of `remote` (or of every remote
/// and the global directory, plus `homedir`'s keyrings): `ostree show`'s report. `None`
/// when the commit has no GPG signature or no GPG plugin is linked.
pub async fn verify_commit_gpg(
    repo: &Repo,
    csum: &Checksum,
    remote: Option<&str>,
    homedir: Option<&Path>,
    registry: Option<&Registry>,
) -> Result<Option<VerifyReport>> {
    let registry = registry_or_global(registry);
    if registry.signer_plugin(GPG).is_err() {
        return Ok(None);
    }
    let data = commit_bytes(repo, csum).await?;
    let md = repo
        .read_commit_detached_metadata(csum)
        .await
        .map_err(|e| Error::Other(format!("Failed to read detached metadata: {e}")))?;
    let Some(sigs) = md.as_ref().and_then(|m| signatures_in(m, GPG_METADATA_KEY)) else {
        return Ok(None);
    };
    let scope = match remote {
        Some(r) => GpgScope::Remote(r),
        None => GpgScope::AllRemotes,
    };
    let dir = RemotesDir::detect(repo);
    let cfg = gpg_verifier_config(repo, &dir, scope, homedir, None).await?;
    let verifier = registry.build_verifier(GPG, &cfg)?;
    Ok(Some(verifier.verify(&data, &sigs)?))
}

/// Verify a commit's signatures of `verifier`'s type (`ostree_sign_commit_verify`).
pub async fn verify_commit_with(
    repo: &Repo,
    csum: &Checksum,
    verifier: &dyn Verifier,
) -> Result<VerifyReport> {
    let data = commit_bytes(repo, csum).await?;
    let md = repo
        .read_commit_detached_metadata(csum)
        .await
        .map_err(|e| Error::Other(format!("Failed to read detached metadata: {e}")))?;
    verify_metadata(verifier, &data, md.as_ref())
}

/// Sign the repository's `summary` with every signer, merging into `summary.sig`
/// (`ostree_repo_add_gpg_signature_summary`, `ostree_sign_summary`). Call after
/// regenerating the summary.
pub async fn sign_summary(repo: &Repo, signers: &[Box<dyn Signer>]) -> Result<()> {
    if signers.is_empty() {
        return Err(Error::invalid("No keys passed for signing summary"));
    }
    let summary = repo
        .store()
        .read_file("summary")
        .await?
        .ok_or_else(|| Error::not_found("opening summary: No such file or directory"))?;
    let mut md = match repo.store().read_file("summary.sig").await? {
        Some(b) => parse_signature_metadata(&b),
        None => Metadata::new(),
    };
    for s in signers {
        let sig = s.sign(&summary)?;
        append_signature(&mut md, s.metadata_key(), sig);
    }
    repo.store()
        .write_file("summary.sig", Bytes::from(md.to_bytes()))
        .await
}

/// The magic of a signed static delta superblock (`OSTREE_STATIC_DELTA_SIGNED_MAGIC`).
pub const DELTA_SIGNED_MAGIC: u64 = 0x4F53_5453_474E_4454;

fn signed_delta_type() -> VariantType {
    VariantType::parse("(taya{sv})").expect("static type string")
}

/// Wrap a static delta superblock as `(taya{sv})` with one signature per signer over the
/// superblock bytes (`static-delta generate --sign`).
pub fn sign_delta_superblock<S: AsRef<dyn Signer>>(
    superblock: &[u8],
    signers: &[S],
) -> Result<Vec<u8>> {
    let mut md = Metadata::new();
    for s in signers {
        let s = s.as_ref();
        append_signature(&mut md, s.metadata_key(), s.sign(superblock)?);
    }
    let v = Variant::Tuple(vec![
        Variant::U64(DELTA_SIGNED_MAGIC.to_be()),
        Variant::Bytes(superblock.to_vec()),
        md.to_variant(),
    ]);
    debug_assert_eq!(v.type_(), signed_delta_type());
    Ok(v.to_bytes())
}

/// Split a signed superblock file into (superblock bytes, signatures); `None` when it is
/// not a signed wrapper.
pub fn unwrap_delta_superblock(data: &[u8]) -> Option<(Vec<u8>, Metadata)> {
    let v = Variant::from_bytes(&signed_delta_type(), data).ok()?;
    let t = v.as_tuple()?;
    if u64::from_be(t.first()?.as_u64()?) != DELTA_SIGNED_MAGIC {
        return None;
    }
    let inner = t.get(1)?.as_bytes()?.to_vec();
    let md = Metadata::from_variant(t.get(2)?).ok()?;
    Some((inner, md))
}

/// Verify a signed superblock file with `verifier` (`static-delta verify`): the success
/// message, or why not (`no signatures in static-delta`, `no signature for 'KEY' in
/// static-delta superblock`, the verifier's failure).
pub fn verify_delta_superblock(data: &[u8], verifier: &dyn Verifier) -> Result<String> {
    let (inner, md) = unwrap_delta_superblock(data)
        .ok_or_else(|| Error::BadSignature("no signatures in static-delta".into()))?;
    let Some(sigs) = signatures_in(&md, verifier.metadata_key()) else {
        return Err(Error::BadSignature(format!(
            "no signature for '{}' in static-delta superblock",
            verifier.metadata_key()
        )));
    };
    let r = verifier.verify(&inner, &sigs)?;
    r.require_valid()?;
    Ok(r.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_lists() {
        assert_eq!(split_key_paths("a").unwrap(), vec!["a"]);
        assert_eq!(split_key_paths("a,b,").unwrap(), vec!["a", "b"]);
        assert_eq!(split_key_paths(",b").unwrap(), vec!["", "b"]);
        assert_eq!(split_key_paths("a;b").unwrap(), vec!["a", "b"]);
        assert!(
            split_key_paths("a,b;c")
                .unwrap_err()
                .to_string()
                .contains("key value list contains more than one separator")
        );
    }

    #[test]
    fn missing_key_path_names_it() {
        let mut cfg = VerifierConfig::default();
        let e = add_key_path(&mut cfg, "/nonexistent/INVALIDKEYPATH.asc").unwrap_err();
        let t = e.to_string();
        assert!(
            t.contains("INVALIDKEYPATH") && t.contains("No such file or directory"),
            "{t}"
        );
        assert!(add_key_path(&mut cfg, "").is_err());
    }

    #[test]
    fn delta_wrapper_round_trip() {
        let sb = b"superblock bytes".to_vec();
        let none: [Box<dyn Signer>; 0] = [];
        let wrapped = sign_delta_superblock(&sb, &none).unwrap();
        let (inner, md) = unwrap_delta_superblock(&wrapped).unwrap();
        assert_eq!(inner, sb);
        assert!(md.is_empty());
        assert!(unwrap_delta_superblock(b"garbage").is_none());
    }
}
