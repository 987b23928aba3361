//! The procedures the user service answers over RabbitMQ (`contract::rpc`): whether an email
//! is free, by the same rules and the same case-insensitive comparison as `POST /user`, and a
//! user by id.

use contract::InvalidField;
use contract::faults::FaultKind;
use contract::rpc::{self, EmailAvailability, codes, methods};
use contract::users::EmailAddress;
use messaging::rpc::Procedures;
use serde_json::{Value, json};
use service_kit::faults::Faults;

use crate::store::{StoreError, UserStore};

pub struct UserProcedures {
    pub store: UserStore,
    pub faults: Faults,
}

/// The -32602 that names the failing field.
fn invalid_params(field: InvalidField) -> rpc::Error {
    rpc::Error::new(codes::INVALID_PARAMS, "invalid params")
        .with_data(json!({"field": field.field, "detail": field.detail}))
}

fn params_object(params: &Value) -> Result<&serde_json::Map<String, Value>, rpc::Error> {
    params
        .as_object()
        .ok_or_else(|| rpc::Error::new(codes::INVALID_PARAMS, "params must be an object"))
}

impl From<StoreError> for rpc::Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => rpc::Error::new(
                codes::UNAVAILABLE,
                "the user database is unavailable; try again shortly",
            ),
            _ => rpc::Error::new(codes::INTERNAL_ERROR, "internal error"),
        }
    }
}

impl UserProcedures {
    async fn email_available(&self, params: &Value) -> Result<Value, rpc::Error> {
        let email =
            contract::fields::string_field(params_object(params)?, "email", EmailAddress::parse)
                .map_err(invalid_params)?;
        let taken = self.store.find_by_email(email.as_str()).await?.is_some();
        Ok(json!(EmailAvailability {
            email: email.normalized(),
            available: !taken,
        }))
    }

    async fn get(&self, params: &Value) -> Result<Value, rpc::Error> {
        let id = params_object(params)?
            .get("id")
            .and_then(Value::as_i64)
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                invalid_params(InvalidField::new("id", "must be a positive whole number"))
            })?;
        match self.store.get(id).await? {
            Some(user) => Ok(json!(user)),
            None => Err(rpc::Error::new(
                codes::NOT_FOUND,
                format!("there is no user {id}"),
            )),
        }
    }
}

impl Procedures for UserProcedures {
    fn method(&self, name: &str) -> Option<&'static str> {
        methods::ALL.into_iter().find(|method| *method == name)
    }

    async fn call(&self, method: &'static str, params: Value) -> Result<Value, rpc::Error> {
        if self.faults.strike(FaultKind::RpcError, None).is_some() {
            return Err(rpc::Error::new(
                codes::UNAVAILABLE,
                "fault injected: the user service is unavailable",
            ));
        }
        match method {
            methods::EMAIL_AVAILABLE => self.email_available(&params).await,
            methods::GET_USER => self.get(&params).await,
            _ => Err(rpc::Error::new(codes::METHOD_NOT_FOUND, "no such method")),
        }
    }

    fn leaves_unanswered(&self) -> bool {
        self.faults.strike(FaultKind::RpcTimeout, None).is_some()
    }
}
