//! The non-root user: read the base's `/etc/passwd` and `/etc/group` from its
//! layers (never by running it), and add the user when it is missing.

use std::collections::BTreeMap;

use oxbuild_config::ImageConfig;
use oxbuild_image::rootfs::{self, Node, Want};
use oxbuild_image::{LayerBuilder, Owner};

use crate::Error;

const PASSWD: &str = "etc/passwd";
const GROUP: &str = "etc/group";

/// The user the image runs as, and the layer that creates it (if it must).
#[derive(Debug)]
pub struct UserPlan {
    /// Who the image runs as.
    pub owner: Owner,
    /// A layer adding the user, group and home, when the base lacks the user.
    pub layer: Option<LayerBuilder>,
}

/// What the user plan needs from a scan of the base's root filesystem.
pub fn wants(path: &str) -> Want {
    if path == PASSWD || path == GROUP { Want::Content } else { Want::Skip }
}

struct Line<'a> {
    name: &'a str,
    id: u32,
    gid: Option<u32>,
}

fn parse_db(text: &str, passwd: bool) -> Vec<Line<'_>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let id = f.get(2)?.parse().ok()?;
            let gid = if passwd { f.get(3).and_then(|g| g.parse().ok()) } else { None };
            Some(Line { name: f[0], id, gid })
        })
        .collect()
}

/// Decides the runtime user from the base's account files and the config.
pub fn plan(cfg: &ImageConfig, base: &BTreeMap<String, Node>, mtime: u64) -> Result<UserPlan, Error> {
    let text = |k: &str| rootfs::content(base, k).map(|b| String::from_utf8_lossy(b).into_owned());
    let passwd = text(PASSWD).unwrap_or_else(|| "root:x:0:0:root:/root:/usr/sbin/nologin\n".to_string());
    let group = text(GROUP).unwrap_or_else(|| "root:x:0:\n".to_string());
    let users = parse_db(&passwd, true);
    let groups = parse_db(&group, false);
    let name = cfg.user.as_str();

    if let Some(existing) = users.iter().find(|u| u.name == name) {
        let gid = existing.gid.unwrap_or(existing.id);
        if cfg.uid.is_some_and(|u| u != existing.id) || cfg.gid.is_some_and(|g| g != gid) {
            return Err(Error::Input(format!(
                "[image] user `{name}` already exists in the base image as {}:{gid}, but oxbuild.toml sets {}:{}; remove uid/gid or make them match",
                existing.id,
                cfg.uid(),
                cfg.gid()
            )));
        }
        if existing.id == 0 {
            return Err(Error::Input(format!(
                "[image] user `{name}` is root (uid 0) in the base image; choose another user"
            )));
        }
        return Ok(UserPlan { owner: Owner { uid: existing.id.into(), gid: gid.into() }, layer: None });
    }

    let (mut uid, mut gid) = (cfg.uid(), cfg.gid());
    // No uid set, and the default taken (the official Node images' `node`
    // is 1000): the first uid from there on that no user or group has.
    if cfg.uid.is_none() && users.iter().any(|u| u.id == uid) {
        let taken = |id: u32| users.iter().any(|u| u.id == id) || groups.iter().any(|g| g.id == id);
        uid = (uid..uid + 60_000).find(|id| !taken(*id)).unwrap_or(uid);
        if cfg.gid.is_none() {
            gid = uid;
        }
    }
    if let Some(other) = users.iter().find(|u| u.id == uid) {
        return Err(Error::Input(format!(
            "[image] uid {uid} already belongs to user `{}` in the base image; choose another uid, or set user = \"{}\"",
            other.name, other.name
        )));
    }
    let mut group_out = group.clone();
    if !groups.iter().any(|g| g.id == gid) {
        if let Some(clash) = groups.iter().find(|g| g.name == name) {
            return Err(Error::Input(format!(
                "[image] group `{name}` already exists in the base image with gid {}, but oxbuild.toml asks for gid {gid}; set gid = {}",
                clash.id, clash.id
            )));
        }
        ensure_newline(&mut group_out);
        group_out.push_str(&format!("{name}:x:{gid}:\n"));
    }
    let mut passwd_out = passwd.clone();
    ensure_newline(&mut passwd_out);
    passwd_out.push_str(&format!("{name}:x:{uid}:{gid}::/home/{name}:/usr/sbin/nologin\n"));

    let owner = Owner { uid: uid.into(), gid: gid.into() };
    let mut layer = LayerBuilder::new(mtime, Owner::ROOT);
    layer
        .bytes(PASSWD, passwd_out.into_bytes(), Owner::ROOT, 0o644)
        .bytes(GROUP, group_out.into_bytes(), Owner::ROOT, 0o644)
        .dir(&format!("home/{name}"), owner, 0o755);
    Ok(UserPlan { owner, layer: Some(layer) })
}

