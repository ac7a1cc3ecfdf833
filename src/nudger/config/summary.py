"""What check-config prints about a valid file: each account, each rule, the daemon."""

from __future__ import annotations

from nudger.config.model import BUILTIN_TEMPLATES, Account, Config


def summary(config: Config) -> str:
    """The short human summary that check-config prints."""
    lines = [f"{config.path}: OK"]
    for acc in config.accounts:
        lines.append(
            f"  account {acc.name}: {acc.username} at {acc.host}:{acc.port} ({acc.tls}), "
            f"{_sign_in(acc)}, identities {', '.join(acc.identities)}, "
            f"time zone {acc.timezone.key}, look-back {acc.lookback.days}d"
        )
        if acc.smtp is not None:
            copy = {None: "auto", True: "yes", False: "no"}[acc.smtp.save_sent]
            lines.append(f"    sends through {acc.smtp.host}:{acc.smtp.port} ({acc.smtp.tls}) as "
                         f"{acc.smtp.username}, copy in Sent: {copy}")
    for i, rule in enumerate(config.rules):  # rules[i], as the error messages number them
        cond = []
        if rule.to:
            cond.append("to " + "|".join(rule.to))
        if rule.subject is not None:
            cond.append(f"subject ~ {rule.subject.pattern}")
        if rule.accounts:
            cond.append("account " + "|".join(rule.accounts))
        stages = ", then ".join(f"{s.after} ({s.template})" for s in rule.stages)
        sends = f"; sent by nudger {rule.send_after} after drafting" if rule.send_after else ""
        lines.append(f"  rules[{i}] {rule.name}: {' and '.join(cond) or 'any message'} -> {stages}{sends}")
    kinds = []
    for name, template in sorted(config.templates.items()):
        builtin = BUILTIN_TEMPLATES.get(name) == template
        texts = ", ".join(["en" if builtin else "body", *(lang for lang, _ in template.variants)])
        whose = "built in" if builtin else "yours"
        kinds.append(f"{name} ({whose}: {texts})")
    lines.append(f"  templates: {'; '.join(kinds)}")
    meetings = config.meetings
    if meetings.thank_you:
        series = ", one per series" if meetings.recurring else ", not for recurring ones"
        lines.append(f"  meetings: a thank-you draft {meetings.after} after each meeting you "
                     f"organised or accepted ({meetings.template}){series}")
    if config.digest is not None:
        lines.append(f"  digest at {config.digest.at:%H:%M} to {', '.join(config.digest.accounts)}")
    lines.append(f"  state in {config.daemon.state_dir}, poll every {config.daemon.poll_interval}")
    return "\n".join(lines)


def _sign_in(acc: Account) -> str:
    if acc.oauth2 is not None:
        return f"OAuth2 with {acc.oauth2.provider} ({acc.oauth2.sasl.upper()})"
    assert acc.password is not None
    return f"password from {acc.password.describe()}"
