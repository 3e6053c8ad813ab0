//! Line numbers of the keys of a YAML document, so that validation errors found after
//! parsing (a missing plugin file, an unknown function) can name the line they are about.
//!
//! Paths are written as users read them: `source.connector`, `pipeline[2].map`.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Path -> 1-based line of the key (or sequence item) at that path.
#[derive(Debug, Default, Clone)]
pub struct Lines(HashMap<String, usize>);

impl Lines {
    /// Index a YAML text; text that does not parse gives an empty index (the parser that
    /// reads the values reports the syntax error with its own position).
    pub fn index(text: &str) -> Self {
        let mut rx = Receiver::default();
        let _ = Parser::new_from_str(text).load(&mut rx, false);
        Lines(rx.lines)
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(&l) = self.0.get(p) {
                return Some(l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Receiver {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Receiver {
    /// A node starts at `line`: a key of a mapping, or a value. Returns the node's path
    /// when it is a value (to push for containers).
    fn node(&mut self, scalar: Option<&str>, line: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    // This node is a key.
                    let k = scalar.unwrap_or("?").to_string();
                    let full = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    self.lines.entry(full).or_insert(line);
                    *key = Some(k);
                    None
                }
                Some(k) => Some(if path.is_empty() { k } else { format!("{path}.{k}") }),
            },
            Some(Frame::Seq { path, next }) => {
                let full = format!("{path}[{next}]");
                *next += 1;
                self.lines.entry(full.clone()).or_insert(line);
                Some(full)
            }
        }
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(value, ..) => {
                self.node(Some(&value), line);
            }
            Event::Alias(_) => {
                self.node(None, line);
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.node(None, line) {
                    self.stack.push(Frame::Map { path, key: None });
                }
            }
            Event::SequenceStart(..) => {
                if let Some(path) = self.node(None, line) {
                    self.stack.push(Frame::Seq { path, next: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_sequence_items() {
        let text = "name: x\nsource:\n  connector: file\n  path: a\npipeline:\n  - map: a.b\n  - key_by:\n      field: w\n  - count\n";
        let l = Lines::index(text);
        assert_eq!(l.line("name"), Some(1));
        assert_eq!(l.line("source.connector"), Some(3));
        assert_eq!(l.line("source.path"), Some(4));
        assert_eq!(l.line("pipeline[0].map"), Some(6));
        assert_eq!(l.line("pipeline[1].key_by.field"), Some(8));
        assert_eq!(l.line("pipeline[2]"), Some(9));
        assert_eq!(l.line("source.nothing"), Some(2), "falls back to the parent");
        assert_eq!(l.line("elsewhere"), None);
    }
}
