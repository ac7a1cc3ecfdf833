"""E-mail addresses in the one form nudger compares them in, and in the form a draft
writes them in.

Non-ASCII addresses (EAI, RFC 6531: ``jörg@bücher.example``, ``用户@例子.中国``) count like
any other. An address is kept lower-cased with its domain in Unicode (IDNA's U-labels):
``JÖRG@xn--bcher-kva.EXAMPLE`` and ``jörg@BÜCHER.example`` are the same person. Written
into a draft, an ASCII local part gets the ASCII form of its domain, so the header stays
ASCII for every server; only a non-ASCII local part needs a UTF-8 header (RFC 6532).
"""

from __future__ import annotations


def canonical_domain(domain: str) -> str:
    """The domain lower-cased, IDNA-equal forms made one (Python's IDNA codec: its
    nameprep folds case); one IDNA cannot read is kept as written, lower-cased."""
    domain = domain.lower()
    if domain.isascii() and "xn--" not in domain:
        return domain  # (nearly every address: no work)
    try:
        return domain.encode("idna").decode("idna")
    except UnicodeError:
        return domain


def canonical(address: str) -> str:
    """``address`` as compared: lower-cased, its domain as ``canonical_domain``."""
    if address.isascii() and "xn--" not in address:
        return address.lower()
    local, at, domain = address.rpartition("@")
    return f"{local.lower()}@{canonical_domain(domain)}" if at else address.lower()


def ascii_domain(domain: str) -> str | None:
    """The domain's ASCII form (A-labels), None if it has none."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def writable_local_part(local: str) -> bool:
    """A non-ASCII local part a UTF-8 header can carry as it is: at most 64 octets, no
    space, control, invisible formatting (a bidi override would disguise it) or the
    characters that end an address."""
    return (0 < len(local.encode("utf-8", "surrogatepass")) <= 64
            and all(ch.isprintable() and not ch.isspace() and ch not in '"(),:;<>@[\\]'
                    for ch in local))
