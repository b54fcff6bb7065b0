//! Name conventions: one schema identifier, one spelling per target.

/// Splits `PascalCase` / `lowerCamel` into lower-case words
/// (`CpuLoad` -> cpu, load; `twoN` -> two, n; `OutputPower` -> output, power).
pub fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = i > 0
            && c.is_ascii_uppercase()
            && (chars[i - 1].is_ascii_lowercase()
                || chars[i - 1].is_ascii_digit()
                || chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase()));
        if (boundary || c == '_') && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if c != '_' {
            cur.push(c.to_ascii_lowercase());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `AdminState` -> `admin-state` (YANG).
pub fn kebab(name: &str) -> String {
    words(name).join("-")
}

/// `AdminState` -> `admin_state` (Rust fields, metrics).
pub fn snake(name: &str) -> String {
    words(name).join("_")
}

/// `offLine` -> `OffLine` (Rust variants).
pub fn pascal(name: &str) -> String {
    words(name)
        .iter()
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `AdminState` -> `adminState` (SMIv2 descriptors after a prefix are
/// PascalCase; alone they must start lower-case).
pub fn lower_camel(name: &str) -> String {
    let p = pascal(name);
    let mut c = p.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Rust keywords that a snake-case field could collide with.
pub fn rust_ident(s: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn",
        "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
        "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
        "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final",
        "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    if KEYWORDS.contains(&s) {
        format!("r#{s}")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(kebab("AvailabilityState"), "availability-state");
        assert_eq!(snake("CpuLoad"), "cpu_load");
        assert_eq!(kebab("HotSwapController"), "hot-swap-controller");
        assert_eq!(pascal("offLine"), "OffLine");
        assert_eq!(pascal("twoN"), "TwoN");
        assert_eq!(kebab("nPlusM"), "n-plus-m");
        assert_eq!(lower_camel("AdminState"), "adminState");
        assert_eq!(snake("MIBObject"), "mib_object");
        assert_eq!(rust_ident("type"), "r#type");
    }
}
