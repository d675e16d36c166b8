"""The read side: queries of the projections and the journal, and the views they answer with.

Plain functions of a session that know nothing of HTTP: ``api`` parses a request, calls one of
them, and returns its view; the UI and scripts can call them the same way. Nothing here imports
from ``api``.
"""
