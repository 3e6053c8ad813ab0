//! Weir plugin `upper`: upper-cases strings and records.
//!
//! `upper_name` is the UDF of the pipeline benchmark (decode a record, upper-case a field, add
//! a field, encode), so it is written the way a hot UDF should be: the input borrows its
//! strings from the row instead of allocating them, and only the new name is allocated.

use serde::{Deserialize, Serialize};

/// A person record as it arrives.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Person<'a> {
    pub id: u64,
    pub name: &'a str,
    pub city: &'a str,
    pub score: f64,
}

/// A person record with its name upper-cased and measured.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NamedPerson<'a> {
    pub id: u64,
    pub name: String,
    pub city: &'a str,
    pub score: f64,
    /// Length of the name in characters (Unicode scalar values).
    pub name_len: u32,
}

/// Upper-cases a string.
#[weir::map]
pub fn upper(s: String) -> String {
    s.to_uppercase()
}

/// Upper-cases a person's name and adds its length.
#[weir::map]
pub fn upper_name(person: Person<'_>) -> NamedPerson<'_> {
    NamedPerson {
        id: person.id,
        name: person.name.to_uppercase(),
        city: person.city,
        score: person.score,
        name_len: u32::try_from(person.name.chars().count()).unwrap_or(u32::MAX),
    }
}

weir::plugin! {
    name: "upper",
    version: "0.1.0",
    functions: [upper, upper_name],
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::testing::Harness;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct OwnedPerson {
        id: u64,
        name: String,
        city: String,
        score: f64,
        name_len: u32,
    }

    #[test]
    fn upper_called_directly() {
        assert_eq!(upper("weir".into()), "WEIR");
    }

    #[test]
    fn upper_through_the_harness() {
        let harness = Harness::new(&PLUGIN);
        assert_eq!(harness.map::<_, String>("upper", ["a", "straße", ""]), ["A", "STRASSE", ""]);
    }

    #[test]
    fn upper_name_called_directly() {
        let out = upper_name(Person { id: 7, name: "zoë", city: "Oslo", score: 1.5 });
        assert_eq!(out.name, "ZOË");
        assert_eq!(out.name_len, 3);
        assert_eq!(out.city, "Oslo");
    }

    #[test]
    fn upper_name_through_the_harness() {
        let harness = Harness::new(&PLUGIN);
        let people = [
            Person { id: 1, name: "ada", city: "London", score: 9.5 },
            Person { id: 2, name: "grace", city: "New York", score: 8.0 },
        ];
        let out: Vec<OwnedPerson> = harness.map("upper_name", &people);
        assert_eq!(
            out,
            [
                OwnedPerson { id: 1, name: "ADA".into(), city: "London".into(), score: 9.5, name_len: 3 },
                OwnedPerson { id: 2, name: "GRACE".into(), city: "New York".into(), score: 8.0, name_len: 5 },
            ]
        );
    }

    #[test]
    fn output_records_are_maps_with_field_names() {
        let harness = Harness::new(&PLUGIN);
        let people = [Person { id: 1, name: "ada", city: "London", score: 9.5 }];
        let rows: Vec<std::collections::BTreeMap<String, serde::de::IgnoredAny>> = harness.map("upper_name", &people);
        let row = &rows[0];
        assert_eq!(row.len(), 5);
        assert!(row.contains_key("name_len"));
    }

    #[test]
    fn a_row_of_the_wrong_shape_fails_alone() {
        let harness = Harness::new(&PLUGIN);
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Row {
            Good(OwnedPerson),
            Bad(&'static str),
        }
        let good = OwnedPerson { id: 1, name: "a".into(), city: "b".into(), score: 0.0, name_len: 0 };
        let out = harness.apply::<_, OwnedPerson>("upper_name", [Row::Bad("not a person"), Row::Good(good)]);
        let error = out[0].as_ref().expect_err("a string is not a person");
        assert!(error.contains("upper_name"), "{error}");
        assert_eq!(out[1].as_ref().map(|rows| rows[0].name.as_str()), Ok("A"));
    }

    #[test]
    fn describes_itself() {
        assert_eq!(PLUGIN.name(), "upper");
        let names: Vec<_> = PLUGIN.functions().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["upper", "upper_name"]);
        assert!(PLUGIN.functions().iter().all(|f| f.kind() == weir::FunctionKind::Map));
    }

    #[test]
    fn an_unknown_function_fails_the_call() {
        let harness = Harness::new(&PLUGIN);
        let error = harness.try_apply::<_, String>("lower", ["a"]).expect_err("no such function");
        assert!(error.to_string().contains("no function `lower`"), "{error}");
    }
}
