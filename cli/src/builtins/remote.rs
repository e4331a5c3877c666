//! `ostree remote …`: add, delete, list, show-url, refs, summary, cookies, gpg keys.

use std::path::PathBuf;

use anyhow::bail;
use futures::future::BoxFuture;
use ostree_core::pull::PullOptions;
use ostree_core::repo::Repo;
use ostree_core::repo::remote::{
    RemoteChange, RemoteValue, RemotesDir, cookie_jar_line, format_utc, parse_cookie_jar,
};
use ostree_core::store::OpenOptions;

use super::open_repo;
use crate::opts::Invocation;

/// The repository and its remotes directory: `--sysroot` (its `ostree/repo`) or `--repo`.
async fn repo_and_dir(inv: &Invocation) -> anyhow::Result<(Repo, RemotesDir)> {
    if inv.repo().is_none()
        && let Some(sysroot) = inv.sysroot_arg()
    {
        let path = sysroot.join("ostree/repo");
        let url = ostree_core::registry::repo_url(&path.to_string_lossy())?;
        let repo = Repo::open(&url, OpenOptions::default()).await?;
        return Ok((repo, RemotesDir::for_sysroot(sysroot)));
    }
    let repo = open_repo(inv).await?;
    let dir = RemotesDir::detect(&repo);
    Ok((repo, dir))
}

/// `ostree remote add`.
pub fn remote_add(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let (repo, dir) = repo_and_dir(&inv).await?;
        let args = inv.positionals();
        let custom = inv.value("custom-backend");
        let (name, url) = if custom.is_some() {
            if args.is_empty() {
                return Err(inv.usage_error("NAME must be specified"));
            }
            (args[0].clone(), args.get(1).cloned())
        } else {
            if args.len() < 2 {
                return Err(inv.usage_error("NAME and URL must be specified"));
            }
            (args[0].clone(), Some(args[1].clone()))
        };
        if inv.flag("if-not-exists") && inv.flag("force") {
            return Err(inv.usage_error("Can only specify one of --if-not-exists and --force"));
        }
        let mut opts: Vec<(String, RemoteValue)> = Vec::new();
        let mut push = |k: &str, v: RemoteValue| {
            // GVariant a{sv} lookups see the first; keyfile writes keep the first position
            // and the last value.
            opts.push((k.to_string(), v));
        };
        if args.len() > 2 {
            push("branches", RemoteValue::List(args[2..].to_vec()));
        }
        if let Some(c) = inv.value("contenturl") {
            push("contenturl", RemoteValue::Str(c.to_string()));
        }
        if let Some(c) = custom {
            push("custom-backend", RemoteValue::Str(c.to_string()));
        }
        for kv in inv.values("set") {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("Missing '=' in KEY=VALUE for --set");
            };
            push(k, RemoteValue::Str(v.to_string()));
        }
        let no_sign = inv.flag("no-sign-verify");
        if inv.flag("no-gpg-verify") || no_sign {
            push("gpg-verify", RemoteValue::Bool(false));
        }
        let sign_verify = inv.values("sign-verify");
        if no_sign {
            if !sign_verify.is_empty() {
                bail!("Cannot specify both --sign-verify and --no-sign-verify");
            }
            push("sign-verify", RemoteValue::Bool(false));
        }
        let mut types = Vec::new();
        for spec in &sign_verify {
            let Some((keytype, rest)) = spec.split_once('=') else {
                bail!("Failed to parse KEYTYPE=[inline|file]:DATA in {spec}");
            };
            if keytype == "gpg"
                || ostree_core::registry::Registry::global()
                    .signer_plugin(keytype)
                    .is_err()
            {
                bail!("Requested signature type is not implemented");
            }
            let (keyref, data) = rest.split_once(':').unwrap_or((rest, ""));
            let opt = match keyref {
                "inline" => format!("verification-{keytype}-key"),
                "file" => format!("verification-{keytype}-file"),
                _ => bail!("Invalid key reference {keyref}, expected inline|file"),
            };
            push(&opt, RemoteValue::Str(data.to_string()));
            types.push(keytype.to_string());
        }
        if !types.is_empty() {
            push("sign-verify", RemoteValue::Str(types.join(",")));
        }
        if let Some(cid) = inv.value("collection-id") {
            push("collection-id", RemoteValue::Str(cid.to_string()));
        }
        let change = if inv.flag("if-not-exists") {
            RemoteChange::AddIfNotExists
        } else if inv.flag("force") {
            RemoteChange::Replace
        } else {
            RemoteChange::Add
        };
        repo.remote_change(&dir, change, &name, url.as_deref(), &opts)
            .await?;
        if let Some(f) = inv.value("gpg-import") {
            let data = std::fs::read(f).map_err(|e| anyhow::anyhow!("opening {f}: {e}"))?;
            let n = crate::builtins::sign::import_keys(&repo, &dir, &name, &data, &[]).await?;
            println!(
                "Imported {n} GPG key{} to remote \"{name}\"",
                if n == 1 { "" } else { "s" }
            );
        }
        Ok(())
    })
}

/// `ostree remote delete`.
pub fn remote_delete(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let (repo, dir) = repo_and_dir(&inv).await?;
        let args = inv.positionals();
        if args.is_empty() {
            return Err(inv.usage_error("NAME must be specified"));
        }
        let change = if inv.flag("if-exists") {
            RemoteChange::DeleteIfExists
        } else {
            RemoteChange::Delete
        };
        repo.remote_change(&dir, change, &args[0], None, &[])
            .await?;
        Ok(())
    })
}

