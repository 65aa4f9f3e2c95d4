"""Credentials from mounted files: rotation takes effect without a restart."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from gateway.simulator.faults import Fault
from tests.api.conftest import ACME, SIM_AK, SIM_SK, Gateway, GatewayFactory

pytestmark = pytest.mark.asyncio


def _write(path: Path, value: str) -> None:
    # Replace by rename, as the kubelet does when a Secret changes.
    temporary = path.with_suffix(".new")
    temporary.write_text(value + "\n")
    os.replace(temporary, path)


async def _file_gateway(make_gateway: GatewayFactory, tmp_path: Path) -> tuple[Gateway, Path, Path]:
    ak, sk = tmp_path / "ak", tmp_path / "sk"
    _write(ak, SIM_AK)
    _write(sk, SIM_SK)
    gateway = await make_gateway(
        ttl_seconds=1, env={"HUAWEICLOUD_SDK_AK_FILE": str(ak), "HUAWEICLOUD_SDK_SK_FILE": str(sk)}
    )
    return gateway, ak, sk


async def test_rotated_files_are_used_after_the_next_check(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    """New key files are noticed within seconds: the next upstream call is signed with the new pair."""
    gateway, ak, sk = await _file_gateway(make_gateway, tmp_path)
    assert (await gateway.client.get("/v1/training-jobs", headers=ACME)).status == 200
    gateway.simulator.state.access_key, gateway.simulator.state.secret_key = "AK-NEW-2", "SK-NEW-2"
    _write(ak, "AK-NEW-2")
    _write(sk, "SK-NEW-2")
    gateway.clock.advance(12)  # past the entry's TTL and stale window, and the 2 s file check
    assert (await gateway.client.get("/v1/training-jobs", headers=ACME)).status == 200
    assert [r.status for r in gateway.simulator.state.request_log] == [200, 200]
    assert gateway.metric("metastudio_gateway_credential_reloads_total", trigger="file_changed") == 1


async def test_upstream_401_rereads_the_files_at_once(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    """When the upstream refuses the old pair before the periodic check, the files are re-read and the call retried."""
    gateway, ak, sk = await _file_gateway(make_gateway, tmp_path)
    gateway.simulator.state.access_key, gateway.simulator.state.secret_key = "AK-NEW-3", "SK-NEW-3"
    _write(ak, "AK-NEW-3")
    _write(sk, "SK-NEW-3")
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert response.status == 200
    assert [r.status for r in gateway.simulator.state.request_log] == [401, 200]
    assert gateway.metric("metastudio_gateway_credential_reloads_total", trigger="upstream_auth_failure") == 1


async def test_a_refusal_the_same_keys_would_meet_again_is_not_retried(
    make_gateway: GatewayFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream refuses the pair and the files still hold it: the files are re-read, and the
    call is not made again with the same keys (each refused request was two upstream calls)."""
    gateway, _ak, _sk = await _file_gateway(make_gateway, tmp_path)
    gateway.simulator.state.faults.append(Fault("status", status=403))
    with caplog.at_level(logging.INFO, logger="gateway.upstream.client"):
        for offset in range(5):
            response = await gateway.client.get(f"/v1/training-jobs?offset={offset}", headers=ACME)
            assert response.status == 502
        assert len(gateway.simulator.state.request_log) == 5
        assert gateway.metric("metastudio_gateway_credential_reloads_total", trigger="upstream_auth_failure") == 5
        gateway.simulator.state.faults.clear()
        assert (await gateway.client.get("/v1/training-jobs?offset=9", headers=ACME)).status == 200
        gateway.simulator.state.faults.append(Fault("status", status=403))
        assert (await gateway.client.get("/v1/training-jobs?offset=10", headers=ACME)).status == 502
    # The log says it once (not once a refusal), with the status and the upstream's error code
    # (APIGW.0302: no permission), never the keys; then that the credentials work again; and
    # when they are refused again, within the minute, it says so again.
    said = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert [level for level, _ in said] == [logging.WARNING, logging.INFO, logging.WARNING]
    assert "refused the gateway's credentials (HTTP 403, APIGW.0302)" in said[0][1]
    assert "accepts the gateway's credentials again" in said[1][1]
    assert not [text for _, text in said if SIM_AK in text or SIM_SK in text]


async def test_security_token_is_sent_and_signed(make_gateway: GatewayFactory) -> None:
    """With temporary credentials, X-Security-Token is sent and signed; the simulator demands it."""
    gateway = await make_gateway(
        env={
            "HUAWEICLOUD_SDK_AK": SIM_AK,
            "HUAWEICLOUD_SDK_SK": SIM_SK,
            "HUAWEICLOUD_SDK_SECURITY_TOKEN": "TOKEN-1",
        },
        simulator_options={"security_token": "TOKEN-1"},
    )
    assert (await gateway.client.get("/v1/training-jobs", headers=ACME)).status == 200
    (recorded,) = gateway.simulator.state.request_log
    assert "x-security-token" in recorded.headers["Authorization"]
    assert b"TOKEN-1" not in gateway.log.getvalue()


async def test_rotation_under_traffic_fails_no_request(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    """Keys rotated (upstream and files at once) while requests flow: every client request still gets 200."""
    gateway, ak, sk = await _file_gateway(make_gateway, tmp_path)
    statuses: list[int] = []

    async def client(worker: int) -> None:
        for round_ in range(15):
            response = await gateway.client.get(f"/v1/training-jobs?offset={worker * 100 + round_}", headers=ACME)
            statuses.append(response.status)
            await asyncio.sleep(0)

    async def rotate() -> None:
        await asyncio.sleep(0.05)
        gateway.simulator.state.access_key, gateway.simulator.state.secret_key = "AK-NEW-4", "SK-NEW-4"
        _write(ak, "AK-NEW-4")
        _write(sk, "SK-NEW-4")
        gateway.clock.advance(3)

    await asyncio.gather(rotate(), *(client(worker) for worker in range(8)))
    assert statuses == [200] * 120
    assert {r.status for r in gateway.simulator.state.request_log} >= {200}
    assert gateway.simulator.state.request_log[-1].headers["Authorization"].split(",")[0].endswith("AK-NEW-4")
