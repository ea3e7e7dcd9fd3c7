//! # latchkey-core
//!
//! Native-app sign-in done by the book: OAuth 2.0 authorization code with PKCE and OpenID
//! Connect through the **system browser** (RFC 8252), sessions in the **OS keychain**, and silent
//! refresh that is safe across processes. No Tauri, no UI: the desktop app and the `latchkey` CLI
//! are thin adapters over this crate.
//!
//! ```no_run
//! use latchkey_core::{config, Latchkey, Ports};
//!
//! # async fn demo() -> Result<(), latchkey_core::Error> {
//! // Flags, LATCHKEY_* env, the user file and the managed system file, merged with locks.
//! let env = |k: &str| std::env::var(k).ok();
//! let sources = config::Sources::load(config::Settings::default(), &config::Paths::standard(&env), &env)?;
//! let latchkey = Latchkey::new(sources.resolve()?, Ports::system());
//!
//! // A CLI waits on a loopback listener...
//! let who = latchkey
//!     .login_loopback(|sign_in, opened| {
//!         if opened.is_err() {
//!             eprintln!("Open this URL to sign in: {}", sign_in.url);
//!         }
//!     })
//!     .await?;
//! println!("signed in as {}", who.subject);
//!
//! // ...an app instead calls `begin(&redirect_uri)`, opens the URL, and hands every URL the OS
//! // delivers to `resume(url)`.
//!
//! // Later, from any process: a valid access token, refreshed if needed.
//! let token = latchkey.access_token().await?;
//! # let _ = token;
//! # Ok(()) }
//! ```

mod auth;
pub mod browser;
pub mod clock;
pub mod config;
mod discovery;
mod error;
mod flow;
pub mod http;
mod lock;
pub mod loopback;
mod picture;
mod session;
pub mod store;
mod verify;

pub use auth::{Latchkey, Logout, Ports, SignIn, Timing};
pub use discovery::ExtraMetadata;
pub use error::{Error, ErrorKind, Result};
pub use picture::{MAX_PICTURE, Picture};
pub use session::{AccessToken, AccessTokenClaims, Identity, describe_scope};
