//! ID token verification input (issue 8, Fuzzing: targets).
//!
//! An ID token's text, or (structured mode) its claims JSON signed with a fixed test key, so
//! mutations get past the signature to the claim checks; verified at the token endpoint or in
//! the front channel against the dev provider's keys.
//! Seeds: `seeds/id_token/` (see `seed-from-provider`).

#![no_main]

use latchkey_core::fuzzing;
use libfuzzer_sys::fuzz_target;

/// The dev provider's world the seeds were captured in.
const FIXTURE: &str = include_str!("../seeds/fixture.json");

fuzz_target!(|data: &[u8]| fuzzing::id_token(fuzzing::Fixture::get(FIXTURE), data));
