"""The vendor APIs: HTTP with token cache, proxy and rate limit; the WeCom and DingTalk
clients; the directory walk."""
