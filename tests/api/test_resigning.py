"""Every upstream attempt is signed afresh, with its own X-Sdk-Date."""

from __future__ import annotations

import pytest

from gateway.clock import ManualClock
from tests.api.conftest import ACME, Gateway

pytestmark = pytest.mark.asyncio


class TickingClock(ManualClock):
    """A clock that moves one second each time it is read, so every signature gets a new timestamp."""

    def now(self) -> float:
        self.advance(1)
        return super().now()


@pytest.fixture
def clock() -> ManualClock:
    return TickingClock()


async def test_each_retry_carries_a_new_signature(gateway: Gateway) -> None:
    """Two failed attempts and a success: three different X-Sdk-Date values and signatures, all verified."""
    gateway.simulator.state.fail_next.extend([502, 503])
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert response.status == 200
    log = gateway.simulator.state.request_log
    assert [r.status for r in log] == [502, 503, 200]
    assert len({r.headers["X-Sdk-Date"] for r in log}) == 3
    assert len({r.headers["Authorization"] for r in log}) == 3
