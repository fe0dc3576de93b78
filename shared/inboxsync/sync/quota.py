"""A per-mailbox Gmail quota budget, spent before each call.

Gmail limits the units a user may spend per minute; the units each method costs
are configuration, not constants. The budget counts units in one-minute windows
and refuses a call that would go over, with the time until the window refills,
so the task is retried then instead of Gmail answering 429.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from inboxsync.errors import QuotaExhausted
from inboxsync.sync.models import (
    GmailMessage,
    HistoryPage,
    MessageFormat,
    MessagePage,
    QuotaState,
)
from inboxsync.sync.ports import MailboxGmail

__all__ = ["DEFAULT_METHOD_UNITS", "BudgetedGmail", "QuotaBudget"]

WINDOW_S = 60.0
DEFAULT_METHOD_UNITS: Mapping[str, int] = MappingProxyType(
    {
        "history.list": 2,
        "messages.list": 5,
        "messages.get": 5,
        "messages.modify": 5,
        "getProfile": 1,
    }
)


class QuotaBudget:
    """Units spent by one mailbox in the current window."""

    def __init__(
        self,
        *,
        units_per_minute: int,
        method_units: Mapping[str, int],
        state: QuotaState,
        clock: Callable[[], float],
    ) -> None:
        self._limit = units_per_minute
        self._method_units = method_units
        self._clock = clock
        self._window_start = state.window_start_s
        self._used = state.used_units
        self.spent_total = 0  # over this budget's lifetime, for the task's log line

    @property
    def state(self) -> QuotaState:
        return QuotaState(self._window_start, self._used)

    def charge(self, method: str, calls: int = 1) -> None:
        """Spend the units of `calls` calls to method, or raise QuotaExhausted."""
        units = self._method_units.get(method, 5) * calls
        now = self._clock()
        if now - self._window_start >= WINDOW_S or now < self._window_start:
            self._window_start, self._used = now, 0
        if self._used + units > self._limit:
            wait_s = self._window_start + WINDOW_S - now
            raise QuotaExhausted(
                f"Gmail quota budget spent: {self._used} of {self._limit} units this"
                f" minute, {method} needs {units}",
                retry_after_s=max(1.0, wait_s),
            )
        self._used += units
        self.spent_total += units


class BudgetedGmail:
    """A MailboxGmail that charges the budget before every call."""

    def __init__(self, gmail: MailboxGmail, budget: QuotaBudget) -> None:
        self._gmail = gmail
        self._budget = budget

    def get_profile_history_id(self) -> int:
        self._budget.charge("getProfile")
        return self._gmail.get_profile_history_id()

    def list_history(
        self, start_history_id: int, page_token: str | None
    ) -> HistoryPage:
        self._budget.charge("history.list")
        return self._gmail.list_history(start_history_id, page_token)

    def list_messages(
        self, query: str, page_token: str | None, page_size: int
    ) -> MessagePage:
        self._budget.charge("messages.list")
        return self._gmail.list_messages(query, page_token, page_size)

    def get_messages(
        self, message_ids: Sequence[str], fmt: MessageFormat
    ) -> Mapping[str, GmailMessage | None]:
        self._budget.charge("messages.get", len(message_ids))
        return self._gmail.get_messages(message_ids, fmt)

    def add_labels(self, message_id: str, label_ids: Sequence[str]) -> None:
        self._budget.charge("messages.modify")
        self._gmail.add_labels(message_id, label_ids)
