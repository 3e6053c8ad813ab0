//! Which ABI a component was built for, read from its export names before instantiating it.
//!
//! Every weir plugin exports `weir:plugin/describe@<version>`. The host speaks
//! [`ABI_VERSION`] and accepts components of the same major version (for 0.x, the same
//! minor, as semver says a 0.x minor bump may break). Anything else gets an error that says
//! what the component is and what to do.

use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;

/// The version of the `weir:plugin` package this host implements.
pub const ABI_VERSION: &str = "0.2.0";
const PACKAGE: &str = "weir:plugin/";

/// The interfaces of the `weir:plugin` package a component exports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exports {
    pub transform: bool,
    pub aggregate: bool,
    pub process: bool,
}

/// Check a component's exports against this host's ABI.
pub fn check(engine: &Engine, component: &Component) -> Result<Exports, PluginError> {
    let names: Vec<String> = component.component_type().exports(engine).map(|(name, _)| name.to_string()).collect();
    check_names(&names)
}

fn check_names(names: &[String]) -> Result<Exports, PluginError> {
    let ours: Vec<(&str, &str)> = names
        .iter()
        .filter_map(|n| n.strip_prefix(PACKAGE))
        .map(|rest| rest.split_once('@').unwrap_or((rest, "")))
        .collect();
    if ours.is_empty() {
        return Err(PluginError::NotAPlugin {
            exports: if names.is_empty() { "nothing".into() } else { names.join(", ") },
        });
    }
    if let Some((_, version)) = ours.iter().find(|(_, v)| !compatible(v)) {
        return Err(PluginError::AbiMismatch { found: version.to_string() });
    }
    if !ours.iter().any(|(i, _)| *i == "describe") {
        return Err(PluginError::NotAPlugin { exports: names.join(", ") });
    }
    let has = |iface: &str| ours.iter().any(|(i, _)| *i == iface);
    Ok(Exports { transform: has("transform"), aggregate: has("aggregate"), process: has("process") })
}

fn major_minor(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn compatible(version: &str) -> bool {
    match (major_minor(version), major_minor(ABI_VERSION)) {
        (Some((0, a)), Some((0, b))) => a == b,
        (Some((a, _)), Some((b, _))) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ns: &[&str]) -> Vec<String> {
        ns.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn accepts_same_minor_and_lists_kinds() {
        let e = check_names(&names(&["weir:plugin/describe@0.2.0", "weir:plugin/transform@0.2.3"])).unwrap();
        assert_eq!(e, Exports { transform: true, aggregate: false, process: false });
    }

    #[test]
    fn rejects_other_versions_by_name() {
        for v in ["9.0.0", "0.1.0", "0.3.0", "1.0.0", "x"] {
            let err = check_names(&names(&[&format!("weir:plugin/describe@{v}")])).unwrap_err();
            assert!(matches!(&err, PluginError::AbiMismatch { found } if found == v), "{err}");
            assert!(err.to_string().contains(ABI_VERSION));
        }
    }

    #[test]
    fn rejects_components_that_are_not_plugins() {
        let err = check_names(&names(&["wasi:cli/run@0.2.6"])).unwrap_err();
        assert!(err.to_string().contains("wasi:cli/run@0.2.6"), "{err}");
        assert!(matches!(check_names(&[]), Err(PluginError::NotAPlugin { .. })));
    }
}
