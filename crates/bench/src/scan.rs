//! Cheap per-frame work: classify a frame and find write markers and deleted
//! keys in it without parsing the JSON.
//!
//! The hot path runs once per received frame per client (100,000 frames/s in
//! S5), so it only does `memchr::memmem` searches over the raw bytes and parses
//! the few decimal numbers that follow a hit.

use memchr::memmem;

/// What a server frame is, from its `"type"` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A complete result: pglive's `snapshot`, the peer's `dataUpdate`.
    Full,
    /// pglive's keyed `diff`.
    Diff,
    /// pglive's `error`.
    Error,
    /// The floor's greeting: it has no initial state, so this is "ready".
    Hello,
    /// One of the floor's bare payloads: a marker, or `d<id>` for a delete.
    Raw,
    /// Anything else (ignored).
    Other,
}

const TYPE_KEY: &[u8] = br#""type":""#;

/// Classifies a frame by the `"type":"…"` near its start (serde writes the tag
/// first; the peer's `JSON.stringify` writes `type` first too).
pub fn classify(frame: &[u8]) -> FrameKind {
    let head = &frame[..frame.len().min(64)];
    let Some(at) = memmem::find(head, TYPE_KEY) else {
        return FrameKind::Other;
    };
    let rest = &frame[at + TYPE_KEY.len()..];
    if rest.starts_with(b"diff\"") {
        FrameKind::Diff
    } else if rest.starts_with(b"snapshot\"") || rest.starts_with(b"dataUpdate\"") {
        FrameKind::Full
    } else if rest.starts_with(b"error\"") {
        FrameKind::Error
    } else {
        FrameKind::Other
    }
}

/// Classifies a frame of the floor (`../shared/peers/floor-rs`), which sends
/// `hello` on connect and then each NOTIFY payload verbatim.
pub fn classify_raw(frame: &[u8]) -> FrameKind {
    if frame == b"hello" {
        FrameKind::Hello
    } else {
        FrameKind::Raw
    }
}

/// The row id of a floor payload `d<id>` (its trigger's delete notice).
pub fn raw_deleted_id(frame: &[u8]) -> Option<u64> {
    let digits = frame.strip_prefix(b"d")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    leading_number(digits)
}

/// Parses the unsigned decimal number at the start of `bytes` (no sign, no
/// leading whitespace). `None` when there is no digit or it overflows.
fn leading_number(bytes: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    let mut digits = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(value)
}

/// Calls `f(seq)` for every marker `<prefix><seq>` in `frame`. `finder`
/// searches for the prefix (e.g. `bm-k3j9-`).
pub fn for_each_marker(frame: &[u8], finder: &memmem::Finder<'_>, mut f: impl FnMut(u64)) {
    let plen = finder.needle().len();
    for at in finder.find_iter(frame) {
        if let Some(seq) = leading_number(&frame[at + plen..]) {
            f(seq);
        }
    }
}

