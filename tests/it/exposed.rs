//! A node others can reach, tried as an attacker and as its operator
//! would, with real processes on loopback addresses: peer administration
//! needs the operator key, bodies must be JSON (so other sites' pages
//! cannot post), the Host header must name the node, the explorer cannot
//! be framed, and event streams are bounded per client and in all.

use std::net::IpAddr;

use crate::common::*;
use serde_json::Value;

/// `METHOD {node}{path}` with a JSON `body` and the `key`, if any: the
/// status and the JSON answer.
async fn ask(
    node: &Jbc,
    method: reqwest::Method,
    path: &str,
    body: Value,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", node.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_admin_needs_the_operator_key_from_the_cookie() {
    let (dir, honest_dir, attacker_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let honest = Jbc::serving(honest_dir.path(), &[genesis()], 3);
    let attacker = Jbc::serving(attacker_dir.path(), &[genesis()], 3);
    let node = Jbc::builder()
        .difficulty(3)
        .peers(&[&honest.url])
        .start(dir.path());
    wait_for("the honest peer in the book", PATIENCE, || async {
        peer_urls(&node).await.contains(&honest.url).then_some(())
    })
    .await;

    // The eclipse attempt: remove the honest peer, add the attacker's.
    let cookie = dir.path().join("operator.cookie");
    for key in [None, Some("not-the-key-not-the-key")] {
        let (status, answer) = ask(
            &node,
            reqwest::Method::DELETE,
            "/peers",
            serde_json::json!({ "url": honest.url }),
            key,
        )
        .await;
        assert_eq!(status, 401, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains(&cookie.display().to_string()),
            "the answer says where the key is: {error}"
        );
        let (status, _) = ask(
            &node,
            reqwest::Method::POST,
            "/peers",
            serde_json::json!({ "url": attacker.url }),
            key,
        )
        .await;
        assert_eq!(status, 401);
        for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
            let (status, _) = ask(
                &node,
                method,
                "/peers/bans",
                serde_json::json!({ "url": honest.url }),
                key,
            )
            .await;
            assert_eq!(status, 401);
        }
    }
    assert_eq!(peer_urls(&node).await, vec![honest.url.clone()]);

    // The cookie is the owner's alone, and its key works.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cookie).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "operator.cookie is private");
    let key = node.operator_key();
    let (status, answer) = ask(
        &node,
        reqwest::Method::DELETE,
        "/peers/bans",
        serde_json::json!({ "url": attacker.url }),
        Some(&key),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("is not banned"));

    // `jbc peers` finds the key by itself, run where the node runs.
    let jbc = |args: &[&str]| {
        let (status, output) = run_to_end_printing(dir.path(), args);
        (status.success(), output)
    };
    let node_flag = format!("--node={}", node.url);
    let (ok, output) = jbc(&["peers", "add", &attacker.url, &node_flag]);
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("added {}", attacker.url)),
        "{output}"
    );
    let (ok, output) = jbc(&["peers", &node_flag]);
    assert!(ok, "{output}");
    assert!(
        output.contains(&honest.url) && output.contains(&attacker.url),
        "{output}"
    );
    let (ok, output) = jbc(&["peers", "remove", &attacker.url, &node_flag]);
    assert!(ok, "{output}");
    assert_eq!(peer_urls(&node).await, vec![honest.url.clone()]);
    let (ok, output) = jbc(&["peers", "unban", &attacker.url, &node_flag]);
    assert!(!ok, "nothing to lift");
    assert!(output.contains("is not banned"), "{output}");
    // The operator bans for a time of its choosing, and lifts it.
    let (ok, output) = jbc(&["peers", "ban", &attacker.url, "--for", "2h", &node_flag]);
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("banned {} for 2", attacker.url)),
        "{output}"
    );
    let (ok, output) = jbc(&["peers", &node_flag]);
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("{}  -  banned", attacker.url))
            && output.contains("(banned by the operator)"),
        "{output}"
    );
    let (ok, output) = jbc(&["peers", "ban", &attacker.url, "--for", "soon", &node_flag]);
    assert!(!ok, "{output}");
    let (ok, output) = jbc(&["peers", "unban", &attacker.url, &node_flag]);
    assert!(ok, "{output}");
    let (ok, output) = run_to_end_printing(
        honest_dir.path(),
        &["peers", "add", &attacker.url, &node_flag],
    );
    assert!(!ok.success(), "another folder has another node's cookie");
    assert!(output.contains("the operator key is wrong"), "{output}");

    // A new start writes a new key; the old one no longer works.
    assert!(node.terminate().success());
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(dir.path());
    assert_ne!(node.operator_key(), key);
    let (status, _) = ask(
        &node,
        reqwest::Method::POST,
        "/peers",
        serde_json::json!({ "url": attacker.url }),
        Some(&key),
    )
    .await;
    assert_eq!(status, 401);
    for peer in [node, honest, attacker] {
        assert!(peer.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_not_sent_as_json_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let peer_dir = tempfile::tempdir().unwrap();
    let peer = Jbc::serving(peer_dir.path(), &[genesis()], 3);
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(dir.path());
    let block = extend_chain(&[genesis()], 2, 3, "from another site")[1].clone();
    let client = reqwest::Client::new();
    // What a page of another site can send without a preflight: a "simple"
    // request, text/plain or a form, or no type at all.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        for (method, path, body) in [
            (reqwest::Method::POST, "/mined", block.to_json_line()),
            (
                reqwest::Method::POST,
                "/data",
                br#"{"data": "from another site"}"#.to_vec(),
            ),
            (
                reqwest::Method::POST,
                "/peers",
                serde_json::json!({ "url": peer.url })
                    .to_string()
                    .into_bytes(),
            ),
        ] {
            let mut request = client
                .request(method.clone(), format!("{}{path}", node.url))
                .header("Origin", "http://other-site.test")
                .bearer_auth(node.operator_key())
                .body(body);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status().as_u16(),
                415,
                "{method} {path} as {content_type:?}"
            );
            assert!(
                response
                    .headers()
                    .get("access-control-allow-origin")
                    .is_none(),
                "other sites cannot read the answer"
            );
            let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap()
                    .contains("Content-Type: application/json"),
                "{answer}"
            );
        }
    }
    assert_eq!(node.chain().await, vec![genesis()], "no block taken");
    let pool: Vec<Value> =
        serde_json::from_slice(&get(&format!("{}/data", node.url)).await.unwrap()).unwrap();
    assert!(pool.is_empty(), "no item taken: {pool:?}");
    assert!(peer_urls(&node).await.is_empty(), "no peer added");

    // The same block as JSON, with a charset, is taken.
    let response = client
        .post(format!("{}/mined", node.url))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(block.to_json_line())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(node.chain().await.len(), 2);
    for process in [node, peer] {
        assert!(process.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_only_to_its_own_names_and_cannot_be_framed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Jbc::builder()
        .difficulty(3)
        .peers(&[""])
        .flag("allowed-hosts", "node.test")
        .flag("advertise", "http://advertised.test:5001")
        .start(dir.path());
    let client = reqwest::Client::new();
    let status_with_host = |host: &'static str| {
        let request = client
            .get(format!("{}/status", node.url))
            .header("host", host);
        async move { request.send().await.unwrap() }
    };
    for host in [
        "127.0.0.1",
        "localhost:5001",
        "node.test",
        "NODE.test:80",
        "advertised.test:5001",
    ] {
        let response = status_with_host(host).await;
        assert_eq!(response.status().as_u16(), 200, "Host: {host}");
    }
    // A page whose name was rebound to the node's address names itself.
    for host in ["rebound.example", "node.test.rebound.example", "test"] {
        let response = status_with_host(host).await;
        assert_eq!(response.status().as_u16(), 421, "Host: {host}");
        let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert!(
            answer["error"].as_str().unwrap().contains("allowed_hosts"),
            "{answer}"
        );
    }

    let page = client.get(format!("{}/", node.url)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(header("x-frame-options"), "DENY");
    let policy = header("content-security-policy");
    for directive in ["frame-ancestors 'none'", "script-src 'self'"] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(node.terminate().success());
}

/// Opens `/events` from `from`; the answer, its stream still open.
async fn open_stream(node: &Jbc, from: IpAddr) -> reqwest::Response {
    reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap()
        .get(format!("{}/events", node.url))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_hold_every_event_stream() {
    let dir = tempfile::tempdir().unwrap();
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(dir.path());
    let flooder: IpAddr = "127.0.0.1".parse().unwrap();
    let neighbour: IpAddr = "127.0.0.2".parse().unwrap();
    let mut open = Vec::new();
    for n in 0..64 {
        let stream = open_stream(&node, flooder).await;
        assert_eq!(stream.status().as_u16(), 200, "stream {n}");
        open.push(stream);
    }
    for _ in 0..20 {
        let refused = open_stream(&node, flooder).await;
        assert_eq!(refused.status().as_u16(), 503);
        let answer: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("event streams open"),
            "{answer}"
        );
    }
    // Another client still gets one, and the node still answers.
    let theirs = open_stream(&node, neighbour).await;
    assert_eq!(theirs.status().as_u16(), 200);
    get(&format!("{}/status", node.url)).await.unwrap();

    // A closed stream gives its place back.
    open.truncate(63);
    wait_for("a freed stream place", PATIENCE, || async {
        let stream = open_stream(&node, flooder).await;
        (stream.status().as_u16() == 200).then_some(stream)
    })
    .await;
    drop((open, theirs));
    assert!(node.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_peer_url_never_echoes_what_it_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(dir.path());
    let secrets: [&'static [u8]; 3] = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 28\r\nConnection: close\r\n\r\n\"internal-secret-token-1234\"",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{\"height\": \"internal-secret-token-1234\"}",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 34\r\nConnection: close\r\n\r\n<p>internal-secret-token-1234</p>\n",
    ];
    for served in secrets {
        let url = fake_peer(served).await;
        let (status, answer) = ask(
            &node,
            reqwest::Method::POST,
            "/peers",
            serde_json::json!({ "url": url }),
            Some(&node.operator_key()),
        )
        .await;
        assert_eq!(status, 422, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.starts_with("not added"), "{error}");
        assert!(
            !error.contains("internal-secret"),
            "the answer echoes the URL's answer: {error}"
        );
    }
    assert!(peer_urls(&node).await.is_empty());
    assert!(node.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_takes_one_place_in_the_book_whatever_its_names() {
    let (dir, peer_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(dir.path());
    let peer = Jbc::serving(peer_dir.path(), &[genesis()], 3);
    let key = node.operator_key();
    let add = |url: String| {
        let node = &node;
        let key = key.clone();
        async move {
            ask(
                node,
                reqwest::Method::POST,
                "/peers",
                serde_json::json!({ "url": url }),
                Some(&key),
            )
            .await
        }
    };
    let (status, answer) = add(peer.url.clone()).await;
    assert_eq!(status, 201, "{answer}");
    let alias = format!("http://localhost:{}", peer.port);
    let (status, answer) = add(alias).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["added"], false);
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("already a peer as {}", peer.url)),
        "{answer}"
    );
    assert_eq!(peer_urls(&node).await, vec![peer.url.clone()]);
    for process in [node, peer] {
        assert!(process.terminate().success());
    }
}
