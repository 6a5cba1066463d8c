//! Label selectors (`app=web,tier in (a,b),!canary`) and field selectors (`metadata.name=x,status.phase!=Running`).

use serde_json::Value;

use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<LabelSelector, ApiError> {
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_label_term(term)?);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|requirement| match requirement {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, values) => label(k).is_some_and(|l| values.iter().any(|v| v == l)),
            Requirement::NotIn(k, values) => label(k).is_none_or(|l| values.iter().all(|v| v != l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
        })
    }
}

/// Splits on commas that are not inside a parenthesised value set.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn parse_label_term(term: &str) -> Result<Requirement, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "unable to parse requirement: invalid label selector term {term:?}"
        ))
    };
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key.trim().to_string()));
    }
    for (operator, set_operator) in [(" notin ", true), (" in ", false)] {
        if let Some((key, rest)) = term.split_once(operator) {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(bad)?;
            let values = inner.split(',').map(|v| v.trim().to_string()).collect();
            let key = key.trim().to_string();
            return Ok(if set_operator {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(key.trim().to_string(), value.trim().to_string()));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(key.trim().to_string(), value.trim().to_string()));
    }
    if term.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        return Err(bad());
    }
    Ok(Requirement::Exists(term.to_string()))
}

/// A parsed field selector: equality and inequality on dotted paths into the object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    requirements: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(text: &str) -> Result<FieldSelector, ApiError> {
        let mut requirements = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            requirements.push((path.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value of `metadata.name` the selector demands, which lets a list skip straight to it.
    pub fn required_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|(p, eq, _)| *eq && p == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(path, equal, value)| {
            let pointer = format!("/{}", path.replace('.', "/"));
            let actual = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check_labels(selector: &str, labels: Value, expected: bool) {
        let object = json!({"metadata": {"labels": labels}});
        let parsed = LabelSelector::parse(selector).expect("the selector parses");
        assert_eq!(parsed.matches(&object), expected, "{selector} on {labels}");
    }

    #[test]
    fn label_selectors_match_like_kubernetes() {
        check_labels("", json!({}), true);
        check_labels("app=web", json!({"app": "web"}), true);
        check_labels("app==web", json!({"app": "db"}), false);
        check_labels("app!=web", json!({}), true);
        check_labels("tier in (a, b),app", json!({"tier": "b", "app": "x"}), true);
        check_labels("tier notin (a,b)", json!({"tier": "a"}), false);
        check_labels("tier notin (a,b)", json!({}), true);
        check_labels("!canary", json!({"canary": "1"}), false);
        assert!(LabelSelector::parse("tier in a").is_err());
    }

    #[test]
    fn field_selectors_compare_dotted_paths() {
        let pod = json!({"metadata": {"name": "p", "namespace": "n"}, "status": {"phase": "Running"}});
        let check = |s: &str| FieldSelector::parse(s).expect("the selector parses").matches(&pod);
        assert!(check("metadata.name=p,metadata.namespace==n"));
        assert!(!check("status.phase!=Running"));
        assert!(check("spec.nodeName="));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
