//! What `hooklatch verify-totals` reports: the totals the store keeps as events arrive
//! (`stats`, `conversions/summary`) against a recount of every row.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rust_decimal::Decimal;

use super::{SourceStats, SummaryGroup};

/// The recount and the kept totals, and every way they differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TotalsCheck {
    /// Sources counted.
    pub sources: usize,
    /// (status, currency) groups counted.
    pub groups: usize,
    /// One line per difference; empty when the totals are right.
    pub drift: Vec<String>,
}

impl TotalsCheck {
    /// Compares a recount with the kept totals. Amounts compare as decimals: a kept sum
    /// may carry a wider scale than the recount (a removed 1.005 leaves 1.000 behind),
    /// which is the same amount.
    pub fn compare(
        counted: (&[SourceStats], &[SummaryGroup]),
        kept: (&[SourceStats], &[SummaryGroup]),
    ) -> TotalsCheck {
        let mut drift = Vec::new();
        let by_source = |stats: &[SourceStats]| -> BTreeMap<String, SourceStats> {
            stats
                .iter()
                .map(|s| (s.source.clone(), s.clone()))
                .collect()
        };
        let (counted_sources, kept_sources) = (by_source(counted.0), by_source(kept.0));
        let sources: BTreeSet<&String> =
            counted_sources.keys().chain(kept_sources.keys()).collect();
        for source in sources {
            let (c, k) = (counted_sources.get(source), kept_sources.get(source));
            if c.map(source_key) != k.map(source_key) {
                drift.push(format!(
                    "source {source}: counted {}, kept {}",
                    describe_source(c),
                    describe_source(k)
                ));
            }
        }
        let by_group = |groups: &[SummaryGroup]| -> BTreeMap<GroupKey, (i64, Decimal, Decimal)> {
            groups
                .iter()
                .map(|g| {
                    (
                        (g.status.clone(), g.currency.clone()),
                        (
                            g.count,
                            amount(&g.sale_amount),
                            amount(&g.commission_amount),
                        ),
                    )
                })
                .collect()
        };
        let (counted_groups, kept_groups) = (by_group(counted.1), by_group(kept.1));
        let keys: BTreeSet<&GroupKey> = counted_groups.keys().chain(kept_groups.keys()).collect();
        for key in keys {
            let (c, k) = (counted_groups.get(key), kept_groups.get(key));
            if c != k {
                drift.push(format!(
                    "conversions status={} currency={}: counted {}, kept {}",
                    key.0.as_deref().unwrap_or("-"),
                    key.1.as_deref().unwrap_or("-"),
                    describe_group(c),
                    describe_group(k)
                ));
            }
        }
        TotalsCheck {
            sources: counted_sources.len(),
            groups: counted_groups.len(),
            drift,
        }
    }

    pub fn is_exact(&self) -> bool {
        self.drift.is_empty()
    }
}

impl fmt::Display for TotalsCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.drift.is_empty() {
            return write!(
                f,
                "totals exact: {} sources, {} conversion groups",
                self.sources, self.groups
            );
        }
        write!(f, "totals drift in {} places:", self.drift.len())?;
        for line in &self.drift {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

type GroupKey = (Option<String>, Option<String>);

fn source_key(s: &SourceStats) -> (i64, i64, i64, &str) {
    (s.events, s.deliveries, s.conflicts, s.last_seen_at.as_str())
}

fn describe_source(s: Option<&SourceStats>) -> String {
    match s {
        None => "nothing".into(),
        Some(s) => format!(
            "{} events, {} deliveries, {} conflicts, last seen {}",
            s.events, s.deliveries, s.conflicts, s.last_seen_at
        ),
    }
}

fn describe_group(g: Option<&(i64, Decimal, Decimal)>) -> String {
    match g {
        None => "nothing".into(),
        Some((count, sale, commission)) => {
            format!("{count} conversions, sales {sale}, commissions {commission}")
        }
    }
}

/// A stored sum that does not parse is drift in itself: it compares unequal to any sum.
fn amount(text: &str) -> Decimal {
    text.parse().unwrap_or(Decimal::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(source: &str, events: i64) -> SourceStats {
        SourceStats {
            source: source.into(),
            events,
            deliveries: events,
            duplicates: 0,
            conflicts: 0,
            last_seen_at: "2026-12-01T00:00:00.000000Z".into(),
        }
    }

    fn group(sale: &str) -> SummaryGroup {
        SummaryGroup {
            status: Some("APPROVED".into()),
            currency: None,
            count: 1,
            sale_amount: sale.into(),
            commission_amount: "1".into(),
        }
    }

    #[test]
    fn equal_totals_and_equal_amounts_at_another_scale_are_exact() {
        let check = TotalsCheck::compare(
            (&[stats("shopify", 3)], &[group("1.50")]),
            (&[stats("shopify", 3)], &[group("1.500")]),
        );
        assert!(check.is_exact(), "{check}");
    }

    #[test]
    fn a_missing_source_and_a_wrong_sum_are_both_reported() {
        let check = TotalsCheck::compare(
            (&[stats("shopify", 3), stats("stripe", 1)], &[group("1.50")]),
            (&[stats("shopify", 3)], &[group("1.51")]),
        );
        assert_eq!(check.drift.len(), 2, "{check}");
        assert!(check.drift[0].starts_with("source stripe:"), "{check}");
        assert!(check.drift[1].contains("status=APPROVED"), "{check}");
    }
}
