//! Function signatures as `describe` reports them (ABI 0.2): the argument and result types,
//! so that SQL can type-check a call and `weir plugin inspect` can show it.
//!
//! The types come from the Rust types themselves: [`ValueType::of`] reads
//! `std::any::type_name`, which names every type the way the compiler does
//! (`core::option::Option<i64>`, `alloc::vec::Vec<alloc::string::String>`, `&str`), and maps
//! the scalars SQL knows; anything else (a struct, a map) is `any`.

/// A scalar type of the ABI (`scalar-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Any,
    Bool,
    Int,
    Float,
    String,
    Bytes,
    Timestamp,
}

/// The type of one argument or result (`value-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueType {
    pub scalar: Scalar,
    pub nullable: bool,
    pub is_list: bool,
}

impl ValueType {
    /// A plain (not null, not list) scalar.
    pub const fn scalar(scalar: Scalar) -> Self {
        ValueType { scalar, nullable: false, is_list: false }
    }

    /// The ABI type of the Rust type `T`.
    pub fn of<T: ?Sized>() -> Self {
        parse(std::any::type_name::<T>())
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scalar = format!("{:?}", self.scalar).to_lowercase();
        match (self.is_list, self.nullable) {
            (true, true) => write!(f, "list<{scalar}>?"),
            (true, false) => write!(f, "list<{scalar}>"),
            (false, true) => write!(f, "{scalar}?"),
            (false, false) => f.write_str(&scalar),
        }
    }
}

/// What a function takes and returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `(name, type)` of each argument.
    pub params: Vec<(String, ValueType)>,
    pub result: ValueType,
}

fn parse(name: &str) -> ValueType {
    let name = name.trim().trim_start_matches('&').trim_start_matches("mut ").trim();
    if let Some(inner) = generic(name, "Option") {
        return ValueType { nullable: true, ..parse(inner) };
    }
    if let Some(inner) = generic(name, "Vec").or_else(|| slice(name)) {
        let inner = inner.trim().trim_start_matches('&');
        if inner == "u8" {
            return ValueType::scalar(Scalar::Bytes);
        }
        let element = parse(inner);
        // One level of list: a list of lists or of nullables is `any` (WIT types cannot recurse).
        return if element.is_list || element.nullable {
            ValueType { scalar: Scalar::Any, nullable: false, is_list: true }
        } else {
            ValueType { scalar: element.scalar, nullable: false, is_list: true }
        };
    }
    let last = name.rsplit("::").next().unwrap_or(name);
    ValueType::scalar(match last {
        "bool" => Scalar::Bool,
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "isize" | "usize" => Scalar::Int,
        "f32" | "f64" => Scalar::Float,
        "str" | "String" | "char" => Scalar::String,
        _ => Scalar::Any,
    })
}

/// `T` of `path::Name<T>`.
fn generic<'a>(name: &'a str, ty: &str) -> Option<&'a str> {
    let (head, rest) = name.split_once('<')?;
    let head = head.rsplit("::").next()?;
    (head == ty).then(|| rest.strip_suffix('>')).flatten()
}

/// `T` of `[T]`.
fn slice(name: &str) -> Option<&str> {
    name.strip_prefix('[')?.strip_suffix(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_types_map_to_abi_types() {
        let t = |v: ValueType| v.to_string();
        assert_eq!(t(ValueType::of::<i64>()), "int");
        assert_eq!(t(ValueType::of::<&str>()), "string");
        assert_eq!(t(ValueType::of::<String>()), "string");
        assert_eq!(t(ValueType::of::<Option<f64>>()), "float?");
        assert_eq!(t(ValueType::of::<Vec<String>>()), "list<string>");
        assert_eq!(t(ValueType::of::<Vec<u8>>()), "bytes");
        assert_eq!(t(ValueType::of::<&[u8]>()), "bytes");
        assert_eq!(t(ValueType::of::<Option<Vec<i32>>>()), "list<int>?");
        assert_eq!(t(ValueType::of::<Vec<Vec<i32>>>()), "list<any>");
        assert_eq!(t(ValueType::of::<std::collections::HashMap<String, i64>>()), "any");
        assert_eq!(t(ValueType::of::<Signature>()), "any");
        assert_eq!(t(ValueType::of::<bool>()), "bool");
    }

    #[crate::map]
    fn parse(text: &str) -> Result<i64, std::num::ParseIntError> {
        text.parse()
    }

    #[crate::flat_map]
    fn words(line: &str) -> impl Iterator<Item = String> {
        line.split(' ').map(str::to_string).collect::<Vec<_>>().into_iter()
    }

    #[crate::filter]
    fn positive(n: &f64) -> bool {
        *n > 0.0
    }

    #[crate::timestamp_assigner]
    fn at(event: (String, i64)) -> i64 {
        event.1
    }

    #[test]
    fn the_attribute_macros_derive_signatures_from_the_functions_types() {
        let text = |f: crate::Function| {
            let s = f.signature().expect("derived");
            let params: Vec<String> = s.params.iter().map(|(n, t)| format!("{n}: {t}")).collect();
            format!("({}) -> {}", params.join(", "), s.result)
        };
        assert_eq!(text(__weir_function_parse), "(text: string) -> int");
        assert_eq!(text(__weir_function_words), "(line: string) -> string");
        assert_eq!(text(__weir_function_positive), "(n: float) -> float");
        assert_eq!(text(__weir_function_at), "(event: any) -> timestamp");
    }
}
