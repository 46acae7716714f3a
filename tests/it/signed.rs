//! Signed data items with real processes and a real independent client:
//! keys made by `jbc key new` and by openssl, items signed by `jbc data add
//! --sign` and by `openssl pkeyutl -sign -rawin` over the documented
//! message, each bad signature refused with the check that failed, a block
//! that carries a bad one kept (and shown as not verifying), an author's
//! items after a restart, and an original peer that loads such a block.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use ed25519_consensus::SigningKey;
use jbc::block::{Block, BlockHash};
use jbc::chain::Template;
use jbc::item::{ItemId, data_for};
use jbc::signed::{AuthorKey, Signed, message};
use serde_json::Value;

/// `POST {node}/data` with `text`: the status and the answer.
async fn post_item(node: &Jbc, text: &str) -> (u16, Value) {
    crate::data::post_item(&reqwest::Client::new(), node, text).await
}

async fn get_json(url: &str) -> Value {
    serde_json::from_slice(&get(url).await.unwrap()).unwrap()
}

/// Runs `openssl ARGS` and returns what it wrote; fails the test, saying
/// what is missing, when there is no openssl.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (it is this test's independent client: install Debian's openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// `jbc ARGS` in `dir`, which must succeed: what it printed.
fn jbc(dir: &Path, args: &[&str]) -> String {
    let (status, printed) = run_to_end_printing(dir, args);
    assert!(status.success(), "jbc {args:?}: {printed}");
    printed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_jbc_and_openssl_sign_items_and_each_bad_signature_is_refused_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = Jbc::builder()
        .difficulty(3)
        .switch("mine")
        .threads(1)
        .start(&dir.join("node"));
    let port = node.url.rsplit(':').next().unwrap().to_string();
    let genesis: BlockHash = node.status().await["genesis"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // A key made by jbc, read by openssl; an item signed by `jbc data add`.
    let printed = jbc(dir, &["key", "new", "keys/me.pem"]);
    let public = printed
        .lines()
        .find_map(|line| line.strip_prefix("public key"))
        .expect("jbc key new prints the public key")
        .trim()
        .to_string();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("keys/me.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let text = String::from_utf8(openssl(
        dir,
        &["pkey", "-in", "keys/me.pem", "-noout", "-text"],
    ))
    .unwrap();
    assert!(text.contains("ED25519 Private-Key"), "{text}");
    let (status, refused) = run_to_end(dir, &["key", "new", "keys/me.pem"]);
    assert!(
        !status.success() && refused.contains("never overwritten"),
        "{refused}"
    );
    assert!(jbc(dir, &["key", "show", "keys/me.pem"]).contains(&public));

    let id = jbc(
        dir,
        &[
            "data",
            "add",
            "pay bob 5",
            "--sign",
            "keys/me.pem",
            "--node",
            &port,
        ],
    );
    let id: ItemId = id.split_whitespace().next().unwrap().parse().unwrap();
    let answer = get_json(&format!("{}/data/{id}", node.url)).await;
    assert_eq!(answer["author"]["key"], public.as_str(), "{answer}");
    assert_eq!(answer["author"]["verifies"], true, "{answer}");
    let signed = Signed::parse(answer["text"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(signed.text, "pay bob 5");

    // A key made by openssl, an item signed by openssl over the message the
    // README documents, built here with printf as a shell user would.
    openssl(
        dir,
        &["genpkey", "-algorithm", "ed25519", "-out", "osl.pem"],
    );
    let words = "signed by openssl: \"quoted\" é";
    let printf = Command::new("sh")
        .arg("-c")
        .arg(r#"printf 'jbc signed item v1\n%s\n%s' "$1" "$2" > msg"#)
        .args(["sh", &genesis.to_string(), words])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(printf.success());
    assert_eq!(
        std::fs::read(dir.join("msg")).unwrap(),
        message(&genesis, words)
    );
    let sig = openssl(
        dir,
        &[
            "pkeyutl", "-sign", "-inkey", "osl.pem", "-rawin", "-in", "msg",
        ],
    );
    let der = openssl(
        dir,
        &["pkey", "-in", "osl.pem", "-pubout", "-outform", "DER"],
    );
    let key = &der[der.len() - 32..];
    let item = serde_json::json!({
        "text": words, "key": hex::encode(key), "sig": hex::encode(&sig),
    });
    // serde_json's map keeps keys sorted unless told otherwise: write the
    // members in the documented order by hand.
    let item = format!(
        r#"{{"text":{},"key":"{}","sig":"{}"}}"#,
        item["text"],
        hex::encode(key),
        hex::encode(&sig)
    );
    let (code, answer) = post_item(&node, &item).await;
    assert_eq!(code, 202, "{answer}");
    let openssl_id = ItemId::of(&item);
    let answer = get_json(&format!("{}/data/{openssl_id}", node.url)).await;
    assert_eq!(answer["author"]["verifies"], true, "{answer}");

    // Each bad signature refused, the check named.
    let mine = SigningKey::from([1; 32]);
    let good = Signed::sign(&mine, &genesis, "pay carol 7");
    let other = AuthorKey(SigningKey::from([2; 32]).verification_key().to_bytes());
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let mut malleated = good.clone();
    let order = curve25519_dalek_ng::constants::BASEPOINT_ORDER.to_bytes();
    let mut carry = 0u16;
    for (byte, l) in malleated.sig[32..].iter_mut().zip(order) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    let changed = |change: &dyn Fn(&mut Signed)| {
        let mut signed = good.clone();
        change(&mut signed);
        signed.to_item()
    };
    let cases = [
        ("another key", changed(&|s| s.key = other), "signature"),
        (
            "a changed text",
            changed(&|s| s.text = "pay carol 8".into()),
            "signature",
        ),
        (
            "another network",
            Signed::sign(&mine, &BlockHash([9; 32]), "pay carol 7").to_item(),
            "signature",
        ),
        (
            "a non-canonical encoding",
            good.to_item().replacen(',', ", ", 1),
            "canonical_form",
        ),
        (
            "a weak key",
            changed(&|s| s.key = AuthorKey(weak)),
            "weak_key",
        ),
        ("s ≥ L", malleated.to_item(), "s_below_l"),
    ];
    for (what, item, check) in cases {
        let (code, answer) = post_item(&node, &item).await;
        assert_eq!(code, 400, "{what}: {answer}");
        assert_eq!(answer["check"], check, "{what}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("signature"),
            "{what}: {answer}"
        );
    }
    let (code, answer) = post_item(&node, &good.to_item()).await;
    assert_eq!(code, 202, "the good one: {answer}");

    // Mined, and listed under the author, also after a restart (the author
    // index is rebuilt from the block files).
    wait_for("the jbc-signed item in a block", PATIENCE, || async {
        let answer = get_json(&format!("{}/data/{id}", node.url)).await;
        (answer["status"] == "confirmed").then_some(())
    })
    .await;
    let listed = jbc(
        dir,
        &["data", "list", "--author", "keys/me.pem", "--node", &port],
    );
    assert!(
        listed.contains(&id.to_string()) && listed.contains('✓'),
        "{listed}"
    );
    let node_dir = dir.join("node");
    node.terminate();
    let node = Jbc::builder().difficulty(3).start(&node_dir);
    let author = get_json(&format!("{}/authors/{public}", node.url)).await;
    assert_eq!(author["items"][0]["id"], id.to_string(), "{author}");
    assert_eq!(author["items"][0]["status"], "confirmed", "{author}");
    assert_eq!(author["items"][0]["author"]["verifies"], true, "{author}");
}

/// Mines a block on `tip` at `difficulty` carrying `items`.
fn block_with(tip: &Block, items: &[String], difficulty: u32) -> Block {
    Template::next(tip, data_for(items), tip.timestamp + 1, difficulty).solve_plainly()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_a_bad_signature_stays_valid_shows_it_and_an_original_loads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Jbc::builder().difficulty(3).start(&tmp.path().join("node"));
    let genesis_block = genesis();
    let key = SigningKey::from([3; 32]);
    let good = Signed::sign(&key, &genesis_block.hash, "a good one").to_item();
    let mut bad = Signed::parse(&good).unwrap().unwrap();
    bad.text = "a forged one".into();
    let bad = bad.to_item();
    // Mined by "someone else" (this test), announced: the block is valid.
    let block = block_with(
        &genesis_block,
        &[good.clone(), bad.clone(), "plain".into()],
        3,
    );
    let (code, answer) = node.announce(&block, None).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(node.height().await, 1);

    let authors = get_json(&format!("{}/block/{}/authors", node.url, block.hash)).await;
    assert_eq!(authors[0]["verifies"], true, "{authors}");
    assert_eq!(authors[1]["verifies"], false, "{authors}");
    assert_eq!(authors[1]["check"], "signature", "{authors}");
    assert_eq!(authors[2], Value::Null, "{authors}");
    let port = node.url.rsplit(':').next().unwrap().to_string();
    let bad_id = ItemId::of(&bad).to_string();
    let shown = jbc(tmp.path(), &["data", "get", &bad_id[..10], "--node", &port]);
    assert!(shown.contains("signature does not verify"), "{shown}");
    assert!(shown.contains("a forged one"), "{shown}");

    // The same item posted alone is refused: the node would never mine it.
    let (code, answer) = post_item(&node, &bad).await;
    assert_eq!(code, 200, "known, in a block: {answer}");
    let another_bad = bad.replace("a forged one", "another forgery");
    let (code, answer) = post_item(&node, &another_bad).await;
    assert_eq!(code, 400, "{answer}");

    // An original node syncs the chain that carries them and keeps it.
    let original = Original::start(
        &tmp.path().join("original"),
        &[genesis_block],
        3,
        &[&node.url],
    );
    let theirs = original.chain().await;
    assert_eq!(theirs.len(), 2, "the original took the block");
    assert_eq!(theirs[1], block);
}
