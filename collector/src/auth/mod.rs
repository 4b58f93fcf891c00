//! Optional bearer-token authentication (`[auth]`): one token for OTLP ingest (gRPC metadata
//! and the OTLP/HTTP header), one for the API and the UI (a login page hands out a session
//! cookie). Tokens come from the environment, never from the config file; they are compared in
//! constant time and never logged or echoed.

pub mod grpc;
pub mod http;
pub mod sessions;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{AuthConfig, ListenConfig};
pub use sessions::Sessions;
pub use token::Token;

/// Why the authentication settings were refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A token variable is set but empty.
    #[error("the variable {var} is set but empty (unset it to turn authentication off)")]
    Empty {
        /// The variable.
        var: String,
    },
    /// A token protects a listener that is neither loopback nor TLS.
    #[error(
        "listener `listen.{listener}` ({addr}) is not loopback and a token protects it: the token \
         would travel in plaintext; configure `[tls]` (cert_file, key_file), bind it to loopback \
         behind a TLS proxy, or set `auth.allow_plaintext = true`"
    )]
    Plaintext {
        /// The listener's config key under `listen`.
        listener: &'static str,
        /// Its address.
        addr: SocketAddr,
    },
}

/// The tokens in force: each `None` when its variable is unset.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// The token OTLP exporters present (both OTLP listeners).
    pub ingest: Option<Token>,
    /// The token of the API, `/metrics` and the UI login, with the UI's sessions.
    pub api: Option<Arc<ApiAuth>>,
    /// The requests refused so far.
    pub refused: Arc<Refused>,
}

/// A listener whose requests can be refused for a missing or wrong token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// OTLP/gRPC (`listen.otlp_grpc`).
    OtlpGrpc,
    /// OTLP/HTTP (`listen.otlp_http`).
    OtlpHttp,
    /// The API and UI (`listen.http`), `POST /login` included.
    Http,
}

impl Listener {
    /// Every listener, in the order of [`Refused::counts`].
    pub const ALL: [Self; 3] = [Self::OtlpGrpc, Self::OtlpHttp, Self::Http];

    /// The listener's key under `listen`, its label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Self::OtlpGrpc => "otlp_grpc",
            Self::OtlpHttp => "otlp_http",
            Self::Http => "http",
        }
    }
}

/// Requests refused for a missing or wrong token (or session), per listener, since start.
#[derive(Debug, Default)]
pub struct Refused([AtomicU64; 3]);

impl Refused {
    /// Counts one refusal on `listener`.
    pub fn add(&self, listener: Listener) {
        self.0[listener as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts, indexed like [`Listener::ALL`].
    pub fn counts(&self) -> [(Listener, u64); 3] {
        Listener::ALL.map(|l| (l, self.0[l as usize].load(Ordering::Relaxed)))
    }
}

/// The API/UI token and the sessions logged in with it.
#[derive(Debug)]
pub struct ApiAuth {
    /// The token.
    pub token: Token,
    /// The UI sessions.
    pub sessions: Sessions,
    /// Marks the session cookie `Secure` (the API/UI listener speaks TLS).
    pub secure_cookie: bool,
}

impl Auth {
    /// Reads the tokens through `env` from the variables `config` names, and refuses a token on
    /// a non-loopback listener unless the listeners speak TLS (`tls`) or
    /// `config.allow_plaintext`.
    pub fn from_env(
        config: &AuthConfig,
        listen: &ListenConfig,
        tls: bool,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, AuthError> {
        let read = |var: &str| -> Result<Option<Token>, AuthError> {
            match env(var) {
                None => Ok(None),
                Some(value) if value.trim().is_empty() => Err(AuthError::Empty {
                    var: var.to_owned(),
                }),
                Some(value) => Ok(Some(Token::new(value.trim()))),
            }
        };
        let ingest = read(&config.ingest_token_env)?;
        let api = read(&config.api_token_env)?;
        // `[tls]` covers all three listeners, so with it no token travels in plaintext.
        if !config.allow_plaintext && !tls {
            let mut protected = Vec::new();
            if ingest.is_some() {
                protected.push(("otlp_grpc", listen.otlp_grpc));
                protected.push(("otlp_http", listen.otlp_http));
            }
            if api.is_some() {
                protected.push(("http", listen.http));
            }
            if let Some((listener, addr)) = protected
                .into_iter()
                .find(|(_, addr)| !addr.ip().is_loopback())
            {
                return Err(AuthError::Plaintext { listener, addr });
            }
        }
        Ok(Self {
            ingest,
            refused: Arc::default(),
            api: api.map(|token| {
                Arc::new(ApiAuth {
                    token,
                    sessions: Sessions::default(),
                    secure_cookie: tls,
                })
            }),
        })
    }
}
