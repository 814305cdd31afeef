//! PEP 508 environment markers (`python_version < "3.12" and sys_platform == "linux"`),
//! evaluated for the target image rather than the machine oxbuild runs on.

use std::collections::BTreeMap;

use crate::version;

/// Marker variables of the target environment.
#[derive(Debug, Clone)]
pub struct Environment {
    vars: BTreeMap<&'static str, String>,
}

impl Environment {
    /// The environment of CPython `major.minor` (full version `full`) on Linux/`machine`.
    pub fn linux(major: u32, minor: u32, full: &str, machine: &str) -> Environment {
        let mut vars = BTreeMap::new();
        vars.insert("python_version", format!("{major}.{minor}"));
        vars.insert("python_full_version", full.to_string());
        vars.insert("implementation_version", full.to_string());
        vars.insert("implementation_name", "cpython".to_string());
        vars.insert("platform_python_implementation", "CPython".to_string());
        vars.insert("os_name", "posix".to_string());
        vars.insert("sys_platform", "linux".to_string());
        vars.insert("platform_system", "Linux".to_string());
        vars.insert("platform_machine", machine.to_string());
        vars.insert("platform_release", String::new());
        vars.insert("platform_version", String::new());
        vars.insert("extra", String::new());
        Environment { vars }
    }
}

const VERSION_VARS: [&str; 3] = ["python_version", "python_full_version", "implementation_version"];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Str(String),
    Var(String),
    Op(String),
    And,
    Or,
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Token::Open);
            i += 1;
        } else if c == ')' {
            out.push(Token::Close);
            i += 1;
        } else if c == '"' || c == '\'' {
            let end = chars[i + 1..].iter().position(|&d| d == c).ok_or("an unterminated string")?;
            out.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if "<>=!~".contains(c) {
            let mut op = String::new();
            while i < chars.len() && "<>=!~".contains(chars[i]) {
                op.push(chars[i]);
                i += 1;
            }
            out.push(Token::Op(op));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut word = String::new();
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                word.push(chars[i]);
                i += 1;
            }
            match word.as_str() {
                "and" => out.push(Token::And),
                "or" => out.push(Token::Or),
                "in" => out.push(Token::Op("in".into())),
                "not" => {
                    // Only as `not in`.
                    let rest: String = chars[i..].iter().collect();
                    let trimmed = rest.trim_start();
                    if let Some(after) = trimmed.strip_prefix("in") {
                        i += rest.len() - after.len();
                        out.push(Token::Op("not in".into()));
                    } else {
                        return Err("`not` must be followed by `in`".into());
                    }
                }
                _ => out.push(Token::Var(word)),
            }
        } else {
            return Err(format!("unexpected `{c}`"));
        }
    }
    Ok(out)
}

/// A parsed marker, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Marker {
    tokens: Vec<Token>,
    text: String,
}

impl Marker {
    /// Parses a marker expression (the part after `;`).
    pub fn parse(text: &str) -> Result<Marker, String> {
        let tokens = tokenize(text).map_err(|e| format!("marker `{text}`: {e}"))?;
        let marker = Marker { tokens, text: text.to_string() };
        // Validate the grammar once, with an environment where every name is known.
        marker.evaluate(&Environment::linux(3, 0, "3.0.0", "x86_64"))?;
        Ok(marker)
    }

    /// The marker's source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when the marker holds in `env`.
    pub fn evaluate(&self, env: &Environment) -> Result<bool, String> {
        let mut pos = 0;
        let value = self.or(env, &mut pos)?;
        if pos != self.tokens.len() {
            return Err(format!("marker `{}`: unexpected text after the expression", self.text));
        }
        Ok(value)
    }

    fn or(&self, env: &Environment, pos: &mut usize) -> Result<bool, String> {
        let mut value = self.and(env, pos)?;
        while self.tokens.get(*pos) == Some(&Token::Or) {
            *pos += 1;
            let rhs = self.and(env, pos)?;
            value = value || rhs;
        }
        Ok(value)
    }

    fn and(&self, env: &Environment, pos: &mut usize) -> Result<bool, String> {
        let mut value = self.atom(env, pos)?;
        while self.tokens.get(*pos) == Some(&Token::And) {
            *pos += 1;
            let rhs = self.atom(env, pos)?;
            value = value && rhs;
        }
        Ok(value)
    }

    fn atom(&self, env: &Environment, pos: &mut usize) -> Result<bool, String> {
        let bad = |why: &str| format!("marker `{}`: {why}", self.text);
        if self.tokens.get(*pos) == Some(&Token::Open) {
            *pos += 1;
            let v = self.or(env, pos)?;
            if self.tokens.get(*pos) != Some(&Token::Close) {
                return Err(bad("a `(` is not closed"));
            }
            *pos += 1;
            return Ok(v);
        }
        let value = |t: Option<&Token>| -> Result<(String, bool), String> {
            match t {
                Some(Token::Str(s)) => Ok((s.clone(), false)),
                Some(Token::Var(v)) => {
                    let known = env.vars.get(v.as_str()).ok_or_else(|| bad(&format!("unknown variable `{v}`")))?;
                    Ok((known.clone(), VERSION_VARS.contains(&v.as_str())))
                }
                _ => Err(bad("expected a variable or a quoted string")),
            }
        };
        let (lhs, lver) = value(self.tokens.get(*pos))?;
        let Some(Token::Op(op)) = self.tokens.get(*pos + 1) else { return Err(bad("expected an operator")) };
        let (rhs, rver) = value(self.tokens.get(*pos + 2))?;
        *pos += 3;
        Ok(match op.as_str() {
            "in" => rhs.contains(&lhs),
            "not in" => !rhs.contains(&lhs),
            op if lver || rver => {
                if lver {
                    version::satisfies(&lhs, op, &rhs)
                } else {
                    version::satisfies(&rhs, &flip(op), &lhs)
                }
            }
            "==" | "===" => lhs == rhs,
            "!=" => lhs != rhs,
            op @ ("<" | "<=" | ">" | ">=" | "~=") => version::satisfies(&lhs, op, &rhs),
            other => return Err(bad(&format!("unknown operator `{other}`"))),
        })
    }
}

/// The operator with its operands swapped (`a < b` is `b > a`).
fn flip(op: &str) -> String {
    match op {
        "<" => ">",
        ">" => "<",
        "<=" => ">=",
        ">=" => "<=",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(m: &str) -> bool {
        Marker::parse(m).unwrap().evaluate(&Environment::linux(3, 11, "3.11.2", "aarch64")).unwrap()
    }

    #[test]
    fn evaluates_for_the_target() {
        assert!(eval(r#"python_version >= "3.8" and sys_platform == "linux""#));
        assert!(!eval(r#"python_version < "3.10""#), "3.11 is not below 3.10 (numeric, not lexical)");
        assert!(eval(r#"platform_machine == "aarch64""#));
        assert!(!eval(r#"sys_platform == "win32" or (os_name == "nt" and python_version > "3")"#));
        assert!(eval(r#"'linux' in sys_platform"#));
        assert!(eval(r#"platform_machine not in "x86_64 i686""#));
        assert!(eval(r#""3.9" < python_version"#));
        assert!(!eval(r#"extra == "test""#));
    }

    #[test]
    fn bad_markers_are_explained() {
        assert!(Marker::parse(r#"python_version <"#).unwrap_err().contains("expected"));
        assert!(Marker::parse(r#"pyver == "3""#).unwrap_err().contains("unknown variable"));
        assert!(Marker::parse(r#"(python_version == "3""#).unwrap_err().contains("not closed"));
    }
}
