//! Windows: the managed file and its folder must be owned and writable only by Administrators,
//! SYSTEM or TrustedInstaller. The descriptor is read from open handles (so a file cannot be
//! swapped between the check and the read) and judged by [`acl::untrusted`].
//!
//! The workspace denies `unsafe` code; this module alone needs it, for four advapi32 calls that
//! no maintained safe crate wraps (`GetSecurityInfo`, `GetAclInformation`/`GetAce`,
//! `ConvertSidToStringSidW`, and the process token's user). Each block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::os::windows::fs::OpenOptionsExt as _;
use std::os::windows::io::AsRawHandle as _;
use std::path::{Path, PathBuf};

use windows_sys::Win32::Foundation::{CloseHandle, ERROR_SUCCESS, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, GetSecurityInfo, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, ACL_SIZE_INFORMATION, AclSizeInformation,
    DACL_SECURITY_INFORMATION, GetAce, GetAclInformation, GetTokenInformation, INHERIT_ONLY_ACE,
    OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::{FILE_FLAG_BACKUP_SEMANTICS, READ_CONTROL};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::acl::{self, Ace, Descriptor, Object};
use crate::AppIdentity;
use crate::error::{Error, Result};

// ACE types (winnt.h): allowed, denied, and their callback and object forms.
const ALLOWED: u8 = 0;
const DENIED: u8 = 1;
const DENIED_OBJECT: u8 = 6;
const ALLOWED_CALLBACK: u8 = 9;
const DENIED_CALLBACK: u8 = 10;
const DENIED_CALLBACK_OBJECT: u8 = 12;

/// Refuses the managed file `path` (already opened as `file`) when someone other than the
/// system's principals could change it or its folder.
pub(super) fn check(path: &Path, file: &File, identity: &AppIdentity) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::config(format!(
            "refusing the managed config file {}: {why}; only administrators may be able to change it (`icacls <path> /setowner *S-1-5-32-544` and remove other users' write access)",
            path.display()
        )))
    };
    let me = also_trusted(path, identity);
    let why_not = |e: std::io::Error| format!("cannot read its access list ({e})");
    let descriptor = match descriptor_of(file) {
        Ok(d) => d,
        Err(e) => return refuse(why_not(e)),
    };
    if let Some(why) = acl::untrusted(&descriptor, Object::File, me.as_deref()) {
        return refuse(format!("it is {why}"));
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // READ_CONTROL is all the descriptor needs; BACKUP_SEMANTICS is how a folder is opened.
    let opened = OpenOptions::new()
        .access_mode(READ_CONTROL)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(&folder);
    let descriptor = match opened.and_then(|dir| descriptor_of(&dir)) {
        Ok(d) => d,
        Err(e) => return refuse(format!("its folder {}: {}", folder.display(), why_not(e))),
    };
    if let Some(why) = acl::untrusted(&descriptor, Object::Folder, me.as_deref()) {
        return refuse(format!("its folder {} is {why}", folder.display()));
    }
    Ok(())
}

/// Who besides the system may own the file: nobody for the OS's managed location; the current
/// user for another path, which only a debug build or an embedder's own `Paths` can choose (as
/// on Unix).
fn also_trusted(path: &Path, identity: &AppIdentity) -> Option<String> {
    if identity.managed_file().as_deref() == Some(path) {
        None
    } else {
        current_user().ok()
    }
}

