//! The peer book's unit tests.

use super::evict::inbound_per_group;
use super::*;

fn url(text: &str) -> PeerUrl {
    PeerUrl::parse(text).unwrap()
}

fn jbc(id: &str) -> Identity {
    Identity::Jbc {
        node_id: id.into(),
        version: "jbc/test".into(),
    }
}

fn book(dir: &Path, configured: &[&str]) -> PeerBook {
    PeerBook::open(
        configured.iter().map(|u| url(u)).collect(),
        dir.join("peers.json"),
        Duration::from_secs(86_400),
        Duration::from_secs(5),
        PeerSlots {
            outbound: MAX_PEERS,
            inbound: 4,
        },
    )
}

/// A book of no configured peer, with `inbound` inbound slots.
fn book_with_inbound(dir: &Path, inbound: usize) -> PeerBook {
    PeerBook::open(
        Vec::new(),
        dir.join("peers.json"),
        Duration::from_secs(86_400),
        Duration::from_secs(5),
        PeerSlots {
            outbound: 8,
            inbound,
        },
    )
}

#[test]
fn a_book_with_a_bad_record_keeps_the_good_ones_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.json");
    let file = r#"{"peers": [
        {"url": "http://127.0.0.1:5004", "origin": "added"},
        {"url": "not a url", "origin": "added"},
        {"url": "http://127.0.0.1:5005", "origin": "learned", "failures": -1}
    ], "banned": {"http://127.0.0.1:5006": {"until": 99999999999, "reason": "junk", "by_operator": true}}}"#;
    std::fs::write(&path, file).unwrap();
    let peers = book(dir.path(), &[]);
    assert_eq!(peers.urls(), [url("http://127.0.0.1:5004")]);
    assert_eq!(
        peers.origin(&url("http://127.0.0.1:5004")),
        Some(Origin::Added)
    );
    assert!(peers.ban(&url("http://127.0.0.1:5006")).is_some());
    let aside = dir.path().join("peers.json.damaged");
    assert_eq!(
        std::fs::read_to_string(&aside).unwrap(),
        file,
        "kept as it was"
    );
    let note = std::fs::read_to_string(dir.path().join("peers.json.damaged.reason")).unwrap();
    assert!(
        note.contains("peer 1") && note.contains("(and 1 more)"),
        "{note}"
    );
    // A second damaged file does not replace the first one set aside.
    std::fs::write(&path, "{not json").unwrap();
    assert!(book(dir.path(), &[]).urls().is_empty());
    assert_eq!(std::fs::read_to_string(&aside).unwrap(), file);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("peers.json.damaged.1")).unwrap(),
        "{not json"
    );
}

#[test]
fn admitted_peers_and_the_operators_bans_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let peers = book(dir.path(), &["http://127.0.0.1:5002"]);
    let added = url("http://127.0.0.1:5004");
    assert_eq!(
        peers.admit(&added, Origin::Added, jbc("a")).unwrap(),
        Admitted::New { evicted: None }
    );
    assert_eq!(
        peers.admit(&added, Origin::Added, jbc("a")).unwrap(),
        Admitted::Known
    );
    let bad = url("http://127.0.0.1:5005");
    peers.admit(&bad, Origin::Learned, jbc("b")).unwrap();
    let ban = peers
        .ban_by_operator(&bad, Duration::from_secs(3600), "spam")
        .unwrap();
    assert_eq!(ban.reason, "spam");
    assert!(
        !peers.contains(&bad),
        "a banned learned peer leaves the book"
    );
    assert!(matches!(
        peers.admit(&bad, Origin::Learned, jbc("b")),
        Err(BookError::Banned { .. })
    ));
    // A configured peer the operator bans stays in the book, left alone.
    let configured = url("http://127.0.0.1:5002");
    peers
        .ban_by_operator(&configured, Duration::from_secs(60), "maintenance")
        .unwrap();
    assert!(peers.contains(&configured));
    assert!(
        peers
            .left_alone(&configured)
            .unwrap()
            .1
            .contains("maintenance")
    );

    let reopened = book(dir.path(), &["http://127.0.0.1:5002"]);
    assert_eq!(reopened.urls(), peers.urls());
    assert_eq!(reopened.origin(&added), Some(Origin::Added));
    assert_eq!(reopened.identity(&added), Some(jbc("a")));
    assert!(reopened.ban(&bad).is_some(), "the ban is kept");
    assert!(reopened.ban(&configured).is_some());

    assert!(reopened.unban(&bad).unwrap());
    assert!(!reopened.unban(&bad).unwrap(), "lifted once");
    assert!(reopened.ban(&bad).is_none());
    reopened
        .ban_by_operator(&bad, Duration::from_secs(60), "again")
        .unwrap();
    assert!(
        reopened.admit(&bad, Origin::Added, jbc("b")).is_ok(),
        "the operator adding a banned peer lifts its ban"
    );
    assert!(reopened.ban(&bad).is_none());
    assert!(
        book(dir.path(), &[]).ban(&bad).is_none(),
        "and the lift is saved"
    );
}

