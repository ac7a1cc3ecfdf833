"""The configuration: frozen, typed objects (model, pure) and the TOML that becomes them (load)."""
