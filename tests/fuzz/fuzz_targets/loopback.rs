//! The loopback listener's request parsing (issue 8, Fuzzing: targets).
//!
//! The bytes a browser (or anything else on this machine) sends the CLI's redirect listener,
//! read by the real `read_request` from memory in reads of a fuzzed size, then the redirect
//! parsing of what it accepts.
//! Seeds: `seeds/loopback/` (see `seed-from-provider`).

#![no_main]

use latchkey_core::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzzing::loopback(data));
