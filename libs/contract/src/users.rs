//! A user as the stack accepts it, parsed once at the edge so that what is inside only ever
//! holds valid values, and the user as every API and event carries it. `POST /user` in the user
//! service, the gateway's asynchronous `POST /user` and user-queue's `create_user` commands all
//! read users through [`NewUser`], so the three cannot disagree on what a valid user is.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::fields::{InvalidField, both, string_field};

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_LOCAL_PART_CHARS: usize = 64;

/// A display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("must not be empty".into());
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address of the usual `local@domain.tld` form. It is kept as written; uniqueness
/// ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim();
        if email.is_empty() {
            return Err("must not be empty".into());
        }
        if email.chars().count() > MAX_EMAIL_CHARS {
            return Err(format!("must be at most {MAX_EMAIL_CHARS} characters"));
        }
        let invalid = || Err("is not a valid email address".to_owned());
        let Some((local, domain)) = email.split_once('@') else {
            return invalid();
        };
        let local_ok = !local.is_empty()
            && local.chars().count() <= MAX_LOCAL_PART_CHARS
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !"@,;:<>()[]\\\"".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.chars().count() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email.to_owned()))
        } else {
            invalid()
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address as uniqueness compares it: in lower case.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A user to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: UserName,
    pub email: EmailAddress,
}

impl NewUser {
    /// Checks a name and an email, naming every one that is wrong.
    pub fn parse(name: &str, email: &str) -> Result<Self, Vec<InvalidField>> {
        let (name, email) = both(
            UserName::parse(name).map_err(|detail| InvalidField::new("name", detail)),
            EmailAddress::parse(email).map_err(|detail| InvalidField::new("email", detail)),
        )?;
        Ok(Self { name, email })
    }

    /// Reads a user from a JSON object (`POST /user`'s body), naming every field that is
    /// missing, not a string or against the rules.
    pub fn from_json(object: &Map<String, Value>) -> Result<Self, Vec<InvalidField>> {
        let (name, email) = both(
            string_field(object, "name", UserName::parse),
            string_field(object, "email", EmailAddress::parse),
        )?;
        Ok(Self { name, email })
    }

    /// The user as it goes on the wire, unchecked again by whoever reads it.
    pub fn fields(&self) -> NewUserFields {
        NewUserFields {
            name: self.name.as_str().to_owned(),
            email: self.email.as_str().to_owned(),
        }
    }
}

/// A user to create: its name and email.
// The body of `POST /user` and the user of a `create_user` command, as sent: readers check it
// with `NewUser`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = NewUser)]
pub struct NewUserFields {
    /// 1 to 100 characters, no control characters; trimmed.
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    /// `local@domain.tld`, at most 254 characters; unique whatever its case.
    #[schema(example = "ada@example.com")]
    pub email: String,
}

/// A stored user.
// As every API answer and event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    #[schema(example = 7)]
    pub id: i64,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
    pub created_at: DateTime<Utc>,
}

const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// Fixed, so that a key gives the same event id in every process and release.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_0d5e_8f4a_4c1e_9b7a_2f3e_5d6c_7b8a);

