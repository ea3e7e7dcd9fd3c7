//! # latchkey-core
//!
//! Native-app sign-in done by the book: OAuth 2.0 authorization code with PKCE and OpenID
//! Connect through the **system browser** (RFC 8252), sessions in the **OS keychain**, and silent
//! refresh that is safe across processes. No Tauri, no UI: the desktop app and the `latchkey` CLI
//! are thin adapters over this crate.
//!
//! ```no_run
//! use latchkey_core::{config, AppIdentity, Latchkey, Ports};
//!
//! // Everything that names your product: keychain service, folders, variables, user agent.
//! const MY_APP: AppIdentity = AppIdentity {
//!     product_name: "My App",
//!     keychain_service: "com.example.myapp",
//!     dir_name: "myapp",
//!     managed_dir_name: "My App",
//!     env_prefix: "MYAPP",
//!     user_agent: "myapp/1.0",
//! };
//!
//! # async fn demo() -> Result<(), latchkey_core::Error> {
//! // Flags, MYAPP_* env, the user file and the managed system file, merged with locks.
//! let env = |k: &str| std::env::var(k).ok();
//! let paths = config::Paths::standard(&MY_APP, &env);
//! let sources = config::Sources::load(config::Settings::default(), &paths, &env)?;
//! let latchkey = Latchkey::new(sources.resolve()?, Ports::system(&MY_APP));
//!
//! // A CLI waits on a loopback listener...
//! let who = latchkey
//!     .login_loopback(|notice| {
//!         if let latchkey_core::LoginNotice::Opened { sign_in, result: Err(_) } = notice {
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

mod account;
mod app_identity;
pub mod browser;
pub mod clock;
pub mod config;
mod context;
pub mod deep_link;
mod discovery;
mod dpop;
mod error;
mod flow;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod grants;
pub mod http;
mod lock;
pub mod loopback;
mod oauth;
mod picture;
mod ports;
mod provider_checks;
// The sign-in by a resource's URL (issue 19) is being built on these two; until it calls in,
// only their unit tests do.
#[cfg_attr(not(test), allow(dead_code))]
mod registration;
#[cfg_attr(not(test), allow(dead_code))]
mod resource;
mod session;
mod signin;
pub mod store;
#[cfg(test)]
mod testing;
pub mod token_cache;
mod util;
mod verify;

pub use account::Latchkey;
pub use app_identity::AppIdentity;
pub use discovery::ExtraMetadata;
pub use dpop::ResourceHeaders;
pub use error::{Error, ErrorKind, Remedy, Result, sanitize};
pub use grants::{Grant, GrantKind, GrantSource, Grants, MAX_GRANT_VALUE, MAX_GRANTS};
pub use picture::{MAX_PICTURE, Picture};
pub use ports::Ports;
pub use session::logout::Logout;
pub use session::tokens::{TokenInfo, TokenOptions};
pub use session::{AccessToken, AccessTokenClaims, Identity, MAX_CACHED_PICTURE, describe_scope};
pub use signin::{DeviceSignIn, FrontEnd, IMPLICIT_WARNING, LoginNotice, SignIn, SignInRoute};
