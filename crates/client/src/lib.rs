//! Client side of the MAAS REST API 2.0.
pub mod describe;
pub mod encode;
pub mod http;
pub mod oauth;
pub mod output;
pub mod url;
