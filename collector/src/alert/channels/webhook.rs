//! The generic webhook: the [`Notification`] as JSON, signed with HMAC-SHA256.

use hmac::{Hmac, KeyInit, Mac};
use reqwest::Url;
use sha2::Sha256;

use super::secret::Secret;
use super::{Channel, Delivery, http};
use crate::alert::model::Notification;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Headlight-Signature";
/// The header carrying the notification's `delivery_id`, the same on every retry.
pub const DELIVERY_HEADER: &str = "X-Headlight-Delivery";

/// Posts the notification as JSON to a URL.
#[derive(Debug)]
pub struct Webhook {
    name: String,
    url: Url,
    key: Option<Secret>,
    client: reqwest::Client,
}

impl Webhook {
    /// A webhook channel posting to `url`, signing with `key` when given.
    pub(crate) fn new(name: &str, url: Url, key: Option<Secret>) -> Result<Self, String> {
        Ok(Self {
            name: name.to_owned(),
            url,
            key,
            client: http::client(name)?,
        })
    }
}

/// Returns `sha256=<lowercase hex of HMAC-SHA256(key, body)>`, the value of
/// [`SIGNATURE_HEADER`]. A receiver recomputes it over the raw body it got and compares in
/// constant time.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + digest.len() * 2);
    out.push_str("sha256=");
    for byte in digest {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    out
}

impl Channel for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, notification: &'a Notification) -> Delivery<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(notification).map_err(|e| {
                super::DeliveryError::Permanent(format!("cannot encode the notification: {e}"))
            })?;
            let mut request = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(DELIVERY_HEADER, &notification.delivery_id);
            if let Some(key) = &self.key {
                request =
                    request.header(SIGNATURE_HEADER, signature(key.expose().as_bytes(), &body));
            }
            let secrets: Vec<&Secret> = self.key.iter().collect();
            http::send(&self.name, request.body(body), &secrets).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
