# metastudio-gateway: the production image.
#
#   docker build -t metastudio-gateway .
#   docker run -p 8080:8080 -e HUAWEICLOUD_SDK_AK -e HUAWEICLOUD_SDK_SK -e METASTUDIO_PROJECT_ID \
#     -v "$PWD/gateway.toml:/etc/metastudio-gateway/gateway.toml:ro" metastudio-gateway
#
# PyPI behind a TLS-intercepting proxy: copy the CA bundle that trusts it into the build context
# as pip-ca.crt and build with --build-arg PIP_CERT=/src/pip-ca.crt. Only the build stage sees
# it; the runtime image never contains it.
#
# Both stages run `python3` from PATH, never a fixed interpreter path, so any Debian bookworm
# image with python3, python3-venv and python3-pip can stand in for the official base.

FROM python:3.11-slim-bookworm AS build

ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# The bracket makes pip-ca.crt optional: the glob matches nothing when there is no such file.
COPY pyproject.toml README.md pip-ca.cr[t] ./
COPY gateway ./gateway

# Wheels of the project and every dependency, then the runtime virtualenv installed from those
# wheels alone (--no-index), without pip itself: the runtime image needs no installer.
RUN python3 -m venv /opt/build-tools \
    && /opt/build-tools/bin/pip wheel --no-cache-dir --wheel-dir /wheels . \
    && python3 -m venv --without-pip /opt/venv \
    && /opt/build-tools/bin/pip --python /opt/venv/bin/python install --no-cache-dir --no-index \
        --find-links /wheels /wheels/metastudio_gateway-*.whl


FROM python:3.11-slim-bookworm

LABEL org.opencontainers.image.title="metastudio-gateway" \
      org.opencontainers.image.description="Signing, caching gateway in front of Huawei Cloud MetaStudio's 2D model training job list" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_CONFIG=/etc/metastudio-gateway/gateway.toml \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080

RUN groupadd --gid 10001 gateway \
    && useradd --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin gateway

COPY --from=build /opt/venv /opt/venv

USER 10001:10001
EXPOSE 8080

# No curl in a slim image: the venv's Python asks /healthz on $GATEWAY_PORT, so set the port
# through GATEWAY_PORT rather than `serve --port`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('GATEWAY_PORT') or '8080'), timeout=4)"]

ENTRYPOINT ["metastudio-gateway"]
CMD ["serve"]
