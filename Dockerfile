# riskserve image: the bundled models, the server as PID 1 (SIGTERM drains), the quantization cache on a volume.
# Install steps are the README's: ./run.sh installs the venv and riskserve (see run.sh `install`).
FROM python:3.11-slim-bookworm AS build
WORKDIR /opt/riskserve
ENV RISKSERVE_VENV=/opt/riskserve/.venv PYTHON=python3.11 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md run.sh ./
COPY protos ./protos
COPY server ./server
COPY loadtest ./loadtest
COPY modelbuild ./modelbuild
RUN ./run.sh install

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home --home-dir /opt/riskserve riskserve \
 && mkdir -p /var/cache/riskserve && chown riskserve /var/cache/riskserve
WORKDIR /opt/riskserve
COPY --from=build /opt/riskserve /opt/riskserve
COPY models ./models
ENV PATH=/opt/riskserve/.venv/bin:$PATH \
    RISKSERVE_CACHE_DIR=/var/cache/riskserve \
    RISKSERVE_HOST=0.0.0.0 \
    RISKSERVE_METRICS_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/cache/riskserve"]
EXPOSE 50051 9100
# Numeric, so runtimes can check runAsNonRoot without reading /etc/passwd (uid of `riskserve` above).
USER 10001
# Quantization and the accuracy gate run before SERVING; a warm cache makes this seconds, a cold one ~10-30 s.
# `riskserve health` asks 127.0.0.1 on RISKSERVE_PORT (default 50051), so it follows `-e RISKSERVE_PORT=...`.
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
  CMD ["riskserve", "health"]
# Exec form: riskserve is PID 1 and drains on SIGTERM (drain_pause_s + grace_period_s, 25 s by default),
# so stop it with `docker stop -t 30` (Docker's default 10 s would SIGKILL mid-drain).
ENTRYPOINT ["riskserve", "serve"]
