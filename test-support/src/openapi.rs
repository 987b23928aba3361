//! Checks an OpenAPI document against the running service it describes: every documented
//! operation must answer, with one of the statuses documented for it.

use serde_json::Value;

/// One documented operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub method: String,
    /// The path template, e.g. `/user/{id}`.
    pub path: String,
    /// Query parameters the operation requires.
    pub required_query: Vec<String>,
    pub statuses: Vec<u16>,
}

impl Operation {
    /// The path with every `{parameter}` replaced by `1`, and each required query parameter
    /// set to `1`.
    pub fn concrete_path(&self) -> String {
        let mut path = String::new();
        let mut in_parameter = false;
        for c in self.path.chars() {
            match c {
                '{' => in_parameter = true,
                '}' => {
                    in_parameter = false;
                    path.push('1');
                }
                _ if in_parameter => {}
                _ => path.push(c),
            }
        }
        if !self.required_query.is_empty() {
            let query: Vec<String> = self
                .required_query
                .iter()
                .map(|name| format!("{name}=1"))
                .collect();
            path.push('?');
            path.push_str(&query.join("&"));
        }
        path
    }
}

/// Every operation of `document`, with its documented statuses.
pub fn operations(document: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"]
        .as_object()
        .expect("an OpenAPI document has paths")
    {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let statuses = operation["responses"]
                .as_object()
                .map(|responses| {
                    responses
                        .keys()
                        .filter_map(|status| status.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let required_query = operation["parameters"]
                .as_array()
                .map(|parameters| {
                    parameters
                        .iter()
                        .filter(|parameter| {
                            parameter["in"] == "query" && parameter["required"] == true
                        })
                        .filter_map(|parameter| parameter["name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            operations.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                required_query,
                statuses,
            });
        }
    }
    operations
}

/// Calls every operation of `document` on `base` (the request made by `request`, which gets the
/// method and concrete URL) and panics, listing them all, where an answer is undocumented.
pub async fn assert_operations_answer(
    base: &str,
    document: &Value,
    request: impl Fn(&Operation, reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) {
    let client = reqwest::Client::new();
    let mut wrong = Vec::new();
    let operations = operations(document);
    assert!(!operations.is_empty(), "the document has no operations");
    for operation in &operations {
        let method = reqwest::Method::from_bytes(operation.method.as_bytes()).unwrap();
        let builder = client.request(method, format!("{base}{}", operation.concrete_path()));
        let status = match request(operation, builder).send().await {
            Ok(response) => response.status().as_u16(),
            Err(error) => panic!(
                "{} {} did not answer: {error}",
                operation.method, operation.path
            ),
        };
        if !operation.statuses.contains(&status) {
            wrong.push(format!(
                "{} {} answered {status}, documented {:?}",
                operation.method, operation.path, operation.statuses
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "undocumented answers:\n{}",
        wrong.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_filled_in() {
        let operation = Operation {
            method: "GET".into(),
            path: "/user/{id}/posts/{post}".into(),
            required_query: vec!["channel".into()],
            statuses: vec![200],
        };
        assert_eq!(operation.concrete_path(), "/user/1/posts/1?channel=1");
    }
}
