"""The OAuth2 edge: signing in at the provider (device grant, authorization code with
PKCE on a loopback redirect), its token endpoint, and the tokens kept for each account.

``grants`` and ``sasl`` are pure (what an error means, when to refresh, what goes on
the wire to IMAP); ``endpoint``, ``flows`` and ``tokens`` do the HTTP and the files.
No token, code or secret is ever put in a log line or an error message.
"""
