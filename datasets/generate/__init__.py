"""One module per dataset; each exposes ``generate(...)`` returning rows or text."""
