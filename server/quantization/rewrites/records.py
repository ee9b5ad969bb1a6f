"""What a rewrite changed, in words the report can show."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    rewrite: str  # e.g. "feature_vectorizer_to_concat"
    nodes: tuple[str, ...]  # the exporter's nodes it replaced or removed
    detail: str  # what it did, or would have done
    skipped: str = ""  # non-empty: considered and left alone, and why (the model is unchanged by it)
