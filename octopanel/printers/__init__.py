"""Printer backends the actions drive: OctoPrint over HTTP, and a dry-run stand-in."""
