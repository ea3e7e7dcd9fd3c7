//! Callback URL parsing, including form_post bodies (issue 8, Fuzzing: targets).
//!
//! A redirect URL as the OS or the listener hands it over, or (with a NUL) a form-post URL and
//! body: `flow::parse_callback` / `parse_form_post`, and `Latchkey::resume` and the logout
//! return, which must refuse what they do not expect without panicking.
//! Seeds: `seeds/callback/` (see `seed-from-provider`).

#![no_main]

use latchkey_core::fuzzing;
use libfuzzer_sys::fuzz_target;

/// The dev provider's world the seeds were captured in.
const FIXTURE: &str = include_str!("../seeds/fixture.json");

fuzz_target!(|data: &[u8]| fuzzing::callback(fuzzing::Fixture::get(FIXTURE), data));
