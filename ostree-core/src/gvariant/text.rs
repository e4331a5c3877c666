//! GVariant text format (placeholder filled by the text-format work item).

use super::Variant;

/// Print a value in GVariant text format.
pub fn print(v: &Variant, _type_annotate: bool) -> String {
    format!("{:?}", v.to_bytes())
}
