use super::*;

fn bytes<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).unwrap();
    out
}

fn genesis(n: u8) -> BlockHash {
    BlockHash([n; 32])
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from([seed; 32])
}

/// RFC 8032 §7.1, tests 1–3: secret key, public key, message, signature.
const RFC_8032: [(&str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac\
         c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e\
         458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290\
         ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
];

#[test]
fn the_rfc_8032_vectors_sign_and_verify() {
    for (secret, public, message, signature) in RFC_8032 {
        let signing = SigningKey::from(bytes::<32>(secret));
        let public = AuthorKey(bytes(public));
        assert_eq!(signing.verification_key().to_bytes(), public.0);
        let message = hex::decode(message).unwrap();
        let signature: [u8; 64] = bytes(signature);
        assert_eq!(signing.sign(&message).to_bytes(), signature);
        assert_eq!(verify_message(&public, &signature, &message), Ok(()));
        let mut changed = message.clone();
        changed.push(0);
        assert_eq!(
            verify_message(&public, &signature, &changed),
            Err(SignedError::DoesNotVerify)
        );
    }
}

#[test]
fn a_signed_item_round_trips_and_verifies_on_its_network_only() {
    let signed = Signed::sign(&key(1), &genesis(1), "pay bob 5 \"now\" é");
    let item = signed.to_item();
    assert!(
        item.starts_with(r#"{"text":"pay bob 5 \"now\" é","key":""#),
        "{item}"
    );
    assert_eq!(Signed::parse(&item), Some(Ok(signed.clone())));
    assert_eq!(check(&item, &genesis(1)), Authorship::Verified(signed.key));
    assert_eq!(
        check(&item, &genesis(2)),
        Authorship::Refused {
            key: Some(signed.key),
            error: SignedError::DoesNotVerify
        },
        "a signature for another network"
    );
    assert_eq!(author_of(&item), Some(signed.key));
    for plain in [
        "pay bob 5",
        "{\"text\":\"a\"}",
        "[\"sig\"]",
        "{not json \"sig\"",
    ] {
        assert_eq!(Signed::parse(plain), None, "{plain}");
        assert_eq!(check(plain, &genesis(1)), Authorship::Unsigned);
    }
}

/// `signed` with its fields changed by `change`, as an item.
fn tampered(signed: &Signed, change: impl FnOnce(&mut Signed)) -> String {
    let mut signed = signed.clone();
    change(&mut signed);
    signed.to_item()
}

fn refusal(item: &str) -> Option<SignedError> {
    check(item, &genesis(1)).error().cloned()
}

#[test]
fn each_bad_signature_is_refused_with_its_reason() {
    let signed = Signed::sign(&key(1), &genesis(1), "pay bob 5");
    let other = AuthorKey(key(2).verification_key().to_bytes());
    let does_not_verify = Some(SignedError::DoesNotVerify);
    assert_eq!(
        refusal(&tampered(&signed, |s| s.key = other)),
        does_not_verify
    );
    assert_eq!(
        refusal(&tampered(&signed, |s| s.text = "pay bob 6".into())),
        does_not_verify
    );
    let item = signed.to_item();
    for not_canonical in [
        item.replacen(",", ", ", 1),
        item.to_uppercase()
            .replace("TEXT", "text")
            .replace("KEY", "key")
            .replace("SIG", "sig"),
        format!(
            r#"{{"key":"{}","text":"pay bob 5","sig":"{}"}}"#,
            signed.key,
            hex::encode(signed.sig)
        ),
    ] {
        assert_eq!(
            refusal(&not_canonical),
            Some(SignedError::NotCanonical),
            "{not_canonical}"
        );
    }
    for malformed in [
        r#"{"text":"a","sig":"00"}"#.to_string(),
        item.replace("\"sig\"", "\"extra\":1,\"sig\""),
        r#"{"sig":1}"#.to_string(),
    ] {
        assert!(
            matches!(refusal(&malformed), Some(SignedError::Form(_))),
            "{malformed}"
        );
    }
    // y = p: a non-canonical encoding of a point of order 4.
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    assert_eq!(
        refusal(&tampered(&signed, |s| s.key = AuthorKey(p))),
        Some(SignedError::KeyNotCanonical)
    );
    assert_eq!(
        refusal(&tampered(&signed, |s| s.sig[..32].copy_from_slice(&p))),
        Some(SignedError::RNotCanonical)
    );
    // The identity as the key, R the identity and s = 0: the cofactored
    // equation holds for any text, so only the weak-key check stops it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&identity);
    let weak = Signed {
        text: "anything".into(),
        key: AuthorKey(identity),
        sig: forged,
    };
    assert_eq!(refusal(&weak.to_item()), Some(SignedError::WeakKey));
    for point in curve25519_dalek_ng::constants::EIGHT_TORSION {
        let mut encoding = point.compress().to_bytes();
        assert_eq!(
            refusal(&tampered(&signed, |s| s.key = AuthorKey(encoding))),
            Some(SignedError::WeakKey)
        );
        assert_eq!(
            refusal(&tampered(&signed, |s| s.sig[..32].copy_from_slice(&encoding))),
            Some(SignedError::WeakR)
        );
        encoding[31] ^= 0x80;
        assert!(is_small_order(&encoding));
    }
    // s + L: the same signature, malleated.
    let l = curve25519_dalek_ng::constants::BASEPOINT_ORDER.to_bytes();
    let malleated = tampered(&signed, |s| {
        let mut carry = 0u16;
        for (byte, l) in s.sig[32..].iter_mut().zip(l) {
            let sum = u16::from(*byte) + u16::from(l) + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
    });
    assert_eq!(refusal(&malleated), Some(SignedError::SNotReduced));
    // A key that is no point at all (y with no x on the curve).
    let mut off_curve = [0u8; 32];
    off_curve[0] = 2;
    assert_eq!(
        refusal(&tampered(&signed, |s| s.key = AuthorKey(off_curve))),
        Some(SignedError::KeyNotOnCurve)
    );
}

#[test]
fn a_batch_gives_each_item_the_verdict_it_gets_alone() {
    let good: Vec<String> = (0..20)
        .map(|i| Signed::sign(&key(i), &genesis(1), &format!("item {i}")).to_item())
        .collect();
    let all_good = check_all(&good, &genesis(1));
    assert!(
        all_good
            .iter()
            .all(|a| matches!(a, Authorship::Verified(_)))
    );
    let mut mixed = good.clone();
    mixed[3] = tampered(&Signed::parse(&good[3]).unwrap().unwrap(), |s| {
        s.text = "changed".into()
    });
    mixed[7] = "plain".into();
    mixed[9] = Signed::sign(&key(9), &genesis(2), "elsewhere").to_item();
    mixed[11] = mixed[11].replacen(",", ", ", 1);
    let alone: Vec<Authorship> = mixed.iter().map(|i| check(i, &genesis(1))).collect();
    assert_eq!(check_all(&mixed, &genesis(1)), alone);
    assert_eq!(alone[3].error(), Some(&SignedError::DoesNotVerify));
    assert_eq!(alone[7], Authorship::Unsigned);
    assert_eq!(alone[9].error(), Some(&SignedError::DoesNotVerify));
    assert_eq!(alone[11].error(), Some(&SignedError::NotCanonical));
}

#[test]
fn keys_parse_and_fingerprint() {
    let key = AuthorKey(key(1).verification_key().to_bytes());
    assert_eq!(key.to_string().parse::<AuthorKey>(), Ok(key));
    assert_eq!(key.to_string().to_uppercase().parse::<AuthorKey>(), Ok(key));
    assert_eq!(key.fingerprint().len(), 16);
    assert!("abc".parse::<AuthorKey>().is_err());
}
