//! The client side of MAAS's REST API 2.0, wire-compatible with Canonical's `maas` command.
//!
//! - [`oauth`]: API keys and OAuth 1.0 PLAINTEXT `Authorization` headers.
//! - [`encode`]: query strings and `multipart/form-data` bodies laid out as maascli sends them.
//! - [`http`]: [`Client`], a small blocking client with `get`/`post`/`put`/`delete`, and
//!   [`http::prepare`], which builds the exact request maascli would send.
//! - [`describe`]: the describe document turned into CLI commands (names, params, `:param`).
//! - [`profile`]: the per-user profile file (mode 0600).
//! - [`cli`]: the `maas` commands `login`, `logout`, `list`, `refresh` and
//!   `maas PROFILE HANDLER ACTION …`; [`cli::run`] and [`cli::run_std`] are the entry points.
//! - [`upload`]: `boot-resources create` with chunked upload.
//!
//! It does not implement the region's local admin commands (`init`, `start`, `createadmin`,
//! `apikey`, `changepassword`), macaroon (Candid) logins, or python-libmaas's object layer.

pub mod args;
pub mod cli;
pub mod describe;
pub mod encode;
pub mod http;
pub mod oauth;
pub mod output;
pub mod profile;
pub mod upload;
pub mod url;

pub use cli::{CliConfig, Console, run, run_std};
pub use http::{Client, ClientError, Method, Params, Response};
pub use oauth::{Credentials, CredentialsError};
pub use profile::{Profile, ProfileStore};
