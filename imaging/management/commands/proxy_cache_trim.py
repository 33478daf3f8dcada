"""manage.py proxy_cache_trim: evict studies from the proxy cache until it is within MEDLABEL_PROXY_CACHE_MB.

Prefetches keep the bound themselves; this is for after the bound was lowered, and with 0 (the cache turned
off) it removes every cached copy, so that no pixels of an upstream study stay here."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from imaging.services.framecache import cache_evict, cache_limit_bytes, cache_used_bytes


class Command(BaseCommand):
    help = "Evict studies from the proxy cache (least recently prefetched first) down to MEDLABEL_PROXY_CACHE_MB."

    def handle(self, *args: Any, **options: Any) -> None:
        before = cache_used_bytes()
        after = cache_evict(cache_limit_bytes())
        mib = 1024 * 1024
        self.stdout.write(f"Proxy cache: {before / mib:.1f} MiB before, {after / mib:.1f} MiB now.")
