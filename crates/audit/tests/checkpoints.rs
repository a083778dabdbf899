//! Signed checkpoints: written every N records and on rotation, checked with the public key,
//! and the one thing a forger who rewrites the whole chain cannot redo.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{first_break, lines, rewrite, started};
use palisade_audit::{
    verify_signed, AuditLog, BreakKind, CheckpointSigner, Durability, EcdsaP256Signer,
    VerifyOptions, VerifyReport,
};
use sha2::{Digest, Sha256};

fn signer(seed: u8) -> Arc<EcdsaP256Signer> {
    Arc::new(EcdsaP256Signer::from_secret_bytes(&[seed; 32]).unwrap())
}

/// `count` events with a checkpoint after every third record.
fn sealed_log(path: &Path, count: usize, key: &Arc<EcdsaP256Signer>) -> AuditLog {
    let mut log = AuditLog::open(path)
        .unwrap()
        .with_checkpoints(key.clone(), 3);
    for index in 0..count {
        log.append(started(index)).unwrap();
    }
    log
}

fn check(paths: &[&Path], key: Option<&EcdsaP256Signer>) -> VerifyReport {
    let verifier = key.map(EcdsaP256Signer::verifier);
    verify_signed(
        paths,
        &VerifyOptions::default(),
        verifier
            .as_ref()
            .map(|v| v as &dyn palisade_audit::CheckpointVerifier),
    )
    .unwrap()
}

/// Rewrites every line's `prev` and `hash` from `from` on, as a forger without the key would.
fn rechain(lines: &mut [String], from: usize) {
    let mut prev = if from == 0 {
        "0".repeat(64)
    } else {
        let line = &lines[from - 1];
        let at = line.rfind("\"hash\":\"").unwrap() + 8;
        line[at..at + 64].to_owned()
    };
    for line in &mut lines[from..] {
        let prev_at = line.find("\"prev\":\"").unwrap() + 8;
        let relinked = format!("{}{prev}{}", &line[..prev_at], &line[prev_at + 64..]);
        let cut = relinked.find(",\"hash\":\"").unwrap();
        let body = format!("{}}}", &relinked[..cut]);
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        *line = format!("{},\"hash\":\"{hash}\"}}", &relinked[..cut]);
        prev = hash;
    }
}

#[test]
fn checkpoints_follow_every_nth_record_and_verify_with_the_key() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("sealed.log");
    let key = signer(1);
    sealed_log(&path, 7, &key);
    let text = lines(&path);
    // Records 0,1,2 then a checkpoint (seq 3), records 4,5,6, a checkpoint (seq 7), record 8.
    assert_eq!(text.len(), 9);
    assert!(text[3].contains("\"kind\":\"checkpoint\""), "{}", text[3]);
    assert!(text[3].contains("\"covers_seq\":2"));
    assert!(text[7].contains("\"covers_seq\":6"));

    let report = check(&[&path], Some(&key));
    assert!(report.intact, "{report:?}");
    assert_eq!(report.records, 9);
    assert_eq!((report.checkpoints, report.checkpoints_verified), (2, 2));
    assert_eq!(report.sealed_through, Some(6));
    assert_eq!(report.unsealed_records, 1);
    assert_eq!(report.checkpoint_key.as_deref(), Some(key.key_id()));

    // Without the key the checkpoints are counted, not vouched for.
    let report = check(&[&path], None);
    assert!(report.intact);
    assert_eq!((report.checkpoints, report.checkpoints_verified), (2, 0));
    assert_eq!(report.sealed_through, None);
    assert_eq!(report.unsealed_records, 9);
}

#[test]
fn a_chain_rewritten_with_fresh_hashes_fails_at_the_next_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("forged.log");
    let key = signer(2);
    sealed_log(&path, 7, &key);
    let mut text = lines(&path);
    // Edit record seq 5 (line 6) and recompute every hash after it: the chain itself is
    // consistent again, so only the signature can tell.
    text[5] = text[5].replace("\"container_id\":\"c4\"", "\"container_id\":\"cX\"");
    rechain(&mut text, 5);
    rewrite(&path, &text);
    let unsigned = check(&[&path], None);
    assert!(unsigned.intact, "the chain alone cannot see this");

    let report = check(&[&path], Some(&key));
    assert!(!report.intact);
    assert_eq!(first_break(&report), (8, BreakKind::BadCheckpoint));
    let detail = &report.first_break.unwrap().detail;
    assert!(detail.contains("does not verify"), "{detail}");
}

