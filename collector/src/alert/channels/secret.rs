//! A secret read from the environment: a webhook key, a token, the Slack URL.

use std::fmt;

/// A secret value whose `Debug` prints `<redacted>`; it has no `Display`, so it cannot end up
/// in a log line or an error message by accident. [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the value, for the one place that sends it (a header, a URL, an HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text` with `<redacted>`: a last guard for
    /// text that comes from elsewhere (a receiver's error body) before it goes into an error.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_owned();
        }
        text.replace(&self.0, "<redacted>")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads the secret named by `var` through `env`, for channel `channel`; `key` is the config
/// key that named the variable. The error names the channel, the key and the variable, never a
/// value.
pub(crate) fn read(
    env: &dyn Fn(&str) -> Option<String>,
    channel: &str,
    key: &str,
    var: &str,
) -> Result<Secret, String> {
    if var.is_empty() {
        return Err(format!("channel {channel:?}: {key} is empty"));
    }
    match env(var) {
        Some(value) if !value.is_empty() => Ok(Secret(value)),
        Some(_) => Err(format!(
            "channel {channel:?}: environment variable {var} ({key}) is empty"
        )),
        None => Err(format!(
            "channel {channel:?}: environment variable {var} ({key}) is not set"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_scrub_removes_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(
            secret.scrub("token hunter2 refused"),
            "token <redacted> refused"
        );
    }

    #[test]
    fn read_names_the_channel_and_the_variable() {
        let env = |_: &str| None;
        let err = read(&env, "ops", "token_env", "JIRA_TOKEN").unwrap_err();
        assert_eq!(
            err,
            "channel \"ops\": environment variable JIRA_TOKEN (token_env) is not set"
        );
    }
}
