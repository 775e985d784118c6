"""The vendor simulator used by the integration tests and the demo."""
