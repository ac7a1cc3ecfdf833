"""What check-config prints about a valid file: each account, each rule, the daemon."""

from __future__ import annotations

from nudger.config.model import Account, Config


def summary(config: Config) -> str:
    """The short human summary that check-config prints."""
    lines = [f"{config.path}: OK"]
    for acc in config.accounts:
        lines.append(
            f"  account {acc.name}: {acc.username} at {acc.host}:{acc.port} ({acc.tls}), "
            f"{_sign_in(acc)}, identities {', '.join(acc.identities)}, "
            f"time zone {acc.timezone.key}, look-back {acc.lookback.days}d"
        )
    for i, rule in enumerate(config.rules):  # rules[i], as the error messages number them
        cond = []
        if rule.to:
            cond.append("to " + "|".join(rule.to))
        if rule.subject is not None:
            cond.append(f"subject ~ {rule.subject.pattern}")
        if rule.accounts:
            cond.append("account " + "|".join(rule.accounts))
        stages = ", then ".join(f"{s.after} ({s.template})" for s in rule.stages)
        lines.append(f"  rules[{i}] {rule.name}: {' and '.join(cond) or 'any message'} -> {stages}")
    lines.append(f"  state in {config.daemon.state_dir}, poll every {config.daemon.poll_interval}")
    return "\n".join(lines)


def _sign_in(acc: Account) -> str:
    if acc.oauth2 is not None:
        return f"OAuth2 with {acc.oauth2.provider} ({acc.oauth2.sasl.upper()})"
    assert acc.password is not None
    return f"password from {acc.password.describe()}"