#[test]
fn a_checkpoint_by_another_key_is_reported_with_both_key_ids() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("other.log");
    let theirs = signer(3);
    sealed_log(&path, 4, &theirs);
    let ours = signer(4);
    let report = check(&[&path], Some(&ours));
    assert_eq!(first_break(&report), (4, BreakKind::BadCheckpoint));
    let detail = report.first_break.unwrap().detail;
    assert!(detail.contains(theirs.key_id()), "{detail}");
    assert!(detail.contains(ours.key_id()), "{detail}");
}

#[test]
fn a_forged_signature_or_wrong_coverage_is_bad() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("sig.log");
    let key = signer(5);
    sealed_log(&path, 3, &key);
    let original = lines(&path);
    assert!(original[3].contains("\"kind\":\"checkpoint\""));

    // Flip a signature digit and rehash the line so that only the signature is wrong.
    let mut text = original.clone();
    let at = text[3].find("\"signature\":\"").unwrap() + 20;
    let digit = if text[3].as_bytes()[at] == b'0' {
        '1'
    } else {
        '0'
    };
    text[3] = format!("{}{digit}{}", &text[3][..at], &text[3][at + 1..]);
    rechain(&mut text, 3);
    rewrite(&path, &text);
    assert_eq!(
        first_break(&check(&[&path], Some(&key))),
        (4, BreakKind::BadCheckpoint)
    );

    let mut text = original;
    text[3] = text[3].replace("\"covers_seq\":2", "\"covers_seq\":1");
    rechain(&mut text, 3);
    rewrite(&path, &text);
    let report = check(&[&path], None);
    assert_eq!(first_break(&report), (4, BreakKind::BadCheckpoint));
    assert!(report.first_break.unwrap().detail.contains("cover seq 1"));
}

#[test]
fn rotation_seals_the_archive_and_the_chain_verifies_across_files() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("engine.log");
    let archive = root.path().join("engine.1.log");
    let key = signer(6);
    let mut log = AuditLog::open(&path)
        .unwrap()
        .with_checkpoints(key.clone(), 0);
    log.append(started(0)).unwrap();
    log.append(started(1)).unwrap();
    let rotated = log
        .rotate(&archive, palisade_audit::Actor::user("root"))
        .unwrap();
    log.append(started(2)).unwrap();
    let sealed = log.seal().unwrap().unwrap();

    let old = lines(&archive);
    assert_eq!(old.len(), 3);
    assert!(old[2].contains("\"kind\":\"checkpoint\""));
    assert_eq!(rotated.seq, 3);
    assert_eq!(sealed.seq, 5);

    let report = check(&[&archive, &path], Some(&key));
    assert!(report.intact, "{report:?}");
    assert_eq!(report.records, 6);
    assert_eq!(report.checkpoints_verified, 2);
    assert_eq!(report.unsealed_records, 0);
    // The newest file alone is a continuation whose end is signed.
    let report = check(&[&path], Some(&key));
    assert!(report.intact && !report.from_genesis);
}

#[test]
fn seal_without_a_signer_is_an_error_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("plain.log");
    let mut log = AuditLog::open(&path).unwrap();
    log.append(started(0)).unwrap();
    assert!(matches!(
        log.seal(),
        Err(palisade_audit::AuditError::NoSigner { .. })
    ));
    assert_eq!(lines(&path).len(), 1);
}

#[test]
fn fsync_policies_parse_and_interval_appends_work() {
    use std::time::Duration;
    assert_eq!("always".parse::<Durability>(), Ok(Durability::Sync));
    assert_eq!("never".parse::<Durability>(), Ok(Durability::Flush));
    assert_eq!(
        "interval=5s".parse::<Durability>(),
        Ok(Durability::Interval(Duration::from_secs(5)))
    );
    assert_eq!(
        "interval=250ms".parse::<Durability>(),
        Ok(Durability::Interval(Duration::from_millis(250)))
    );
    let error = "sometimes".parse::<Durability>().unwrap_err();
    assert!(error.contains("always, never or interval"), "{error}");

    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("interval.log");
    let mut log = AuditLog::open(&path)
        .unwrap()
        .with_durability(Durability::Interval(Duration::from_millis(1)));
    for index in 0..5 {
        log.append(started(index)).unwrap();
    }
    assert!(check(&[&path], None).intact);
}
