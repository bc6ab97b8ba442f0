"""
``manage.py offload_tasks expire-orphans``: end the tasks that no server
process supervises any more.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_offload import leases


class Command(BaseCommand):
    help = "Maintain the task table."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        commands.add_parser(
            "expire-orphans",
            help=(
                "Mark EXPIRED (error code supervisor-lost) the open tasks whose "
                "server process stopped; run it after a restart or from cron."
            ),
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        count = leases.expire_orphaned_tasks()
        self.stdout.write(f"Expired {count} orphaned task(s).")
