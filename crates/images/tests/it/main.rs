//! maas-images integration tests: the importer against the signed test mirror that
//! scripts/build-test-images.sh publishes, served over loopback HTTP; the verifier against
//! gpg's signatures; chunked uploads.

mod import;
mod support;
mod upload;
mod verify;
