//! The store's tests: loads, appends and switches against real folders.

use super::*;
use crate::chain::SEGMENT_BLOCKS;
use crate::chain::Template;
use crate::chain::tests::{chain_of, test_network};

fn write_chain(dir: &Path, blocks: &[Block]) {
    for block in blocks {
        fs::write(dir.join(block_file_name(block.index)), block.to_json_line()).unwrap();
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != LOCK_FILE)
        .collect();
    names.sort();
    names
}

#[test]
fn a_second_store_on_one_folder_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    match Store::open(dir.path()) {
        Err(StoreError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("expected the folder to be locked, got {other:?}"),
    }
    drop(first);
    Store::open(dir.path()).unwrap();
}

#[test]
fn a_fresh_folder_gets_the_genesis_block() {
    let dir = tempfile::tempdir().unwrap();
    let network = test_network();
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.chain.len(), 1);
    assert_eq!(listing(dir.path()), ["000000.json"]);
    let written = fs::read(dir.path().join("000000.json")).unwrap();
    assert_eq!(Block::from_json(&written).unwrap(), network.genesis);
}

#[test]
fn appended_blocks_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let network = test_network();
    let store = Store::open(dir.path()).unwrap();
    let mut chain = store.load(&network).unwrap().chain;
    for block in chain_of(&network, 4, "a").into_iter().skip(1) {
        store.append_all(std::slice::from_ref(&block)).unwrap();
        chain.push(block, &network).unwrap();
    }
    let loaded = store.load(&network).unwrap();
    assert_eq!(loaded.chain.blocks(), chain.blocks());
    assert!(loaded.set_aside.is_empty());
    assert_eq!(listing(dir.path()).len(), 4);
}

#[test]
fn a_directory_named_like_a_block_file_is_moved_out_of_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let network = test_network();
    let blocks = chain_of(&network, 3, "a");
    write_chain(dir.path(), &blocks);
    fs::create_dir(dir.path().join(block_file_name(3))).unwrap();
    fs::write(dir.path().join(block_file_name(3)).join("inside"), b"kept").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let loaded = store.load(&network).unwrap();
    assert_eq!(loaded.chain.len(), 3);
    assert_eq!(loaded.set_aside.len(), 1);
    assert!(
        loaded.set_aside[0]
            .reason
            .contains("a directory named like a block file")
    );
    let moved = &loaded.set_aside[0].to;
    assert_eq!(
        fs::read(moved.join("inside")).unwrap(),
        b"kept",
        "nothing deleted"
    );
    // Block 3 can now be written.
    let next = chain_of(&network, 4, "a").pop().unwrap();
    store.append_all(std::slice::from_ref(&next)).unwrap();
    assert_eq!(store.load(&network).unwrap().chain.len(), 4);
}

#[test]
fn a_chain_block_under_another_name_moves_to_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let network = test_network();
    let blocks = chain_of(&network, 4, "a");
    write_chain(dir.path(), &blocks);
    // 000002.json's block under a name that sorts last, and 000003.json's
    // block where block 1 belongs: nothing may be overwritten.
    fs::rename(dir.path().join("000002.json"), dir.path().join("zzz.json")).unwrap();
    fs::rename(
        dir.path().join("000001.json"),
        dir.path().join("000002.json"),
    )
    .unwrap();
    fs::rename(
        dir.path().join("000003.json"),
        dir.path().join("000001.json"),
    )
    .unwrap();
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.chain.blocks(), &blocks[..]);
    assert!(loaded.set_aside.is_empty());
    assert_eq!(
        listing(dir.path()),
        ["000000.json", "000001.json", "000002.json", "000003.json"]
    );
    let again = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(again.chain.blocks(), &blocks[..]);
}

#[test]
fn big_indices_get_more_digits_and_sort_numerically() {
    let mut names: Vec<String> = [999_999, 1_000_000, 5]
        .into_iter()
        .map(block_file_name)
        .collect();
    names.sort();
    assert_eq!(names, ["000005.json", "1000000.json", "999999.json"]);
    // The loader orders by the index inside each file, not by name.
    let dir = tempfile::tempdir().unwrap();
    let network = test_network();
    let blocks = chain_of(&network, 3, "a");
    fs::write(dir.path().join("000000.json"), blocks[0].to_json_line()).unwrap();
    fs::write(dir.path().join("9999999.json"), blocks[1].to_json_line()).unwrap();
    fs::write(dir.path().join("1000000.json"), blocks[2].to_json_line()).unwrap();
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.chain.blocks(), &blocks[..]);
}

