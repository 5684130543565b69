# countersign's production image: `node dist/src/main.js` under tini, as an unprivileged user.
#
#   docker build -t countersign .                  (or: podman build --format docker -t countersign .)
#   docker build --build-arg BASE_IMAGE=registry.example.com/node:20-bookworm-slim -t countersign .
#
# BASE_IMAGE must be a Debian (apt) image with Node.js 20 or newer and npm on the PATH.
# The image needs DATABASE_URL (the embedded Postgres is left out: replicas must share one
# database) and a config at $COUNTERSIGN_CONFIG (a ConfigMap or a bind mount). `countersign
# check` runs as `node dist/src/cli/check.js`. test/e2e/image.test.ts builds this file and
# checks the result.
ARG BASE_IMAGE=node:20-bookworm-slim

# ---- build: all dependencies, compile TypeScript to dist/
FROM ${BASE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: ssh2's optional native crypto is not needed (Node's own has what it uses).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
RUN npm run build && rm dist/.tsbuildinfo

# ---- deps: production dependencies only (no dev, no optional: no embedded Postgres binaries)
FROM ${BASE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force

# ---- the image
FROM ${BASE_IMAGE}
# tini: PID 1 that forwards SIGTERM to node (which then drains tasks) and reaps children.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 countersign \
 && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin countersign
WORKDIR /app
# The code belongs to root: the app cannot change what it runs.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json manifest.yml countersign.schema.json ./
ENV NODE_ENV=production \
    PORT=3000 \
    COUNTERSIGN_CONFIG=/etc/countersign/countersign.yml
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--enable-source-maps", "dist/src/main.js"]
