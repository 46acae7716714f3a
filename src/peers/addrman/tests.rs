use std::net::IpAddr;

use super::*;

fn url(text: &str) -> PeerUrl {
    PeerUrl::parse(text).unwrap()
}

fn open_in(dir: &tempfile::TempDir) -> AddrMan {
    AddrMan::open(dir.path().join("addrs.json"))
}

#[test]
fn one_source_group_fills_only_its_share_of_the_new_table() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = open_in(&dir);
    // 10 000 made-up addresses in 10 000 groups, all from one liar.
    for n in 0..10_000u32 {
        let [_, _, a, b] = n.to_be_bytes();
        addrs.add(&url(&format!("http://{}.{}.1.1:5001", a + 1, b)), "6.6");
    }
    let share = (NEW_BUCKETS_PER_SOURCE_GROUP as usize) * BUCKET_SIZE;
    let from_liar = addrs.counts().new;
    assert!(from_liar <= share, "{from_liar} > {share}");
    assert!(
        from_liar > share / 2,
        "the buckets it may use fill: {from_liar}"
    );
    // An honest source still gets its addresses in: one is refused only
    // where its slot is taken, by the liar (in one of the few buckets the
    // two sources share: 2 of 16 on average, with a random key) or by an
    // honest address before it.
    let mut kept = 0;
    for n in 0..20 {
        let honest = url(&format!("http://20.{n}.0.1:5001"));
        if addrs.add(&honest, "20.0") {
            kept += 1;
            continue;
        }
        let tables = addrs.tables();
        let entry = Entry {
            url: honest.clone(),
            source_group: "20.0".into(),
            tried: false,
            heard: 0,
            last_try: None,
            last_success: None,
            failures: 0,
        };
        assert!(
            tables.new[tables.new_slot(&entry)].is_some(),
            "{honest} was refused though its slot is free"
        );
    }
    assert!(kept > 0, "no honest address was kept");
}

#[test]
fn a_known_address_is_not_added_twice() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = open_in(&dir);
    assert!(addrs.add(&url("http://10.0.0.1:5001"), "10.0"));
    assert!(!addrs.add(&url("http://10.0.0.1:5001"), "11.0"));
    assert_eq!(addrs.counts(), AddrCounts { new: 1, tried: 0 });
}

#[test]
fn an_address_that_answers_moves_to_tried_and_becomes_good() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = open_in(&dir);
    let a = url("http://10.0.0.1:5001");
    assert!(addrs.add(&a, "10.0"));
    let b = add_in_a_slot_of_its_own(&addrs, "10.0.0", "10.0");
    addrs.attempted(&a, true);
    addrs.attempted(&b, false);
    assert_eq!(addrs.counts(), AddrCounts { new: 1, tried: 1 });
    assert_eq!(addrs.good(10), vec![a]);
}

/// Adds the first of `PREFIX.2`, `PREFIX.3`, … (heard from `source`) that
/// finds a free slot in the new table: the key is random, so any one
/// address may want a slot an earlier one holds (and not get it).
fn add_in_a_slot_of_its_own(addrs: &AddrMan, prefix: &str, source: &str) -> PeerUrl {
    (2..50)
        .map(|n| url(&format!("http://{prefix}.{n}:5001")))
        .find(|candidate| addrs.add(candidate, source))
        .expect("one of 48 addresses finds a free slot")
}

/// Two addresses that want the same tried slot under this key.
fn colliding_pair(addrs: &AddrMan) -> (PeerUrl, PeerUrl) {
    let tables = addrs.tables();
    let mut seen: HashMap<usize, PeerUrl> = HashMap::new();
    for n in 0..100_000u32 {
        let [_, a, b, c] = n.to_be_bytes();
        let candidate = url(&format!("http://10.{a}.{b}.{}:5001", c.max(1)));
        let slot = tables.tried_slot(&candidate);
        if let Some(first) = seen.get(&slot)
            && first != &candidate
        {
            return (first.clone(), candidate);
        }
        seen.insert(slot, candidate);
    }
    panic!("no two addresses share a tried slot");
}

