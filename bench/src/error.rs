//! The one error type of the library.

/// Anything that stops a benchmark step.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Boxed: tungstenite's error is large and would bloat every `Result`.
    #[error("websocket: {0}")]
    Ws(Box<tokio_tungstenite::tungstenite::Error>),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("setup: {0}")]
    Setup(String),
    #[error("chart: {0}")]
    Chart(String),
}

impl From<tokio_tungstenite::tungstenite::Error> for BenchError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        BenchError::Ws(Box::new(e))
    }
}

pub type Result<T> = std::result::Result<T, BenchError>;
