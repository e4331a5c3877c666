//! Signatures on the command line: `ostree sign`, `ostree gpg-sign`, `commit --gpg-sign/
//! --sign`, `remote gpg-import`, `remote gpg-list-keys`, and the GPG block of `ostree show`.
//! The work is in `ostree_core::sign` (policy) and the signer plugins; this module parses
//! options and prints ostree's words.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use ostree_core::Checksum;
use ostree_core::objects::Metadata;
use ostree_core::registry::Registry;
use ostree_core::repo::Repo;
use ostree_core::repo::remote::RemotesDir;
use ostree_core::sign::policy::{self, GPG};
use ostree_core::sign::{
    GPG_METADATA_KEY, KeyInfo, SignerConfig, VerifierConfig, append_signature, format_local_time,
};

use super::{open_repo, resolve};
use crate::opts::Invocation;

fn registry() -> &'static Registry {
    Registry::global()
}

/// The signature type of `--sign-type` (default `ed25519`).
fn sign_type(inv: &Invocation) -> String {
    inv.value("sign-type").unwrap_or("ed25519").to_string()
}

/// Sign a commit being written (`commit --gpg-sign=KEYID [--gpg-homedir] --sign=KEY
/// [--sign-type]`): the signatures go into its detached metadata, written with it, so the
/// commit never exists unsigned.
pub fn sign_new_commit(
    inv: &Invocation,
    commit_bytes: &[u8],
    detached: &mut Metadata,
) -> anyhow::Result<()> {
    let homedir = inv.value("gpg-homedir").map(PathBuf::from);
    for key in inv.values("gpg-sign") {
        let signer = registry().build_signer(
            GPG,
            &SignerConfig {
                key: key.to_string(),
                homedir: homedir.clone(),
            },
        )?;
        append_signature(detached, GPG_METADATA_KEY, signer.sign(commit_bytes)?);
    }
    let keys = inv.values("sign");
    if !keys.is_empty() {
        let ty = sign_type(inv);
        for key in keys {
            let signer = registry().build_signer(
                &ty,
                &SignerConfig {
                    key: key.to_string(),
                    homedir: None,
                },
            )?;
            let sig = signer
                .sign(commit_bytes)
                .context("Not able to sign the cobject")?;
            append_signature(detached, signer.metadata_key(), sig);
        }
    }
    Ok(())
}

/// `ostree gpg-sign COMMIT KEY-ID...` (`--delete`, `--gpg-homedir`).
pub fn gpg_sign(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let args = inv.positionals();
        if args.is_empty() {
            crate::opts::eprint_text(&inv.help());
            bail!("Need a COMMIT to sign");
        }
        if args.len() < 2 {
            crate::opts::eprint_text(&inv.help());
            bail!("Need at least one GPG KEY-ID to sign with");
        }
        let c = resolve(&repo, &args[0]).await?;
        let keys: Vec<String> = args[1..].to_vec();
        if inv.flag("delete") {
            let n = policy::delete_gpg_signatures(&repo, &c, &keys, None).await?;
            println!("Signatures deleted: {n}");
            return Ok(());
        }
        let homedir = inv.value("gpg-homedir").map(PathBuf::from);
        for k in &keys {
            policy::gpg_sign_commit(&repo, &c, k, homedir.as_deref(), None).await?;
        }
        Ok(())
    })
}

fn read_key_lines(path: &str) -> anyhow::Result<Vec<String>> {
    let p = Path::new(path);
    if !p.is_file() {
        bail!("File object '{path}' is not a regular file");
    }
    let text = std::fs::read(p).with_context(|| format!("reading {path}"))?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_string)
        .collect())
}

