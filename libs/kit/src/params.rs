//! Query parameters that are whole numbers in a range (page sizes, offsets, ids to page from),
//! read the same way by every endpoint: a bad one is a field error naming it.

use std::ops::RangeInclusive;

use crate::problem::FieldError;

/// The parameter `name`, if given, as a whole number within `range`.
pub fn whole_number(
    name: &str,
    raw: Option<&str>,
    range: RangeInclusive<i64>,
) -> Result<Option<i64>, FieldError> {
    match raw {
        None => Ok(None),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|value| range.contains(value))
            .map(Some)
            .ok_or_else(|| {
                FieldError::new(
                    name,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_outside_the_range_or_not_numbers_name_the_parameter() {
        assert_eq!(whole_number("limit", None, 1..=100), Ok(None));
        assert_eq!(whole_number("limit", Some("7"), 1..=100), Ok(Some(7)));
        for bad in ["0", "101", "-1", "seven", "1.5", ""] {
            assert_eq!(
                whole_number("limit", Some(bad), 1..=100),
                Err(FieldError::new(
                    "limit",
                    "must be a whole number from 1 to 100"
                )),
                "{bad}"
            );
        }
    }
}
