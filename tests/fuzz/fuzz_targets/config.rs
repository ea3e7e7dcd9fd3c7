//! Config TOML, merged with flags, env and a managed file (issue 8, Fuzzing: targets).
//!
//! The user file, the managed file, env lines and flag lines (split at NULs), through
//! `config::Sources`: parsing, profiles, locks, merge and validation.
//! Seeds: `seeds/config/` (see `seed-from-provider`).

#![no_main]

use latchkey_core::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzzing::config(data));
