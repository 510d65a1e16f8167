//! Name patterns as JDBC's `DatabaseMetaData` and Flight SQL's metadata commands take them:
//! `%` matches any run of characters, `_` any one character, and `\` makes the next character
//! literal (`my\_table` matches only `my_table`). Matching is case-sensitive, on characters
//! (not bytes), like the names catalogs return.

/// A parsed pattern; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    parts: Vec<PatternPart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternPart {
    Literal(char),
    AnyOne,
    AnyRun,
}

impl NamePattern {
    /// Parses `pattern`. A trailing lone `\` stands for itself.
    pub fn new(pattern: &str) -> Self {
        let mut parts = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            parts.push(match c {
                '%' => PatternPart::AnyRun,
                '_' => PatternPart::AnyOne,
                '\\' => PatternPart::Literal(chars.next().unwrap_or('\\')),
                other => PatternPart::Literal(other),
            });
        }
        Self { parts }
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        // Greedy matching with one backtrack point, the last `%` seen: linear for the patterns
        // tools send, and never exponential.
        let (mut p, mut n) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.parts.get(p) {
                Some(PatternPart::AnyRun) => {
                    backtrack = Some((p, n));
                    p += 1;
                }
                Some(PatternPart::AnyOne) => {
                    p += 1;
                    n += 1;
                }
                Some(PatternPart::Literal(c)) if *c == name[n] => {
                    p += 1;
                    n += 1;
                }
                _ => match backtrack {
                    Some((star, from)) => {
                        p = star + 1;
                        n = from + 1;
                        backtrack = Some((star, from + 1));
                    }
                    None => return false,
                },
            }
        }
        self.parts[p..].iter().all(|part| *part == PatternPart::AnyRun)
    }
}

/// Whether `name` matches `pattern`, where no pattern matches everything.
pub fn matches_optional(pattern: Option<&NamePattern>, name: &str) -> bool {
    pattern.is_none_or(|pattern| pattern.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        NamePattern::new(pattern).matches(name)
    }

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(matches("%", ""));
        assert!(matches("%", "orders"));
        assert!(matches("ord%", "orders"));
        assert!(matches("%ers", "orders"));
        assert!(matches("%rd%", "orders"));
        assert!(matches("o_ders", "orders"));
        assert!(matches("o%d%s", "orders"));
        assert!(!matches("o_ders", "oders"));
        assert!(!matches("ord", "orders"));
        assert!(!matches("orders_", "orders"));
        assert!(matches("%a%b%c", "xaxbxbxc"));
        assert!(!matches("%a%b%c", "xaxbxbx"));
    }

    #[test]
    fn escaped_wildcards_are_literal() {
        assert!(matches("my\\_t", "my_t"));
        assert!(!matches("my\\_t", "myxt"));
        assert!(matches("100\\%", "100%"));
        assert!(!matches("100\\%", "1000"));
        assert!(matches("a\\\\b", "a\\b"));
        assert!(matches("end\\", "end\\"));
    }

    #[test]
    fn matching_is_case_sensitive_and_by_character() {
        assert!(!matches("Orders", "orders"));
        assert!(matches("_rt", "ørt"));
        assert!(matches("t$%", "t$snapshots"));
    }
}
