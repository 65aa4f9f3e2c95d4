"""``check-config`` reports the shared tier: where Redis is and how it is reached, never its password."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_commands import CREDENTIALS, GOOD_CONFIG, run
from tests.leaks import record, register_secrets
from tests.shared.helpers import REDIS_PASSWORD


@pytest.mark.parametrize(
    ("url", "cluster", "said"),
    [
        ("", "false", "shared tier off (this replica on its own)"),
        (
            f"rediss://:{REDIS_PASSWORD}@redis.example:6380/0",
            "false",
            "shared tier on Redis at redis.example:6380 over TLS",
        ),
        (f"redis://default:{REDIS_PASSWORD}@dcs.example", "true", "shared tier on Redis Cluster at dcs.example:6379"),
        ("unix:///run/redis/redis.sock", "false", "shared tier on Redis at unix socket /run/redis/redis.sock"),
    ],
)
def test_check_config_says_where_the_shared_tier_is(tmp_path: Path, url: str, cluster: str, said: str) -> None:
    """Off, TLS, Cluster and a unix socket, each in words, with the key prefix; exit 0."""
    register_secrets([REDIS_PASSWORD])
    config = tmp_path / "gateway.toml"
    config.write_text(GOOD_CONFIG + f'\n[shared]\ncluster = {cluster}\nkey_prefix = "edge"\n')
    result = run("check-config", "--config", str(config), env={**CREDENTIALS, "GATEWAY_REDIS_URL": url})
    record((result.stdout + result.stderr).encode(), "check-config output")
    assert result.returncode == 0, result.stderr
    assert said in result.stdout
    assert ("key prefix 'edge'" in result.stdout) == bool(url)