/// `ostree sign COMMIT KEY...` (`--verify`, `--sign-type`, `--keys-file`, `--keys-dir`,
/// `--delete`).
pub fn sign(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let args = inv.positionals();
        if args.is_empty() {
            crate::opts::eprint_text(&inv.help());
            bail!("Need a COMMIT to sign or verify");
        }
        let keys_file = inv.value("keys-file").map(str::to_string);
        let verify = inv.flag("verify");
        if !verify && keys_file.is_none() && args.len() < 2 {
            crate::opts::eprint_text(&inv.help());
            bail!("Need at least one KEY-ID to sign with");
        }
        let c = resolve(&repo, &args[0]).await?;
        let keys: Vec<String> = args[1..].to_vec();
        let ty = sign_type(&inv);
        registry().signer_plugin(&ty)?;
        if inv.flag("delete") {
            let n = delete_signatures(&repo, &c, &ty, &keys).await?;
            println!("Signatures deleted: {n}");
            return Ok(());
        }
        if verify {
            for k in &keys {
                let cfg = VerifierConfig {
                    keys: vec![k.clone()],
                    ..Default::default()
                };
                let Ok(v) = registry().build_verifier(&ty, &cfg) else {
                    continue;
                };
                if let Ok(r) = policy::verify_commit_with(&repo, &c, v.as_ref()).await
                    && r.is_valid()
                {
                    println!("{}", r.message);
                    return Ok(());
                }
            }
            if keys.is_empty() || keys_file.is_some() {
                let cfg = match &keys_file {
                    Some(f) => VerifierConfig {
                        key_files: vec![PathBuf::from(f)],
                        ..Default::default()
                    },
                    None => VerifierConfig {
                        key_dirs: inv
                            .value("keys-dir")
                            .map(PathBuf::from)
                            .into_iter()
                            .collect(),
                        system_fallback: true,
                        ..Default::default()
                    },
                };
                let v = registry().build_verifier(&ty, &cfg)?;
                let r = policy::verify_commit_with(&repo, &c, v.as_ref()).await?;
                r.require_valid()?;
                println!("{}", r.message);
                return Ok(());
            }
            bail!("No valid signatures found");
        }
        let mut secret_keys = keys.clone();
        if let Some(f) = &keys_file {
            secret_keys.extend(read_key_lines(f)?);
        }
        for k in &secret_keys {
            let signer = registry().build_signer(
                &ty,
                &SignerConfig {
                    key: k.clone(),
                    homedir: None,
                },
            )?;
            policy::sign_commit(&repo, &c, signer.as_ref())
                .await
                .context("Not able to sign the cobject")?;
        }
        Ok(())
    })
}

/// Remove the signatures of type `ty` that any of `keys` (public keys) verifies; beyond
/// ostree, whose `sign --delete` is accepted but does nothing.
async fn delete_signatures(
    repo: &Repo,
    c: &Checksum,
    ty: &str,
    keys: &[String],
) -> anyhow::Result<usize> {
    let Some(mut md) = repo.read_commit_detached_metadata(c).await? else {
        return Ok(0);
    };
    let plugin = registry().signer_plugin(ty)?;
    let Some(sigs) = ostree_core::sign::signatures_in(&md, plugin.metadata_key) else {
        return Ok(0);
    };
    let data = repo.load_meta(ostree_core::ObjectType::Commit, c).await?;
    let v = registry().build_verifier(
        ty,
        &VerifierConfig {
            keys: keys.to_vec(),
            ..Default::default()
        },
    )?;
    let mut keep = Vec::new();
    let mut n = 0;
    for s in sigs {
        let valid = v
            .verify(&data, std::slice::from_ref(&s))
            .is_ok_and(|r| r.is_valid());
        if valid {
            n += 1;
        } else {
            keep.push(s);
        }
    }
    ostree_core::sign::set_signatures(&mut md, plugin.metadata_key, &keep);
    repo.write_commit_detached_metadata(c, Some(&md)).await?;
    Ok(n)
}

/// The GPG block `ostree show` prints after a commit (`Found N signature(s):`), empty when
/// the commit has no GPG signature.
pub async fn show_signatures(
    repo: &Repo,
    c: &Checksum,
    homedir: Option<&str>,
    remote: Option<&str>,
) -> anyhow::Result<String> {
    let report = policy::verify_commit_gpg(repo, c, remote, homedir.map(Path::new), None).await?;
    Ok(report
        .map(|r| ostree_core::sign::describe_report(&r))
        .unwrap_or_default())
}

/// Import GPG keys into remote `name`'s keyring (`<repo>/NAME.trustedkeys.gpg`); returns how
/// many keys were new.
pub async fn import_keys(
    repo: &Repo,
    dir: &RemotesDir,
    name: &str,
    data: &[u8],
    key_ids: &[String],
) -> anyhow::Result<usize> {
    let remote = repo.remote(dir, name).await?;
    let tool = registry()
        .signer_plugin(GPG)?
        .keyring
        .ok_or_else(|| anyhow::anyhow!("GPG feature is disabled in a build time"))?(
    );
    let file = remote.keyring();
    let existing = repo.store().read_file(&file).await?.unwrap_or_default();
    let (merged, n) = tool
        .import(&existing, data, key_ids)
        .map_err(|e| anyhow::anyhow!("GPG: {e}"))?;
    repo.store()
        .write_file(&file, bytes::Bytes::from(merged))
        .await?;
    Ok(n)
}

