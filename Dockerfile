# Bastion image: the gateway alone. Stdio upstreams run inside this container, so add the runtimes
# they need (node, uv, ...) in a derived image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c requirements.lock .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/bastion --create-home bastion
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /var/lib/bastion
ENV BASTION_HOST=0.0.0.0 \
    BASTION_PORT=4444 \
    PYTHONUNBUFFERED=1
EXPOSE 4444
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:4444/healthz', timeout=2)"]
# SIGTERM: stop taking requests, let in-flight calls finish (BASTION_SHUTDOWN_GRACE), then exit.
STOPSIGNAL SIGTERM
CMD ["bastion", "serve"]
