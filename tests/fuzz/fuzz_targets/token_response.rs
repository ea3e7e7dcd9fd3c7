//! Token responses (issue 8, Fuzzing: targets).
//!
//! A token endpoint's answer (status, content type, body) to a code redemption or a refresh,
//! parsed by oauth2 as in production and then checked by the core (token type, expires_in,
//! ID token, scopes), building the session it would store.
//! Seeds: `seeds/token_response/` (see `seed-from-provider`).

#![no_main]

use latchkey_core::fuzzing;
use libfuzzer_sys::fuzz_target;

/// The dev provider's world the seeds were captured in.
const FIXTURE: &str = include_str!("../seeds/fixture.json");

fuzz_target!(|data: &[u8]| fuzzing::token_response(fuzzing::Fixture::get(FIXTURE), data));
