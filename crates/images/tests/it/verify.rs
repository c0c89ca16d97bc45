//! The OpenPGP verifier against documents gpg signed.

use maas_images::OpenPgpVerifier;
use maas_simplestreams::{Index, SignatureVerifier, VerifyError};

use crate::support::mirror;

#[test]
fn gpg_signatures_verify_and_tampering_does_not() {
    let Some(mirror) = mirror() else { return };
    let verifier = OpenPgpVerifier::from_keyring(&mirror.keyring()).expect("keyring");
    assert_eq!(verifier.fingerprints().len(), 1);
    let streams = mirror.v1().join("streams/v1");

    let signed = std::fs::read(streams.join("index.sjson")).expect("index.sjson");
    let text = verifier
        .verify_clearsigned(&signed)
        .expect("clearsigned index verifies");
    let index = Index::parse(&text).expect("signed text is the index");
    assert_eq!(index.product_lists().count(), 2);

    let tampered = String::from_utf8(signed.clone())
        .expect("text")
        .replace("test-dd-download", "test-dd-downloaX");
    assert_eq!(
        verifier.verify_clearsigned(tampered.as_bytes()),
        Err(VerifyError::BadSignature)
    );

    let json = std::fs::read(streams.join("index.json")).expect("index.json");
    let detached = std::fs::read(streams.join("index.json.gpg")).expect("index.json.gpg");
    verifier
        .verify_detached(&json, &detached)
        .expect("detached signature verifies");
    let mut changed = json.clone();
    changed.push(b'\n');
    assert_eq!(
        verifier.verify_detached(&changed, &detached),
        Err(VerifyError::BadSignature)
    );
    assert!(matches!(
        verifier.verify_detached(&json, b"not a signature"),
        Err(VerifyError::MalformedSignature { .. })
    ));

    let stranger = OpenPgpVerifier::from_keyring(&mirror.other_keyring()).expect("keyring");
    assert!(matches!(
        stranger.verify_clearsigned(&signed),
        Err(VerifyError::UnknownSigner { .. })
    ));
    assert!(matches!(
        stranger.verify_detached(&json, &detached),
        Err(VerifyError::UnknownSigner { .. })
    ));
}

#[test]
fn a_keyring_of_several_keys_and_unusable_keyrings() {
    let Some(mirror) = mirror() else { return };
    let mut both = mirror.other_keyring();
    both.extend(mirror.keyring());
    let verifier = OpenPgpVerifier::from_keyring(&both).expect("keyring");
    assert_eq!(verifier.fingerprints().len(), 2);
    let signed = std::fs::read(mirror.v1().join("streams/v1/index.sjson")).expect("index.sjson");
    verifier
        .verify_clearsigned(&signed)
        .expect("verifies with the second key");

    assert!(OpenPgpVerifier::from_keyring(b"").is_err());
    assert!(OpenPgpVerifier::from_keyring(b"garbage that is no keyring").is_err());
    // MAAS's default keyring, where the machine has it (Ubuntu's ubuntu-keyring).
    let real = std::path::Path::new(maas_images::DEFAULT_KEYRING_FILENAME);
    if let Ok(data) = std::fs::read(real) {
        assert!(
            !OpenPgpVerifier::from_keyring(&data)
                .expect("parses")
                .fingerprints()
                .is_empty()
        );
    }
}
