"""Each vendor's wire format, pure: envelope, signature, decryption, normalized events."""
