"""The command line: parse arguments, set up logging, run a command, map errors to exits."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from nudger import __version__
from nudger.config.load import find_config, load_config
from nudger.config.model import Config
from nudger.config.summary import summary
from nudger.errors import (
    EX_CONFIG,
    EX_FAILURE,
    EX_OK,
    EX_USAGE,
    ConfigError,
    NudgerError,
    UsageError,
    printable,
)

log = logging.getLogger("nudger")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nudger", description=__doc__ and "Drafts polite follow-ups for "
                     "sent mail nobody answered.")
    parser.add_argument("--version", action="version", version=f"nudger {__version__}")
    parser.add_argument("--config", metavar="PATH",
                        help="configuration file (default: $NUDGER_CONFIG, then "
                             "$XDG_CONFIG_HOME/nudger/config.toml)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="say more (-v: every decision, -vv: debug)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    # The same options after the command too ("nudger run --once -v"); SUPPRESS keeps a
    # subcommand from resetting what was given before it.
    common = _Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    check = add("check-config", "validate the configuration without connecting")
    check.add_argument("path", nargs="?", help="file to check (default: as --config)")
    run = add("run", "sync, decide and write the follow-up drafts that are due")
    run.add_argument("--once", action="store_true", help="one cycle, then exit (default: daemon)")
    run.add_argument("--dry-run", action="store_true",
                     help="connect and decide, but write nothing to the server or the state")
    run.add_argument("--now", metavar="ISO-8601", help="evaluate rules as if it were this time")
    run.add_argument("--json", action="store_true", help="one JSON object per thread on stdout")
    run.add_argument("--all", action="store_true",
                     help="report every thread of the window, not only those that changed")
    status = add("status", "what you are waiting on (from the state, no connection)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--now", metavar="ISO-8601", help=argparse.SUPPRESS)
    explain = add("explain", "why a thread was or was not nudged")
    explain.add_argument("message_id", metavar="MESSAGE-ID")
    explain.add_argument("--now", metavar="ISO-8601", help=argparse.SUPPRESS)
    stats = add("stats", "what your follow-ups achieved (from the state, no connection)")
    stats.add_argument("--json", action="store_true")
    stats.add_argument("--since", metavar="DURATION", default="90d",
                       help="follow-ups drafted in this period (default: 90d)")
    stats.add_argument("--now", metavar="ISO-8601", help=argparse.SUPPRESS)
    auth = add("auth", "sign an OAuth2 account in (Microsoft 365, Outlook.com, Gmail)")
    auth.add_argument("account", metavar="ACCOUNT")
    how = auth.add_mutually_exclusive_group()
    how.add_argument("--device", action="store_true",
                     help="show a code to enter on any device (default where the provider has it)")
    how.add_argument("--browser", action="store_true",
                     help="sign in in a browser, which comes back to this machine (default for Google)")
    auth.add_argument("--port", type=int, default=0, metavar="N",
                      help="the loopback port for the browser's return (default: any free one)")
    auth.add_argument("--no-browser", action="store_true",
                      help="only print the address to open (then paste back where the browser ended)")
    auth.add_argument("--check", action="store_true",
                      help="refresh the tokens and log in with them; say what was found")
    demo = add("demo", "a zero-setup trial on a built-in sample mailbox")
    demo.add_argument("--json", action="store_true")
    demo.add_argument("--now", metavar="ISO-8601", help="date the sample mailbox as if it were this time")
    return parser


def parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f'--now: "{text}" is not an ISO-8601 time (e.g. 2026-11-30T09:00+01:00)') from exc
    return value if value.tzinfo else value.astimezone()


def _config(args: argparse.Namespace) -> Config:
    return load_config(find_config(args.config))


def cmd_check_config(args: argparse.Namespace) -> int:
    from nudger.app.passwords import check_password_sources

    config = load_config(find_config(args.path or args.config))
    check_password_sources(config)
    print(summary(config))
    return EX_OK


def cmd_run(args: argparse.Namespace) -> int:
    from nudger.app.passwords import check_password_sources

    path = find_config(args.config)
    config = load_config(path)
    check_password_sources(config)  # before any connection; status/explain do not need it
    once = args.once or args.dry_run
    start = parse_now(args.now) if args.now else None  # (a bad --now: said before connecting)
    early = None
    if once and config.accounts:
        from nudger.app.connect import Early

        # The first account is connected to while what a cycle runs is imported (connect.py).
        early = Early(config.accounts[0])
    try:
        from nudger.app.daemon import run_daemon, run_once
    except BaseException:
        if early is not None:
            early.discard()
        raise

    # What is loaded by now lives as long as the process: spare the collector from
    # scanning it again at each full collection (a first sync allocates a great deal).
    gc.freeze()

    if once:
        return run_once(config, start or parse_now(None), args.dry_run, args.json, args.verbose > 0,
                        full=args.dry_run or args.all, early=early)
    # The service with --now: its clock starts then and goes on (a trial run; tests).
    return run_daemon(config, path, verbose=args.verbose > 0, start=start)


def cmd_status(args: argparse.Namespace) -> int:
    from nudger.app.views import status

    return status(_config(args), parse_now(args.now), args.json)


def cmd_explain(args: argparse.Namespace) -> int:
    from nudger.app.views import explain

    return explain(_config(args), args.message_id, parse_now(args.now))


def cmd_stats(args: argparse.Namespace) -> int:
    from nudger.app.stats import stats
    from nudger.core.durations import parse_duration

    try:
        since = parse_duration(args.since)
    except ValueError as exc:
        raise UsageError(f'--since: "{args.since}" is not a duration (e.g. 90d, 12w)') from exc
    return stats(_config(args), parse_now(args.now), since, args.json)
def cmd_auth(args: argparse.Namespace) -> int:
    from nudger.app.signin import run_auth

    return run_auth(_config(args), args.account, device=args.device, browser=args.browser,
                    port=args.port, no_browser=args.no_browser, check=args.check)


def cmd_demo(args: argparse.Namespace) -> int:
    from nudger.app.demo import run_demo

    return run_demo(args.json, parse_now(args.now) if args.now else None)


COMMANDS = {"check-config": cmd_check_config, "run": cmd_run, "status": cmd_status,
            "explain": cmd_explain, "stats": cmd_stats, "demo": cmd_demo, "auth": cmd_auth}


def setup_logging(verbose: int, daemon: bool = False) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose or daemon else logging.WARNING
    # journald stamps each line itself; elsewhere a time helps.
    journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(message)s" if journald else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_printable_message)
    logging.getLogger("imapclient").setLevel(logging.WARNING)  # it would log every command


def _printable_message(record: logging.LogRecord) -> bool:
    """Every line logged, as ``printable`` shows it: folder names and server answers are
    the server's words (a traceback, with --debug, is left as it is)."""
    message = record.getMessage()
    if not message.isprintable():
        record.msg, record.args = printable(message), None
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    debug = os.environ.get("NUDGER_DEBUG") == "1"
    try:
        args = parser.parse_args(argv)
        debug = debug or args.debug
        if args.command is None:
            parser.print_help(sys.stderr)
            return EX_USAGE
        setup_logging(args.verbose, daemon=args.command == "run" and not (args.once or args.dry_run))
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"nudger: {printable(problem)}", file=sys.stderr)
        return EX_CONFIG
    except NudgerError as exc:
        print(f"nudger: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EX_OK
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into a line
        if debug:
            raise
        print(f"nudger: internal error: {type(exc).__name__}: {printable(str(exc))} "
              "(this is a bug; run again with --debug for the traceback and report it)",
              file=sys.stderr)
        return EX_FAILURE