/// The owner and DACL of an open file or folder, in the model [`acl`] judges.
pub(crate) fn descriptor_of(file: &File) -> std::io::Result<Descriptor> {
    let mut owner: PSID = std::ptr::null_mut();
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: the handle is open for the whole call (borrowed from `file`) and was opened with
    // READ_CONTROL (File::open's GENERIC_READ includes it). The out-pointers are valid locals;
    // `owner` and `dacl` point into `sd`, which the system allocated and we free below, after
    // the last use of either.
    let status = unsafe {
        GetSecurityInfo(
            file.as_raw_handle() as HANDLE,
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut owner,
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if status != ERROR_SUCCESS {
        return Err(std::io::Error::from_raw_os_error(status as i32));
    }
    let read = || -> std::io::Result<Descriptor> {
        Ok(Descriptor {
            owner: sid_string(owner)?,
            dacl: if dacl.is_null() {
                None
            } else {
                Some(aces(dacl)?)
            },
        })
    };
    let result = read();
    // SAFETY: `sd` came from GetSecurityInfo, which documents LocalFree as its release; nothing
    // derived from it is used after this point.
    unsafe { LocalFree(sd) };
    result
}

/// The entries of a DACL that lives inside a security descriptor still held by the caller.
fn aces(dacl: *const ACL) -> std::io::Result<Vec<Ace>> {
    let mut info = ACL_SIZE_INFORMATION::default();
    // SAFETY: `dacl` is a valid ACL (from GetSecurityInfo, its descriptor not yet freed), and
    // `info` is a writable ACL_SIZE_INFORMATION of the size passed.
    let ok = unsafe {
        GetAclInformation(
            dacl,
            (&raw mut info).cast::<c_void>(),
            size_of::<ACL_SIZE_INFORMATION>() as u32,
            AclSizeInformation,
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::with_capacity(info.AceCount as usize);
    for i in 0..info.AceCount {
        let mut ace: *mut c_void = std::ptr::null_mut();
        // SAFETY: `i` is below the ACL's AceCount; GetAce stores a pointer into the ACL.
        if unsafe { GetAce(dacl, i, &mut ace) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: every ACE starts with an ACE_HEADER (winnt.h), and `ace` points at one.
        let header = unsafe { *ace.cast::<ACE_HEADER>() };
        out.push(match header.AceType {
            ALLOWED | ALLOWED_CALLBACK => {
                // SAFETY: these two types share ACCESS_ALLOWED_ACE's layout (header, mask, then
                // the SID starting at SidStart), which lies within the ACE (AceSize covers it).
                let allowed = ace.cast::<ACCESS_ALLOWED_ACE>();
                let (mask, sid) = unsafe { ((*allowed).Mask, (&raw mut (*allowed).SidStart)) };
                Ace::Allow {
                    sid: sid_string(sid.cast())?,
                    mask,
                    inherit_only: u32::from(header.AceFlags) & INHERIT_ONLY_ACE != 0,
                }
            }
            DENIED | DENIED_OBJECT | DENIED_CALLBACK | DENIED_CALLBACK_OBJECT => Ace::Deny,
            other => Ace::Unknown(other),
        });
    }
    Ok(out)
}

/// A SID's string form (`S-1-5-32-544`).
fn sid_string(sid: PSID) -> std::io::Result<String> {
    let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: `sid` points at a valid SID inside a live descriptor or token buffer; the
    // function allocates `text` (released with LocalFree below).
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `text` is the NUL-terminated wide string the call just allocated; we read up to
    // the NUL, copy it, then free it once.
    let s = unsafe {
        let len = (0..).take_while(|&i| *text.add(i) != 0).count();
        let s = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
        LocalFree(text.cast());
        s
    };
    Ok(s)
}

/// The current process user's SID, from its token.
pub(crate) fn current_user() -> std::io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: GetCurrentProcess returns a pseudo-handle that needs no closing; `token` is a
    // writable local that receives a real handle, closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // TOKEN_USER plus its SID (at most 68 bytes): 256 bytes, aligned for TOKEN_USER's pointer.
    let mut buf = [0u64; 32];
    let mut used = 0u32;
    // SAFETY: `buf` is writable for the length passed and aligned for TOKEN_USER; `token` is
    // open with TOKEN_QUERY.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenUser,
            buf.as_mut_ptr().cast(),
            size_of_val(&buf) as u32,
            &mut used,
        )
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: `token` is the handle OpenProcessToken opened above, closed once.
    unsafe { CloseHandle(token) };
    if ok == 0 {
        return Err(error);
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points into `buf`,
    // which outlives this use.
    let sid = unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    sid_string(sid)
}

/// Runs under Wine in `make test` (tests/windows/run) and on a real Windows machine.
#[cfg(test)]
mod tests {
    use super::*;

    /// The call reads a real descriptor: the owner is this user (who created the file), and the
    /// same file passes as a test's own managed path but not as the OS's managed location.
    #[test]
    fn the_descriptor_of_a_new_file_names_this_user() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "issuer = \"https://corp.example\"\n").expect("write");
        let me = current_user().expect("this user's SID");
        assert!(me.starts_with("S-1-5-"), "{me}");
        let file = File::open(&path).expect("open");
        let d = descriptor_of(&file).expect("descriptor");
        assert_eq!(d.owner, me, "{d:?}");
        // Owned by this user: refused where only the system may own it.
        let why = acl::untrusted(&d, Object::File, None).expect("refused");
        assert!(why.contains(&me), "{why}");
    }

    #[test]
    fn a_managed_file_this_user_owns_is_refused_at_the_real_location_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "issuer = \"https://corp.example\"\n").expect("write");
        let file = File::open(&path).expect("open");
        // Elsewhere (a test's own managed path) the current user may own it.
        let d = descriptor_of(&file).expect("descriptor");
        let me = current_user().expect("sid");
        let verdict = acl::untrusted(&d, Object::File, Some(&me));
        // Wine's descriptors carry the Unix mode: a 0644 file gives others read only.
        assert_eq!(verdict, None, "{d:?}");
        check(&path, &file, &AppIdentity::TEST)
            .expect("a test's own managed path, owned by this user, passes");
    }
}
