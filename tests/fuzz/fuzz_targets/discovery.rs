//! Discovery responses (issue 8, Fuzzing: targets).
//!
//! A discovery document and (after a NUL) a JWKS as fetched from an issuer:
//! `validate_metadata`, `parse_jwks`, and what sign-ins ask of valid metadata.
//! Seeds: `seeds/discovery/` (see `seed-from-provider`).

#![no_main]

use latchkey_core::fuzzing;
use libfuzzer_sys::fuzz_target;

/// The dev provider's world the seeds were captured in.
const FIXTURE: &str = include_str!("../seeds/fixture.json");

fuzz_target!(|data: &[u8]| fuzzing::discovery(fuzzing::Fixture::get(FIXTURE), data));
