//! Label and field selectors, parsed and matched like the real server's
//! `labels.Parse` and `fields.ParseSelector`.
//!
//! Pure functions over strings and JSON, so they are unit-tested here
//! without a server.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::resource::Resource;
use crate::validation::{is_label_value, is_qualified_name};

/// Why a selector did not parse; the server answers 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(String);

/// A parsed label selector: requirements that must all hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    Open,
    Close,
    Comma,
    In,
    NotIn,
}

fn lex(input: &str) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (token, width) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('!', Some('=')) => (Token::NotEquals, 2),
            ('!', _) => (Token::Not, 1),
            ('=', Some('=')) => (Token::DoubleEquals, 2),
            ('=', _) => (Token::Equals, 1),
            ('>', _) => (Token::Greater, 1),
            ('<', _) => (Token::Less, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            (',', _) => (Token::Comma, 1),
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"!=<>(),".contains(chars[i])
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word),
                });
                continue;
            }
        };
        tokens.push(token);
        i += width;
    }
    tokens
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            Some(Token::Ident(k)) => {
                if is_qualified_name(&k) {
                    Ok(k)
                } else {
                    Err(SelectorError(format!("invalid label key {k:?}")))
                }
            }
            other => Err(SelectorError(format!(
                "found {other:?}, expected: identifier"
            ))),
        }
    }

    /// A value after `=`, `==` or `!=`; empty when the next token ends the
    /// requirement (`k=` selects an empty label value).
    fn value(&mut self) -> Result<String, SelectorError> {
        let v = match self.peek() {
            Some(Token::Ident(v)) => v.clone(),
            Some(Token::Comma) | None => return Ok(String::new()),
            other => return Err(SelectorError(format!("found {other:?}, expected: value"))),
        };
        self.pos += 1;
        if is_label_value(&v) {
            Ok(v)
        } else {
            Err(SelectorError(format!("invalid label value: {v:?}")))
        }
    }

    fn set(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        if self.next() != Some(Token::Open) {
            return Err(SelectorError("found no '(', expected: '('".into()));
        }
        let mut values = BTreeSet::new();
        loop {
            match self.next() {
                Some(Token::Ident(v)) => {
                    if !is_label_value(&v) {
                        return Err(SelectorError(format!("invalid label value: {v:?}")));
                    }
                    values.insert(v);
                    match self.next() {
                        Some(Token::Comma) => {}
                        Some(Token::Close) => break,
                        other => {
                            return Err(SelectorError(format!(
                                "found {other:?}, expected: ',' or ')'"
                            )));
                        }
                    }
                }
                Some(Token::Close) => break,
                other => {
                    return Err(SelectorError(format!("found {other:?}, expected: value")));
                }
            }
        }
        if values.is_empty() {
            return Err(SelectorError(
                "for 'in', 'notin' operators, values set can't be empty".into(),
            ));
        }
        Ok(values)
    }

    fn integer(&mut self) -> Result<i64, SelectorError> {
        match self.next() {
            Some(Token::Ident(v)) => v.parse().map_err(|_| {
                SelectorError(format!(
                    "for 'Gt', 'Lt' operators, the value must be an integer: {v:?}"
                ))
            }),
            other => Err(SelectorError(format!("found {other:?}, expected: integer"))),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return Ok(Requirement::DoesNotExist(self.key()?));
        }
        let key = self.key()?;
        match self.peek() {
            None | Some(Token::Comma) => Ok(Requirement::Exists(key)),
            Some(Token::Equals | Token::DoubleEquals) => {
                self.pos += 1;
                Ok(Requirement::Equals(key, self.value()?))
            }
            Some(Token::NotEquals) => {
                self.pos += 1;
                Ok(Requirement::NotEquals(key, self.value()?))
            }
            Some(Token::In) => {
                self.pos += 1;
                Ok(Requirement::In(key, self.set()?))
            }
            Some(Token::NotIn) => {
                self.pos += 1;
                Ok(Requirement::NotIn(key, self.set()?))
            }
            Some(Token::Greater) => {
                self.pos += 1;
                Ok(Requirement::GreaterThan(key, self.integer()?))
            }
            Some(Token::Less) => {
                self.pos += 1;
                Ok(Requirement::LessThan(key, self.integer()?))
            }
            Some(other) => Err(SelectorError(format!(
                "found {other:?}, expected: in, notin, =, ==, !=, gt, lt"
            ))),
        }
    }
}

