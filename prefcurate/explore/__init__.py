"""Explore stage: ranking pairs by a signal (`ranking`), per-source statistics (`stats`), and the
HTML report (`report`)."""
