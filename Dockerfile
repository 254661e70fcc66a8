# llm-router: multi-stage build, small non-root runtime image.
#
# Base: Node pinned to the patch release CI replays this file with (.ci/dockerfile-build compares
# it with the host's node). Pin the digest too when you publish images:
#   docker buildx imagetools inspect node:20.20.2-bookworm-slim   -> node:20.20.2-bookworm-slim@sha256:...
#
# PID 1: node runs as PID 1 here. llm-router installs its own SIGTERM/SIGINT/SIGHUP handlers (drain,
# then exit 0; Node reaps the processes it starts itself), but PID 1 ignores signals that arrive
# before those handlers exist and reaps no orphans: run with an init (`docker run --init`, compose
# `init: true`, as docker-compose.yml does). Kubernetes has no such switch (deploy/k8s/README.md).
#
# .ci/dockerfile-build replays this file outside Docker (same COPYs, same RUNs) and smoke-tests the
# runtime stage with its ENTRYPOINT, CMD and HEALTHCHECK: it supports FROM ... AS, WORKDIR, COPY
# [--from], RUN, ENV, USER, EXPOSE, HEALTHCHECK, ENTRYPOINT and CMD, and fails on anything else.
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
# Only src is compiled (tsconfig's test/ and bench/ globs match nothing here), then the dev
# dependencies (TypeScript, eslint, the Envoy API protos used by tests) are dropped.
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts

FROM node:20.20.2-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# The ext_proc protos are loaded at run time.
COPY proto ./proto
# The policies docker-compose.yml and `llm-router validate` examples use.
COPY examples ./examples
# render-envoy's default base.
COPY envoy/envoy.base.yaml ./envoy/envoy.base.yaml
# The base image's `node` user, numeric so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# gRPC (both ext_proc phases, grpc.health.v1) and the admin port (/healthz /readyz /metrics).
EXPOSE 50051 9090
# Probes the admin port LLM_ROUTER_ADMIN_LISTEN names (default 9090). With `--admin-listen off`,
# disable it (docker run --no-healthcheck, compose `healthcheck: {disable: true}`).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.LLM_ROUTER_ADMIN_LISTEN||':9090').split(':').pop()+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
