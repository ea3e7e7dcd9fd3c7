//! Which Windows security descriptors make a managed config file (or its folder) trustworthy:
//! the decision alone, over a plain model of the owner and DACL, so it is tested on every OS.
//! `managed_windows.rs` reads the real descriptor and hands it here.
//!
//! The rule is the Windows form of the Unix one (`managed_unix.rs`): only the system's own
//! principals may own the object or hold a right that changes what is read. Anyone else could
//! unlock every key or point the sign-in at their own provider.

/// `S-1-5-18` LocalSystem, `S-1-5-32-544` BUILTIN\Administrators, and `NT SERVICE\
/// TrustedInstaller`: the principals that own and write system files.
const TRUSTED: [&str; 3] = [
    "S-1-5-18",
    "S-1-5-32-544",
    "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",
];

/// `CREATOR OWNER` and `CREATOR GROUP` only stand for the creator in inherited ACEs; no token
/// holds them, so on the object itself they grant nothing.
const PLACEHOLDERS: [&str; 2] = ["S-1-3-0", "S-1-3-1"];

/// `OWNER RIGHTS` (S-1-3-4): an ACE that applies to whoever owns the object.
const OWNER_RIGHTS: &str = "S-1-3-4";

// Access rights (winnt.h): generic, standard, and the file/directory-specific ones.
const GENERIC_ALL: u32 = 0x1000_0000;
const GENERIC_WRITE: u32 = 0x4000_0000;
const WRITE_OWNER: u32 = 0x0008_0000;
const WRITE_DAC: u32 = 0x0004_0000;
const DELETE: u32 = 0x0001_0000;
const FILE_WRITE_DATA: u32 = 0x0002;
const FILE_APPEND_DATA: u32 = 0x0004;
const FILE_DELETE_CHILD: u32 = 0x0040;

/// One access-control entry, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ace {
    /// `ACCESS_ALLOWED_ACE` (or its callback form): `sid` (string form) is granted `mask`.
    /// `inherit_only` ACEs only pass to children and do not apply to this object.
    Allow {
        sid: String,
        mask: u32,
        inherit_only: bool,
    },
    /// A deny ACE. It is not credited: whether it shadows an allow depends on order and on
    /// group membership, and a conservative check need not prove that.
    Deny,
    /// An ACE type this check does not read (object ACEs of directory services, say): refused,
    /// because it may grant anything.
    Unknown(u8),
}

/// What the check reads from a security descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Descriptor {
    /// The owner's SID: an owner may always rewrite the DACL (`WRITE_DAC` is implied).
    pub(crate) owner: String,
    /// `None` is a NULL DACL, which grants everyone full access.
    pub(crate) dacl: Option<Vec<Ace>>,
}

/// A file is changed by writing its data; a folder by replacing or renaming the file in it
/// (`FILE_DELETE_CHILD`, or `DELETE` on the folder itself, which lets it be renamed away and
/// recreated). Adding new files to the folder is allowed: ProgramData gives its subfolders
/// `Users: (AD,WD)` by inheritance, and a file someone else adds is refused by its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    File,
    Folder,
}

impl Object {
    fn write_rights(self) -> u32 {
        let common = GENERIC_ALL | GENERIC_WRITE | WRITE_OWNER | WRITE_DAC | DELETE;
        match self {
            Object::File => common | FILE_WRITE_DATA | FILE_APPEND_DATA,
            Object::Folder => common | FILE_DELETE_CHILD,
        }
    }
}

