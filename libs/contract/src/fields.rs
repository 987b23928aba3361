//! Reading the fields of a JSON object one by one, so that every failing field is reported at
//! once, not only the first one a deserializer meets.

use serde_json::{Map, Value};

/// One field that breaks the rules, named as it is on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    pub field: &'static str,
    pub detail: String,
}

impl InvalidField {
    pub fn new(field: &'static str, detail: impl Into<String>) -> Self {
        Self {
            field,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for InvalidField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#/{} {}", self.field, self.detail)
    }
}

/// The string field `name` of `object`, parsed with `parse`: a missing field, another JSON type
/// or a parse error is an [`InvalidField`] naming it.
pub fn string_field<T>(
    object: &Map<String, Value>,
    name: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, InvalidField> {
    match object.get(name) {
        None | Some(Value::Null) => Err(InvalidField::new(name, "is required")),
        Some(Value::String(text)) => parse(text).map_err(|detail| InvalidField::new(name, detail)),
        Some(_) => Err(InvalidField::new(name, "must be a string")),
    }
}

/// Joins the failures of two fields read side by side.
pub fn both<A, B>(
    a: Result<A, InvalidField>,
    b: Result<B, InvalidField>,
) -> Result<(A, B), Vec<InvalidField>> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err([a.err(), b.err()].into_iter().flatten().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_required_strings() {
        let object = serde_json::json!({"name": "Ada", "age": 36, "nothing": null});
        let object = object.as_object().unwrap();
        let text = |s: &str| Ok::<_, String>(s.to_owned());
        assert_eq!(string_field(object, "name", text), Ok("Ada".to_owned()));
        assert_eq!(
            string_field(object, "age", text),
            Err(InvalidField::new("age", "must be a string"))
        );
        assert_eq!(
            string_field(object, "nothing", text),
            Err(InvalidField::new("nothing", "is required"))
        );
        assert_eq!(
            string_field::<()>(object, "name", |_| Err("is wrong".into())),
            Err(InvalidField::new("name", "is wrong"))
        );
        assert_eq!(
            InvalidField::new("email", "is required").to_string(),
            "#/email is required"
        );
    }
}
