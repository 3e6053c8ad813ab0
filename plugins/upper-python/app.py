"""The "upper" plugin in Python: the same functions as the Rust `upper` plugin.

`upper_name` is the benchmark UDF: decode a record, upper-case a field, add a field, encode.
"""

import weir

weir.plugin(name="upper", version="0.1.0")


@weir.map
def upper(s: str) -> str:
    """Upper-case a string row."""
    return s.upper()


@weir.map
def upper_name(record: dict) -> dict:
    """Upper-case `record["name"]` and add `name_len`, its length."""
    name = record["name"]
    record["name"] = name.upper()
    record["name_len"] = len(name)
    return record
