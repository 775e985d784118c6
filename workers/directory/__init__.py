"""The directory server: the mirror served as a SCIM 2.0 service provider
(docs/directory-server.md)."""
