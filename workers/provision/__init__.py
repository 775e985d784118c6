"""Provisioning into the vendor: an IdP's SCIM writes become vendor writes
(docs/provisioning.md)."""
