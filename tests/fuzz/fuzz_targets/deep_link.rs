//! argv deep links (issue 8, Fuzzing: targets).
//!
//! An app's argv (split at NULs): `deep_link::stray_args` / `plugin_delivers`, then the
//! redirect parsing every candidate URL goes through in `resume`.
//! Seeds: `seeds/deep_link/` (see `seed-from-provider`).

#![no_main]

use latchkey_core::fuzzing;
use libfuzzer_sys::fuzz_target;

/// The dev provider's app scheme (tests/provider/server.mjs), which the seeds use.
const SCHEME: &str = "com.example.latchkey";

fuzz_target!(|data: &[u8]| fuzzing::deep_link(SCHEME, data));