impl LabelSelector {
    /// Parses `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
    /// `k notin (a,b)`, `k>1`, `k<1`, comma-joined; empty selects all.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            tokens: lex(input),
            pos: 0,
        };
        let mut requirements = Vec::new();
        if parser.peek().is_none() {
            return Ok(Self::default());
        }
        loop {
            requirements.push(parser.requirement()?);
            match parser.next() {
                None => break,
                Some(Token::Comma) => {}
                Some(other) => {
                    return Err(SelectorError(format!("found {other:?}, expected: ','")));
                }
            }
        }
        Ok(Self { requirements })
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v),
            Requirement::NotEquals(k, v) => label(k) != Some(v),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
            Requirement::GreaterThan(k, n) => label(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => label(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *n),
        })
    }
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`,
/// comma-joined, over the fields the resource allows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector {
    requirements: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses a field selector for `resource`; unsupported fields are an
    /// error, as on the real server (`field label not supported: …`).
    pub fn parse(resource: Resource, input: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_unescaped(input, ',') {
            if part.trim().is_empty() {
                continue;
            }
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !resource.selectable_fields().contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            requirements.push((field.to_owned(), equal, unescape(value.trim())));
        }
        Ok(Self { requirements })
    }

    /// Whether `object` satisfies every requirement.
    pub fn matches(&self, resource: Resource, object: &Value) -> bool {
        self.requirements
            .iter()
            .all(|(field, equal, value)| (resource.field_value(object, field) == *value) == *equal)
    }
}

fn split_unescaped(input: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in value.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labeled(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    #[test]
    fn empty_selects_everything() {
        assert!(sel("").matches(&json!({})));
        assert!(sel("  ").matches(&labeled(json!({"a": "b"}))));
    }

    #[test]
    fn equality_forms() {
        let o = labeled(json!({"app": "rucat", "tier": "driver"}));
        assert!(sel("app=rucat").matches(&o));
        assert!(sel("app==rucat,tier=driver").matches(&o));
        assert!(!sel("app=rucat,tier=executor").matches(&o));
        assert!(sel("app!=other").matches(&o));
        assert!(!sel("app!=rucat").matches(&o));
        assert!(sel("missing!=x").matches(&o), "!= matches absent labels");
        assert!(sel("app = rucat , tier == driver").matches(&o));
    }

    #[test]
    fn existence_forms() {
        let o = labeled(json!({"app": "rucat"}));
        assert!(sel("app").matches(&o));
        assert!(!sel("!app").matches(&o));
        assert!(sel("!other").matches(&o));
        assert!(!sel("other").matches(&json!({"metadata": {}})));
    }

    #[test]
    fn set_forms() {
        let o = labeled(json!({"env": "dev"}));
        assert!(sel("env in (dev,prod)").matches(&o));
        assert!(sel("env in (dev, prod),!x").matches(&o));
        assert!(!sel("env notin (dev)").matches(&o));
        assert!(
            sel("other notin (dev)").matches(&o),
            "notin matches absent labels"
        );
        assert!(!sel("other in (dev)").matches(&o));
    }

    #[test]
    fn numeric_forms() {
        let o = labeled(json!({"n": "5"}));
        assert!(sel("n>4").matches(&o));
        assert!(!sel("n<5").matches(&o));
    }

    #[test]
    fn prefixed_keys_and_empty_values() {
        let o = labeled(json!({"rucat.io/engine": "e-1", "blank": ""}));
        assert!(sel("rucat.io/engine=e-1").matches(&o));
        assert!(sel("blank=").matches(&o));
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for bad in [
            "=x", "a in ()", "a in (b", "a b", "a=b=c", "a>x", "-bad-=x", "a=(b)",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn field_selectors() {
        let pod =
            json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}});
        let fs = |s| FieldSelector::parse(Resource::Pods, s).unwrap();
        assert!(fs("metadata.name=p").matches(Resource::Pods, &pod));
        assert!(fs("metadata.name==p,status.phase!=Failed").matches(Resource::Pods, &pod));
        assert!(!fs("metadata.name=q").matches(Resource::Pods, &pod));
        assert!(fs("spec.nodeName=").matches(Resource::Pods, &pod));
        assert!(FieldSelector::parse(Resource::Pods, "spec.bogus=x").is_err());
        assert!(FieldSelector::parse(Resource::Services, "status.phase=x").is_err());
        assert!(FieldSelector::parse(Resource::Pods, "metadata.name").is_err());
    }
}
