//! Errors that stop a task: a connector's ([`ConnectorError`]) or an operator's
//! ([`super::OperatorError`]). A record that fails is not one of them: it is a dead letter.

use thiserror::Error;

use super::{Disconnected, OperatorError};

/// A source or sink failed.
#[derive(Debug, Error)]
pub enum ConnectorError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: String, source: std::io::Error },
    #[error("the job was cancelled: a downstream task stopped")]
    Disconnected,
    #[error(
        "{source_name}: the checkpoint's position {position} is not one of this source; was the job's source changed?"
    )]
    Position { source_name: &'static str, position: String },
    #[error("committing the sink's transaction failed: {0}; the job restarts from the checkpoint before it")]
    Commit(String),
    /// A connector's own failure (a Kafka client error, a database error, a datagen field
    /// that cannot be generated), its message naming the connector and what to do.
    #[error("{message}")]
    Failed {
        message: String,
        /// Whether restarting from a checkpoint may get past it (a connection lost, not a
        /// table that does not exist).
        restartable: bool,
    },
}

impl ConnectorError {
    /// A connector's failure that a restart may get past.
    pub fn failed(message: impl Into<String>) -> Self {
        ConnectorError::Failed { message: message.into(), restartable: true }
    }

    /// Whether restarting the job from its latest checkpoint may get past it.
    pub fn is_restartable(&self) -> bool {
        match self {
            ConnectorError::Failed { restartable, .. } => *restartable,
            ConnectorError::Position { .. } => false,
            ConnectorError::Io { .. } | ConnectorError::Disconnected | ConnectorError::Commit(_) => true,
        }
    }
}

impl From<Disconnected> for ConnectorError {
    fn from(_: Disconnected) -> Self {
        ConnectorError::Disconnected
    }
}

/// Why a task stopped.
#[derive(Debug, Error)]
pub enum TaskError {
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
}

impl From<Disconnected> for TaskError {
    fn from(_: Disconnected) -> Self {
        TaskError::Connector(ConnectorError::Disconnected)
    }
}
