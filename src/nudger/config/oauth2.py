"""The [accounts.NAME.oauth2] table: the provider's preset (or a custom server's
endpoints), the app registered there, and what it fills in of the account's server.

The presets are the providers' documented values: Microsoft's identity platform v2.0
endpoints with the tenant in the path and the Outlook scopes (IMAP.AccessAsUser.All,
SMTP.Send, offline_access for a refresh token); Google's endpoints and its one mail
scope, asked with access_type=offline and prompt=consent so that a refresh token comes
back every time.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from nudger.config.check import Checker
from nudger.config.model import OAUTH2_PROVIDERS, SASL_MECHANISMS, OAuth2

OAUTH2_KEYS = ("provider", "client_id", "client_secret_command", "tenant", "authorize_url",
               "token_url", "device_authorization_url", "scopes", "sasl")
_CUSTOM_ONLY = ("authorize_url", "token_url", "device_authorization_url", "scopes")

MICROSOFT = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/"
MICROSOFT_SCOPES = ("https://outlook.office.com/IMAP.AccessAsUser.All",
                    "https://outlook.office.com/SMTP.Send", "offline_access")
GOOGLE_SCOPES = ("https://mail.google.com/",)

# The server each preset fills in when the account names none: (host, port, tls).
SERVERS = {"microsoft": ("outlook.office365.com", 993, "implicit"),
           "google": ("imap.gmail.com", 993, "implicit")}


def preset_server(table: dict[str, Any]) -> tuple[str, int, str] | None:
    """The IMAP server a provider's preset implies, if the oauth2 table names one."""
    spec = table.get("oauth2")
    provider = spec.get("provider") if isinstance(spec, dict) else None
    return SERVERS.get(provider) if isinstance(provider, str) else None


def check_oauth2(check: Checker, value: Any, key: str, token_file: Path) -> OAuth2 | None:
    """The account's OAuth2 sign-in, or None (its problems noted, each naming its key)."""
    if value is None:
        check.fail(key, 'missing: auth = "oauth2" needs an [accounts.NAME.oauth2] table '
                        'with provider and client_id')
        return None
    table = check.table(value, key, OAUTH2_KEYS)
    if not table:
        return None
    provider = check.string(table, "provider", key)
    client_id = check.string(table, "client_id", key)
    for name, got in (("provider", provider), ("client_id", client_id)):
        if not got and name not in table:
            check.fail(f"{key}.{name}", "missing (required)")
    if provider is not None and provider not in OAUTH2_PROVIDERS:
        check.fail(f"{key}.provider", f'"{provider}" is not one of {", ".join(OAUTH2_PROVIDERS)}')
        return None
    sasl = check.string(table, "sasl", key) or "xoauth2"
    if sasl not in SASL_MECHANISMS:
        check.fail(f"{key}.sasl", f'"{sasl}" is not one of {", ".join(SASL_MECHANISMS)}')
    secret = check.command(table.get("client_secret_command"), f"{key}.client_secret_command")
    tenant = check.string(table, "tenant", key)
    if tenant is not None and provider != "microsoft":
        check.fail(f"{key}.tenant", 'only the "microsoft" provider has a tenant')
    if provider is None or not client_id:
        return None
    base = OAuth2(provider, client_id, authorize_url="", token_url="", scopes=(),
                  token_file=token_file, sasl=sasl, client_secret_command=secret)
    if provider == "custom":
        return _custom(check, table, key, base)
    for name in _CUSTOM_ONLY:
        if name in table:
            check.fail(f"{key}.{name}", f'set by the "{provider}" preset; give it only with '
                                        'provider = "custom"')
    if provider == "microsoft":
        tenant = tenant or "common"
        if not re.fullmatch(r"[A-Za-z0-9.-]+", tenant):
            check.fail(f"{key}.tenant", f'"{tenant}" is not a tenant (a domain, a directory ID, '
                                        'or "common", "organizations", "consumers")')
        url = MICROSOFT.format(tenant=tenant)
        return replace(base, authorize_url=url + "authorize", token_url=url + "token",
                       device_authorization_url=url + "devicecode", scopes=MICROSOFT_SCOPES,
                       tenant=tenant, redirect_host="localhost")
    return replace(base, authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
                   token_url="https://oauth2.googleapis.com/token", scopes=GOOGLE_SCOPES,
                   authorize_params=(("access_type", "offline"), ("prompt", "consent")))


def _custom(check: Checker, table: dict[str, Any], key: str, base: OAuth2) -> OAuth2 | None:
    urls = {}
    for name in ("authorize_url", "token_url", "device_authorization_url"):
        url = check.string(table, name, key)
        if url is None:
            if name != "device_authorization_url" and name not in table:
                check.fail(f"{key}.{name}", 'missing (required with provider = "custom")')
            continue
        if not re.match(r"https://|http://(127\.0\.0\.1|localhost|\[::1\])[:/]", url):
            check.fail(f"{key}.{name}", f'"{url}" must be an https:// address (http:// only '
                                        "to this machine)")
        urls[name] = url
    scopes = check.strings(table, "scopes", key)
    if not scopes:
        check.fail(f"{key}.scopes", 'missing: the scopes to ask for, e.g. ["imap", "offline_access"]')
    if "authorize_url" not in urls or "token_url" not in urls or not scopes:
        return None
    return replace(base, scopes=scopes, authorize_url=urls["authorize_url"], token_url=urls["token_url"],
                   device_authorization_url=urls.get("device_authorization_url", ""))

