//! Leases between writers and prune on object storage (`ostree_core::lease`), with several
//! handles over one in-memory bucket standing for clients on different machines: a writer
//! waits for a live prune, a prune keeps what live leases rely on (everything for an
//! undeclared lease; the declared objects and everything newer than the lease for a declared
//! one), and a holder paused past its ttl cannot publish any more.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;
use ostree_backend_object_store::ObjectStorageBuilder;
use ostree_core::lease::{self, LEASE_DIR, LeaseDecl, Role};
use ostree_core::push::{PENDING_DIR, encode_manifest};
use ostree_core::repo::Repo;
use ostree_core::repo::prune::PruneOptions;
use ostree_core::store::{ObjectWrite, OpenOptions, RefExpect, RepoMode};
use ostree_core::{Checksum, Error, ObjectKey, ObjectType};
use url::Url;

async fn client(bucket: &Arc<InMemory>, ttl: Duration) -> Repo {
    let create = OpenOptions {
        create: Some(RepoMode::Archive),
        ..Default::default()
    };
    let store = ObjectStorageBuilder::new(bucket.clone(), "repo")
        .expect("valid prefix")
        .with_lease_ttl(ttl)
        .open(create)
        .await
        .expect("open");
    Repo::from_store(
        Arc::new(store),
        Url::parse("memory:///repo").expect("static URL"),
    )
    .await
    .expect("repo")
}

fn key(n: u8, ty: ObjectType) -> ObjectKey {
    ObjectKey::new(Checksum([n; 32]), ty)
}

/// Unreferenced metadata objects (prune deletes what no ref reaches; it never reads them).
async fn put_junk(repo: &Repo, ns: &[u8]) {
    for n in ns {
        repo.store()
            .put(
                &key(*n, ObjectType::DirMeta),
                ObjectWrite::Meta(Bytes::from(vec![*n; 8])),
            )
            .await
            .expect("put");
    }
}

async fn has(repo: &Repo, n: u8) -> bool {
    repo.store()
        .has(&key(n, ObjectType::DirMeta))
        .await
        .expect("has")
}

async fn prune(repo: &Repo) -> ostree_core::repo::prune::PruneStats {
    let _lock = repo.lock(true).await.expect("prune lock");
    let opts = PruneOptions {
        refs_only: true,
        ..Default::default()
    };
    repo.prune(&opts).await.expect("prune")
}

