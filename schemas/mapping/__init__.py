"""Attribute mapping per SCIM target: a small expression language (docs/mapping.md)."""
