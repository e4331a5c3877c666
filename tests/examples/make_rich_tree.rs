//! Write the interop tests' rich tree to a directory (for debugging differences by hand):
//! `cargo run -p ostree-tests --example make_rich_tree -- DIR [LARGE_MB]`.

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: make_rich_tree DIR [LARGE_MB]");
    let mb = args
        .next()
        .map(|s| s.parse().expect("LARGE_MB"))
        .unwrap_or(1);
    ostree_tests::fixtures::make_rich_tree(
        std::path::Path::new(&dir),
        mb,
        ostree_tests::bins::is_root(),
    );
}
