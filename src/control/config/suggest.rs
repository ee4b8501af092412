//! "Did you mean …?" for misspelt keys and values.
//!
//! serde reports an unknown key as ``unknown field `schedular`, expected one of `vip`, …`` and
//! an unknown enum value as ``unknown variant `dsr`, expected one of `nat`, …``. [`suggest`]
//! rewrites such a message when one of the expected names is close to the one written: the list
//! is replaced by ``— did you mean `scheduler`?``. When nothing is close the message is kept
//! whole (the list is then the most useful thing to show). Any other message passes unchanged.
//!
//! Close means, comparing without regard to case:
//! - an edit distance (insertions, deletions, substitutions and swaps of two neighbouring
//!   characters, each costing 1) of at most 2, and at most half the length of the word written
//!   (so `xy` is not "close" to `rr`, but `dsr` is to `dr`); or
//! - one is a prefix of the other and they share at least [`MIN_PREFIX`] characters
//!   (`health` → `health_check`).
//!
//! The nearest by distance wins, a prefix match counting after every distance match; ties go
//! to the first in serde's list (the declaration order).

/// The shortest shared prefix that makes two names close.
pub const MIN_PREFIX: usize = 4;

/// The largest edit distance that makes two names close.
pub const MAX_DISTANCE: usize = 2;

/// The edit distance between `a` and `b` with adjacent transpositions (optimal string
/// alignment), over chars. `O(len(a) * len(b))`; config names are short.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the table: two back (for transpositions), previous, current.
    let mut back: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(back[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut back, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// How close `candidate` is to `written`: `Some(rank)` when close (lower is nearer), `None`
/// when not (see the module documentation).
fn closeness(written: &str, candidate: &str) -> Option<usize> {
    let (w, c) = (written.to_lowercase(), candidate.to_lowercase());
    let d = edit_distance(&w, &c);
    if d <= MAX_DISTANCE && d * 2 <= w.chars().count() {
        return Some(d);
    }
    let shared = w.chars().zip(c.chars()).take_while(|(x, y)| x == y).count();
    let is_prefix = shared == w.chars().count() || shared == c.chars().count();
    (is_prefix && shared >= MIN_PREFIX).then_some(MAX_DISTANCE + 1)
}

/// The candidate closest to `written`, if any is close; the first of equally close ones.
pub fn closest<'a>(
    written: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if let Some(rank) = closeness(written, c) {
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, c));
            }
        }
    }
    best.map(|(_, c)| c)
}

/// The names in backticks of serde's expectation list: `` `a` ``, `` `a` or `b` ``,
/// `` one of `a`, `b`, `c` ``.
fn quoted_names(list: &str) -> Vec<&str> {
    list.split('`').skip(1).step_by(2).collect()
}

/// `msg` with a suggestion in place of serde's list when an expected name is close to the
/// unknown one (see the module documentation); otherwise `msg` unchanged.
pub fn suggest(msg: &str) -> String {
    for what in ["unknown field `", "unknown variant `"] {
        let Some(at) = msg.find(what) else {
            continue;
        };
        let after = &msg[at + what.len()..];
        let Some((written, rest)) = after.split_once('`') else {
            continue;
        };
        let Some(list) = rest.strip_prefix(", expected ") else {
            continue;
        };
        if let Some(best) = closest(written, quoted_names(list)) {
            return format!("{}{what}{written}` — did you mean `{best}`?", &msg[..at]);
        }
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("schedular", "scheduler"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("wegiht", "weight"), 1, "a swap costs one");
        assert_eq!(edit_distance("dsr", "dr"), 1);
        assert_eq!(edit_distance("port", "ports"), 1);
        assert_eq!(edit_distance("vìp", "vip"), 1, "chars, not bytes");
    }

    #[test]
    fn the_closest_name_or_none() {
        let keys = [
            "vip",
            "port",
            "scheduler",
            "scheduler_flags",
            "health_check",
            "reals",
        ];
        assert_eq!(closest("schedular", keys), Some("scheduler"));
        assert_eq!(closest("scheduler_flag", keys), Some("scheduler_flags"));
        assert_eq!(closest("real", keys), Some("reals"));
        assert_eq!(closest("health", keys), Some("health_check"));
        assert_eq!(
            closest("sched", keys),
            Some("scheduler"),
            "a prefix, the first"
        );
        assert_eq!(closest("VIP", keys), Some("vip"), "case is ignored");
        assert_eq!(closest("colour", keys), None);
        assert_eq!(
            closest("xy", ["rr", "sh"]),
            None,
            "2 edits of 2 letters is not close"
        );
        assert_eq!(closest("dsr", ["nat", "dr", "tun", "fullnat"]), Some("dr"));
        assert_eq!(closest("hea", keys), None, "a prefix of 3 is too short");
        assert_eq!(closest("x", []), None);
    }

    #[test]
    fn serde_messages_get_a_suggestion() {
        assert_eq!(
            suggest("services[0]: unknown field `schedular`, expected one of `vip`, `scheduler`"),
            "services[0]: unknown field `schedular` — did you mean `scheduler`?"
        );
        assert_eq!(
            suggest("services[0].forwarding: unknown variant `dsr`, expected one of `nat`, `dr`, `tun`, `fullnat`"),
            "services[0].forwarding: unknown variant `dsr` — did you mean `dr`?"
        );
        assert_eq!(
            suggest("datapath.poll: unknown variant `wakup`, expected `busy` or `wakeup`"),
            "datapath.poll: unknown variant `wakup` — did you mean `wakeup`?"
        );
        assert_eq!(
            suggest("unknown field `interface`, expected `interfaces`"),
            "unknown field `interface` — did you mean `interfaces`?"
        );
    }

    #[test]
    fn other_messages_are_unchanged() {
        for m in [
            "datapath: unknown field `bogus`, expected one of `interfaces`, `workers`",
            "unknown field `x`, there are no fields",
            "datapath.poll: unknown variant `sometimes`, expected `busy` or `wakeup`",
            "invalid duration `5x`",
            "unknown field `unterminated",
            "",
        ] {
            assert_eq!(suggest(m), m);
        }
    }
}
