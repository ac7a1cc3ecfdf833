"""nudger: drafts polite follow-ups for sent mail that nobody answered."""

__version__ = "0.1.0"