#[test]
fn bans_an_earlier_version_imposed_by_itself_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.json");
    std::fs::write(
        &path,
        r#"{"peers": [{"url": "http://127.0.0.1:5002", "origin": "added", "score": 40}],
            "banned": {
              "http://127.0.0.1:5002": {"until": 99999999999, "reason": "claimed a better chain"},
              "http://127.0.0.1:5003": {"until": 99999999999, "reason": "mine", "by_operator": true}}}"#,
    )
    .unwrap();
    let peers = book(dir.path(), &[]);
    assert!(peers.ban(&url("http://127.0.0.1:5002")).is_none());
    assert!(peers.ban(&url("http://127.0.0.1:5003")).is_some());
    assert_eq!(peers.urls(), [url("http://127.0.0.1:5002")]);
    peers.flush();
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(!saved.contains("claimed a better chain"), "{saved}");
}

#[test]
fn misbehaviour_discourages_a_found_peer_out_and_leaves_a_named_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    let configured = url("http://127.0.0.1:5002");
    let peers = book(dir.path(), &["http://127.0.0.1:5002"]);
    let learned = url("http://127.0.0.1:5005");
    peers.admit(&learned, Origin::Learned, jbc("l")).unwrap();
    assert_eq!(
        peers.judge(&learned, Misbehaviour::Garbled, "junk"),
        Verdict::Scored { points: 20 }
    );
    let Verdict::Discouraged { left: true, .. } =
        peers.judge(&learned, Misbehaviour::InvalidBlock, "a bad block")
    else {
        panic!("a learned peer is discouraged out of the book")
    };
    assert!(!peers.contains(&learned));
    assert!(matches!(
        peers.admit(&learned, Origin::Learned, jbc("l")),
        Err(BookError::Discouraged { .. })
    ));
    assert!(matches!(
        peers.admit(&learned, Origin::Inbound, jbc("l")),
        Err(BookError::Discouraged { .. })
    ));
    let Verdict::Discouraged { left: false, .. } =
        peers.judge(&configured, Misbehaviour::InvalidBlock, "a bad block")
    else {
        panic!("a configured peer stays")
    };
    assert!(peers.contains(&configured));
    assert_eq!(
        peers.judge(&configured, Misbehaviour::InvalidBlock, "again"),
        Verdict::Nothing,
        "judged once while it lasts"
    );
    let states: Vec<(String, PeerState)> = peers
        .views()
        .into_iter()
        .map(|v| (v.url.to_string(), v.state))
        .collect();
    assert!(states.contains(&(configured.to_string(), PeerState::Discouraged)));
    assert!(states.contains(&(learned.to_string(), PeerState::Discouraged)));
    // Nothing of it is saved: a restart forgets it.
    let reopened = book(dir.path(), &["http://127.0.0.1:5002"]);
    assert!(reopened.left_alone(&configured).is_none());
    assert!(reopened.discouraged(&learned).is_none());
    // The operator's word forgets it too.
    assert!(peers.unban(&configured).unwrap());
    assert!(peers.left_alone(&configured).is_none());
    assert!(peers.admit(&learned, Origin::Added, jbc("l")).is_ok());
}

#[test]
fn one_group_holds_at_most_its_share_of_inbound_slots_and_a_crowd_makes_way() {
    let dir = tempfile::tempdir().unwrap();
    let peers = book_with_inbound(dir.path(), 16);
    assert_eq!(inbound_per_group(16), 2);
    // One host, many ports: its share, then no more.
    let crowd = |n: u16| url(&format!("http://203.0.113.7:{}", 6000 + n));
    for n in 0..2 {
        peers
            .admit(&crowd(n), Origin::Inbound, jbc(&format!("crowd {n}")))
            .unwrap();
    }
    assert!(matches!(
        peers.admit(&crowd(2), Origin::Inbound, jbc("crowd 2")),
        Err(BookError::GroupFull { limit: 2, .. })
    ));
    // Another address of the same /16 is the same group.
    assert!(matches!(
        peers.admit(&url("http://203.0.9.9:5001"), Origin::Inbound, jbc("near")),
        Err(BookError::GroupFull { .. })
    ));
    // Nodes on this machine are a group each, by port.
    for n in 0..14u16 {
        let local = url(&format!("http://127.0.0.1:{}", 7000 + n));
        peers
            .admit(&local, Origin::Inbound, jbc(&format!("local {n}")))
            .unwrap();
    }
    assert_eq!(peers.directions().inbound, 16);
    // Full: the youngest of the group holding the most makes way...
    let honest = url("http://198.51.100.1:5001");
    assert_eq!(
        peers
            .admit(&honest, Origin::Inbound, jbc("honest"))
            .unwrap(),
        Admitted::New {
            evicted: Some(crowd(1))
        }
    );
    // ...but a newcomer never displaces groups no bigger than its own would
    // be: four groups of one, and a fifth knocks.
    let dir2 = tempfile::tempdir().unwrap();
    let crowded = book_with_inbound(dir2.path(), 4);
    for n in 0..4u16 {
        // inbound 4: one per group; four groups fill it.
        let peer = url(&format!("http://{}.0.0.1:5001", 11 + n));
        crowded
            .admit(&peer, Origin::Inbound, jbc(&format!("g{n}")))
            .unwrap();
    }
    assert!(matches!(
        crowded.admit(&honest, Origin::Inbound, jbc("honest")),
        Err(BookError::Full { .. })
    ));
    // A failing one makes way first.
    let failing = url("http://12.0.0.1:5001");
    crowded.record_failure(&failing, Contact::Sync, Failure::Unreachable);
    assert_eq!(
        crowded
            .admit(&honest, Origin::Inbound, jbc("honest"))
            .unwrap(),
        Admitted::New {
            evicted: Some(failing)
        }
    );
}

