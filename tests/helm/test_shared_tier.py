"""The chart and the shared tier: the Redis URL comes from a Secret mounted as a file, and pods
without one have no Redis at all."""

from __future__ import annotations

from tests.helm.conftest import container, env_of, find, manifests, render, volumes


def test_the_redis_url_comes_from_a_secret_file() -> None:
    """shared.existingSecret: GATEWAY_REDIS_URL_FILE names the mounted key; the URL is never an env value."""
    values = {"shared": {"existingSecret": "gateway-redis", "secretKey": "url"}, "replicaCount": 3}
    deployment = find(manifests(render(values)), "Deployment")
    env = env_of(deployment)
    assert env["GATEWAY_REDIS_URL_FILE"] == "/var/run/secrets/metastudio-gateway-redis/redis-url"
    assert "GATEWAY_REDIS_URL" not in env
    volume = volumes(deployment)["redis-url"]
    assert volume["secret"]["secretName"] == "gateway-redis"
    assert volume["secret"]["items"] == [{"key": "url", "path": "redis-url"}]
    mount = next(m for m in container(deployment)["volumeMounts"] if m["name"] == "redis-url")
    assert mount["readOnly"] and mount["mountPath"] == "/var/run/secrets/metastudio-gateway-redis"


def test_without_a_redis_secret_there_is_no_shared_tier() -> None:
    """The default: no Redis variable, no Redis volume."""
    deployment = find(manifests(render()), "Deployment")
    assert not any(name.startswith("GATEWAY_REDIS") for name in env_of(deployment))
    assert all(v["name"] != "redis-url" for v in deployment["spec"]["template"]["spec"]["volumes"])