/// `ostree remote list`.
pub fn remote_list(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let (repo, dir) = repo_and_dir(&inv).await?;
        let names = repo.remote_list(&dir).await?;
        if inv.flag("show-urls") {
            let w = names.iter().map(|n| n.len()).max().unwrap_or(0);
            for n in &names {
                let url = repo.remote(&dir, n).await?.url()?;
                println!("{n:<w$}  {url}");
            }
        } else {
            for n in &names {
                println!("{n}");
            }
        }
        Ok(())
    })
}

/// `ostree remote show-url`.
pub fn remote_show_url(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let (repo, dir) = repo_and_dir(&inv).await?;
        let args = inv.positionals();
        if args.is_empty() {
            return Err(inv.usage_error("NAME must be specified"));
        }
        let url = repo.remote(&dir, &args[0]).await?.url()?;
        println!("{url}");
        Ok(())
    })
}

fn pull_opts_for(inv: &Invocation, dir: RemotesDir) -> PullOptions {
    let _ = inv;
    PullOptions {
        remotes_dir: dir,
        cache_dir: inv.value("cache-dir").map(PathBuf::from),
        ..PullOptions::default()
    }
}

/// `ostree remote refs`.
pub fn remote_refs(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let (repo, dir) = repo_and_dir(&inv).await?;
        let args = inv.positionals();
        if args.is_empty() {
            return Err(inv.usage_error("NAME must be specified"));
        }
        let name = &args[0];
        let opts = pull_opts_for(&inv, dir);
        let summary = ostree_core::pull::remote_refs(&repo, name, &opts).await?;
        for r in summary.refs.keys() {
            println!("{name}:{r}");
        }
        Ok(())
    })
}

/// `ostree remote summary`.
pub fn remote_summary(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let (repo, dir) = repo_and_dir(&inv).await?;
        let args = inv.positionals();
        if args.is_empty() {
            return Err(inv.usage_error("NAME must be specified"));
        }
        let name = &args[0];
        let opts = pull_opts_for(&inv, dir);
        let (summary, sig) = ostree_core::pull::remote_summary_bytes(&repo, name, &opts).await?;
        let Some(summary) = summary else {
            bail!("Remote refs not available; server has no summary file");
        };
        let ty =
            ostree_core::gvariant::VariantType::parse(ostree_core::pull::summary::SUMMARY_FORMAT)?;
        let v = ostree_core::gvariant::Variant::from_bytes(&ty, &summary)?;
        if inv.flag("raw") {
            println!("{}", ostree_core::gvariant::text::print(&v, false));
            return Ok(());
        }
        // ostree's dump (`ot_dump_summary_bytes`), shared with `summary --view`.
        let parsed = ostree_core::repo::summary::Summary::from_bytes(&summary)?;
        print!("{}", super::summary::view_text(&parsed)?);
        let dir = RemotesDir::detect(&repo);
        print!(
            "{}",
            super::sign::remote_summary_signatures(&repo, &dir, name, &summary, sig.as_deref())
                .await?
        );
        Ok(())
    })
}

fn jar(name: &str) -> String {
    format!("{name}.cookies.txt")
}

fn repo_root(repo: &Repo) -> anyhow::Result<PathBuf> {
    match repo.store().local_root() {
        Some(p) => Ok(p.to_path_buf()),
        None => bail!("cookies need a local repository"),
    }
}

/// `ostree remote add-cookie`.
pub fn remote_add_cookie(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let a = inv.positionals();
        if a.len() < 5 {
            return Err(
                inv.usage_error("NAME, DOMAIN, PATH, COOKIE_NAME and VALUE must be specified")
            );
        }
        let path = repo_root(&repo)?.join(jar(&a[0]));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let line = cookie_jar_line(&a[1], &a[2], &a[3], &a[4], now);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("open({}): {e}", jar(&a[0])))?;
        f.write_all(line.as_bytes())
            .map_err(|e| anyhow::anyhow!("write: {e}"))?;
        Ok(())
    })
}

/// `ostree remote delete-cookie`.
pub fn remote_delete_cookie(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let a = inv.positionals();
        if a.len() < 4 {
            return Err(inv.usage_error("NAME, DOMAIN, PATH and COOKIE_NAME must be specified"));
        }
        let path = repo_root(&repo)?.join(jar(&a[0]));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => bail!("{e}"),
        };
        let mut found = false;
        let mut out = String::new();
        for c in parse_cookie_jar(&text) {
            if c.domain == a[1] && c.path == a[2] && c.name == a[3] {
                found = true;
                continue;
            }
            out.push_str(&c.line);
            out.push('\n');
        }
        let tmp = path.with_extension("txt.tmp");
        std::fs::write(&tmp, out)?;
        std::fs::rename(&tmp, &path)?;
        if !found {
            bail!("Cookie not found in jar");
        }
        Ok(())
    })
}

/// `ostree remote list-cookies` (reads `NAME.cookies.txt` relative to the current directory,
/// exactly as ostree 2022.7 does).
pub fn remote_list_cookies(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let _repo = open_repo(&inv).await?;
        let a = inv.positionals();
        if a.is_empty() {
            return Err(inv.usage_error("NAME must be specified"));
        }
        let text = match std::fs::read_to_string(jar(&a[0])) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => bail!("{e}"),
        };
        for c in parse_cookie_jar(&text) {
            println!("--");
            println!("Domain: {}", c.domain);
            println!("Path: {}", c.path);
            println!("Name: {}", c.name);
            println!("Secure: {}", c.secure);
            println!("Expires: {}", format_utc(c.expiration));
            println!("Value: {}", c.value);
        }
        Ok(())
    })
}
