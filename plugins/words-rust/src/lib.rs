//! Weir plugin `words`: the word-count building blocks, one function of each transform kind.

/// Splits a line into lower-case words (runs of alphanumeric characters).
///
/// Returns an iterator rather than a `Vec`: the SDK encodes each word as it comes.
#[weir::flat_map]
pub fn split(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()).map(str::to_lowercase)
}

/// Keeps words longer than four characters.
#[weir::filter]
pub fn is_long(word: &str) -> bool {
    word.chars().count() > 4
}

/// Keys a word by its first character, lower-cased (the empty string for an empty word).
#[weir::key_selector]
pub fn first_letter(word: &str) -> String {
    word.chars().next().map(|c| c.to_lowercase().collect()).unwrap_or_default()
}

/// Parses a decimal integer; anything else fails that row (it goes to the dead-letter output).
#[weir::map]
pub fn parse_int(text: &str) -> Result<i64, String> {
    text.trim().parse().map_err(|e| format!("{text:?} is not an integer: {e}"))
}

weir::plugin! {
    name: "words",
    version: "0.1.0",
    functions: [split, is_long, first_letter, parse_int],
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::FunctionKind;
    use weir::testing::Harness;

    fn harness() -> Harness {
        Harness::new(&PLUGIN)
    }

    #[test]
    fn split_lowercases_and_drops_empty_words() {
        let words: Vec<String> = split("Hello, World!  it's 2024").collect();
        assert_eq!(words, ["hello", "world", "it", "s", "2024"]);
        assert_eq!(split("  ,, ").count(), 0);
    }

    #[test]
    fn split_through_the_harness() {
        let out = harness().flat_map::<_, String>("split", ["To be, or not", "", "ÉTÉ"]);
        assert_eq!(out, [vec!["to", "be", "or", "not"], vec![], vec!["été"]]);
    }

    #[test]
    fn is_long_counts_characters() {
        assert!(is_long("weirdo"));
        assert!(!is_long("weir"));
        assert!(is_long("éééée"));
        assert_eq!(harness().filter("is_long", ["hello", "hi", "streams"]), [true, false, true]);
    }

    #[test]
    fn a_filter_passes_its_input_through() {
        let out = harness().apply::<_, String>("is_long", ["hello", "hi"]);
        assert_eq!(out, [Ok(vec!["hello".to_string()]), Ok(vec![])]);
    }

    #[test]
    fn first_letter_is_lowercased() {
        assert_eq!(first_letter("Weir"), "w");
        assert_eq!(first_letter(""), "");
        assert_eq!(harness().map::<_, String>("first_letter", ["Apple", "éclair", "İ"]), ["a", "é", "i̇"]);
    }

    #[test]
    fn parse_int_fails_per_row() {
        assert_eq!(parse_int(" 42 "), Ok(42));
        let out = harness().apply::<_, i64>("parse_int", ["1", "two", "-3"]);
        assert_eq!(out[0], Ok(vec![1]));
        let error = out[1].as_ref().expect_err("not a number");
        assert!(error.contains("\"two\" is not an integer"), "{error}");
        assert_eq!(out[2], Ok(vec![-3]));
    }

    #[test]
    fn a_row_that_is_not_a_string_fails_alone() {
        let out = harness().apply::<_, i64>("parse_int", [serde_value::Int(5), serde_value::Str("6")]);
        let error = out[0].as_ref().expect_err("an integer is not a &str");
        assert!(error.starts_with("function `parse_int`"), "{error}");
        assert_eq!(out[1], Ok(vec![6]));
    }

    #[test]
    fn kinds_are_declared() {
        let kinds: Vec<_> = PLUGIN.functions().iter().map(|f| (f.name(), f.kind())).collect();
        assert_eq!(
            kinds,
            [
                ("split", FunctionKind::FlatMap),
                ("is_long", FunctionKind::Filter),
                ("first_letter", FunctionKind::KeySelector),
                ("parse_int", FunctionKind::Map),
            ]
        );
    }

    /// Rows of mixed types for the decode-failure test.
    mod serde_value {
        #[derive(serde::Serialize)]
        #[serde(untagged)]
        pub enum Value {
            Int(i64),
            Str(&'static str),
        }
        pub use Value::{Int, Str};
    }
}