/// Calls `f(case, writer, n)` for every writer-scenario marker
/// `<prefix><case>.<writer>.<n>` in `frame`.
pub fn for_each_triple(
    frame: &[u8],
    finder: &memmem::Finder<'_>,
    mut f: impl FnMut(u64, u64, u64),
) {
    let plen = finder.needle().len();
    for at in finder.find_iter(frame) {
        let rest = &frame[at + plen..];
        let mut nums = [0u64; 3];
        let mut pos = 0;
        let mut ok = true;
        for (i, slot) in nums.iter_mut().enumerate() {
            if i > 0 {
                if rest.get(pos) != Some(&b'.') {
                    ok = false;
                    break;
                }
                pos += 1;
            }
            let digits = rest[pos.min(rest.len())..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            match leading_number(&rest[pos.min(rest.len())..]) {
                Some(v) => *slot = v,
                None => {
                    ok = false;
                    break;
                }
            }
            pos += digits;
        }
        if ok {
            f(nums[0], nums[1], nums[2]);
        }
    }
}

const DELETES_KEY: &[u8] = br#""deletes":["#;

/// Calls `f(id)` for every key in a diff's `"deletes":[…]` list.
pub fn for_each_deleted_id(frame: &[u8], mut f: impl FnMut(u64)) {
    // The list is after the upserts; search from the end, it is usually short.
    // Keys are numbers, or strings for bigint keys (`"12"`): quotes are skipped.
    let Some(at) = memmem::rfind(frame, DELETES_KEY) else {
        return;
    };
    let mut rest = &frame[at + DELETES_KEY.len()..];
    loop {
        while let Some((&b, tail)) = rest.split_first() {
            if b == b' ' || b == b',' || b == b'"' {
                rest = tail;
            } else {
                break;
            }
        }
        match rest.first() {
            Some(b) if b.is_ascii_digit() => {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if let Some(id) = leading_number(rest) {
                    f(id);
                }
                rest = &rest[digits..];
            }
            _ => return,
        }
    }
}

/// Extracts the `"message"` of an error frame for the report (best effort,
/// bounded length).
pub fn error_summary(frame: &[u8]) -> String {
    let text = String::from_utf8_lossy(&frame[..frame.len().min(300)]);
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_frames() {
        assert_eq!(
            classify(br#"{"type":"snapshot","id":"a","version":1,"table":"items","rows":[]}"#),
            FrameKind::Full
        );
        assert_eq!(
            classify(br#"{"type":"dataUpdate","data":[]}"#),
            FrameKind::Full
        );
        assert_eq!(
            classify(br#"{"type":"diff","id":"a","from":1,"to":2,"table":"items","upserts":[],"deletes":[3]}"#),
            FrameKind::Diff
        );
        assert_eq!(
            classify(br#"{"type":"error","code":"bad_frame","message":"x"}"#),
            FrameKind::Error
        );
        assert_eq!(classify(b"hello"), FrameKind::Other);
        assert_eq!(classify(br#"{"type":"diffx"}"#), FrameKind::Other);
    }

    #[test]
    fn finds_markers() {
        let finder = memmem::Finder::new("bm-ab12-").into_owned();
        let frame = br#"{"rows":[{"id":1,"name":"bm-ab12-0"},{"id":2,"name":"bm-ab12-417"},{"name":"bm-ab12-"},{"name":"bm-zz-9"}]}"#;
        let mut seen = Vec::new();
        for_each_marker(frame, &finder, |s| seen.push(s));
        assert_eq!(seen, vec![0, 417]);
    }

    #[test]
    fn finds_deleted_ids() {
        let mut ids = Vec::new();
        for_each_deleted_id(
            br#"{"type":"diff","upserts":[{"at":0,"row":{"id":9,"name":"x"}}],"deletes":[12, "7","1000001"]}"#,
            |id| ids.push(id),
        );
        assert_eq!(ids, vec![12, 7, 1_000_001]);
        ids.clear();
        for_each_deleted_id(br#"{"type":"diff","upserts":[],"deletes":[]}"#, |id| {
            ids.push(id)
        });
        assert!(ids.is_empty());
        for_each_deleted_id(br#"{"type":"snapshot"}"#, |id| ids.push(id));
        assert!(ids.is_empty());
    }

    #[test]
    fn finds_triples() {
        let finder = memmem::Finder::new("bm-ab12-w").into_owned();
        let frame = br#"[{"name":"bm-ab12-w3.1.77"},{"name":"bm-ab12-w3.0.0"},{"name":"bm-ab12-w3.1"},{"name":"bm-ab12-w4.x.1"}]"#;
        let mut seen = Vec::new();
        for_each_triple(frame, &finder, |c, w, n| seen.push((c, w, n)));
        assert_eq!(seen, vec![(3, 1, 77), (3, 0, 0)]);
    }

    #[test]
    fn floor_frames() {
        assert_eq!(classify_raw(b"hello"), FrameKind::Hello);
        assert_eq!(classify_raw(b"bm-ab12-7"), FrameKind::Raw);
        assert_eq!(raw_deleted_id(b"d42"), Some(42));
        assert_eq!(raw_deleted_id(b"d"), None);
        assert_eq!(raw_deleted_id(b"d4x"), None);
        assert_eq!(raw_deleted_id(b"bm-ab12-7"), None);
        let finder = memmem::Finder::new("bm-ab12-").into_owned();
        let mut seen = Vec::new();
        for_each_marker(b"bm-ab12-7", &finder, |s| seen.push(s));
        assert_eq!(seen, vec![7]);
    }

    #[test]
    fn numbers() {
        assert_eq!(leading_number(b"123\""), Some(123));
        assert_eq!(leading_number(b"\"1"), None);
        assert_eq!(leading_number(b"99999999999999999999999"), None);
    }
}
