//! Unix: the managed file and its folder must be owned by root and writable by nobody else, or
//! its locks are worth nothing.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::AppIdentity;
use crate::error::{Error, Result};

/// Refuses the managed file `path` (already opened as `file`, whose metadata is judged) when
/// someone other than root could change it or its folder.
pub(super) fn check(path: &Path, file: &File, identity: &AppIdentity) -> Result<()> {
    let meta = file
        .metadata()
        .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
    check_managed(path, &meta, managed_owner(path, identity))
}

/// Who besides root may own the managed file and its folder: nobody for the OS's managed
/// location; the current user for another path, which only a debug build
/// (`<PREFIX>_SYSTEM_CONFIG`, for tests) or an embedder's own [`Paths`](super::Paths) can
/// choose.
fn managed_owner(path: &Path, identity: &AppIdentity) -> u32 {
    if identity.managed_file().as_deref() == Some(path) {
        0
    } else {
        rustix::process::geteuid().as_raw()
    }
}

/// The managed file locks keys against the user, so only root (or `owner`) may be able to change
/// it: refused when it or its folder (as named, and where symlinks lead) is owned by another
/// user or writable by group or others. Otherwise the user, or anyone in the group, could unlock
/// every key or point the sign-in at their own provider.
fn check_managed(path: &Path, meta: &std::fs::Metadata, owner: u32) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::config(format!(
            "refusing the managed config file {}: {why}; only root may be able to change it (`chown root` and `chmod go-w`)",
            path.display()
        )))
    };
    if !meta.is_file() {
        return refuse("it is not a regular file".into());
    }
    if let Some(why) = untrusted(meta, owner) {
        return refuse(format!("it is {why}"));
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    let named = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("/"),
    };
    dirs.push(named);
    if let Some(real) = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        && !dirs.contains(&real)
    {
        dirs.push(real);
    }
    for dir in dirs {
        let dir_meta = match std::fs::metadata(&dir) {
            Ok(m) => m,
            Err(e) => return refuse(format!("cannot inspect its folder {} ({e})", dir.display())),
        };
        if let Some(why) = untrusted(&dir_meta, owner) {
            return refuse(format!("its folder {} is {why}", dir.display()));
        }
    }
    Ok(())
}

/// Why someone other than root and `owner` could change a file or folder with this metadata.
fn untrusted(meta: &std::fs::Metadata, owner: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    if meta.uid() != 0 && meta.uid() != owner {
        return Some(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o002 != 0 {
        return Some("writable by every user".into());
    }
    if meta.mode() & 0o020 != 0 {
        return Some("writable by its group".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::chmod;

    #[test]
    fn a_managed_file_others_can_change_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "issuer = \"https://corp.example\"\nlocked = [\"issuer\"]\n",
        )
        .expect("write");
        let me = rustix::process::geteuid().as_raw();
        let check = |owner: u32| {
            let meta = std::fs::metadata(&path).expect("meta");
            check_managed(&path, &meta, owner)
        };
        chmod(dir.path(), 0o755);
        chmod(&path, 0o644);
        check(me).expect("0644 in a 0755 folder, owned as expected");
        for (mode, why) in [
            (0o666, "writable by every user"),
            (0o664, "writable by its group"),
        ] {
            chmod(&path, mode);
            let e = check(me).expect_err("writable by others");
            assert!(e.message().contains(why), "{mode:o}: {e}");
            assert!(
                e.message().contains("refusing the managed config file"),
                "{e}"
            );
        }
        chmod(&path, 0o644);
        for mode in [0o777, 0o775, 0o1777] {
            chmod(dir.path(), mode);
            let e = check(me).expect_err("folder writable by others");
            assert!(e.message().contains("its folder"), "{mode:o}: {e}");
        }
        chmod(dir.path(), 0o755);
        if me != 0 {
            // Owned by this user, but root is required.
            let e = check(0).expect_err("not root's");
            assert!(
                e.message()
                    .contains(&format!("owned by uid {me}, not root")),
                "{e}"
            );
        } else {
            std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
            let e = check(0).expect_err("another user's");
            assert!(e.message().contains("owned by uid 65534"), "{e}");
        }
    }
}
