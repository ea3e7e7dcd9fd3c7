//! A whole sign-in over the HTTP port (issue 18, point 1).
//!
//! The code flow through the public API, with a fake provider behind the HTTP port: the token
//! endpoint's and userinfo endpoint's answers are the fuzzer's, then the session goes where the
//! CLI sends it (the userinfo request, `token`, `headers`, git's credential lines).
//! Seeds: `seeds/sign_in/` (see `seed-from-provider`).

#![no_main]

use latchkey_core::fuzzing;
use libfuzzer_sys::fuzz_target;

/// The dev provider's world the seeds were captured in.
const FIXTURE: &str = include_str!("../seeds/fixture.json");

fuzz_target!(|data: &[u8]| fuzzing::sign_in(fuzzing::Fixture::get(FIXTURE), data));
