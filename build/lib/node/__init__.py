"""The referral node: HTTP server, storage, delivery, CLI. It calls ``protocol``."""
