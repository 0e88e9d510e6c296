"""The standard log of this suite: writer (`compliance.mllog`), rule-based checker, result
summarizer and submission package checker."""
