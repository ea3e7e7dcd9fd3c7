use super::*;
use base64::Engine as _;
use openidconnect::IssuerUrl;
use openidconnect::core::{CoreEdDsaPrivateSigningKey, CoreRsaPrivateSigningKey};
use openidconnect::{
    Audience, EmptyAdditionalClaims, JsonWebKeyId, JsonWebKeySet, PrivateSigningKey,
    StandardClaims, SubjectIdentifier,
};
use std::str::FromStr;

const ISSUER: &str = "https://id.example";
const CLIENT: &str = "desktop-client";

fn rsa() -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(
        include_str!("../../testdata/rsa.pem"),
        Some(JsonWebKeyId::new("rsa".into())),
    )
    .expect("rsa key")
}

fn ed() -> CoreEdDsaPrivateSigningKey {
    CoreEdDsaPrivateSigningKey::from_ed25519_pem(
        include_str!("../../testdata/ed25519.pem"),
        Some(JsonWebKeyId::new("ed".into())),
    )
    .expect("ed key")
}

fn provider() -> Provider {
    let metadata = serde_json::json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/auth"),
        "token_endpoint": format!("{ISSUER}/token"),
        "jwks_uri": format!("{ISSUER}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA", "none", "HS256"],
    });
    let jwks = JsonWebKeySet::new(vec![
        rsa().as_verification_key(),
        ed().as_verification_key(),
    ]);
    Provider::for_tests(metadata, jwks)
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("ts")
}

fn claims() -> CoreIdTokenClaims {
    CoreIdTokenClaims::new(
        IssuerUrl::new(ISSUER.into()).expect("iss"),
        vec![Audience::new(CLIENT.into())],
        now() + Duration::minutes(5),
        now(),
        StandardClaims::new(SubjectIdentifier::new("alice".into())),
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new("the-nonce".into())))
}

fn at() -> AccessToken {
    AccessToken::new("access-token-value".into())
}

fn sign_rsa(
    c: CoreIdTokenClaims,
    alg: CoreJwsSigningAlgorithm,
    at_for_hash: Option<&AccessToken>,
) -> CoreIdToken {
    CoreIdToken::new(c, &rsa(), alg, at_for_hash, None).expect("sign")
}

fn check(token: &CoreIdToken, at_now: DateTime<Utc>) -> Result<Claims, VerifyError> {
    let nonce = Nonce::new("the-nonce".into());
    verify_id_token(
        &provider(),
        CLIENT,
        token,
        &at(),
        NonceCheck::Equals(&nonce),
        at_now,
    )
}

/// The refusal, which the test matches to the step that must refuse.
fn refused<T: std::fmt::Debug>(r: Result<T, VerifyError>) -> VerifyError {
    r.expect_err("the ID token must be refused")
}

#[test]
fn rs256_ps256_and_eddsa_are_accepted() {
    let t = sign_rsa(
        claims(),
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Some(&at()),
    );
    assert_eq!(check(&t, now()).expect("rs256").sub, "alice");
    let t = sign_rsa(
        claims(),
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        Some(&at()),
    );
    assert_eq!(check(&t, now()).expect("ps256").sub, "alice");
    let t = CoreIdToken::new(
        claims(),
        &ed(),
        CoreJwsSigningAlgorithm::EdDsa,
        Some(&at()),
        None,
    )
    .expect("sign");
    assert_eq!(check(&t, now()).expect("eddsa").sub, "alice");
}

#[test]
fn alg_none_is_rejected_even_when_advertised() {
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&v).expect("json"))
    };
    let payload = serde_json::json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "mallory", "nonce": "the-nonce",
        "exp": now().timestamp() + 300, "iat": now().timestamp()
    });
    let raw = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none"})),
        b64(payload)
    );
    let t = CoreIdToken::from_str(&raw).expect("parses");
    let e = refused(check(&t, now()));
    assert!(matches!(e, VerifyError::Signature(_)), "{e:?}");
}

