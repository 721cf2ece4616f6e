//! Per-bucket summaries of the conntrack hash chains: what a walk of a chain could
//! find or change, kept without walking it.

/// What a bucket's chain holds, kept up to date as nodes are linked, unlinked,
/// refreshed and made ASSURED: enough to tell, without walking the chain, that a walk
/// would change nothing and find nothing.
///
/// `early_drop_list` changes a chain only by reaping an expired node or deleting a
/// non-ASSURED one. A chain with no non-ASSURED node (`evictable == 0`) and no node
/// whose timeout has passed (`min_expiry > now`; a lower bound of the nodes' deadlines)
/// is therefore left exactly as it was: the scan can move to the next bucket without
/// walking it. A lookup (`____nf_conntrack_find`, `nf_conntrack_tuple_taken`) in a
/// chain with no expired node and no node whose key falls in the looked-up key's class
/// (`keys`, counts of nodes per class of their hash) reaps nothing and finds nothing,
/// so it returns at once; confirm's walk, which reaps nothing, does the same when the
/// chain is also too short for its length limit. The counters, the entries and every
/// result are the same as with the walk (`docs/model.md` §Work the simulator folds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(64))]
pub(super) struct BucketSummary {
    /// At most the earliest timeout of a node in the chain (`u64::MAX`: none yet).
    pub(super) min_expiry: u64,
    /// Nodes in the chain whose entry is not ASSURED.
    pub(super) evictable: u32,
    /// Nodes in the chain.
    pub(super) nodes: u32,
    /// Per class of key ([`key_class`]), the nodes of the chain whose key is in it;
    /// a count that reached 255 stays there (it then only means "maybe").
    pub(super) keys: [u8; KEY_CLASSES],
}

/// Classes of keys a bucket summary counts: one cache line per bucket with the rest
/// of the summary.
pub(super) const KEY_CLASSES: usize = 48;

/// The class of a key with hash `h` (its low bits; the bucket uses the high ones).
#[inline]
pub(super) const fn key_class(h: u32) -> usize {
    (((h & 0xFFFF) as usize) * KEY_CLASSES) >> 16
}

impl BucketSummary {
    pub(super) const EMPTY: BucketSummary = BucketSummary {
        min_expiry: u64::MAX,
        evictable: 0,
        nodes: 0,
        keys: [0; KEY_CLASSES],
    };

    /// Whether `early_drop_list` at `now` would leave the chain unchanged.
    #[inline]
    pub(super) const fn is_inert(&self, now: u64) -> bool {
        self.evictable == 0 && self.min_expiry > now
    }

    /// Whether no node of the chain can have a key of hash `h`.
    #[inline]
    pub(super) const fn lacks(&self, h: u32) -> bool {
        self.keys[key_class(h)] == 0
    }

    /// Whether a lookup of a key of hash `h` at `now` would reap nothing and find
    /// nothing.
    #[inline]
    pub(super) const fn lookup_misses(&self, h: u32, now: u64) -> bool {
        self.min_expiry > now && self.lacks(h)
    }

    pub(super) fn add_key(&mut self, h: u32) {
        let c = &mut self.keys[key_class(h)];
        *c = c.saturating_add(1);
        self.nodes += 1;
    }

    pub(super) fn remove_key(&mut self, h: u32) {
        let c = &mut self.keys[key_class(h)];
        debug_assert!(*c > 0, "invariant: a linked node's key class is counted");
        if *c < u8::MAX {
            *c -= 1;
        }
        self.nodes -= 1;
    }
}
