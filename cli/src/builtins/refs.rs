//! `ostree refs` (listing, --delete, --create, --alias, --collections) and `ostree reset`.

use anyhow::bail;
use futures::future::BoxFuture;
use ostree_core::repo::Repo;
use ostree_core::repo::refs::{
    CollectionRef, CollectionRefFilter, parse_refspec, validate_collection_id, validate_ref_name,
};

use super::{open_repo, resolve};
use crate::opts::Invocation;

struct RefsOpts {
    delete: bool,
    list: bool,
    alias: bool,
    create: Option<String>,
    collections: bool,
    force: bool,
}

fn print_lines(lines: impl IntoIterator<Item = String>) {
    let mut out = String::new();
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    crate::opts::print_text(&out);
}

async fn do_ref_with_collections(
    repo: &Repo,
    prefix: Option<&str>,
    o: &RefsOpts,
) -> anyhow::Result<()> {
    let refs = repo
        .list_collection_refs(
            if o.create.is_none() { prefix } else { None },
            CollectionRefFilter::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("Listing refs: {e}"))?;
    if let Some(create) = &o.create {
        let existing = repo.resolve_rev_ext(create, true, false).await?;
        if !o.force && existing.is_some() {
            bail!("--create specified but ref {create} already exists");
        }
        let Some(rev) = prefix else {
            bail!("You must specify a revision when creating a new ref");
        };
        let checksum = resolve(repo, rev).await?;
        // ostree splits NEWREF at the first ':' as if the collection ID were a remote.
        let Some((collection_id, ref_name)) = create.split_once(':') else {
            bail!("Invalid collection–ref {create}: expected COLLECTION-ID:REF");
        };
        validate_collection_id(collection_id)?;
        validate_ref_name(ref_name)?;
        repo.set_collection_ref(&CollectionRef::new(collection_id, ref_name), Some(checksum))
            .await?;
    } else if o.delete {
        for cref in refs.keys() {
            repo.set_collection_ref(cref, None).await?;
        }
    } else {
        print_lines(
            refs.keys()
                .map(|r| format!("({}, {})", r.collection_id, r.ref_name)),
        );
    }
    Ok(())
}

async fn do_ref(repo: &Repo, prefix: Option<&str>, o: &RefsOpts) -> anyhow::Result<()> {
    if o.collections {
        return do_ref_with_collections(repo, prefix, o).await;
    }
    let all_aliases = if o.alias || o.delete {
        repo.list_ref_aliases(None).await?
    } else {
        Default::default()
    };
    let is_list = !(o.delete || o.create.is_some());
    if is_list && o.alias {
        let aliases = repo.list_ref_aliases(prefix).await?;
        print_lines(aliases.iter().map(|(k, v)| format!("{k} -> {v}")));
        return Ok(());
    }
    let refs = if o.delete || o.list {
        repo.list_refs_ext(prefix, false, false).await?
    } else if o.create.is_some() {
        repo.list_refs_ext(None, false, false).await?
    } else {
        repo.list_refs_ext(prefix, true, false).await?
    };
    if is_list {
        print_lines(refs.into_keys());
    } else if let Some(create) = &o.create {
        let existing = repo.resolve_rev_ext(create, true, false).await?;
        let replacing_alias = o.alias && all_aliases.contains_key(create);
        if !replacing_alias && !o.force && existing.is_some() {
            bail!("--create specified but ref {create} already exists");
        }
        let (remote, name) = parse_refspec(create)?;
        let Some(target) = prefix else {
            bail!("You must specify a revision when creating a new ref");
        };
        if o.alias {
            if let Some(r) = remote {
                bail!("Cannot create alias to remote ref: {r}");
            }
            if !refs.contains_key(target) {
                bail!("Cannot create alias to non-existent ref: {target}");
            }
            repo.set_ref_alias(&name, target).await?;
        } else {
            let checksum = resolve(repo, target).await?;
            repo.set_ref(remote.as_deref(), &name, Some(checksum))
                .await?;
        }
    } else {
        for refspec in refs.keys() {
            let (remote, name) = parse_refspec(refspec)?;
            for (alias, target) in &all_aliases {
                if *target == name {
                    bail!("Ref '{name}' has an active alias: '{alias}'");
                }
            }
            repo.set_ref(remote.as_deref(), &name, None).await?;
        }
    }
    Ok(())
}

/// `ostree refs`.
pub fn refs(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let o = RefsOpts {
            delete: inv.flag("delete"),
            list: inv.flag("list"),
            alias: inv.flag("alias"),
            create: inv.value("create").map(str::to_string),
            collections: inv.flag("collections"),
            force: inv.flag("force"),
        };
        let args: Vec<String> = inv.positionals().to_vec();
        if !args.is_empty() {
            if o.create.is_some() && args.len() > 1 {
                bail!("You must specify only 1 existing ref when creating a new ref");
            }
            for a in &args {
                do_ref(&repo, Some(a), &o).await?;
            }
        } else {
            if o.delete {
                bail!("At least one PREFIX is required when deleting refs");
            }
            if o.create.is_some() {
                bail!("You must specify a revision when creating a new ref");
            }
            do_ref(&repo, None, &o).await?;
        }
        Ok(())
    })
}

/// `ostree reset REF COMMIT`.
pub fn reset(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let args = inv.positionals().to_vec();
        if args.len() < 2 {
            return Err(inv.usage_error("A REF and COMMIT argument is required"));
        }
        let (r, target) = (&args[0], &args[1]);
        let known = repo.list_refs_ext(None, true, false).await?;
        if !known.contains_key(r.as_str()) {
            bail!("Invalid ref '{r}'");
        }
        let checksum = resolve(&repo, target).await?;
        let (remote, name) = parse_refspec(r)?;
        let _lock = repo.lock(false).await?;
        repo.set_ref(remote.as_deref(), &name, Some(checksum))
            .await?;
        Ok(())
    })
}