/// Why someone other than the trusted principals (and `also_trusted`, the current user for a
/// managed file a test or an embedder placed elsewhere) could change `object`; `None` if nobody
/// can. The message names the principal by SID, which `icacls` and PowerShell accept.
pub(crate) fn untrusted(
    descriptor: &Descriptor,
    object: Object,
    also_trusted: Option<&str>,
) -> Option<String> {
    let trusted = |sid: &str| TRUSTED.contains(&sid) || also_trusted == Some(sid);
    if !trusted(&descriptor.owner) {
        return Some(format!(
            "owned by {}, not Administrators or SYSTEM",
            descriptor.owner
        ));
    }
    let Some(dacl) = &descriptor.dacl else {
        return Some("open to everyone (it has no access list)".into());
    };
    for ace in dacl {
        match ace {
            Ace::Deny => {}
            Ace::Unknown(kind) => {
                return Some(format!(
                    "guarded by an access entry of type {kind} this check cannot read"
                ));
            }
            Ace::Allow {
                sid,
                mask,
                inherit_only,
            } => {
                // The owner is trusted here, so an OWNER RIGHTS entry grants nothing new.
                let inert = *inherit_only
                    || PLACEHOLDERS.contains(&sid.as_str())
                    || sid == OWNER_RIGHTS
                    || trusted(sid);
                if !inert && mask & object.write_rights() != 0 {
                    return Some(format!("writable by {sid} (access mask {mask:#x})"));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: &str = "S-1-5-32-545";
    const EVERYONE: &str = "S-1-1-0";
    const ALICE: &str = "S-1-5-21-1-2-3-1001";
    const ADMINS: &str = "S-1-5-32-544";
    const SYSTEM: &str = "S-1-5-18";
    /// FILE_GENERIC_READ | FILE_GENERIC_EXECUTE, what `icacls` shows as (RX).
    const READ_EXECUTE: u32 = 0x0012_00a9;
    /// FILE_ALL_ACCESS, (F).
    const FULL: u32 = 0x001f_01ff;

    fn allow(sid: &str, mask: u32) -> Ace {
        Ace::Allow {
            sid: sid.into(),
            mask,
            inherit_only: false,
        }
    }

    fn owned_by(owner: &str, dacl: Vec<Ace>) -> Descriptor {
        Descriptor {
            owner: owner.into(),
            dacl: Some(dacl),
        }
    }

    /// What an administrator gets by creating `C:\ProgramData\Latchkey\config.toml`: the
    /// folder inherits ProgramData's ACL, Users included with (RX) and (AD,WD) on folders.
    fn program_data_defaults(object: Object) -> Descriptor {
        let mut dacl = vec![
            allow(SYSTEM, FULL),
            allow(ADMINS, FULL),
            Ace::Allow {
                sid: "S-1-3-0".into(),
                mask: GENERIC_ALL,
                inherit_only: true,
            },
            allow(USERS, READ_EXECUTE),
        ];
        if object == Object::Folder {
            // (CI)(WD,AD,WEA,WA): users may create files and folders in it.
            dacl.push(allow(USERS, 0x0000_0116));
        }
        owned_by(ADMINS, dacl)
    }

    #[test]
    fn programdata_defaults_are_trusted() {
        for object in [Object::File, Object::Folder] {
            assert_eq!(
                untrusted(&program_data_defaults(object), object, None),
                None
            );
        }
        let by_trusted_installer = owned_by(TRUSTED[2], vec![allow(SYSTEM, FULL)]);
        assert_eq!(untrusted(&by_trusted_installer, Object::File, None), None);
    }

    #[test]
    fn write_access_for_anyone_else_is_refused() {
        let cases = [
            (Object::File, allow(USERS, FILE_WRITE_DATA), "S-1-5-32-545"),
            (Object::File, allow(EVERYONE, FILE_APPEND_DATA), "S-1-1-0"),
            (Object::File, allow(ALICE, GENERIC_WRITE), ALICE),
            (Object::File, allow(ALICE, DELETE), ALICE),
            (Object::File, allow(ALICE, WRITE_DAC), ALICE),
            (Object::File, allow(ALICE, FULL), ALICE),
            (Object::Folder, allow(USERS, FILE_DELETE_CHILD), USERS),
            (Object::Folder, allow(ALICE, WRITE_OWNER), ALICE),
            (Object::Folder, allow(ALICE, DELETE), ALICE),
            (Object::Folder, allow(EVERYONE, GENERIC_ALL), EVERYONE),
        ];
        for (object, ace, who) in cases {
            let mut d = program_data_defaults(object);
            d.dacl.as_mut().expect("dacl").push(ace.clone());
            let why = untrusted(&d, object, None).expect("refused");
            assert!(
                why.starts_with(&format!("writable by {who}")),
                "{ace:?}: {why}"
            );
        }
    }

    #[test]
    fn rights_that_do_not_change_the_content_are_allowed() {
        // A folder users may add files to (the ProgramData default) and a file they may read.
        let mut d = program_data_defaults(Object::File);
        d.dacl
            .as_mut()
            .expect("dacl")
            .push(allow(USERS, 0x0000_0100)); // FILE_WRITE_ATTRIBUTES
        assert_eq!(untrusted(&d, Object::File, None), None);
        // Inherit-only and placeholder entries do not apply to the object itself.
        let d = owned_by(
            ADMINS,
            vec![
                Ace::Allow {
                    sid: USERS.into(),
                    mask: FULL,
                    inherit_only: true,
                },
                allow("S-1-3-1", FULL),
                allow(OWNER_RIGHTS, FULL),
            ],
        );
        assert_eq!(untrusted(&d, Object::File, None), None);
    }

    #[test]
    fn the_owner_must_be_trusted() {
        let d = owned_by(ALICE, vec![allow(SYSTEM, FULL)]);
        let why = untrusted(&d, Object::File, None).expect("refused");
        assert_eq!(
            why,
            format!("owned by {ALICE}, not Administrators or SYSTEM")
        );
        // A test's (or an embedder's) own managed path: this user may own and write it.
        let mine = owned_by(ALICE, vec![allow(ALICE, FULL)]);
        assert_eq!(untrusted(&mine, Object::File, Some(ALICE)), None);
        assert!(untrusted(&mine, Object::File, Some("S-1-5-21-9")).is_some());
    }

    #[test]
    fn a_null_dacl_or_an_unreadable_entry_is_refused() {
        let null = Descriptor {
            owner: ADMINS.into(),
            dacl: None,
        };
        let why = untrusted(&null, Object::Folder, None).expect("refused");
        assert!(why.contains("no access list"), "{why}");
        let object_ace = owned_by(ADMINS, vec![Ace::Unknown(5)]);
        let why = untrusted(&object_ace, Object::File, None).expect("refused");
        assert!(why.contains("type 5"), "{why}");
        // A deny entry is never credited: the allow after it still refuses.
        let d = owned_by(ADMINS, vec![Ace::Deny, allow(USERS, FILE_WRITE_DATA)]);
        assert!(untrusted(&d, Object::File, None).is_some());
    }
}
