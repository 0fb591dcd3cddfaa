"""Exports of derived results: plain text and LaTeX."""