#[test]
fn a_corrupt_file_keeps_the_valid_prefix_and_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let network = test_network();
    let blocks = chain_of(&network, 5, "a");
    write_chain(dir.path(), &blocks);
    let garbage = b"{\"index\": \"3\", trunc".to_vec();
    fs::write(dir.path().join("000003.json"), &garbage).unwrap();
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.chain.blocks(), &blocks[..3]);
    assert_eq!(loaded.set_aside.len(), 2, "{:?}", loaded.set_aside);
    let corrupt = loaded
        .set_aside
        .iter()
        .find(|s| s.from.ends_with("000003.json"))
        .unwrap();
    assert!(
        corrupt.reason.starts_with("not valid JSON"),
        "{}",
        corrupt.reason
    );
    assert_eq!(fs::read(&corrupt.to).unwrap(), garbage);
    let orphan = loaded
        .set_aside
        .iter()
        .find(|s| s.from.ends_with("000004.json"))
        .unwrap();
    assert!(
        orphan.reason.contains("block 3 is missing or invalid"),
        "{}",
        orphan.reason
    );
    assert_eq!(fs::read(&orphan.to).unwrap(), blocks[4].to_json_line());
    // The folder now holds exactly the chain, so later writes can't
    // overwrite anything that was set aside.
    assert_eq!(
        listing(dir.path()),
        ["000000.json", "000001.json", "000002.json", "quarantine"]
    );
    let again = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(again.chain.len(), 3);
    assert!(again.set_aside.is_empty());
}

#[test]
fn a_missing_block_sets_the_rest_aside_as_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let network = test_network();
    let blocks = chain_of(&network, 9, "a");
    write_chain(dir.path(), &blocks);
    fs::remove_file(dir.path().join("000003.json")).unwrap();
    fs::write(dir.path().join("notes.json"), "not json").unwrap();
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.set_aside.len(), 6);
    let runs = runs(&loaded.set_aside);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let quarantine = dir.path().join(QUARANTINE);
    assert_eq!(
        runs[1].to_string(),
        format!(
            "5 block files, blocks 4 to 8, set aside in {}: \
             block 3 is missing or invalid, so the blocks after it cannot follow",
            quarantine.display()
        )
    );
    assert!(
        runs[0].to_string().starts_with(&format!(
            "block file {}",
            dir.path().join("notes.json").display()
        )),
        "{}",
        runs[0]
    );
}

#[test]
fn a_long_folder_loads_segment_by_segment_and_stops_where_it_breaks() {
    let network = test_network();
    let blocks = crate::chain::tests::long_chain();
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), blocks);
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.chain.len(), blocks.len() as u64);
    assert_eq!(loaded.chain.to_json(), serde_json::to_vec(blocks).unwrap());
    assert!(loaded.set_aside.is_empty());

    // The first block of the second segment is damaged: the chain is the
    // first segment, and every file after it is set aside.
    let broken = SEGMENT_BLOCKS as u64;
    fs::write(
        dir.path().join(block_file_name(broken)),
        b"{\"index\": 4096",
    )
    .unwrap();
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.chain.len(), broken);
    assert_eq!(loaded.chain.tip(), &blocks[broken as usize - 1]);
    let runs = runs(&loaded.set_aside);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs[0].to_string().contains("not valid JSON"),
        "{}",
        runs[0]
    );
    assert_eq!(runs[1].count, blocks.len() - broken as usize - 1);
    assert_eq!(
        listing(&dir.path().join(QUARANTINE)).len(),
        2 * (blocks.len() - broken as usize),
        "each file and its reason"
    );

    // Another branch's block where a segment begins: the link breaks.
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), blocks);
    let stranger = (0..)
        .map(|nonce| {
            let prev = blocks[100].hash.to_string();
            Block::new(broken, 1_700_000_000, prev, "elsewhere".into(), nonce)
        })
        .find(|b| b.hash.meets_difficulty(2))
        .unwrap();
    fs::write(
        dir.path().join(block_file_name(broken)),
        stranger.to_json_line(),
    )
    .unwrap();
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.chain.len(), broken);
    assert!(
        loaded.set_aside[0]
            .reason
            .contains("is not the hash of block 4095"),
        "{}",
        loaded.set_aside[0].reason
    );
}

