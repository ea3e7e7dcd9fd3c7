//! Benchmark helper: N concurrent `access_token()` calls in one process, configured like the CLI
//! (`LATCHKEY_*` env and config files). Prints how many distinct tokens came back.
//!
//!     concurrent_tokens [N]

use std::sync::Arc;

use latchkey_core::config::{Paths, Settings, Sources};
use latchkey_core::{Latchkey, Ports};
use latchkey_identity::LATCHKEY;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), latchkey_core::Error> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let env = |k: &str| std::env::var(k).ok();
    let config =
        Sources::load(Settings::default(), &Paths::standard(&LATCHKEY, &env), &env)?.resolve()?;
    let latchkey = Arc::new(Latchkey::new(config, Ports::system(&LATCHKEY)));
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let l = Arc::clone(&latchkey);
            tokio::spawn(async move { l.access_token().await.map(|t| t.secret().to_owned()) })
        })
        .collect();
    let mut tokens = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await {
            Ok(Ok(token)) => {
                tokens.insert(token);
            }
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                return Err(latchkey_core::Error::new(
                    latchkey_core::ErrorKind::Internal,
                    e.to_string(),
                ));
            }
        }
    }
    println!(
        "{n} requests, {} distinct token(s), {:.1} ms",
        tokens.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
