//! GitHub: the id is `X-GitHub-Delivery` (kept on manual redelivery); the signature is
//! `X-Hub-Signature-256: sha256=<lowercase hex HMAC of the raw body>`.

use warp::http::HeaderMap;

use super::{header_id, missing_id, required_header};
use crate::error::{PayloadError, SignatureError};
use crate::model::EventId;

const SIGNATURE: &str = "X-Hub-Signature-256";

pub(super) fn event_id(headers: &HeaderMap) -> Result<EventId, PayloadError> {
    header_id(headers, "X-GitHub-Delivery")
        .unwrap_or_else(|| Err(missing_id("X-GitHub-Delivery", "header X-GitHub-Delivery")))
}

pub(super) fn verify(
    secrets: &[String],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    let value = required_header(headers, SIGNATURE)?;
    let hex_part = value
        .strip_prefix("sha256=")
        .ok_or_else(|| SignatureError::BadFormat(SIGNATURE.to_owned()))?;
    let candidate = super::decode_signature(hex::decode(hex_part).ok(), SIGNATURE)?;
    super::check(&super::utf8_keys(secrets), &[body], &[candidate])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE, value.parse().unwrap());
        headers
    }

    #[test]
    fn official_and_own_vectors() {
        let official =
            signed("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert_eq!(
            verify(
                &["It's a Secret to Everybody".into()],
                &official,
                b"Hello, World!"
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &["It's a Secret to Everybody".into()],
                &official,
                b"Hello, World?"
            ),
            Err(SignatureError::NoMatch)
        );
        let own = signed("sha256=ff1745679fe88a61ac03ccf182798a796df6587e0c9853efa14da252309ee364");
        let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
        assert_eq!(verify(&["s3cr3t".into()], &own, body), Ok(()));
        assert_eq!(
            verify(&["other".into(), "s3cr3t".into()], &own, body),
            Ok(())
        );
    }

    #[test]
    fn malformed_headers() {
        let secrets = ["s3cr3t".to_owned()];
        assert!(matches!(
            verify(&secrets, &HeaderMap::new(), b"{}"),
            Err(SignatureError::MissingHeader(_))
        ));
        for bad in [
            "",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=zz",
            "sha256=abcd",
        ] {
            assert!(
                matches!(
                    verify(&secrets, &signed(bad), b"{}"),
                    Err(SignatureError::BadFormat(_))
                ),
                "{bad}"
            );
        }
    }
}
