//! `WWW-Authenticate`: which scheme a registry wants, and where its tokens come from.
//!
//! Parsing is left to the `http-auth` crate, which handles what hand-written
//! splitting gets wrong: several challenges in one header, parameter names in
//! any case, and quoted values with escapes and commas.

/// What a registry asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// HTTP basic auth with the registry's credentials.
    Basic,
    /// The token flow: a token from `realm`, for `service`.
    Bearer { realm: String, service: Option<String> },
}

/// The first challenge in `header` that oxbuild can answer: Bearer before
/// Basic when a registry offers both, since tokens keep passwords off the wire.
pub(crate) fn parse(header: &str) -> Option<Challenge> {
    let mut basic = None;
    // A malformed challenge ends the list, but those before it still count.
    for c in http_auth::ChallengeParser::new(header).map_while(Result::ok) {
        if c.scheme.eq_ignore_ascii_case("bearer") {
            let param =
                |name: &str| c.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_unescaped());
            if let Some(realm) = param("realm") {
                return Some(Challenge::Bearer { realm, service: param("service") });
            }
        } else if c.scheme.eq_ignore_ascii_case("basic") {
            basic = Some(Challenge::Basic);
        }
    }
    basic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_give_realm_and_service() {
        let c = parse(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into())
            })
        );
        assert_eq!(parse(r#"Basic realm="Registry""#), Some(Challenge::Basic));
        assert_eq!(parse("Negotiate"), None);
    }

    #[test]
    fn several_challenges_mixed_case_and_escapes() {
        // Two challenges in one header; the answerable one is not first.
        let c = parse(r#"Negotiate, BEARER Realm="https://a.example/t?x=1,2", SERVICE="reg \"one\"""#);
        assert_eq!(
            c,
            Some(Challenge::Bearer { realm: "https://a.example/t?x=1,2".into(), service: Some(r#"reg "one""#.into()) })
        );
        // Bearer wins over Basic when both are offered.
        let c = parse(r#"Basic realm="r", Bearer realm="https://t.example/token""#);
        assert!(matches!(c, Some(Challenge::Bearer { .. })), "{c:?}");
        // A Bearer challenge without a realm cannot be answered; Basic can.
        assert_eq!(parse(r#"Bearer service="x", Basic realm="r""#), Some(Challenge::Basic));
        assert_eq!(parse("Bearer realm="), None);
    }
}
