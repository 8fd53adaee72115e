"""JSON text of plain values (texts, lists, dicts of them), from an encoder built once.

json.dumps makes a new JSONEncoder per call, and JSONEncoder.encode a new C encoder: together,
most of the cost of encoding a row's few cells. The C encoder is made here once, with the
options JSONEncoder would give it (the circular check aside, which plain rows never need), so
the text is the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def encoder(*, item_separator: str = ", ", key_separator: str = ": ") -> Callable[[Any], str]:
    """`json.dumps(value, ensure_ascii=False, separators=...)`, built once."""
    made = json.JSONEncoder(ensure_ascii=False, separators=(item_separator, key_separator))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: JSONEncoder's own
        return made.encode
    chunks = make(
        None, made.default, json.encoder.encode_basestring, None,
        key_separator, item_separator, False, False, True,
    )  # fmt: skip
    return lambda value: "".join(chunks(value, 0))
