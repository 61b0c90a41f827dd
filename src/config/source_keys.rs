//! The `[sources.<name>]` keys as the README's settings table documents them: a list of
//! its own because it is documentation, read by the table generator and checked against
//! what the file parser accepts, not by the parser itself.

/// One `[sources.<name>]` key as the README documents it. A test checks that this list
/// names exactly the keys `FileSource` (config/sources.rs) accepts.
pub struct SourceKey {
    pub key: &'static str,
    pub env: Option<&'static str>,
    pub default: &'static str,
    pub about: &'static str,
}

pub const SOURCE_KEYS: &[SourceKey] = &[
    SourceKey {
        key: "preset",
        env: None,
        default: "the source's name if it is a preset, else `standard`",
        about: "Provider conventions: `refersion`, `shopify`, `stripe`, `github`, `standard` or `generic`",
    },
    SourceKey {
        key: "secrets",
        env: Some("HOOKLATCH_SECRET_<SOURCE>"),
        default: "none",
        about: "Signing secrets, any one may match (comma-separated in the environment); an empty one stops startup",
    },
    SourceKey {
        key: "allow_unsigned",
        env: None,
        default: "`false`",
        about: "Accept unsigned deliveries on this source even off loopback",
    },
    SourceKey {
        key: "forward_to",
        env: Some("HOOKLATCH_FORWARD_TO_<SOURCE>"),
        default: "none",
        about: "Forward each new event to this `http://` or `https://` URL",
    },
    SourceKey {
        key: "forward_types",
        env: None,
        default: "every event",
        about: "Forward only events whose type matches one of these patterns (`*` matches any run of characters), e.g. `[\"orders/*\"]`",
    },
    SourceKey {
        key: "forward_rate",
        env: None,
        default: "unlimited",
        about: "Most forward attempts per second to this source's app, per instance (fractions allowed)",
    },
    SourceKey {
        key: "forward_pause_after",
        env: None,
        default: "`forward_pause_after`",
        about: "Consecutive failed forward attempts that pause this source's forwarding",
    },
    SourceKey {
        key: "signature_header",
        env: None,
        default: "none (required)",
        about: "`generic`: header holding the HMAC-SHA256 of the body",
    },
    SourceKey {
        key: "encoding",
        env: None,
        default: "`hex`",
        about: "`generic`: `hex` or `base64`",
    },
    SourceKey {
        key: "prefix",
        env: None,
        default: "none",
        about: "`generic`: stripped from the signature before decoding",
    },
    SourceKey {
        key: "id_header",
        env: None,
        default: "the `standard` chain",
        about: "`generic`: header holding the event id",
    },
    SourceKey {
        key: "id_pointer",
        env: None,
        default: "the `standard` chain",
        about: "`generic`: JSON pointer to the event id in the body, e.g. `/id`",
    },
];
