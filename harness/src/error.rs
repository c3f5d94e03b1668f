//! [`HarnessError`]: why a cluster could not be started or driven.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not installed or not built: {1}")]
    Missing(String, String),
    #[error("{name} failed: {reason} (log: {})", log.display())]
    Process {
        name: String,
        reason: String,
        log: PathBuf,
    },
    #[error("{0} did not happen within {1:?}")]
    Timeout(String, std::time::Duration),
    #[error("database: {0}")]
    Db(String),
    #[error("client: {0}")]
    Client(#[from] chatx_client::ClientError),
    #[error("HTTP: {0}")]
    Http(String),
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}
