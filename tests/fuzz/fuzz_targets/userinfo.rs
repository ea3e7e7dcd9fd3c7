//! Userinfo responses (issue 8, Fuzzing: targets).
//!
//! A userinfo answer (JSON or a signed JWT) for the signed-in session: openidconnect's parsing
//! and `sub` check, then the profile and grants applied to the session.
//! Seeds: `seeds/userinfo/` (see `seed-from-provider`).

#![no_main]

use latchkey_core::fuzzing;
use libfuzzer_sys::fuzz_target;

/// The dev provider's world the seeds were captured in.
const FIXTURE: &str = include_str!("../seeds/fixture.json");

fuzz_target!(|data: &[u8]| fuzzing::userinfo(fuzzing::Fixture::get(FIXTURE), data));
