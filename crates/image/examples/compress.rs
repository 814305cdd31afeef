//! Writes a directory tree as one gzip layer with oxbuild's layer writer, for
//! the compression benchmark in scripts/bench: `compress DIR OUT`.

use std::path::Path;

use oxbuild_image::{BlobStore, LayerBuilder, Owner};

fn add(layer: &mut LayerBuilder, root: &Path, dir: &Path) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("readable directory").filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        let rel = path.strip_prefix(root).expect("below the root").to_string_lossy().into_owned();
        let ft = e.file_type().expect("a file type");
        if ft.is_dir() {
            layer.dir(&rel, Owner::ROOT, 0o755);
            add(layer, root, &path);
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).expect("a link target");
            layer.symlink(&rel, &target.to_string_lossy(), Owner::ROOT);
        } else if ft.is_file() {
            layer.file(&rel, &path, Owner::ROOT, 0o644);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, out) = match args.as_slice() {
        [_, dir, out] => (Path::new(dir), Path::new(out)),
        _ => {
            eprintln!("usage: compress DIR OUT");
            std::process::exit(2);
        }
    };
    let mut layer = LayerBuilder::new(0, Owner::ROOT);
    add(&mut layer, dir, dir);
    let store_dir = out.with_extension("store");
    let store = BlobStore::open(&store_dir).expect("a store");
    let blob = layer.write_gzip(&store).expect("the layer is written");
    std::fs::rename(&blob.path, out).expect("moved into place");
    println!("{} {} bytes", blob.digest, blob.size);
}
