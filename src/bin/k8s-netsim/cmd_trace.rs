//! `k8s-netsim trace SCENARIO --from POD --to SERVICE:PORT [--proto udp|tcp] [--seed N]`.

use crate::load;
use k8s_netsim::scenario::Override;
use std::io::Write as _;
use std::path::Path;

/// Prints one connection's first packet and its answer hop by hop.
pub(crate) fn trace(
    path: &Path,
    from: &str,
    to: &str,
    proto: Option<k8s_netsim::packet::Proto>,
    overrides: &[Override],
) -> anyhow::Result<()> {
    let scenario = load(path, overrides)?;
    let text = k8s_netsim::sim::trace(&scenario, from, to, proto).map_err(|e| {
        let user = e.is_user_error();
        crate::classify(path, e, user)
    })?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
