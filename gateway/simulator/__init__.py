"""The MetaStudio simulator: a real aiohttp server standing in for the upstream.

It serves ``GET /v1/{project_id}/digital-human-training-manage/user/jobs`` over a realistic,
seeded dataset, checks every request's SDK-HMAC-SHA256 signature as Huawei Cloud's API
gateway does, and hands out OBS-style pre-signed cover URLs (valid 24 hours on the injected
clock) that it also serves. The gateway's tests, demo and benchmarks all run against it.

Modules: ``app`` (routes and handlers), ``runner`` (starting it), ``state`` (what tests
inspect and tune), ``verify`` (signature checks), ``query`` (parameters, filters, paging),
``dataset`` (the jobs), ``covers`` (pre-signed URLs and the PNG), ``cloud`` (the fake IAM, STS,
ECS metadata and CCE pod identity that issue the temporary credentials and IAM tokens the jobs
endpoint then accepts).
"""

from gateway.simulator.app import create_simulator_app
from gateway.simulator.dataset import RAW_STATES
from gateway.simulator.runner import RunningSimulator, run_simulator, running_simulator
from gateway.simulator.state import SIMULATOR_STATE, RecordedRequest, SimulatorState

__all__ = [
    "RAW_STATES",
    "SIMULATOR_STATE",
    "RecordedRequest",
    "RunningSimulator",
    "SimulatorState",
    "create_simulator_app",
    "run_simulator",
    "running_simulator",
]
