//! Rough throughput of FsStore puts (content from files, as commit does) and sync, per mode:
//! `cargo run --release -p ostree-backend-fs --example put_bench -- [FILES] [MODE...]`.
//! Hashing is done before timing (core's job); the numbers are the backend's share of a commit.

use std::sync::Arc;
use std::time::Instant;

use ostree_backend_fs::FsStore;
use ostree_core::objects::{FileMeta, S_IFREG, content_checksum};
use ostree_core::store::{ContentSource, ObjectStore, ObjectWrite, OpenOptions, RepoMode};
use ostree_core::{ObjectKey, ObjectType};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let modes: Vec<RepoMode> = if args.len() > 2 {
        args[2..].iter().map(|m| m.parse().expect("mode")).collect()
    } else {
        vec![
            RepoMode::Archive,
            RepoMode::BareUser,
            RepoMode::Bare,
            RepoMode::BareUserOnly,
        ]
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut seed = 0x9e3779b97f4a7c15u64;
    for i in 0..n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Mostly small files, some large: ~25 KB average.
        let size = if i % 50 == 0 {
            400_000
        } else {
            (seed % 30_000) as usize
        };
        let data: Vec<u8> = (0..size)
            .map(|j| ((j as u64).wrapping_mul(seed) >> 24) as u8 % 64 + 32)
            .collect();
        let p = src.join(format!("f{i}"));
        std::fs::write(&p, &data).expect("write");
        let meta = FileMeta {
            uid: 0,
            gid: 0,
            mode: S_IFREG | 0o644,
            symlink_target: None,
            xattrs: vec![],
        };
        let c = content_checksum(&meta, &data[..]).expect("hash");
        files.push((ObjectKey::new(c, ObjectType::File), meta, size as u64, p));
        total += size as u64;
    }
    println!("{n} files, {:.1} MB", total as f64 / 1e6);
    let files = Arc::new(files);
    for mode in modes {
        let repo = dir.path().join(format!("repo-{}", mode.name()));
        let store = Arc::new(
            FsStore::open(
                &repo,
                OpenOptions {
                    create: Some(mode),
                    fsync: None,
                },
            )
            .await
            .expect("create"),
        );
        let t0 = Instant::now();
        let workers = 2 * std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let mut tasks = Vec::new();
        for w in 0..workers {
            let store = store.clone();
            let files = files.clone();
            tasks.push(tokio::spawn(async move {
                for (key, meta, size, p) in files.iter().skip(w).step_by(workers) {
                    let wr = ObjectWrite::Content {
                        meta: meta.clone(),
                        size: *size,
                        source: ContentSource::Path(p.clone()),
                    };
                    store.put(key, wr).await.expect("put");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let t1 = Instant::now();
        store.sync().await.expect("sync");
        let t2 = Instant::now();
        println!(
            "{:15} put {:6.3}s  sync {:6.3}s  total {:6.3}s",
            mode.name(),
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t2 - t0).as_secs_f64()
        );
        // The real ostree committing the same tree (hashing included), for scale.
        if std::env::var_os("NO_OSTREE").is_some() {
            continue;
        }
        let orepo = dir.path().join(format!("ostree-{}", mode.name()));
        let st = std::process::Command::new("ostree")
            .arg(format!("--repo={}", orepo.display()))
            .args(["init", &format!("--mode={}", mode.name())])
            .status()
            .expect("ostree init");
        assert!(st.success());
        let t3 = Instant::now();
        let st = std::process::Command::new("ostree")
            .arg(format!("--repo={}", orepo.display()))
            .args(["commit", "-b", "x", "--owner-uid=0", "--owner-gid=0"])
            .arg(&src)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("ostree commit");
        if st.success() {
            println!(
                "{:15} ostree commit {:6.3}s",
                mode.name(),
                t3.elapsed().as_secs_f64()
            );
        }
    }
}