#[test]
fn an_adaptive_chain_loads_back_with_its_targets_and_work() {
    let dir = tempfile::tempdir().unwrap();
    let network = crate::chain::tests::adaptive_network(10, 5);
    // Fast blocks: the target gets harder at every retarget.
    let genesis = vec![network.genesis.clone()];
    let blocks = crate::chain::tests::extend_timed(&network, genesis, &[1; 23], "fast");
    let built = Chain::from_blocks(blocks.clone(), &network).unwrap();
    assert!(built.target_at(20) < built.target_at(15));
    write_chain(dir.path(), &blocks);
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert!(loaded.set_aside.is_empty());
    assert_eq!(loaded.chain.work(), built.work());
    assert_eq!(loaded.chain.tip_cursor(), built.tip_cursor());
    for index in [0, 4, 5, 19, 20, 23] {
        assert_eq!(loaded.chain.target_at(index), built.target_at(index));
        assert_eq!(loaded.chain.cursor_at(index), built.cursor_at(index));
    }
}

#[test]
fn a_block_that_breaks_the_time_rule_is_quarantined_with_the_rest_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let network = crate::chain::tests::adaptive_network(10, 5);
    let genesis = vec![network.genesis.clone()];
    let mut blocks = crate::chain::tests::extend_timed(&network, genesis, &[10; 6], "a");
    // Block 7 goes back in time past the median of the blocks before.
    let early = Template::with_target(
        &blocks[6],
        "early".into(),
        blocks[2].timestamp,
        network.pow_limit(),
    )
    .solve_plainly();
    blocks.push(early);
    let blocks = crate::chain::tests::extend_timed(&network, blocks, &[100; 2], "after");
    write_chain(dir.path(), &blocks);
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.chain.len(), 7);
    let early = loaded
        .set_aside
        .iter()
        .find(|s| s.index == Some(7))
        .expect("block 7 set aside");
    assert!(early.reason.contains("is not after"), "{}", early.reason);
    assert!(early.to.starts_with(dir.path().join(QUARANTINE)));
    assert_eq!(loaded.set_aside.len(), 3);
}

#[test]
fn the_branch_with_the_most_work_wins_over_a_longer_one() {
    let dir = tempfile::tempdir().unwrap();
    let network = crate::chain::tests::adaptive_network(10, 5);
    let genesis = vec![network.genesis.clone()];
    // Fast blocks make the targets harder: fewer blocks, more work.
    let heavy = crate::chain::tests::extend_timed(&network, genesis.clone(), &[1; 14], "heavy");
    let light = crate::chain::tests::extend_timed(&network, genesis, &[100; 17], "light");
    let (heavy_chain, light_chain) = (
        Chain::from_blocks(heavy.clone(), &network).unwrap(),
        Chain::from_blocks(light.clone(), &network).unwrap(),
    );
    assert!(light_chain.len() > heavy_chain.len());
    assert!(heavy_chain.work() > light_chain.work());
    // The light branch holds the canonical names; the heavy one sits
    // under other names, so the general path weighs both.
    write_chain(dir.path(), &light);
    for block in &heavy[1..] {
        fs::write(
            dir.path().join(format!("heavy-{}.json", block.index)),
            block.to_json_line(),
        )
        .unwrap();
    }
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.chain.blocks(), heavy);
    let orphaned: Vec<&SetAside> = loaded
        .set_aside
        .iter()
        .filter(|s| s.to.starts_with(dir.path().join(ORPHANED)))
        .collect();
    assert_eq!(orphaned.len(), light.len() - 1, "{:#?}", loaded.set_aside);
    assert!(
        orphaned[0].reason.contains("more work"),
        "{}",
        orphaned[0].reason
    );
}

#[test]
fn a_tampered_block_is_quarantined_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let network = test_network();
    let mut blocks = chain_of(&network, 4, "a");
    blocks[2].data = "tampered".into();
    write_chain(dir.path(), &blocks);
    let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
    assert_eq!(loaded.chain.len(), 2);
    let tampered = loaded
        .set_aside
        .iter()
        .find(|s| s.from.ends_with("000002.json"))
        .unwrap();
    assert!(
        tampered.reason.contains("does not match its contents"),
        "{}",
        tampered.reason
    );
    let note = fs::read_to_string(format!("{}.reason", tampered.to.display())).unwrap();
    assert!(note.contains("000002.json"), "{note}");
}

