//! Query strings of the admin API and console forms, into validated filters, and path
//! segments into the text the client meant. Empty values count as absent (a console form
//! sends every field); an unknown parameter is refused, so a typo never silently widens a
//! filter.

use crate::http::error::ApiError;
use crate::read::{
    ConversionFilter, Cursor, DEFAULT_LIMIT, EventFilter, ForwardStatus, InvalidFilter, Timestamp,
    parse_bool, parse_limit, parse_source,
};

/// One page of a list: the filter, its size and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery<F> {
    pub filter: F,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

fn pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .filter(|(_, v)| !v.is_empty())
}

fn unknown(key: &str) -> InvalidFilter {
    InvalidFilter::new(key, "is not a parameter of this endpoint")
}

/// Reads `limit` and `cursor`, which every list shares, and hands each other parameter
/// to `set`, which refuses a key its filter does not have.
fn page_query<F: Default>(
    query: &str,
    mut set: impl FnMut(&mut F, &str, String) -> Result<(), InvalidFilter>,
) -> Result<PageQuery<F>, InvalidFilter> {
    let mut filter = F::default();
    let (mut limit, mut cursor) = (DEFAULT_LIMIT, None);
    for (key, value) in pairs(query) {
        match key.as_str() {
            "limit" => limit = parse_limit(&value)?,
            "cursor" => cursor = Some(Cursor::decode(&value)?),
            _ => set(&mut filter, &key, value)?,
        }
    }
    Ok(PageQuery {
        filter,
        limit,
        cursor,
    })
}

pub fn events(query: &str) -> Result<PageQuery<EventFilter>, InvalidFilter> {
    page_query(query, |filter: &mut EventFilter, key, value| {
        match key {
            "source" => filter.source = Some(parse_source(&value, "source")?),
            "event_type" => filter.event_type = Some(value),
            "event_id" => filter.event_id = Some(value),
            "since" => filter.since = Some(Timestamp::parse(&value, "since")?),
            "until" => filter.until = Some(Timestamp::parse(&value, "until")?),
            "duplicated" => filter.duplicated = Some(parse_bool(&value, "duplicated")?),
            "conflicted" => filter.conflicted = Some(parse_bool(&value, "conflicted")?),
            "forward" => filter.forward = Some(ForwardStatus::parse(&value)?),
            other => return Err(unknown(other)),
        }
        Ok(())
    })
}

pub fn conversions(query: &str) -> Result<PageQuery<ConversionFilter>, InvalidFilter> {
    page_query(query, |filter: &mut ConversionFilter, key, value| {
        match key {
            // Stored upper-cased, so `approved` finds APPROVED.
            "status" => filter.status = Some(value.to_ascii_uppercase()),
            "currency" => filter.currency = Some(value.to_ascii_uppercase()),
            "order_id" => filter.order_id = Some(value),
            "since" => filter.since = Some(Timestamp::parse(&value, "since")?),
            "until" => filter.until = Some(Timestamp::parse(&value, "until")?),
            other => return Err(unknown(other)),
        }
        Ok(())
    })
}

/// Endpoints without parameters still refuse unknown ones.
pub fn none(query: &str) -> Result<(), InvalidFilter> {
    match pairs(query).next() {
        Some((key, _)) => Err(unknown(&key)),
        None => Ok(()),
    }
}

/// A path segment as the client meant it: percent-decoded, valid UTF-8.
pub fn decode_segment(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters_parse_and_name_the_bad_parameter() {
        let q = events("source=acme&duplicated=true&forward=failed&limit=10&event_type=").unwrap();
        assert_eq!(q.filter.source.unwrap().as_str(), "acme");
        assert_eq!(q.filter.duplicated, Some(true));
        assert_eq!(q.filter.forward, Some(ForwardStatus::Failed));
        assert_eq!(q.filter.event_type, None);
        assert_eq!(q.limit, 10);
        for (query, parameter) in [
            ("source=Bad!", "source"),
            ("since=yesterday", "since"),
            ("until=2026-13-01T00:00:00Z", "until"),
            ("duplicated=yes", "duplicated"),
            ("forward=lost", "forward"),
            ("limit=501", "limit"),
            ("limit=0", "limit"),
            ("cursor=zzz", "cursor"),
            ("colour=red", "colour"),
        ] {
            assert_eq!(events(query).unwrap_err().parameter, parameter, "{query}");
        }
        assert_eq!(events("").unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(
            events("event_id=a%2Fb%20c")
                .unwrap()
                .filter
                .event_id
                .as_deref(),
            Some("a/b c")
        );
    }

    #[test]
    fn conversion_filters_upper_case_like_the_store() {
        let q = conversions("status=approved&currency=usd").unwrap();
        assert_eq!(q.filter.status.as_deref(), Some("APPROVED"));
        assert_eq!(q.filter.currency.as_deref(), Some("USD"));
        assert_eq!(conversions("source=x").unwrap_err().parameter, "source");
    }
}
