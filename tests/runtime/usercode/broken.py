"""A user module that fails while importing."""

from __future__ import annotations

raise ImportError("support_bot needs the 'crm' extra: pip install support-bot[crm]")