#[test]
fn another_networks_genesis_is_refused_touching_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let network = test_network();
    let other = Network {
        genesis: Block::new(0, 1, String::new(), "another network".into(), 0),
        ..test_network()
    };
    let blocks = chain_of(&other, 3, "a");
    write_chain(dir.path(), &blocks);
    fs::write(dir.path().join("junk.json"), "not json").unwrap();
    let before = listing(dir.path());
    let err = Store::open(dir.path()).unwrap().load(&network).unwrap_err();
    assert!(matches!(err, StoreError::GenesisMismatch { .. }), "{err}");
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn a_chain_of_another_difficulty_is_refused_touching_nothing() {
    let network = test_network();
    let blocks = chain_of(&network, 4, "easier");
    let zeros = crate::block::leading_zero_nibbles(&blocks[1].hash.0);
    let harder = Network::new(network.genesis.clone(), zeros + 1);
    // The fast path (files named by their blocks) and the general one
    // (a block under another name) both refuse.
    for misnamed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_chain(dir.path(), &blocks);
        if misnamed {
            fs::rename(dir.path().join("000002.json"), dir.path().join("copy.json")).unwrap();
        }
        let before = listing(dir.path());
        let err = Store::open(dir.path()).unwrap().load(&harder).unwrap_err();
        match &err {
            StoreError::OtherDifficulty {
                zeros: z,
                difficulty,
                ..
            } => assert_eq!((*z, *difficulty), (zeros, zeros + 1)),
            other => panic!("expected a refusal, got {other}"),
        }
        assert!(err.to_string().contains("nothing was moved"), "{err}");
        assert_eq!(listing(dir.path()), before);
        // At its own difficulty the same folder loads whole.
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        assert_eq!(loaded.chain.len(), 4);
    }
}

#[test]
fn switching_branches_rewrites_only_the_fork_and_orphans_the_losers() {
    let dir = tempfile::tempdir().unwrap();
    let network = test_network();
    let store = Store::open(dir.path()).unwrap();
    let ours = chain_of(&network, 4, "ours");
    write_chain(dir.path(), &ours);
    let old = store.load(&network).unwrap().chain;
    let mut theirs = ours[..2].to_vec();
    for block in chain_of(&network, 4, "theirs").into_iter().skip(1) {
        let next = crate::chain::tests::mine_on(theirs.last().unwrap(), &block.data, 2);
        theirs.push(next);
    }
    theirs.truncate(6);
    let new = Chain::from_blocks(theirs.clone(), &network).unwrap();
    let unchanged = fs::metadata(dir.path().join("000001.json"))
        .unwrap()
        .modified()
        .unwrap();
    let fork = old.common_prefix(&new.blocks()) as usize;
    assert_eq!(fork, 2);
    store
        .switch(&old.blocks()[fork..], &new.blocks()[fork..])
        .unwrap();
    assert_eq!(
        fs::metadata(dir.path().join("000001.json"))
            .unwrap()
            .modified()
            .unwrap(),
        unchanged
    );
    assert_eq!(listing(&dir.path().join(ORPHANED)).len(), 2);
    let loaded = store.load(&network).unwrap();
    assert_eq!(loaded.chain.blocks(), new.blocks());
    assert!(loaded.set_aside.is_empty());
}

/// Two branches from block 1: ours (5 blocks) and theirs (7).
fn two_branches() -> (Network, Vec<Block>, Vec<Block>) {
    let network = test_network();
    let ours = chain_of(&network, 5, "ours");
    let mut theirs = ours[..2].to_vec();
    while theirs.len() < 7 {
        let next = crate::chain::tests::mine_on(theirs.last().unwrap(), "theirs", 2);
        theirs.push(next);
    }
    (network, ours, theirs)
}

#[test]
fn a_switch_interrupted_at_any_step_loads_the_old_or_new_chain() {
    // Replay the switch's file operations one by one, loading a copy of
    // the folder after each, as a crash at that instant would leave it:
    // the old chain before the commit marker, the new one from it on.
    enum Content<'a> {
        Block(&'a Block),
        Marker,
        Removed,
    }
    let (network, ours, theirs) = two_branches();
    let pending = |i: u64| format!("{PENDING}/{}", block_file_name(i));
    let main = block_file_name;
    let orphan = |b: &Block| format!("{ORPHANED}/{:06}-{}.json", b.index, b.hash);
    let marker = format!("{PENDING}/{COMMITTED}");
    let mut steps: Vec<Vec<(String, Content)>> = Vec::new();
    for b in &theirs[2..] {
        steps.push(vec![(pending(b.index), Content::Block(b))]);
    }
    let commit = steps.len();
    steps.push(vec![(marker.clone(), Content::Marker)]);
    for b in &ours[2..] {
        steps.push(vec![
            (main(b.index), Content::Removed),
            (orphan(b), Content::Block(b)),
        ]);
    }
    for b in &theirs[2..] {
        steps.push(vec![
            (pending(b.index), Content::Removed),
            (main(b.index), Content::Block(b)),
        ]);
    }
    steps.push(vec![(marker, Content::Removed)]);
    for done in 0..=steps.len() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(PENDING)).unwrap();
        fs::create_dir_all(dir.path().join(ORPHANED)).unwrap();
        write_chain(dir.path(), &ours);
        for (file, content) in steps[..done].iter().flatten() {
            let path = dir.path().join(file);
            match content {
                Content::Block(block) => fs::write(path, block.to_json_line()).unwrap(),
                Content::Marker => fs::write(path, "committed").unwrap(),
                Content::Removed => fs::remove_file(path).unwrap(),
            }
        }
        let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
        let expected = if done <= commit { &ours } else { &theirs };
        assert_eq!(
            loaded.chain.blocks(),
            &expected[..],
            "after {done} steps (commit at {commit})"
        );
        assert!(!dir.path().join(PENDING).exists(), "after {done} steps");
    }
}