/// `ostree remote gpg-import NAME [KEY-ID...]` (`--keyring/-k FILE`, `--stdin`).
pub fn remote_gpg_import(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let dir = RemotesDir::detect(&repo);
        let args = inv.positionals();
        if args.is_empty() {
            return Err(inv.usage_error("NAME must be specified"));
        }
        let keyrings = inv.values("keyring");
        if inv.flag("stdin") && !keyrings.is_empty() {
            return Err(inv.usage_error("--keyring and --stdin are mutually exclusive"));
        }
        let mut data = Vec::new();
        if inv.flag("stdin") {
            std::io::stdin().read_to_end(&mut data)?;
        } else {
            for k in keyrings {
                data.extend(std::fs::read(k).with_context(|| format!("opening {k}"))?);
            }
        }
        let name = &args[0];
        let n = import_keys(&repo, &dir, name, &data, &args[1..]).await?;
        println!(
            "Imported {n} GPG key{} to remote \"{name}\"",
            if n == 1 { "" } else { "s" }
        );
        Ok(())
    })
}

fn print_key(k: &KeyInfo, out: &mut String) {
    let date = |t: i64| format_local_time(t).unwrap_or_else(|| format!("Invalid timestamp: {t}"));
    out.push_str(&format!(
        "Key: {}{}\n  Created: {}\n",
        k.fingerprint,
        if k.revoked { " (revoked)" } else { "" },
        date(k.created)
    ));
    if k.expires > 0 {
        out.push_str(&format!(
            "  {}: {}\n",
            if k.expired { "Expired" } else { "Expires" },
            date(k.expires)
        ));
    }
    for u in &k.uids {
        out.push_str(&format!(
            "  UID: {}{}\n  Advanced update URL: {}\n  Direct update URL: {}\n",
            u.uid,
            if u.revoked { " (revoked)" } else { "" },
            u.advanced_url.as_deref().unwrap_or(""),
            u.direct_url.as_deref().unwrap_or("")
        ));
    }
    for s in &k.subkeys {
        out.push_str(&format!(
            "  Subkey: {}{}\n    Created: {}\n",
            s.fingerprint,
            if s.revoked { " (revoked)" } else { "" },
            date(s.created)
        ));
        if s.expires > 0 {
            out.push_str(&format!(
                "    {}: {}\n",
                if s.expired { "Expired" } else { "Expires" },
                date(s.expires)
            ));
        }
    }
}

/// `ostree remote gpg-list-keys [NAME]`: the remote's keys (its keyring and `gpgkeypath=`),
/// or without a name the global keyring directory's.
pub fn remote_gpg_list_keys(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let dir = RemotesDir::detect(&repo);
        let mut cfg = VerifierConfig::default();
        match inv.positionals().first() {
            Some(name) => {
                let remote = repo.remote(&dir, name).await?;
                if let Some(d) = policy::find_remote_keyring(&repo, &dir, &remote).await? {
                    cfg.key_data.push(d.to_vec());
                }
                if let Some(v) = remote.get("gpgkeypath") {
                    let scoped = policy::gpg_verifier_config(
                        &repo,
                        &dir,
                        policy::GpgScope::Remote(name),
                        None,
                        None,
                    )
                    .await?;
                    cfg.key_files = scoped.key_files;
                    let _ = v;
                }
            }
            None => {
                if let Some(g) = policy::global_gpg_dir() {
                    cfg.key_dirs.push(g);
                }
            }
        }
        let mut data = Vec::new();
        for d in &cfg.key_data {
            data.extend_from_slice(d);
        }
        for f in &cfg.key_files {
            data.extend(std::fs::read(f).with_context(|| format!("opening {}", f.display()))?);
        }
        for d in &cfg.key_dirs {
            if let Ok(rd) = std::fs::read_dir(d) {
                let mut files: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                        p.is_file()
                            && n.ends_with(".gpg")
                            && n != "trustdb.gpg"
                            && n != "secring.gpg"
                    })
                    .collect();
                files.sort();
                for f in files {
                    data.extend(std::fs::read(&f)?);
                }
            }
        }
        let tool = registry()
            .signer_plugin(GPG)?
            .keyring
            .ok_or_else(|| anyhow::anyhow!("GPG feature is disabled in a build time"))?(
        );
        let keys = tool.list(&data, &[])?;
        let mut out = String::new();
        for k in &keys {
            print_key(k, &mut out);
        }
        print!("{out}");
        Ok(())
    })
}