async fn lease_files(repo: &Repo) -> Vec<String> {
    repo.store()
        .list_files(&format!("{LEASE_DIR}/"))
        .await
        .expect("list leases")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waits_for_a_running_prune() {
    let bucket = Arc::new(InMemory::new());
    let (pruner, writer) = (
        client(&bucket, Duration::from_secs(8)).await,
        client(&bucket, Duration::from_secs(8)).await,
    );
    let marker = pruner.lock(true).await.expect("prune marker");
    assert_eq!(lease_files(&pruner).await.len(), 1);
    let w = writer.clone();
    let waiting = tokio::spawn(async move { w.lock(false).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "the writer did not wait for the prune"
    );
    drop(marker);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the writer proceeds once the prune is done")
        .expect("task")
        .expect("lease");
    // Every lease and marker is gone once released.
    assert!(lease_files(&writer).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_prune_does_not_block_writers() {
    let bucket = Arc::new(InMemory::new());
    let (pruner, writer) = (
        client(&bucket, Duration::from_secs(60)).await,
        client(&bucket, Duration::from_secs(60)).await,
    );
    // A prune marker nobody renews (its process died): writers wait out its ttl, no more.
    pruner
        .store()
        .write_file(
            &format!("{LEASE_DIR}/p-dead.start"),
            Bytes::from_static(b"[lease]\nrole=prune\nttl=2\n"),
        )
        .await
        .expect("dead marker");
    let started = std::time::Instant::now();
    let _w = tokio::time::timeout(Duration::from_secs(20), writer.lock(false))
        .await
        .expect("a dead prune is waited out")
        .expect("lease");
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_everything_for_an_undeclared_writer() {
    let bucket = Arc::new(InMemory::new());
    let (pruner, writer) = (
        client(&bucket, Duration::from_secs(30)).await,
        client(&bucket, Duration::from_secs(30)).await,
    );
    put_junk(&writer, &[1, 2, 3]).await;
    let held = writer.lock(false).await.expect("writer lease");
    let stats = prune(&pruner).await;
    assert_eq!((stats.objects_pruned, stats.objects_kept), (0, 3));
    assert!(has(&pruner, 1).await);
    drop(held);
    let stats = prune(&pruner).await;
    assert_eq!((stats.objects_pruned, stats.objects_kept), (3, 0));
    assert!(!has(&pruner, 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_what_a_declared_lease_names_and_what_is_newer() {
    let bucket = Arc::new(InMemory::new());
    let (pruner, writer) = (
        client(&bucket, Duration::from_secs(30)).await,
        client(&bucket, Duration::from_secs(30)).await,
    );
    put_junk(&writer, &[1, 2]).await;
    // Store times are compared with 2 s of slack: be clearly older than the lease.
    tokio::time::sleep(lease::CLOCK_SLACK + Duration::from_millis(1500)).await;
    let pending = Checksum([9; 32]);
    let manifest: std::collections::BTreeSet<ObjectKey> =
        [key(1, ObjectType::DirMeta)].into_iter().collect();
    writer
        .store()
        .write_file(
            &format!("{PENDING_DIR}/{pending}"),
            Bytes::from(encode_manifest(&manifest)),
        )
        .await
        .expect("pending manifest");
    let t = writer.store().lease_table().expect("leases");
    let held = lease::acquire(
        writer.store().clone(),
        &t,
        Role::Writer,
        LeaseDecl::declared("push", vec![], vec![pending]),
    )
    .await
    .expect("declared lease");
    put_junk(&writer, &[3]).await;
    let stats = prune(&pruner).await;
    // 2: old and undeclared; 1: declared; 3: written under the lease.
    assert_eq!((stats.objects_pruned, stats.objects_kept), (1, 2));
    assert!(has(&pruner, 1).await && !has(&pruner, 2).await && has(&pruner, 3).await);
    drop(held);
    let stats = prune(&pruner).await;
    assert_eq!(stats.objects_pruned, 2);
}

#[test]
fn a_writer_paused_past_its_ttl_cannot_publish() {
    // A current-thread runtime stands for the paused process: while its thread sleeps,
    // nothing (the heartbeat included) runs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let bucket = Arc::new(InMemory::new());
        let (pruner, writer) = (
            client(&bucket, Duration::from_secs(60)).await,
            client(&bucket, Duration::from_secs(2)).await,
        );
        put_junk(&writer, &[1]).await;
        let held = writer.lock(false).await.expect("lease");
        let commit = key(7, ObjectType::Commit);
        std::thread::sleep(Duration::from_secs(5));
        // Meanwhile (store clock) the lease expired: a prune ignores it.
        let stats = prune(&pruner).await;
        assert_eq!(stats.objects_pruned, 1);
        // Resumed: the heartbeat must not revive it, and nothing can be published.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let e = writer
            .store()
            .put(&commit, ObjectWrite::Meta(Bytes::from_static(b"c")))
            .await
            .expect_err("a commit under an expired lease");
        assert!(matches!(e, Error::Precondition { .. }), "{e}");
        assert!(e.to_string().contains("expired"), "{e}");
        let e = writer
            .store()
            .update_ref("heads/main", RefExpect::Any, Some(Checksum([7; 32])))
            .await
            .expect_err("a ref under an expired lease");
        assert!(e.to_string().contains("expired"), "{e}");
        drop(held);
        // A new lease works again.
        let _again = writer.lock(false).await.expect("new lease");
        writer
            .store()
            .update_ref("heads/main", RefExpect::Any, Some(Checksum([7; 32])))
            .await
            .expect("ref under a live lease");
    });
}
