"""Runs inside the child process: hooks, the user's script, events.

Small and fast to import on purpose: no rich, no typer here.
"""
