//! The keychain vault's chunk format (issue 8, Fuzzing: targets).
//!
//! A primary keychain entry and its chunks (split at NULs) in a memory store: the real vault
//! read (header, chunk reassembly), the session parse, then save over it, read back, delete.
//! Seeds: `seeds/vault/` (see `seed-from-provider`).

#![no_main]

use latchkey_core::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzzing::vault(data));
