"""The create-and-retry loop both providers share.

A create bills, so it is never replayed blindly. A request that provably never left (a
:class:`NetworkError` with ``sent=False``) is sent again with the retry policy's backoff; once it
may have arrived, a failure is a :class:`CreateOutcomeUnknown`, which the job engine reconciles
instead of re-sending. A provider may also resubmit answers that say nothing was created (Tripo's
429 refusals): ``on_answer_error`` returns how long to wait before sending again, or raises.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional, TypeVar

from ..protocol.errors import CreateOutcomeUnknown, NetworkError, TripoError
from .http import RetryPolicy

log = logging.getLogger(__name__)

Answer = TypeVar("Answer")


def send_create(send: Callable[[], Answer], *, label: str, retry: RetryPolicy,
                sleep: Callable[[float], None], clock: Callable[[], float],
                lost_after_sending: Callable[[NetworkError, float], CreateOutcomeUnknown],
                on_answer_error: Optional[Callable[[TripoError, float], float]] = None,
                ) -> tuple[Answer, float]:
    """Sends one create until it leaves; returns the answer and the wall-clock time it was sent.

    ``lost_after_sending(exc, sent_at)`` makes the error for a connection that failed after the
    request may have arrived. ``on_answer_error(exc, sent_at)``, when given, sees every other
    :class:`TripoError` and returns the seconds to wait before resubmitting, or raises.
    """
    unreachable = 0
    while True:
        sent_at = clock()
        try:
            return send(), sent_at
        except NetworkError as exc:
            if exc.sent is False:
                unreachable += 1
                if unreachable >= retry.max_attempts:
                    raise
                wait = retry.delay(unreachable)
                log.info("%s not sent (connection failed); retrying in %.1f s", label, wait)
                sleep(wait)
                continue
            raise lost_after_sending(exc, sent_at) from exc
        except TripoError as exc:
            if on_answer_error is None:
                raise
            sleep(on_answer_error(exc, sent_at))