#[test]
fn a_taken_tried_slot_goes_to_a_newcomer_only_after_the_old_entry_fails_its_test() {
    // Two addresses that want one tried slot, each with a new-table slot
    // of its own (under some keys the second would not be kept at all).
    let (_dir, addrs, old, newcomer) = (0..20)
        .find_map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let addrs = open_in(&dir);
            let (old, newcomer) = colliding_pair(&addrs);
            (addrs.add(&old, "10.0") && addrs.add(&newcomer, "10.1"))
                .then_some((dir, addrs, old, newcomer))
        })
        .expect("a key under which both are kept");
    addrs.attempted(&old, true);
    addrs.attempted(&newcomer, true);
    let collision = Collision {
        newcomer: newcomer.clone(),
        old: old.clone(),
    };
    assert_eq!(addrs.collisions(), vec![collision.clone()]);
    assert_eq!(addrs.counts(), AddrCounts { new: 1, tried: 1 });

    // The old entry answers its test: it keeps its slot.
    addrs.resolve(&collision, true);
    assert!(addrs.collisions().is_empty());
    assert!(addrs.tables().entries[&old].tried);
    assert!(!addrs.tables().entries[&newcomer].tried);

    // Next time it does not: the newcomer takes the slot.
    addrs.attempted(&newcomer, true);
    let collision = addrs.collisions().pop().expect("the collision again");
    addrs.resolve(&collision, false);
    assert!(addrs.tables().entries[&newcomer].tried);
    assert!(!addrs.tables().entries[&old].tried);
}

#[test]
fn tables_survive_a_restart_and_a_damaged_file_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let a = url("http://10.0.0.1:5001");
    {
        let addrs = open_in(&dir);
        assert!(addrs.add(&a, "10.0"));
        add_in_a_slot_of_its_own(&addrs, "10.0.0", "10.0");
        addrs.attempted(&a, true);
        addrs.flush();
    }
    let addrs = open_in(&dir);
    assert_eq!(addrs.counts(), AddrCounts { new: 1, tried: 1 });
    assert_eq!(addrs.good(10), vec![a]);

    std::fs::write(dir.path().join("addrs.json"), b"{\"key\": 7").unwrap();
    let addrs = open_in(&dir);
    assert_eq!(addrs.counts(), AddrCounts::default());
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "addrs.json")
        .collect();
    assert!(
        aside
            .iter()
            .any(|name| name.starts_with("addrs.json.damaged")),
        "the damaged file is kept aside: {aside:?}"
    );
}

#[test]
fn select_skips_what_it_is_told_to_and_what_failed_a_moment_ago() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = open_in(&dir);
    let a = url("http://20.0.0.1:5001");
    assert!(addrs.add(&a, "20.0"));
    let b = add_in_a_slot_of_its_own(&addrs, "20.1.0", "20.0");
    for _ in 0..20 {
        assert_eq!(addrs.select(|u| u == &a, |_| false), Some(b.clone()));
        assert_eq!(
            addrs.select(|_| false, |group| group == "20.1"),
            Some(a.clone())
        );
    }
    addrs.attempted(&a, false);
    assert_eq!(addrs.select(|u| u == &b, |_| false), None);
}

#[test]
fn only_addresses_a_node_can_be_reached_at_are_kept() {
    let public: IpAddr = "20.1.2.3".parse().unwrap();
    let lan: IpAddr = "10.200.0.1".parse().unwrap();
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let fit = |text: &str, source| fit_to_keep(&url(text), Some(source));
    assert_eq!(fit("http://30.1.2.3:5001", public), Ok(()));
    assert_eq!(fit("http://10.200.0.2:5001", lan), Ok(()));
    assert_eq!(fit("http://127.0.0.1:5002", loopback), Ok(()));
    assert_eq!(fit("http://localhost:5002", loopback), Ok(()));
    assert_eq!(fit("http://example.com:5002", public), Err(Unfit::HostName));
    assert_eq!(fit("http://localhost:5002", public), Err(Unfit::HostName));
    assert_eq!(fit("http://0.0.0.0:5002", lan), Err(Unfit::Unroutable));
    assert_eq!(
        fit("http://169.254.169.254:80", lan),
        Err(Unfit::Unroutable)
    );
    assert_eq!(fit("http://[fe80::1]:80", lan), Err(Unfit::Unroutable));
    assert_eq!(fit("http://224.0.0.1:80", lan), Err(Unfit::Unroutable));
    assert_eq!(
        fit("http://127.0.0.1:5002", lan),
        Err(Unfit::OutOfScope { what: "loopback" })
    );
    assert_eq!(
        fit("http://192.168.1.1:80", public),
        Err(Unfit::OutOfScope { what: "private" })
    );
}

#[test]
fn network_groups_are_public_sixteens_lan_machines_and_local_ports() {
    assert_eq!(network_group(&url("http://20.200.3.4:5001")), "20.200");
    assert_eq!(network_group(&url("http://10.200.3.4:5001")), "10.200.3.4");
    assert_eq!(
        network_group(&url("http://127.0.0.1:5001")),
        "127.0.0.1:5001"
    );
    assert_eq!(
        network_group(&url("http://localhost:5002")),
        "127.0.0.1:5002"
    );
    assert_eq!(network_group(&url("http://[2001:db8::1]:5001")), "2001:db8");
    assert_eq!(network_group(&url("http://[::ffff:1.2.3.4]:5001")), "1.2");
    assert_eq!(
        network_group(&url("http://node.example:5001")),
        "node.example"
    );
}