fn ensure_newline(s: &mut String) {
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn rootfs_with(files: &[(&str, &str)]) -> BTreeMap<String, Node> {
        files.iter().map(|(p, c)| (p.to_string(), Node::File(Some(c.as_bytes().to_vec())))).collect()
    }

    fn image_cfg(extra: &str) -> ImageConfig {
        let text = format!("[image]\nbase = \"x.io/b\"\n{extra}");
        oxbuild_config::Config::parse("t.toml".as_ref(), &text).unwrap().image
    }

    #[test]
    fn missing_user_is_added_with_its_group_and_home() {
        let base = rootfs_with(&[(PASSWD, "root:x:0:0::/root:/bin/sh"), (GROUP, "root:x:0:\n")]);
        let plan = plan(&image_cfg("uid = 1234\n"), &base, 0).unwrap();
        assert_eq!(plan.owner, Owner { uid: 1234, gid: 1234 });
        let tar = plan.layer.unwrap().write_tar(Vec::new()).unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        let mut passwd = String::new();
        let mut names = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            if p == PASSWD {
                e.read_to_string(&mut passwd).unwrap();
            }
            if p == "home/app/" {
                assert_eq!(e.header().uid().unwrap(), 1234);
            }
            names.push(p);
        }
        assert_eq!(passwd, "root:x:0:0::/root:/bin/sh\napp:x:1234:1234::/home/app:/usr/sbin/nologin\n");
        assert!(names.contains(&"home/app/".to_string()), "{names:?}");
    }

    #[test]
    fn existing_user_is_reused_and_conflicts_are_explained() {
        let base = rootfs_with(&[
            (PASSWD, "root:x:0:0::/root:/bin/sh\napp:x:2000:2000::/home/app:/bin/sh\nweb:x:1000:1000::/:/bin/sh\n"),
            (GROUP, "root:x:0:\n"),
        ]);
        let reused = plan(&image_cfg(""), &base, 0).unwrap();
        assert_eq!(reused.owner, Owner { uid: 2000, gid: 2000 });
        assert!(reused.layer.is_none());
        let e = plan(&image_cfg("uid = 1000\n"), &base, 0).unwrap_err().to_string();
        assert!(e.contains("already exists") && e.contains("2000"), "{e}");
        let e = plan(&image_cfg("user = \"svc\"\nuid = 1000\n"), &base, 0).unwrap_err().to_string();
        assert!(e.contains("uid 1000 already belongs to user `web`"), "{e}");
    }

    /// With no uid set, a base whose uid 1000 is taken (the official Node
    /// images' `node`) gets the next free one.
    #[test]
    fn an_unset_uid_skips_ids_the_base_has() {
        let base = rootfs_with(&[
            (
                PASSWD,
                "root:x:0:0::/root:/bin/sh
node:x:1000:1000::/home/node:/bin/sh
web:x:1001:1001::/:/bin/sh
",
            ),
            (
                GROUP,
                "root:x:0:
node:x:1000:
web:x:1001:
extra:x:1002:
",
            ),
        ]);
        let plan = plan(&image_cfg(""), &base, 0).unwrap();
        assert_eq!(plan.owner, Owner { uid: 1003, gid: 1003 });
    }
}