#[test]
fn the_youngest_of_the_biggest_group_makes_way_for_a_newcomer() {
    let dir = tempfile::tempdir().unwrap();
    let peers = book_with_inbound(dir.path(), 24);
    // Share 3: one /16 takes 3, seven others fill the rest (21 more).
    let crowd: Vec<PeerUrl> = (0..3u16)
        .map(|n| url(&format!("http://203.0.113.{}:5001", n + 1)))
        .collect();
    for (n, peer) in crowd.iter().enumerate() {
        peers
            .admit(peer, Origin::Inbound, jbc(&format!("crowd {n}")))
            .unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    for n in 0..21u16 {
        let peer = url(&format!("http://127.0.0.1:{}", 7000 + n));
        peers
            .admit(&peer, Origin::Inbound, jbc(&format!("local {n}")))
            .unwrap();
    }
    let honest = url("http://198.51.100.1:5001");
    assert_eq!(
        peers
            .admit(&honest, Origin::Inbound, jbc("honest"))
            .unwrap(),
        Admitted::New {
            evicted: Some(crowd[2].clone())
        },
        "the crowd's youngest goes"
    );
}

#[test]
fn a_full_book_evicts_the_learned_peer_failing_longest_never_a_configured_one() {
    let dir = tempfile::tempdir().unwrap();
    let peers = book(dir.path(), &["http://127.0.0.1:5002"]);
    for port in 0..MAX_PEERS {
        let learned = url(&format!("http://127.0.0.1:{}", 6000 + port));
        peers
            .admit(&learned, Origin::Learned, jbc(&format!("learned {port}")))
            .unwrap();
    }
    let failing = url("http://127.0.0.1:6010");
    peers.record_failure(&failing, Contact::Sync, Failure::Unreachable);
    let newcomer = url("http://127.0.0.1:7000");
    assert_eq!(
        peers.admit(&newcomer, Origin::Learned, jbc("n")).unwrap(),
        Admitted::New {
            evicted: Some(failing.clone())
        }
    );
    assert!(peers.contains(&newcomer) && !peers.contains(&failing));
    assert_eq!(peers.count(), MAX_PEERS + 1);
    assert!(peers.contains(&url("http://127.0.0.1:5002")));

    // A book of configured and added peers only has no room to make.
    let dir = tempfile::tempdir().unwrap();
    let peers = book(dir.path(), &[]);
    for port in 0..MAX_PEERS {
        let added = url(&format!("http://127.0.0.1:{}", 6000 + port));
        peers
            .admit(&added, Origin::Added, jbc(&format!("added {port}")))
            .unwrap();
    }
    assert!(matches!(
        peers.admit(&newcomer, Origin::Added, jbc("n")),
        Err(BookError::Full { .. })
    ));
    // Chosen and inbound peers have their own room.
    assert!(peers.admit(&newcomer, Origin::Learned, jbc("n")).is_ok());
    for port in 0..4 {
        let inbound = url(&format!("http://127.0.0.1:{}", 8000 + port));
        peers
            .admit(&inbound, Origin::Inbound, jbc(&format!("inbound {port}")))
            .unwrap();
    }
    let failing = url("http://127.0.0.1:8002");
    peers.record_failure(&failing, Contact::Announce, Failure::Unreachable);
    peers.record_failure(&failing, Contact::Sync, Failure::Unreachable);
    assert_eq!(
        peers
            .admit(&url("http://127.0.0.1:8009"), Origin::Inbound, jbc("late"))
            .unwrap(),
        Admitted::New {
            evicted: Some(failing)
        }
    );
    assert!(
        matches!(
            peers.admit(&url("http://127.0.0.1:8010"), Origin::Inbound, jbc("later")),
            Err(BookError::Full {
                what: "inbound",
                ..
            })
        ),
        "an inbound peer that answers is never evicted for a newcomer"
    );
    assert_eq!(
        peers.directions(),
        Directions {
            outbound: MAX_PEERS + 1,
            chosen: 1,
            inbound: 4
        }
    );
    assert!(
        !std::fs::read_to_string(dir.path().join("peers.json"))
            .unwrap()
            .contains("inbound"),
        "inbound peers are not saved"
    );
}

#[test]
fn a_second_url_of_a_node_in_the_book_is_an_alias() {
    let dir = tempfile::tempdir().unwrap();
    let peers = book(dir.path(), &[]);
    let first = url("http://127.0.0.1:5004");
    peers.admit(&first, Origin::Added, jbc("one node")).unwrap();
    assert_eq!(
        peers
            .admit(
                &url("http://localhost:5004"),
                Origin::Added,
                jbc("one node")
            )
            .unwrap(),
        Admitted::Alias { of: first.clone() }
    );
    assert_eq!(peers.urls(), std::slice::from_ref(&first));
    // Its own URL again is the same record, not an alias.
    assert_eq!(
        peers.admit(&first, Origin::Added, jbc("one node")).unwrap(),
        Admitted::Known
    );
}

#[test]
fn the_operator_adding_an_inbound_peer_promotes_it_whoever_came_first() {
    let dir = tempfile::tempdir().unwrap();
    let peers = book(dir.path(), &[]);
    let other = url("http://127.0.0.1:5006");
    peers.admit(&other, Origin::Inbound, jbc("other")).unwrap();
    assert_eq!(
        peers.admit(&other, Origin::Added, jbc("other")).unwrap(),
        Admitted::Promoted {
            from: Origin::Inbound
        }
    );
    assert_eq!(peers.origin(&other), Some(Origin::Added));
    // Added is as kept as it gets: neither word demotes it.
    for origin in [Origin::Added, Origin::Learned, Origin::Inbound] {
        assert_eq!(
            peers.admit(&other, origin, jbc("other")).unwrap(),
            Admitted::Known
        );
    }
    assert_eq!(peers.origin(&other), Some(Origin::Added));
}

#[test]
fn concurrent_saves_lose_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let peers = book(dir.path(), &[]);
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let peers = peers.clone();
            scope.spawn(move || {
                for n in 0..8 {
                    let added = url(&format!("http://127.0.0.1:{}", 6000 + thread * 8 + n));
                    let id = jbc(&format!("{thread} {n}"));
                    peers.admit(&added, Origin::Added, id).unwrap();
                }
            });
        }
    });
    let reopened = book(dir.path(), &[]);
    assert_eq!(reopened.count(), 64);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "peers.json")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_stranger_is_tried_once() {
    let dir = tempfile::tempdir().unwrap();
    let peers = book(dir.path(), &[]);
    let stranger = url("http://127.0.0.1:9999");
    let day = Duration::from_secs(86_400);
    assert!(peers.first_attempt(&stranger, day));
    assert!(!peers.first_attempt(&stranger, day));
    assert!(
        peers.first_attempt(&stranger, Duration::ZERO),
        "a shorter window has passed"
    );
}

