//! Signing in and opening sockets: the REST calls (`register`, `login`, `refresh`) and
//! the WebSocket upgrade up to the server's `hello`.
//!
//! The tokens live here, behind one async mutex, so that a rejected token is renewed
//! once even when several callers notice at the same time: a refresh first, a new
//! sign-in with the password when the session itself is gone (revoked, expired, or
//! lost with the store that held it).

use std::sync::Arc;

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{WebSocketStream, client_async};

use futures_util::StreamExt;

use crate::error::ClientError;
use crate::stats::Counters;
use crate::wire::{ServerFrame, User};

pub(crate) type Ws = WebSocketStream<TcpStream>;

#[derive(Clone)]
struct Tokens {
    access: String,
    refresh: String,
}

#[derive(Deserialize)]
struct TokenPair {
    access_token: String,
    refresh_token: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

pub(crate) struct Session {
    http: reqwest::Client,
    api: Url,
    host: String,
    port: u16,
    username: String,
    password: String,
    recv_buffer_bytes: Option<u32>,
    tokens: tokio::sync::Mutex<Option<Tokens>>,
    counters: Arc<Counters>,
}

async fn http_error(what: &'static str, response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let body: ErrorBody = response.json().await.unwrap_or_default();
    ClientError::Http {
        what,
        status,
        code: body.code,
        message: body.message,
    }
}

fn transport(what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Connect(format!("{what}: {e}"))
}

impl Session {
    pub(crate) fn new(
        base_url: &str,
        username: &str,
        password: &str,
        recv_buffer_bytes: Option<u32>,
        counters: Arc<Counters>,
    ) -> Result<Self, ClientError> {
        let api = Url::parse(base_url)
            .map_err(|e| ClientError::Config(format!("base_url `{base_url}`: {e}")))?;
        if api.scheme() != "http" {
            // wss:// needs tokio-tungstenite's TLS feature, which this workspace does
            // not build; terminate TLS at the load balancer's loopback side or add it.
            return Err(ClientError::Config(format!(
                "base_url `{base_url}`: only http:// is supported by this build"
            )));
        }
        let host = api
            .host_str()
            .ok_or_else(|| ClientError::Config(format!("base_url `{base_url}` has no host")))?
            .to_string();
        let port = api.port_or_known_default().unwrap_or(80);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            api,
            host,
            port,
            username: username.to_string(),
            password: password.to_string(),
            recv_buffer_bytes,
            tokens: tokio::sync::Mutex::new(None),
            counters,
        })
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.api
            .join(path)
            .map_err(|e| ClientError::Config(format!("URL {path}: {e}")))
    }

    fn credentials(&self) -> serde_json::Value {
        json!({"username": self.username, "password": self.password})
    }

    /// Creates the user; an existing one (409) is fine.
    pub(crate) async fn register(&self) -> Result<(), ClientError> {
        let response = self
            .http
            .post(self.url("/api/auth/register")?)
            .json(&self.credentials())
            .send()
            .await
            .map_err(|e| transport("register", e))?;
        match response.status() {
            StatusCode::CREATED | StatusCode::CONFLICT => Ok(()),
            _ => Err(http_error("register", response).await),
        }
    }

    async fn login(&self) -> Result<Tokens, ClientError> {
        let response = self
            .http
            .post(self.url("/api/auth/login")?)
            .json(&self.credentials())
            .send()
            .await
            .map_err(|e| transport("login", e))?;
        match response.status() {
            StatusCode::OK => {
                let pair: TokenPair = response
                    .json()
                    .await
                    .map_err(|e| transport("login answer", e))?;
                Ok(Tokens {
                    access: pair.access_token,
                    refresh: pair.refresh_token,
                })
            }
            StatusCode::UNAUTHORIZED => Err(ClientError::Credentials(self.username.clone())),
            _ => Err(http_error("login", response).await),
        }
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ClientError> {
        let response = self
            .http
            .post(self.url("/api/auth/refresh")?)
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
            .map_err(|e| transport("refresh", e))?;
        if !response.status().is_success() {
            return Err(http_error("refresh", response).await);
        }
        let pair: TokenPair = response
            .json()
            .await
            .map_err(|e| transport("refresh answer", e))?;
        Ok(Tokens {
            access: pair.access_token,
            refresh: pair.refresh_token,
        })
    }

    /// The current access token, signing in first when there is none.
    pub(crate) async fn access_token(&self) -> Result<String, ClientError> {
        let mut tokens = self.tokens.lock().await;
        if let Some(tokens) = tokens.as_ref() {
            return Ok(tokens.access.clone());
        }
        let fresh = self.login().await?;
        let access = fresh.access.clone();
        *tokens = Some(fresh);
        Ok(access)
    }

    /// `rejected` was refused: refresh it, or sign in again when the refresh token is
    /// refused too. A token renewed meanwhile by another caller is returned as is.
    pub(crate) async fn renew(&self, rejected: &str) -> Result<String, ClientError> {
        let mut tokens = self.tokens.lock().await;
        let current = tokens.clone();
        if let Some(current) = &current
            && current.access != rejected
        {
            return Ok(current.access.clone());
        }
        let fresh = match current {
            Some(current) => match self.refresh(&current.refresh).await {
                Ok(fresh) => {
                    self.counters.bump(|c| c.refreshes += 1);
                    fresh
                }
                Err(ClientError::Http { status, .. }) if status == 401 || status == 400 => {
                    let fresh = self.login().await?;
                    self.counters.bump(|c| c.relogins += 1);
                    fresh
                }
                Err(e) => return Err(e),
            },
            None => self.login().await?,
        };
        let access = fresh.access.clone();
        *tokens = Some(fresh);
        Ok(access)
    }

    async fn tcp(&self) -> Result<TcpStream, ClientError> {
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| transport("resolving", e))?
            .next()
            .ok_or_else(|| ClientError::Connect(format!("{} does not resolve", self.host)))?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| transport("socket", e))?;
        if let Some(bytes) = self.recv_buffer_bytes {
            socket
                .set_recv_buffer_size(bytes)
                .map_err(|e| transport("SO_RCVBUF", e))?;
        }
        let stream = socket
            .connect(addr)
            .await
            .map_err(|e| transport("connecting", e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| transport("TCP_NODELAY", e))?;
        Ok(stream)
    }

    /// Opens a socket and reads its `hello`. A token refused at the upgrade (401) is
    /// renewed once.
    pub(crate) async fn open(&self) -> Result<(Ws, User), ClientError> {
        let mut token = self.access_token().await?;
        let mut renewed = false;
        loop {
            let url = format!("ws://{}:{}/ws?token={token}", self.host, self.port);
            let stream = self.tcp().await?;
            match client_async(url, stream).await {
                Ok((ws, _)) => return hello(ws).await,
                Err(WsError::Http(response)) => {
                    let status = response.status().as_u16();
                    if status == 401 && !renewed {
                        tracing::debug!(user = %self.username, "token refused at the upgrade; renewing");
                        renewed = true;
                        token = self.renew(&token).await?;
                        continue;
                    }
                    let body: ErrorBody = response
                        .body()
                        .as_deref()
                        .and_then(|b| serde_json::from_slice(b).ok())
                        .unwrap_or_default();
                    return Err(ClientError::Http {
                        what: "upgrade",
                        status,
                        code: body.code,
                        message: body.message,
                    });
                }
                Err(e) => return Err(transport("upgrade", e)),
            }
        }
    }
}

async fn hello(mut ws: Ws) -> Result<(Ws, User), ClientError> {
    loop {
        match ws.next().await {
            Some(Ok(WsMessage::Text(text))) => {
                return match ServerFrame::parse(&text) {
                    Ok(ServerFrame::Hello { user }) => Ok((ws, user)),
                    _ => Err(ClientError::Connect(format!(
                        "expected hello, got {}",
                        text.chars().take(200).collect::<String>()
                    ))),
                };
            }
            Some(Ok(WsMessage::Close(frame))) => {
                return Err(ClientError::Connect(format!(
                    "closed before hello: {frame:?}"
                )));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(transport("reading hello", e)),
            None => return Err(ClientError::Connect("closed before hello".into())),
        }
    }
}
