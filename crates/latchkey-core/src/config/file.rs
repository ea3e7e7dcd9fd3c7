//! Reading one file: its text parsed into the [`FileSchema`] (top-level keys, profile tables and
//! locks), a profile's view of it, and for the managed file the ownership checks that make its
//! locks worth anything.

use std::collections::BTreeMap;
use std::path::Path;
#[cfg(unix)]
use std::path::PathBuf;

use serde::Deserialize;

use super::{KEYS, Settings};
use crate::AppIdentity;
use crate::error::{Error, Result};

/// A whole config file: top-level settings, profile tables and (system file only) locks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSchema {
    #[serde(flatten)]
    pub(super) settings: Settings,
    #[serde(default)]
    pub(super) profiles: BTreeMap<String, Settings>,
    #[serde(default)]
    pub(super) locked: Vec<String>,
}

impl FileSchema {
    pub(super) fn for_profile(&self, profile: &str) -> Settings {
        let mut s = self.settings.clone();
        if let Some(p) = self.profiles.get(profile) {
            overlay(&mut s, p.clone());
        }
        s
    }
}

fn overlay(base: &mut Settings, top: Settings) {
    macro_rules! take {
        ($($f:ident),*) => { $( if top.$f.is_some() { base.$f = top.$f; } )* };
    }
    take!(
        issuer,
        client_id,
        scopes,
        redirect_uri,
        client_secret,
        profile,
        login_timeout,
        extra_auth_params,
        post_logout_redirect_uri,
        scope_descriptions,
        store,
        git_hosts,
        git_username,
        flow,
        par,
        dpop,
        app_redirect
    );
}

/// Reads a config file; `managed` is the identity whose OS location it is read for, when it is the
/// managed file.
pub(super) fn read_file(
    path: Option<&Path>,
    managed: Option<&AppIdentity>,
) -> Result<Option<FileSchema>> {
    use std::io::Read as _;
    let Some(path) = path else { return Ok(None) };
    let cannot_read =
        |e: std::io::Error| Error::config(format!("cannot read {}: {e}", path.display()));
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cannot_read(e)),
    };
    if let Some(identity) = managed {
        // Judged on the file that was opened (its metadata from the handle), so it cannot be
        // swapped between the check and the read.
        #[cfg(unix)]
        check_managed(
            path,
            &file.metadata().map_err(cannot_read)?,
            managed_owner(path, identity),
        )?;
        // TODO(windows): refuse a managed file or folder whose ACL lets anyone but
        // Administrators, SYSTEM or TrustedInstaller write (GetSecurityInfo on the handle,
        // then the DACL's write-access ACEs). It needs the `windows` crate and unsafe code,
        // like AppIdentity::managed_file; ProgramData's default ACL lets users create files but
        // not change an administrator's.
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(cannot_read)?;
    parse_file(&text, path, managed.is_some()).map(Some)
}

/// Parses a config file's text, read from `path` (for messages); `managed`: the system-wide
/// managed file, the only one whose `locked` is honoured.
pub(super) fn parse_file(text: &str, path: &Path, managed: bool) -> Result<FileSchema> {
    let file: FileSchema = toml::from_str(text).map_err(|e| {
        Error::config(format!(
            "{}: {}; fix the file or remove it",
            path.display(),
            e.message()
        ))
    })?;
    if !managed && !file.locked.is_empty() {
        return Err(Error::config(format!(
            "{}: `locked` is only honoured in the system-wide managed file; remove it",
            path.display()
        )));
    }
    for key in &file.locked {
        if key != "*" && !KEYS.contains(&key.as_str()) {
            return Err(Error::config(format!(
                "{}: `locked` names unknown key `{key}`; known keys: {}",
                path.display(),
                KEYS.join(", ")
            )));
        }
    }
    Ok(file)
}

/// Who besides root may own the managed file and its folder: nobody for the OS's managed
/// location; the current user for another path, which only a debug build
/// (`<PREFIX>_SYSTEM_CONFIG`, for tests) or an embedder's own [`Paths`](super::Paths) can
/// choose.
#[cfg(unix)]
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
#[cfg(unix)]
pub(super) fn check_managed(path: &Path, meta: &std::fs::Metadata, owner: u32) -> Result<()> {
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
#[cfg(unix)]
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

// The checks exist only on Unix (see `read_file`).
#[cfg(all(test, unix))]
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
