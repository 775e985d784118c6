"""The SCIM target client, its quarantine, and the dry-run target that only plans."""
