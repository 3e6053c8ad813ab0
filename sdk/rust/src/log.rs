//! Logging from inside a plugin.
//!
//! In a component the messages go to the host's `tracing`, tagged with the plugin and the
//! operator (the WIT `log` import); a component has no stderr the host would show. In a
//! native build (your unit tests) they go to stderr, so the test runner shows them next to
//! the failing test.

/// How important a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Logs `message` at `level`.
///
/// ```
/// weir_sdk::log::log(weir_sdk::log::Level::Info, "loaded 3 rules");
/// ```
pub fn log(level: Level, message: &str) {
    imp::log(level, message);
}

/// Logs at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::export::bindings::weir::plugin::log as wit;

    pub(super) fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        wit::log(level, message);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::Level;

    pub(super) fn log(level: Level, message: &str) {
        eprintln!("[weir plugin {level:?}] {message}");
    }
}