#[test]
fn a_failing_peer_waits_longer_each_time_and_recovers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let peer = url("http://127.0.0.1:5002");
    let peers = book(dir.path(), &["http://127.0.0.1:5002"]);
    let sync = Contact::Sync;
    assert_eq!(
        peers.record_failure(&peer, sync, Failure::Unreachable),
        Change::Failing
    );
    assert_eq!(
        peers.record_failure(&peer, sync, Failure::Unreachable),
        Change::StillFailing { failures: 2 }
    );
    assert_eq!(
        peers.record_failure(&peer, sync, Failure::TimedOut),
        Change::Failing
    );
    assert_eq!(peers.sync_failure(&peer), Some(Failure::TimedOut));
    assert!(peers.next_sync_in(&peer) > Duration::from_secs(10));
    assert_eq!(
        peers.record_success(&peer, sync, Some(3)),
        Change::Recovered { failures: 3 }
    );
    assert_eq!(peers.next_sync_in(&peer), Duration::from_secs(5));
    assert_eq!(peers.sync_failure(&peer), None);
}

#[test]
fn the_file_of_earlier_versions_is_read_as_learned_peers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("peers.json"),
        r#"["http://127.0.0.1:5004/", "nonsense"]"#,
    )
    .unwrap();
    let peers = book(dir.path(), &[]);
    assert_eq!(peers.urls(), [url("http://127.0.0.1:5004")]);
    assert_eq!(
        peers.origin(&url("http://127.0.0.1:5004")),
        Some(Origin::Learned)
    );
}
