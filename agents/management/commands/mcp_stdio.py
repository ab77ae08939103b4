"""`manage.py mcp_stdio`: the MCP tools over stdin/stdout, for desktop MCP clients (docs/mcp.md)."""
from __future__ import annotations

import os
from typing import Any

import anyio
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.mcp.auth import key_from_plain
from agents.mcp.stdio import stdio_server

KEY_VARIABLE = "CASELOOP_API_KEY"


class Command(BaseCommand):
    help = f"Serve the MCP tools over stdio with an API key (--key, or ${KEY_VARIABLE}: kept out of `ps`)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key", default="", help=f"The API key; defaults to ${KEY_VARIABLE}.")

    def handle(self, *args: Any, key: str, **options: Any) -> None:
        plain_key = key or os.environ.get(KEY_VARIABLE, "")
        if not plain_key:
            raise CommandError(f"Give an API key: --key KEY or the environment variable {KEY_VARIABLE}.")
        if key_from_plain(plain_key) is None:
            raise CommandError("Invalid or revoked API key.")
        # stdout is the protocol's channel from here on: nothing else may write to it.
        anyio.run(stdio_server(plain_key=plain_key).run_stdio_async)
