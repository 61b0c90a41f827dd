//! Redaction of database passwords, for every message and log line that shows a URL.

/// Hides every password a connection string can carry, in any spelling libpq accepts:
/// `user:pass@` (up to the last `@`, in case one was not percent-encoded), a query
/// parameter whose name holds `password` in any case or percent-encoding
/// (`password`, `PASSWORD`, `pass%77ord`, `sslpassword`), and `password = value` or
/// `password='quoted value'` in key=value form.
pub fn redact(text: &str) -> String {
    if let Some((scheme, rest)) = text.split_once("://") {
        // Query parameters first, so an `@` inside a password value cannot move the
        // userinfo boundary.
        let mut masked = String::with_capacity(rest.len());
        let mut position = 0;
        for part in rest.split(['?', '&']) {
            if position > 0 {
                // The separator this part followed.
                masked.push(char::from(rest.as_bytes()[position - 1]));
            }
            position += part.len() + 1;
            match part.split_once('=') {
                Some((key, _)) if is_password_key(&percent_decode(key)) => {
                    masked.push_str(key);
                    masked.push_str("=***");
                }
                _ => masked.push_str(part),
            }
        }
        let masked = match (masked.rfind('@'), masked.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                format!("{}:***{}", &masked[..colon], &masked[at..])
            }
            _ => masked,
        };
        format!("{scheme}://{masked}")
    } else {
        redact_key_values(text)
    }
}

fn is_password_key(key: &str) -> bool {
    key.trim().to_ascii_lowercase().contains("password")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's `key = value` form: values end at whitespace unless single-quoted.
fn redact_key_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    while let Some(found) = lower[cursor..].find("password") {
        let key_end = cursor + found + "password".len();
        let after = &text[key_end..];
        let spaces = after.len() - after.trim_start().len();
        if !after.trim_start().starts_with('=') {
            out.push_str(&text[cursor..key_end]);
            cursor = key_end;
            continue;
        }
        let value_start = key_end + spaces + 1;
        let value = &text[value_start..];
        let value = &value[value.len() - value.trim_start().len()..];
        let value_start = text.len() - value.len();
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            let mut escaped = false;
            let close = quoted.char_indices().find(|&(_, c)| {
                let end = c == '\'' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            });
            close.map_or(value.len(), |(i, _)| i + 2)
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        out.push_str(&text[cursor..value_start]);
        out.push_str("***");
        cursor = value_start + value_len;
    }
    out.push_str(&text[cursor..]);
    out
}