/// A client's own name for one user creation, so that it can send the request again (after a
/// timeout or a 503) and get the user it created back instead of a 409. It becomes the id of
/// the creation's event, which the store checks when the email is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The header's value: 1 to 255 visible ASCII characters. The error is the detail of the
    /// 400 that answers anything else.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let visible_ascii = !raw.is_empty()
            && raw.len() <= MAX_IDEMPOTENCY_KEY_CHARS
            && raw.iter().all(u8::is_ascii_graphic);
        match std::str::from_utf8(raw) {
            Ok(key) if visible_ascii => Ok(Self(key.to_owned())),
            _ => Err(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
            )),
        }
    }

    /// The event id of the creation this key names, for the client `subject` (keys are each
    /// client's own: two clients may pick the same one).
    pub fn event_id(&self, subject: &str) -> Uuid {
        Uuid::new_v5(
            &IDEMPOTENCY_NAMESPACE,
            format!("{subject}\n{}", self.0).as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii_and_scoped_by_client() {
        let key = IdempotencyKey::parse(b"order-7f3a").unwrap();
        assert_eq!(key.event_id("alice"), key.event_id("alice"), "stable");
        assert_ne!(key.event_id("alice"), key.event_id("bob"), "per client");
        assert_ne!(
            key.event_id("alice"),
            IdempotencyKey::parse(b"order-7f3b")
                .unwrap()
                .event_id("alice")
        );
        assert!(IdempotencyKey::parse("k".repeat(255).as_bytes()).is_ok());
        for invalid in ["", " ", "two words", "tab\t", "zoë", &"k".repeat(256)] {
            assert!(
                IdempotencyKey::parse(invalid.as_bytes()).is_err(),
                "{invalid:?}"
            );
        }
    }

    #[test]
    fn every_failing_field_is_named() {
        let body = serde_json::json!({"name": "", "email": 7});
        assert_eq!(
            NewUser::from_json(body.as_object().unwrap()),
            Err(vec![
                InvalidField::new("name", "must not be empty"),
                InvalidField::new("email", "must be a string"),
            ])
        );
        assert_eq!(
            NewUser::parse("Ada", "bar"),
            Err(vec![InvalidField::new(
                "email",
                "is not a valid email address"
            )])
        );
        let user = NewUser::parse(" Ada ", "ada@example.com").unwrap();
        assert_eq!(user.fields().name, "Ada");
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(UserName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert_eq!(UserName::parse("Zoë 🦀").unwrap().as_str(), "Zoë 🦀");
        assert!(UserName::parse("").is_err());
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"é".repeat(100)).is_ok());
        assert!(UserName::parse(&"é".repeat(101)).is_err());
        assert!(UserName::parse("nul\0byte").is_err());
        assert!(UserName::parse("line\nbreak").is_err());
    }

    #[test]
    fn emails_have_a_local_part_and_a_dotted_domain() {
        for valid in [
            "ada@example.com",
            "Ada.Lovelace+stack@mail.example.co.uk",
            "o'brien@example.ie",
            "zoë@exämple.de",
        ] {
            assert!(EmailAddress::parse(valid).is_ok(), "{valid}");
        }
        for invalid in [
            "bar",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "ada@exa mple.com",
            "a da@example.com",
            ".ada@example.com",
            "ada..l@example.com",
            "ada@-example.com",
            "ada@example..com",
            "ada\0@example.com",
            "'; DROP TABLE users; --@example.com",
        ] {
            assert!(EmailAddress::parse(invalid).is_err(), "{invalid}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text gives a valid name or a reason, never a panic; a valid name keeps the rules.
        #[test]
        fn names_parse_or_explain(raw in any::<String>()) {
            if let Ok(name) = UserName::parse(&raw) {
                let name = name.as_str();
                prop_assert_eq!(name, name.trim());
                prop_assert!(!name.is_empty() && name.chars().count() <= MAX_NAME_CHARS);
                prop_assert!(!name.chars().any(char::is_control));
            }
        }

        #[test]
        fn emails_parse_or_explain(raw in any::<String>()) {
            if let Ok(email) = EmailAddress::parse(&raw) {
                let email = email.as_str();
                prop_assert_eq!(email.matches('@').count(), 1);
                prop_assert!(email.chars().count() <= MAX_EMAIL_CHARS);
                prop_assert!(!email.chars().any(|c| c.is_whitespace() || c.is_control()));
            }
        }

        /// Addresses of the usual shape are accepted.
        #[test]
        fn ordinary_addresses_are_accepted(
            local in "[a-z0-9]([a-z0-9._+-]{0,20}[a-z0-9])?",
            domain in "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?",
            tld in "[a-z]{2,6}",
        ) {
            let address = format!("{local}@{domain}.{tld}");
            prop_assume!(!address.contains(".."));
            prop_assert!(EmailAddress::parse(&address).is_ok(), "{}", address);
        }
    }
}