#[test]
fn issuer_must_match() {
    let c = claims().set_issuer(IssuerUrl::new("https://evil.example".into()).expect("iss"));
    let e = refused(check(
        &sign_rsa(c, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None),
        now(),
    ));
    assert!(matches!(e, VerifyError::Issuer(_)), "{e:?}");
}

#[test]
fn audience_rules() {
    let alg = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
    let c = claims().set_audiences(vec![Audience::new("someone-else".into())]);
    let e = refused(check(&sign_rsa(c, alg.clone(), None), now()));
    assert!(matches!(e, VerifyError::Audience(_)), "{e:?}");

    // Several audiences: one this client does not trust is refused at step 3, before the azp
    // rule of steps 4-5 is reached (this test used to pass on any error, and so hid that).
    let two = vec![Audience::new(CLIENT.into()), Audience::new("api".into())];
    let c = claims().set_audiences(two.clone());
    let e = refused(check(&sign_rsa(c, alg.clone(), None), now()));
    assert!(
        matches!(&e, VerifyError::Audience(why) if why.contains("`api` is not a trusted audience")),
        "{e:?}"
    );

    // azp naming another client.
    let c = claims().set_authorized_party(Some(ClientId::new("other".into())));
    let e = refused(check(&sign_rsa(c, alg.clone(), None), now()));
    assert_eq!(e, VerifyError::Azp("azp `other` is not this client".into()));

    // azp naming us with a single audience is fine.
    let c = claims().set_authorized_party(Some(ClientId::new(CLIENT.into())));
    assert!(check(&sign_rsa(c, alg, None), now()).is_ok());
}

#[test]
fn expiry_and_issue_time_use_the_injected_clock() {
    let t = sign_rsa(
        claims(),
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
    );
    assert!(check(&t, now() + Duration::minutes(4)).is_ok());
    let e = refused(check(&t, now() + Duration::minutes(5)));
    assert!(matches!(e, VerifyError::Expired(_)), "{e:?}");
    let e = refused(check(&t, now() - Duration::minutes(3)));
    assert!(matches!(e, VerifyError::IssuedInFuture(_)), "{e:?}");
}

#[test]
fn nonce_must_match_on_login_but_not_on_refresh() {
    let c = claims().set_nonce(Some(Nonce::new("other".into())));
    let t = sign_rsa(c, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None);
    let e = refused(check(&t, now()));
    assert!(matches!(e, VerifyError::Nonce(_)), "{e:?}");
    let t = sign_rsa(
        claims().set_nonce(None),
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
    );
    let e = refused(check(&t, now()));
    assert!(matches!(e, VerifyError::Nonce(_)), "missing: {e:?}");
    assert!(verify_id_token(&provider(), CLIENT, &t, &at(), NonceCheck::Refresh, now()).is_ok());
}

#[test]
fn at_hash_must_match_when_present() {
    let other = AccessToken::new("a-different-token".into());
    let t = sign_rsa(
        claims(),
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Some(&other),
    );
    let e = refused(check(&t, now()));
    assert_eq!(
        e,
        VerifyError::AtHash("at_hash does not match the access token".into())
    );
}

