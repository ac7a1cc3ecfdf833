"""The configuration: frozen, typed objects (model, pure) and the TOML that becomes them.

load finds, reads and validates the file (daemon, templates, rules), accounts validates
the [accounts.NAME] tables, check holds the typed reads that collect each problem with
its key path, summary is what check-config prints.
"""
