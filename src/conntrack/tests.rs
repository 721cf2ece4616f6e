//! Unit tests of the conntrack table.
