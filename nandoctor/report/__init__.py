"""Renderers only: every decision was made before a report is drawn."""
