//! Self time: the part of a span's duration not covered by any of its children.

/// Returns the ns of `[start, end)` not covered by the union of `children` intervals (each
/// clipped to the parent), so overlapping (concurrent) children are not subtracted twice.
pub fn self_time_ns(start: i64, end: i64, children: impl IntoIterator<Item = (i64, i64)>) -> i64 {
    let mut intervals: Vec<(i64, i64)> = children
        .into_iter()
        .map(|(s, e)| (s.max(start), e.min(end)))
        .filter(|(s, e)| s < e)
        .collect();
    intervals.sort_unstable();
    let mut covered = 0;
    let mut current: Option<(i64, i64)> = None;
    for (s, e) in intervals {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                covered += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = current {
        covered += ce - cs;
    }
    (end - start - covered).max(0)
}

#[cfg(test)]
mod tests {
    use super::self_time_ns;

    #[test]
    fn sequential_children_are_subtracted() {
        assert_eq!(self_time_ns(0, 100, [(10, 20), (30, 50)]), 70);
    }

    #[test]
    fn overlapping_children_count_once() {
        assert_eq!(self_time_ns(0, 100, [(10, 60), (40, 80)]), 30);
        assert_eq!(self_time_ns(0, 100, [(10, 60), (20, 30)]), 50);
    }

    #[test]
    fn children_are_clipped_to_the_parent() {
        assert_eq!(self_time_ns(0, 100, [(-50, 10), (90, 500)]), 80);
        assert_eq!(self_time_ns(0, 100, [(200, 300)]), 100);
    }

    #[test]
    fn no_children_means_all_self() {
        assert_eq!(self_time_ns(5, 15, []), 10);
    }
}