/// What `ostree remote summary` prints after the summary for a remote with
/// `gpg-verify-summary=true`: a blank line and `GPG: Verification enabled, found N
/// signature(s):` with each signature described. Empty otherwise.
pub async fn remote_summary_signatures(
    repo: &Repo,
    dir: &RemotesDir,
    name: &str,
    summary: &[u8],
    sig: Option<&[u8]>,
) -> anyhow::Result<String> {
    let remote = repo.remote(dir, name).await?;
    let Some(sig) = sig else {
        return Ok(String::new());
    };
    if !remote.get_bool("gpg-verify-summary", false)? {
        return Ok(String::new());
    }
    let cfg =
        policy::gpg_verifier_config(repo, dir, policy::GpgScope::Remote(name), None, None).await?;
    let v = registry().build_verifier(GPG, &cfg)?;
    let md = ostree_core::sign::parse_signature_metadata(sig);
    let r = policy::gpg_verify_metadata(v.as_ref(), summary, Some(&md))?;
    let n = r.signatures.len();
    let mut s = format!(
        "\nGPG: Verification enabled, found {n} signature{}:\n",
        if n == 1 { "" } else { "s" }
    );
    for sig in &r.signatures {
        s.push('\n');
        s.push_str(&ostree_core::sign::describe_signature(sig, "  "));
    }
    Ok(s)
}

/// What `ostree pull` prints for each GPG-verified commit (its `gpg-verify-result` handler).
pub fn pull_gpg_results(stats: &ostree_core::pull::PullStats) -> String {
    let mut s = String::new();
    for (_, r) in &stats.gpg_reports {
        let n = r.signatures.len();
        s.push_str(&format!(
            "\nGPG: Verification enabled, found {n} signature{}:\n",
            if n == 1 { "" } else { "s" }
        ));
        for sig in &r.signatures {
            s.push('\n');
            s.push_str(&ostree_core::sign::describe_signature(sig, "  "));
        }
    }
    s
}

/// The signers of `static-delta generate --sign=KEY… [--keys-file=FILE] [--sign-type]`.
pub fn delta_signers(
    inv: &Invocation,
) -> anyhow::Result<Vec<std::sync::Arc<dyn ostree_core::sign::Signer>>> {
    let mut keys: Vec<String> = inv.values("sign").iter().map(|s| s.to_string()).collect();
    if let Some(f) = inv.value("keys-file") {
        keys.extend(read_key_lines(f)?.into_iter().filter(|l| !l.is_empty()));
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let ty = sign_type(inv);
    let mut out: Vec<std::sync::Arc<dyn ostree_core::sign::Signer>> = Vec::new();
    for k in keys {
        let s = registry()
            .build_signer(
                &ty,
                &SignerConfig {
                    key: k,
                    homedir: None,
                },
            )
            .map_err(|e| anyhow::anyhow!("Signing type {ty} is not supported: {e}"))?;
        out.push(s.into());
    }
    Ok(out)
}

/// The verifier of `static-delta verify/apply-offline [--sign-type] [--keys-file]
/// [--keys-dir] KEY…`; `None` when no key was given and none could be loaded from the system
/// files (`apply-offline` then has no signature engine, as in ostree).
pub fn delta_verifier(
    inv: &Invocation,
    keys: &[String],
) -> anyhow::Result<Option<Box<dyn ostree_core::sign::Verifier>>> {
    let ty = sign_type(inv);
    registry()
        .signer_plugin(&ty)
        .map_err(|_| anyhow::anyhow!("Signing type {ty} is not supported"))?;
    let keys_file = inv.value("keys-file");
    let keys_dir = inv.value("keys-dir");
    let mut cfg = VerifierConfig {
        keys: keys.to_vec(),
        ..Default::default()
    };
    let from_files = keys.is_empty() || keys_file.is_some();
    if from_files {
        match keys_file {
            Some(f) => cfg.key_files.push(PathBuf::from(f)),
            None => {
                cfg.key_dirs.extend(keys_dir.map(PathBuf::from));
                cfg.system_fallback = true;
            }
        }
    }
    let v = registry().build_verifier(&ty, &cfg);
    let v = match v {
        Ok(v) => v,
        Err(e) if from_files && keys_file.is_none() && keys_dir.is_none() => {
            let _ = e;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    // A verifier that loaded no key at all reports it on first use.
    if from_files && keys.is_empty() && keys_file.is_none() && keys_dir.is_none() {
        let probe = v.verify(b"", &[]);
        if probe.is_err() {
            return Ok(None);
        }
    }
    Ok(Some(v))
}

/// The raw superblock file of a delta given as `FROM-TO`/`TO` (in the repository) or as a
/// path (a delta directory or its superblock file).
pub async fn delta_superblock_bytes(repo: &Repo, id: &str) -> anyhow::Result<Vec<u8>> {
    if id.contains('/') {
        let p = Path::new(id);
        let f = if p.is_dir() {
            p.join("superblock")
        } else {
            p.to_path_buf()
        };
        return std::fs::read(&f).with_context(|| format!("openat({})", f.display()));
    }
    let name = ostree_core::delta::format::DeltaName::parse(id)?;
    Ok(repo
        .store()
        .read_file(&name.superblock_path())
        .await?
        .ok_or_else(|| anyhow::anyhow!("No such delta {id}"))?
        .to_vec())
}