#[test]
fn unknown_kid_asks_for_a_jwks_refetch() {
    let key = CoreRsaPrivateSigningKey::from_pem(
        include_str!("../../testdata/rsa.pem"),
        Some(JsonWebKeyId::new("rotated".into())),
    )
    .expect("key");
    let t = CoreIdToken::new(
        claims(),
        &key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .expect("sign");
    assert!(matches!(check(&t, now()), Err(VerifyError::UnknownKey)));
}

#[test]
fn refreshed_token_must_keep_subject_and_audience() {
    let before = Claims {
        sub: "alice".into(),
        aud: vec![CLIENT.into()],
        ..Default::default()
    };
    assert!(check_refreshed(&before, &before.clone()).is_ok());
    let other_sub = Claims {
        sub: "bob".into(),
        ..before.clone()
    };
    assert_eq!(
        check_refreshed(&before, &other_sub),
        Err(VerifyError::Refreshed(
            "the refreshed ID token is for a different subject"
        ))
    );
    let other_aud = Claims {
        aud: vec!["x".into()],
        ..before.clone()
    };
    assert_eq!(
        check_refreshed(&before, &other_aud),
        Err(VerifyError::Refreshed(
            "the refreshed ID token has a different audience"
        ))
    );
}

#[test]
fn refreshed_token_must_keep_azp_exactly() {
    let without = Claims {
        sub: "alice".into(),
        aud: vec![CLIENT.into()],
        ..Default::default()
    };
    let with = Claims {
        azp: Some(CLIENT.into()),
        ..without.clone()
    };
    let other = Claims {
        azp: Some("other".into()),
        ..without.clone()
    };
    assert!(check_refreshed(&without, &without.clone()).is_ok());
    assert!(check_refreshed(&with, &with.clone()).is_ok());
    let why = |r: Result<(), VerifyError>| match r {
        Err(VerifyError::Refreshed(why)) => why,
        other => panic!("expected Refreshed, got {other:?}"),
    };
    assert!(why(check_refreshed(&with, &other)).contains("different azp"));
    assert!(
        why(check_refreshed(&without, &with)).contains("did not"),
        "appearing"
    );
    assert!(
        why(check_refreshed(&with, &without)).contains("lacks"),
        "disappearing"
    );
}

fn front(token: &CoreIdToken, code: Option<&AuthorizationCode>) -> Result<Claims, VerifyError> {
    verify_front_channel(
        &provider(),
        CLIENT,
        token,
        &Nonce::new("the-nonce".into()),
        code,
        now(),
    )
}

#[test]
fn the_front_channel_c_hash_is_required_and_must_match_the_code() {
    let code = AuthorizationCode::new("the-code".into());
    let alg = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
    let signed = CoreIdToken::new(claims(), &rsa(), alg.clone(), None, Some(&code)).expect("sign");
    assert_eq!(front(&signed, Some(&code)).expect("valid").sub, "alice");

    let other = AuthorizationCode::new("another-code".into());
    let e = refused(front(&signed, Some(&other)));
    assert_eq!(
        e,
        VerifyError::CHash("c_hash does not match the code".into())
    );

    let unhashed = sign_rsa(claims(), alg.clone(), None);
    let e = refused(front(&unhashed, Some(&code)));
    assert!(
        matches!(&e, VerifyError::CHash(why) if why.contains("no c_hash")),
        "{e:?}"
    );
    // The implicit flow has no code: no c_hash is asked for.
    assert!(front(&unhashed, None).is_ok());

    // EdDSA hashes with SHA-512 (OIDC Core §3.3.2.11: the alg's hash), still the left half.
    let ed_signed = CoreIdToken::new(
        claims(),
        &ed(),
        CoreJwsSigningAlgorithm::EdDsa,
        None,
        Some(&code),
    )
    .expect("sign");
    assert!(front(&ed_signed, Some(&code)).is_ok());
    let e = refused(front(&ed_signed, Some(&other)));
    assert_eq!(
        e,
        VerifyError::CHash("c_hash does not match the code".into())
    );
}

#[test]
fn the_front_channel_nonce_is_required() {
    let code = AuthorizationCode::new("the-code".into());
    let alg = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
    let no_nonce = claims().set_nonce(None);
    let signed = CoreIdToken::new(no_nonce, &rsa(), alg.clone(), None, Some(&code)).expect("sign");
    let e = refused(front(&signed, Some(&code)));
    assert!(matches!(e, VerifyError::Nonce(_)), "{e:?}");
    let wrong = claims().set_nonce(Some(Nonce::new("another".into())));
    let signed = CoreIdToken::new(wrong, &rsa(), alg, None, None).expect("sign");
    let e = refused(front(&signed, None));
    assert!(matches!(e, VerifyError::Nonce(_)), "{e:?}");
}