#[test]
fn a_switch_that_fails_anywhere_leaves_the_old_chain_or_finishes() {
    // Fail the nth file operation of the switch, once (the switch
    // retries what follows its commit point) or from then on.
    for sticky in [false, true] {
        for n in 0.. {
            let (network, ours, theirs) = two_branches();
            let dir = tempfile::tempdir().unwrap();
            write_chain(dir.path(), &ours);
            let store = Store::open(dir.path()).unwrap();
            let old = store.load(&network).unwrap().chain;
            FAIL_AT.with(|f| f.set(Some((n, sticky))));
            FAILED.with(|f| f.set(false));
            let result = store.switch(&old.blocks()[2..], &theirs[2..]);
            FAIL_AT.with(|f| f.set(None));
            let failed_anywhere = FAILED.with(|f| f.get());
            drop(store);
            let loaded = Store::open(dir.path()).unwrap().load(&network).unwrap();
            match result {
                Ok(()) => assert_eq!(loaded.chain.blocks(), &theirs[..], "n={n}"),
                Err(StoreError::SwitchInterrupted { .. }) => {
                    assert!(sticky, "a single failure is retried (n={n})");
                    assert_eq!(loaded.chain.blocks(), &theirs[..], "n={n}: rolled forward");
                }
                Err(error) => {
                    assert_eq!(loaded.chain.blocks(), &ours[..], "n={n}: {error}");
                    assert!(
                        loaded.set_aside.is_empty(),
                        "n={n}: nothing staged is left to set aside"
                    );
                }
            }
            assert!(!dir.path().join(PENDING).exists(), "n={n}");
            if !failed_anywhere {
                break; // n is past the last operation
            }
        }
    }
}

#[test]
fn the_orphans_shown_are_the_blocks_moved_there_last_and_junk_is_passed_over() {
    let (_network, ours, _theirs) = two_branches();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let orphans = dir.path().join(ORPHANED);
    fs::create_dir_all(&orphans).unwrap();
    for block in &ours[2..] {
        let name = format!("{:06}-{}.json", block.index, block.hash);
        fs::write(orphans.join(name), block.to_json_line()).unwrap();
    }
    fs::write(orphans.join("junk.json"), "not a block").unwrap();
    fs::write(orphans.join("big.json"), vec![b' '; 100_000]).unwrap();
    fs::write(orphans.join("note.reason"), "why").unwrap();
    let mut shown: Vec<Block> = (store.recent_orphans(100, 10_000).into_iter())
        .map(|(block, file)| {
            assert_eq!(fs::read(&file).unwrap(), block.to_json_line());
            block
        })
        .collect();
    shown.sort_by_key(|block| block.index);
    assert_eq!(shown, ours[2..].to_vec());
    assert_eq!(store.recent_orphans(1, 10_000).len(), 1);
    // Nothing is moved or removed.
    assert_eq!(fs::read_dir(&orphans).unwrap().count(), ours.len() - 2 + 3);
}

#[test]
fn side_blocks_are_kept_in_their_folder_and_only_there_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let block = Block::new(
        3,
        1,
        crate::block::PrevHash::none(),
        "a side block".into(),
        0,
    );
    let file = store.keep_side(&block).unwrap();
    assert!(file.starts_with(dir.path().join(SIDE)));
    assert_eq!(store.read_side(&file, &block.hash), Some(block.clone()));
    let other = Block::new(3, 1, crate::block::PrevHash::none(), "another".into(), 0);
    assert_eq!(
        store.read_side(&file, &other.hash),
        None,
        "the hash is checked"
    );
    let kept: Vec<Block> = store
        .side_blocks(10_000)
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    assert_eq!(kept, std::slice::from_ref(&block));
    // A file of the chain or of orphaned/ is never dropped through it.
    let chain_file = dir.path().join(block_file_name(0));
    fs::write(&chain_file, "x").unwrap();
    store.drop_side(&chain_file);
    assert!(chain_file.exists());
    store.drop_side(&file);
    assert!(!file.exists());
}
