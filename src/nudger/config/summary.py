"""What check-config prints about a valid file: each account, each rule, the daemon."""

from __future__ import annotations

from nudger.config.model import Config


def summary(config: Config) -> str:
    """The short human summary that check-config prints."""
    lines = [f"{config.path}: OK"]
    for acc in config.accounts:
        lines.append(
            f"  account {acc.name}: {acc.username} at {acc.host}:{acc.port} ({acc.tls}), "
            f"password from {acc.password.describe()}, identities {', '.join(acc.identities)}, "
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
    if config.digest is not None:
        lines.append(f"  digest at {config.digest.at:%H:%M} to {', '.join(config.digest.accounts)}")
    lines.append(f"  state in {config.daemon.state_dir}, poll every {config.daemon.poll_interval}")
    return "\n".join(lines)
